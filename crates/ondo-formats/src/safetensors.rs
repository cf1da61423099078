//! Safetensors (Hugging Face): a validating reader over a memory map or an owned buffer, and a
//! writer. Used for PEFT LoRA adapters (`adapter_model.safetensors`) and HF model folders.
//!
//! # Format
//! An 8-byte little-endian `u64` N, N bytes of UTF-8 JSON header, then the data buffer. The
//! header is an object mapping tensor names to `{"dtype", "shape", "data_offsets": [begin,
//! end]}` (offsets relative to the start of the buffer), plus an optional `"__metadata__"`
//! object of string values.
//!
//! # Reading
//! [`SafeTensors::open`] maps a file read-only; [`SafeTensors::from_bytes`] takes an owned
//! buffer. Everything below is checked before either returns, so [`SafeTensors::data`] never
//! fails and never reads out of bounds.
//!
//! # Guarantees on hostile input
//! Every malformed file ends in a typed [`SafetensorsError`] whose `Display` is one line naming
//! the problem, the tensor where there is one, and the absolute byte offset where parsing
//! stopped. Parsing never panics and never recurses, runs in time `O(n log n)` in the header
//! length, and allocates nothing in proportion to a number read from the file: N is checked
//! against the file length and the cap before the header is read, and sizes are only compared,
//! never allocated. The header is read by a small schema-driven JSON parser (`header.rs`), not
//! into a generic JSON tree: a `serde_json::Value` costs up to 32 bytes per header byte
//! (`[0,0,…]`) and silently keeps the last of two equal keys. Heap use stays under 12 bytes
//! per header byte (8 per `0,` in a shape plus growth, a `String` pair per metadata entry;
//! `tests/safetensors_alloc.rs`), so at most ~1.2 GB for a header at the 100 MB cap; real
//! headers are kilobytes. `serde_json` decodes string literals that contain escapes and encodes them when
//! writing. All size arithmetic is `u64` with checked operations.
//!
//! # Policies (reference: the `safetensors` crate's `read_metadata` and `validate`)
//! * N ≤ file length − 8 and N ≤ [`MAX_HEADER_LEN`] (100 MB, the reference's cap). N need not
//!   be a multiple of 8; [`SafeTensors::data`] returns bytes, so alignment is the caller's
//!   concern.
//! * The header must be valid UTF-8 and one JSON object that starts at its first byte (leading
//!   whitespace is rejected, like the reference's `InvalidHeaderStart`). After the closing `}`
//!   only spaces (0x20, the reference writer's padding) may follow; any other byte, newlines and
//!   tabs included, is rejected. Between tokens JSON's whitespace is allowed.
//! * A key that appears twice in any object (top level, `__metadata__`, a tensor entry) is a
//!   [`SafetensorsError::DuplicateKey`], whether the values are identical or not and however
//!   the key is escaped (`"a"` and `"\u0061"` are the same key).
//! * `__metadata__`, if present, is an object whose values are all strings (`null`, numbers,
//!   nested objects or arrays are rejected). It is optional; absent means empty.
//! * A tensor entry is an object with exactly `dtype`, `shape` and `data_offsets`; a missing
//!   or unknown field is an error. Names are any JSON string (empty too) but `__metadata__`.
//! * `dtype` is one of [`Dtype`] (every byte-sized reference type). The sub-byte types `F4`,
//!   `F6_E2M3` and `F6_E3M2` are [`SafetensorsError::UnsupportedDtype`] whatever their element
//!   count (so an odd-count `F4` never reaches size arithmetic); any other name is
//!   [`SafetensorsError::UnknownDtype`]. Names are case-sensitive.
//! * `shape` is a list of non-negative JSON integers that fit in `u64` (no fractions,
//!   exponents or signs), of any rank. `[]` is a scalar (one element); a zero dimension is an
//!   empty tensor with zero bytes; both load. The element count × dtype size is computed with
//!   `checked_mul` and must equal `end − begin`.
//! * `data_offsets` is a list of exactly two such integers with `begin ≤ end ≤ buffer length`.
//! * Layout (the reference's `validate`): sorted by `(begin, end)` the ranges tile the buffer:
//!   the first begins at 0, each begins where the previous ends (a gap or an overlap is a
//!   [`SafetensorsError::Layout`] error), and the last ends at the end of the file (anything
//!   after it is [`SafetensorsError::TrailingBytes`]). Zero-sized tensors may share a position.
//!
//! # Writing
//! [`SafeTensorsWriter`] takes tensors (owned or borrowed bytes) and metadata and writes what
//! the reference writer writes for the same input: compact JSON, `__metadata__` first (omitted
//! when empty), tensors sorted by name with data in that order, fields in the order `dtype`,
//! `shape`, `data_offsets`, the header padded with spaces to a multiple of 8 bytes. (The
//! reference's newer releases order data by dtype alignment first; name order is a valid
//! layout either way.) [`SafeTensorsWriter::write`] streams to `<path>.partial`, syncs it and
//! renames it over `path`, so a crash never leaves a half-written file under the final name.

