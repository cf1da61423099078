//! Typed errors of model loading and evaluation.

use ondo_formats::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Format(#[from] GgufError),
    #[error("architecture '{0}' is not supported (supported: {1})")]
    UnsupportedArchitecture(String, String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("invalid hyperparameter: {0}")]
    BadHyperparameter(String),
    #[error("tensor '{0}' is missing from the model file")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor '{name}' uses type {type_name}, which ondo does not support (supported: {supported})")]
    UnsupportedType {
        name: String,
        type_name: String,
        supported: String,
    },
    #[error("token id {id} is outside the vocabulary (size {n_vocab})")]
    BadToken { id: u32, n_vocab: usize },
    #[error("invalid LoRA adapter: {0}")]
    BadAdapter(String),
    #[error(
        "the context is full: {needed} positions needed, {capacity} available (raise -c / --ctx)"
    )]
    ContextFull { needed: usize, capacity: usize },
}
