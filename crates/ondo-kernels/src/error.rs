//! Typed errors for the fallible kernel entry points (currently [`crate::quantize_row`]).

use crate::DType;

/// Errors returned by fallible kernel functions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The operation is not implemented for this element type (e.g. quantizing to a K-quant).
    #[error("operation not supported for dtype {0:?}")]
    Unsupported(DType),
    /// The element count is not a multiple of the type's block size.
    #[error("{n_elems} elements is not a multiple of the {dtype:?} block size {block}")]
    NotBlockAligned {
        dtype: DType,
        n_elems: usize,
        block: usize,
    },
    /// A buffer has the wrong length.
    #[error("buffer length mismatch: expected {expected} bytes/elements, got {got}")]
    LengthMismatch { expected: usize, got: usize },
}