mod header;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::backing::Backing;

/// The largest accepted header length N, in bytes (the reference's `MAX_HEADER_SIZE`).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

macro_rules! dtypes {
    ($($variant:ident = $name:literal, $size:literal;)*) => {
        /// A tensor element type; every one is a whole number of bytes per element (`C64` is
        /// a complex number of two `f32`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Dtype { $($variant,)* }
        /// `(type, header name, bytes per element)` for every supported dtype.
        const DTYPES: &[(Dtype, &str, u64)] = &[$((Dtype::$variant, $name, $size),)*];
    };
}

dtypes! {
    Bool = "BOOL", 1; U8 = "U8", 1; I8 = "I8", 1;
    F8E5M2 = "F8_E5M2", 1; F8E4M3 = "F8_E4M3", 1; F8E8M0 = "F8_E8M0", 1;
    I16 = "I16", 2; U16 = "U16", 2; F16 = "F16", 2; BF16 = "BF16", 2;
    I32 = "I32", 4; U32 = "U32", 4; F32 = "F32", 4;
    C64 = "C64", 8; F64 = "F64", 8; I64 = "I64", 8; U64 = "U64", 8;
}

/// Reference dtypes narrower than a byte, with their bits per element: rejected.
const SUB_BYTE_DTYPES: [(&str, u32); 3] = [("F4", 4), ("F6_E2M3", 6), ("F6_E3M2", 6)];

impl Dtype {
    /// The dtype named `name` in a header (`"F32"`, `"BF16"`, …), if supported.
    pub fn from_name(name: &str) -> Option<Dtype> {
        DTYPES.iter().find(|d| d.1 == name).map(|d| d.0)
    }

    /// The name written in headers.
    pub fn name(self) -> &'static str {
        DTYPES.iter().find(|d| d.0 == self).map_or("?", |d| d.1)
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        DTYPES.iter().find(|d| d.0 == self).map_or(1, |d| d.2)
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong reading or writing a safetensors file. Offsets are absolute
/// byte offsets into the file (the header starts at 8).
#[derive(thiserror::Error, Debug)]
pub enum SafetensorsError {
    /// An I/O error (the message includes the path where one is known).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file is too short to hold the 8-byte header length.
    #[error("file is {len} bytes, too short for the 8-byte header length")]
    TooShort { len: u64 },
    /// N exceeds [`MAX_HEADER_LEN`].
    #[error("header length {len} at offset 0 exceeds the limit of {limit} bytes")]
    HeaderTooLarge { len: u64, limit: u64 },
    /// N exceeds the bytes after the length prefix.
    #[error(
        "header length {len} at offset 0 runs past the end of the file ({available} bytes follow)"
    )]
    HeaderPastEnd { len: u64, available: u64 },
    /// The header is not valid UTF-8.
    #[error("header is not valid UTF-8 at offset {offset}")]
    HeaderNotUtf8 { offset: u64 },
    /// The header is not JSON, not an object, or has bytes other than space padding around it.
    #[error("invalid header JSON at offset {offset}: {reason}")]
    Json { offset: u64, reason: String },
    /// A key appears twice in one JSON object.
    #[error("duplicate key {key:?} at offset {offset}")]
    DuplicateKey { key: String, offset: u64 },
    /// `__metadata__` is not an object of strings.
    #[error("invalid __metadata__ at offset {offset}: {reason}")]
    BadMetadata { offset: u64, reason: String },
    /// A dtype name this format does not define.
    #[error("tensor {name:?} at offset {offset}: unknown dtype {dtype:?}")]
    UnknownDtype {
        name: String,
        dtype: String,
        offset: u64,
    },
    /// A defined dtype narrower than a byte (`F4`, `F6_*`).
    #[error("tensor {name:?} at offset {offset}: dtype {dtype:?} ({bits} bits per element) is not supported")]
    UnsupportedDtype {
        name: String,
        dtype: String,
        bits: u32,
        offset: u64,
    },
    /// A tensor entry has a field other than `dtype`, `shape`, `data_offsets`.
    #[error("tensor {name:?} at offset {offset}: unknown field {field:?}")]
    UnknownField {
        name: String,
        field: String,
        offset: u64,
    },
    /// A tensor entry is malformed (wrong type, missing field, bad numbers, begin > end).
    #[error("tensor {name:?} at offset {offset}: {reason}")]
    BadTensor {
        name: String,
        offset: u64,
        reason: String,
    },
    /// The element count or byte size of a shape does not fit in `u64`.
    #[error("tensor {name:?}: the byte size of its shape ({dtype}) overflows u64")]
    Overflow { name: String, dtype: Dtype },
    /// `end − begin` differs from element count × dtype size.
    #[error("tensor {name:?}: data_offsets span {actual} bytes, but its shape of {dtype} needs {expected}")]
    SizeMismatch {
        name: String,
        dtype: Dtype,
        expected: u64,
        actual: u64,
    },
    /// `end` lies past the data buffer.
    #[error("tensor {name:?}: data_offsets [{begin}, {end}] end past the data buffer ({buffer_len} bytes)")]
    OutOfBounds {
        name: String,
        begin: u64,
        end: u64,
        buffer_len: u64,
    },
    /// The ranges do not tile the buffer: first begin ≠ 0, a gap, or an overlap.
    #[error("tensor {name:?}: {reason}")]
    Layout { name: String, reason: String },
    /// Bytes after the end of the last tensor.
    #[error("{} trailing bytes after the last tensor (tensors cover {used} of the {buffer_len}-byte data buffer)", buffer_len - used)]
    TrailingBytes { used: u64, buffer_len: u64 },
    /// The writer was given inconsistent input.
    #[error("cannot write safetensors: {0}")]
    Write(String),
}

