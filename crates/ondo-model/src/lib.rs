//! ondo-model: Llama-family transformer models over quantized weights.
//!
//! A model is built from an already opened [`ondo_formats::GgufFile`]: this crate opens no
//! files. Weights are [`QWeight`]s (dtype + bytes + shape); the forward pass never branches on
//! the quant type, the kernels dispatch on it. The KV cache is owned by the caller and passed in,
//! so one loaded model can serve many sequences.
//!
//! Two forward passes live here: [`reference`] (one token at a time, scalar kernels, shapes in
//! comments: the one every fast path is tested against) and [`LlamaModel::forward`] (batched
//! over the tokens of a prompt, SIMD kernels through `ondo_kernels`).

mod attention;
mod config;
mod error;
pub mod grad;
mod kv;
mod llama;
pub mod lora;
pub mod lora_peft;
mod matmul;
pub mod reference;
mod registry;
mod rope;
mod weights;

pub use config::{LlamaConfig, Numerics, RopeScaling};
pub use error::ModelError;
pub use kv::KvCache;
pub use llama::{LayerWeights, LlamaModel, Logits, SeqInput};
pub use registry::{load_model, load_model_for, SUPPORTED_ARCHITECTURES};
pub use weights::QWeight;
