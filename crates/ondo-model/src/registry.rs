//! The one place that maps `general.architecture` to a model implementation.

use std::sync::Arc;

use ondo_formats::GgufFile;

use crate::{LlamaModel, ModelError};

/// Architectures whose GGUF tensors follow the Llama layout.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

/// Builds the model a GGUF file describes.
pub fn load_model(file: &Arc<GgufFile>) -> Result<LlamaModel, ModelError> {
    let arch = file
        .metadata()
        .get_str("general.architecture")?
        .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
    if !SUPPORTED_ARCHITECTURES.contains(&arch) {
        return Err(ModelError::UnsupportedArchitecture(
            arch.to_string(),
            SUPPORTED_ARCHITECTURES.join(", "),
        ));
    }
    LlamaModel::from_gguf(file, arch)
}