fn io_at(path: &Path, e: std::io::Error) -> SafetensorsError {
    SafetensorsError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// One tensor's header entry, validated against the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (its key in the header).
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost dimension first (row-major, PyTorch order). `[]` is a scalar.
    pub shape: Vec<u64>,
    /// `[begin, end)` of the data, relative to the start of the data buffer.
    pub data_offsets: [u64; 2],
    /// Number of elements (product of `shape`; 1 for a scalar).
    pub n_elems: u64,
}

impl TensorInfo {
    /// Number of bytes of data.
    pub fn n_bytes(&self) -> u64 {
        self.data_offsets[1].saturating_sub(self.data_offsets[0])
    }
}

/// A validated safetensors file. Every tensor's range was checked against the file at open.
pub struct SafeTensors {
    backing: Backing,
    parsed: header::Parsed,
}

impl std::fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensors")
            .field("file_size", &self.bytes().len())
            .field("header_len", &self.parsed.header_len)
            .field("tensor_count", &self.parsed.tensors.len())
            .field("metadata_count", &self.parsed.metadata.len())
            .finish()
    }
}

impl SafeTensors {
    /// Maps `path` read-only and validates it.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors, SafetensorsError> {
        let path = path.as_ref();
        let backing = Backing::map(path).map_err(|e| io_at(path, e))?;
        SafeTensors::from_backing(backing)
    }

    /// Validates an in-memory safetensors file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SafeTensors, SafetensorsError> {
        SafeTensors::from_backing(Backing::Owned(bytes))
    }

    fn from_backing(backing: Backing) -> Result<SafeTensors, SafetensorsError> {
        let parsed = header::parse(backing.bytes())?;
        Ok(SafeTensors { backing, parsed })
    }

    /// All tensors in data order (ascending `data_offsets`, then name).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.parsed.tensors
    }

    /// The tensor named `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        let t = &self.parsed.tensors;
        let by_name = &self.parsed.by_name;
        let i = by_name
            .binary_search_by(|&i| t[i].name.as_str().cmp(name))
            .ok()?;
        t.get(by_name[i])
    }

    /// The data of tensor `t`: exactly `t.n_bytes()` bytes, unaligned. For a `TensorInfo`
    /// that does not belong to this file and lies outside it, an empty slice (never panics).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        let base = self.parsed.data_start;
        let [begin, end] = t.data_offsets;
        let range = (|| {
            let b = usize::try_from(begin).ok()?.checked_add(base)?;
            let e = usize::try_from(end).ok()?.checked_add(base)?;
            self.bytes().get(b..e)
        })();
        range.unwrap_or(&[])
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.parsed.metadata
    }

    /// The header length N.
    pub fn header_len(&self) -> u64 {
        self.parsed.header_len
    }

    /// Absolute offset of the data buffer (8 + N).
    pub fn data_offset(&self) -> u64 {
        8 + self.parsed.header_len
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Whether the file is memory-mapped (as opposed to an owned buffer).
    pub fn is_mmapped(&self) -> bool {
        matches!(self.backing, Backing::Mmap(_))
    }
}

