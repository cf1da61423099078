//! Training for Llama-family models: the backward passes of the Llama block's ops and LoRA
//! adapters, generic over [`Float`] (f32 to train, f64 for the gradient checks in
//! `tests/gradcheck.rs`).
//!
//! - `ops/`: one file per op, forward and backward, shapes in comments.
//!
//! Frozen weights are plain floats in [`ops::linear::Dense`]; that type and its two products
//! are the one place a quantized base will plug in.

mod float;
pub mod ops;
mod rng;

pub use float::Float;
pub use ops::linear::Dense;
pub use ops::lora::Lora;
pub use rng::Rng;

/// Errors from checking a configuration or a batch against a model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrainError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("token {id} out of range (n_vocab {n_vocab})")]
    BadToken { id: u32, n_vocab: usize },
    #[error("batch shape: {0}")]
    Batch(String),
}
