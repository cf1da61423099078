//! ondo-formats: a hardened, memory-mapped GGUF (v2/v3) reader and a GGUF v3 writer, and a
//! hardened safetensors reader and writer ([`safetensors`], for PEFT LoRA adapters and HF model
//! folders; its policies are documented there).
//!
//! # Reading
//! [`GgufFile::open`] maps a file read-only; [`GgufFile::from_bytes`] parses an owned buffer.
//! Everything is validated before `open` returns, so accessors such as
//! [`GgufFile::tensor_data`] never fail and never read out of bounds.
//!
//! # Guarantees on hostile input
//! Every malformed file ends in a typed [`GgufError`] whose `Display` is one line naming the
//! problem and its byte offset. Parsing never panics, never recurses more than
//! [`MAX_ARRAY_DEPTH`] levels, runs in time `O(n log n)` in the file size, and checks every
//! `count × minimum on-disk element size` against the remaining bytes *before* allocating, so
//! heap use is bounded by a small multiple of the file's own bytes. All size arithmetic is
//! `u64` with checked operations; lengths are never cast to signed types.
//!
//! # Policies (where the spec leaves a choice)
//! * Versions 2 and 3 are read (their layouts are identical); others are an error.
//!   Big-endian files are detected and rejected with their own error.
//! * Keys: 1..=[`MAX_KEY_LEN`] bytes, UTF-8, no NUL. Tensor names: 1..=[`MAX_TENSOR_NAME_LEN`]
//!   bytes (ggml's `GGML_MAX_NAME` is 64 including the NUL), UTF-8, no NUL.
//! * String *values* must be valid UTF-8 (error, not lossy: a silently altered token would
//!   corrupt a vocabulary); NUL inside values is allowed. Values are capped at
//!   [`MAX_STRING_LEN`] bytes.
//! * Bool values must be 0 or 1. Arrays may nest at most [`MAX_ARRAY_DEPTH`] levels.
//! * `general.alignment`, if present, must be a UINT32, a power of two, 1..=[`MAX_ALIGNMENT`].
//! * Tensors: `n_dims` 1..=4, every dim in 1..2^63 (a zero dim is rejected: ggml code divides
//!   by dims, and no real model stores empty tensors), element count < 2^63, `dims[0]` a
//!   multiple of the type's block size, byte size representable in `u64`, offset a multiple of
//!   the alignment, data range inside the file, no two ranges overlapping. Tensors need not be
//!   stored in file order and gaps between them are allowed.
//! * Unknown or removed ggml type ids are errors; every known type is accepted here (the model
//!   layer decides which it can run).
//! * Bytes after the last tensor are accepted and ignored (padding, or appended data).
//!
//! # Writing and test data
//! [`GgufWriter`] builds v3 files. [`testdata`] holds a tiny valid llama-like model and the
//! malformed-file corpus (written to `tests/fixtures/malformed/` by the `gen_malformed` example).

mod backing;
mod error;
mod file;
mod ggml_type;
mod parse;
pub mod safetensors;
pub mod testdata;
mod value;
mod writer;

pub use error::GgufError;
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use parse::{
    tensor_size, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_KEY_LEN,
    MAX_STRING_LEN, MAX_TENSOR_NAME_LEN,
};
pub use safetensors::{SafeTensors, SafeTensorsWriter, SafetensorsError};
pub use value::{Array, Metadata, Value, ValueType};
pub use writer::GgufWriter;

/// The four magic bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// One tensor's header entry, validated against the file at open time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name (1..=63 bytes of UTF-8, no NUL).
    pub name: String,
    /// Shape in ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
    /// Number of elements (product of `dims`).
    pub n_elems: u64,
    /// Number of bytes of data (`n_elems / block_elems * block_bytes`).
    pub n_bytes: u64,
}