#[derive(Clone, Debug)]
struct PendingTensor<'a> {
    dtype: Dtype,
    shape: Vec<u64>,
    data: Cow<'a, [u8]>,
}

/// A safetensors file under construction. Tensor data is owned or borrowed (`'a`: for example
/// from another file's memory map). Inputs are checked as they are added, so everything this
/// writes reads back.
#[derive(Clone, Debug, Default)]
pub struct SafeTensorsWriter<'a> {
    tensors: BTreeMap<String, PendingTensor<'a>>,
    metadata: BTreeMap<String, String>,
}

impl<'a> SafeTensorsWriter<'a> {
    /// An empty writer.
    pub fn new() -> SafeTensorsWriter<'a> {
        SafeTensorsWriter::default()
    }

    /// Adds a tensor. Errors if the name is `__metadata__` or already present, or if `data`
    /// is not exactly element count × dtype size bytes.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: Dtype,
        shape: &[u64],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<&mut SafeTensorsWriter<'a>, SafetensorsError> {
        let (name, data) = (name.into(), data.into());
        let fail = |why: String| Err(SafetensorsError::Write(format!("tensor {name:?}: {why}")));
        if name == "__metadata__" {
            return fail("the name is reserved for the metadata".into());
        }
        if self.tensors.contains_key(&name) {
            return fail("added twice".into());
        }
        let Some(n_bytes) = header::byte_size(shape, dtype) else {
            return fail(format!(
                "the byte size of shape {shape:?} ({dtype}) overflows u64"
            ));
        };
        if u64::try_from(data.len()).ok() != Some(n_bytes) {
            let n = data.len();
            return fail(format!(
                "{n} bytes of data, but shape {shape:?} of {dtype} needs {n_bytes}"
            ));
        }
        let shape = shape.to_vec();
        self.tensors
            .insert(name, PendingTensor { dtype, shape, data });
        Ok(self)
    }

    /// Sets (or replaces) a `__metadata__` entry.
    pub fn set_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> &mut SafeTensorsWriter<'a> {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The header JSON, padded with spaces to a multiple of 8 bytes.
    pub fn header(&self) -> Result<String, SafetensorsError> {
        let quote =
            |s: &str| serde_json::to_string(s).map_err(|e| SafetensorsError::Write(e.to_string()));
        let mut h = String::from("{");
        if !self.metadata.is_empty() {
            h.push_str("\"__metadata__\":{");
            for (i, (k, v)) in self.metadata.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                h.push_str(&format!("{sep}{}:{}", quote(k)?, quote(v)?));
            }
            h.push('}');
        }
        let mut at = 0u64;
        for (name, t) in &self.tensors {
            let end = at.saturating_add(u64::try_from(t.data.len()).unwrap_or(u64::MAX));
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            let sep = if h.len() > 1 { "," } else { "" };
            h.push_str(&format!(
                "{sep}{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{at},{end}]}}",
                quote(name)?,
                t.dtype,
                shape.join(","),
            ));
            at = end;
        }
        h.push('}');
        while h.len() % 8 != 0 {
            h.push(' ');
        }
        if u64::try_from(h.len()).map_or(true, |n| n > MAX_HEADER_LEN) {
            let n = h.len();
            return Err(SafetensorsError::Write(format!(
                "the header would be {n} bytes, over the {MAX_HEADER_LEN}-byte limit"
            )));
        }
        Ok(h)
    }

    /// Streams the file (length, header, data) to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), SafetensorsError> {
        self.stream(&self.header()?, w)
    }

    fn stream(&self, header: &str, w: &mut impl Write) -> Result<(), SafetensorsError> {
        let n = u64::try_from(header.len()).unwrap_or(u64::MAX);
        w.write_all(&n.to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        for t in self.tensors.values() {
            w.write_all(&t.data)?;
        }
        Ok(())
    }

    /// The serialized file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SafetensorsError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the file to `<path>.partial`, syncs it, and renames it to `path` (replacing any
    /// file there). On failure the partial file is removed.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), SafetensorsError> {
        let path = path.as_ref();
        let header = self.header()?; // refuse before creating anything
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let result = (|| {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&partial)?);
            self.stream(&header, &mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&partial, path)?;
            Ok(())
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            match e {
                SafetensorsError::Io(e) => io_at(path, e),
                other => other,
            }
        })
    }
}
