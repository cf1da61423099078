//! Training for Llama-family models: the backward passes of the Llama block, LoRA adapters and
//! a small full model with forward + backward, generic over [`Float`] (f32 to train, f64 for
//! the gradient checks in `tests/gradcheck.rs`).
//!
//! - `ops/`: one file per op, forward and backward, shapes in comments;
//! - `params.rs`: a block's shape, weights and LoRA adapters;
//! - `block.rs`: one Llama block (attention + SwiGLU MLP, each behind an RMSNorm and a
//!   residual) with LoRA on any of its seven projections;
//! - `model.rs`: embedding → blocks → final norm → output → masked cross-entropy;
//! - `optim.rs`: AdamW, gradient clipping, the warm-up + cosine schedule, accumulation;
//! - `trainer.rs`: a LoRA run's whole state and one optimizer step over the data;
//! - `checkpoint.rs`: that state on disk, resumed bit for bit;
//! - `data.rs`: JSONL (chat messages, prompt/completion, text) → tokens, targets, loss mask.
//!
//! Frozen weights are plain floats in [`ops::linear::Dense`]; that type and its two products
//! are the one place a quantized base will plug in.

mod block;
pub mod checkpoint;
pub mod data;
mod float;
pub mod from_llama;
mod model;
pub mod ops;
pub mod optim;
mod params;
mod rng;
mod trainer;

pub use block::{block_backward, block_forward, BlockActs};
pub use float::Float;
pub use model::{Model, ModelConfig, ModelLora, ModelWeights};
pub use ops::linear::Dense;
pub use ops::lora::Lora;
pub use params::{BlockConfig, BlockLora, BlockWeights, Target};
pub use rng::Rng;
pub use trainer::{epoch_order, DataPos, StepStats, TrainConfig, TrainState};

/// Errors from checking a configuration or a batch against a model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrainError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("token {id} out of range (n_vocab {n_vocab})")]
    BadToken { id: u32, n_vocab: usize },
    #[error("batch shape: {0}")]
    Batch(String),
    #[error("optimizer: {0}")]
    Optim(String),
}
