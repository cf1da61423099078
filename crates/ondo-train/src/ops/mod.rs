//! Forward and backward of every op in a Llama block, generic over [`Float`](crate::Float)
//! (f32 to train, f64 for the gradient checks).
//!
//! Conventions, the same in every file:
//! - activations are row-major slices `[n tokens][width]`; matrices are `[out][in]` as GGUF
//!   and PyTorch store them;
//! - a forward writes its outputs (overwriting) and returns what its backward needs;
//! - a backward ADDS into its gradient outputs (`dx += ...`, `dw += ...`), so gradients of a
//!   value used twice (residuals, q/k/v from one input) and accumulation over micro-batches
//!   come for free; callers zero them first.
//!
//! Shapes are checked with `assert!`: a mismatch is a bug in the caller, never bad input data.

pub mod attention;
pub mod cross_entropy;
pub mod embedding;
pub mod linear;
pub mod lora;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;
