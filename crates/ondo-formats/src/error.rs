//! Typed errors of GGUF reading, writing and metadata access.
//!
//! Every message is a single line that says what is wrong and where (a byte offset into the
//! file, or a metadata key / tensor name).

/// Everything that can go wrong while reading or writing a GGUF file.
#[derive(thiserror::Error, Debug)]
pub enum GgufError {
    /// An I/O error (the message includes the path where one is known).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the bytes `GGUF`.
    #[error("not a GGUF file: bad magic at offset 0 (expected \"GGUF\")")]
    BadMagic,
    /// The version at offset 4 is not 2 or 3.
    #[error("unsupported GGUF version {0} at offset 4 (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    /// The version reads as 2 or 3 only when byte-swapped: a big-endian file.
    #[error("big-endian GGUF (version {0} when byte-swapped) at offset 4 is not supported")]
    BigEndian(u32),
    /// A field runs past the end of the file.
    #[error("truncated file: {what} at offset {offset} needs {needed} bytes, but only {available} remain")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A length or count exceeds a fixed cap or what the remaining bytes could hold.
    #[error("{what} at offset {offset} is too large: {value} (limit {limit})")]
    TooLarge {
        what: String,
        offset: u64,
        value: u64,
        limit: u64,
    },
    /// A key, tensor name or string value is not valid UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    /// A field holds a value the format does not allow.
    #[error("invalid {what} at offset {offset}: {reason}")]
    Invalid {
        what: String,
        offset: u64,
        reason: String,
    },
    /// A metadata value type id outside 0..=12.
    #[error("unknown value type id {id} for {what} at offset {offset}")]
    UnknownValueType { what: String, id: u32, offset: u64 },
    /// Arrays nested deeper than [`crate::MAX_ARRAY_DEPTH`].
    #[error("arrays nested deeper than {limit} levels in {what} at offset {offset}")]
    NestingTooDeep {
        what: String,
        offset: u64,
        limit: usize,
    },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key '{key}' at offset {offset}")]
    DuplicateKey { key: String, offset: u64 },
    /// The same tensor name appears twice.
    #[error("duplicate tensor name '{name}' at offset {offset}")]
    DuplicateTensor { name: String, offset: u64 },
    /// `general.alignment` is not a UINT32 power of two in 1..=1 MiB.
    #[error("invalid general.alignment at offset {offset}: {reason}")]
    BadAlignment { offset: u64, reason: String },
    /// A tensor uses a ggml type id that is unknown or removed.
    #[error("tensor '{name}' at offset {offset}: unknown or removed ggml type id {id}")]
    UnknownGgmlType { name: String, id: u32, offset: u64 },
    /// A tensor info entry is inconsistent (dims, size, offset).
    #[error("tensor '{name}' at offset {offset}: {reason}")]
    BadTensor {
        name: String,
        offset: u64,
        reason: String,
    },
    /// A tensor's data range lies (partly) past the end of the file.
    #[error("tensor '{name}': data range {start}..{end} lies past the end of the file ({file_size} bytes)")]
    TensorOutOfBounds {
        name: String,
        start: u128,
        end: u128,
        file_size: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error("tensors '{first}' (data {first_start}..{first_end}) and '{second}' (data {second_start}..{second_end}) overlap")]
    TensorOverlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
        second_end: u64,
    },
    /// A metadata key is present with a different type than the caller asked for.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A metadata integer is present but does not fit the requested type.
    #[error("metadata key '{key}' holds {value}, which does not fit in {expected}")]
    ValueOutOfRange {
        key: String,
        value: String,
        expected: &'static str,
    },
    /// The writer was given inconsistent input.
    #[error("cannot write GGUF: {0}")]
    Write(String),
}

impl GgufError {
    /// An I/O error that names the path it concerns.
    pub(crate) fn io_at(path: &std::path::Path, e: std::io::Error) -> GgufError {
        GgufError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    }
}
