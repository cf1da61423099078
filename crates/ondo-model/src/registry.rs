//! The one place that maps `general.architecture` to a model implementation.

use std::sync::Arc;

use ondo_formats::GgufFile;

use crate::{LlamaModel, ModelError, Numerics};

/// Architectures whose GGUF tensors follow the Llama layout.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

/// Builds the model a GGUF file describes, with the default numerics (llama.cpp's).
pub fn load_model(file: &Arc<GgufFile>) -> Result<LlamaModel, ModelError> {
    load_model_for(file, Numerics::default())
}

/// [`load_model`] for `numerics`, with the weights laid out for its products (another
/// numerics set later computes the same values, at the speed of that layout).
pub fn load_model_for(file: &Arc<GgufFile>, numerics: Numerics) -> Result<LlamaModel, ModelError> {
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
    LlamaModel::from_gguf(file, arch, numerics)
}
