//! The GGUF parser: a bounds-checked cursor over the file bytes and the validation rules.
//!
//! Every read goes through [`Reader::take`], which compares the request with the bytes that
//! remain. Every count is multiplied by its element's minimum on-disk size and compared with
//! the remaining bytes before anything is allocated. Array nesting is capped at
//! [`MAX_ARRAY_DEPTH`], so recursion is bounded.

use crate::{Array, GgmlType, GgufError, Metadata, TensorInfo, Value, ValueType, GGUF_MAGIC};

/// Longest metadata key accepted, in bytes.
pub const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest string value accepted, in bytes.
pub const MAX_STRING_LEN: u64 = 64 * 1024 * 1024;
/// Longest tensor name accepted, in bytes (ggml's `GGML_MAX_NAME` is 64 including the NUL).
pub const MAX_TENSOR_NAME_LEN: u64 = 63;
/// Deepest array nesting accepted (a plain array is depth 1).
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Most tensor dimensions accepted (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Largest `general.alignment` accepted.
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// Alignment of the data section and tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Key length (8) + 1-byte key + value type (4) + smallest value (1).
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Name length (8) + 1-byte name + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;
/// Up-front capacity cap for vectors whose in-memory element is larger than its minimum size
/// on disk (strings, nested arrays, KVs, tensor infos): they grow as elements actually parse.
const PREALLOC_CAP: usize = 4096;

type Result<T> = std::result::Result<T, GgufError>;
type What<'w> = &'w dyn Fn() -> String;

/// The validated header of a GGUF file.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// Indices into `tensors`, sorted by name.
    pub by_name: Vec<usize>,
    pub alignment: u64,
    pub data_offset: u64,
}

pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        to_u64(self.pos)
    }

    fn remaining(&self) -> u64 {
        to_u64(self.buf.len().saturating_sub(self.pos))
    }

    fn take(&mut self, n: u64, what: What) -> Result<&'a [u8]> {
        let available = self.remaining();
        let offset = self.offset();
        let trunc = || GgufError::Truncated {
            what: what(),
            offset,
            needed: n,
            available,
        };
        if n > available {
            return Err(trunc());
        }
        let len = usize::try_from(n).map_err(|_| trunc())?;
        let end = self.pos.checked_add(len).ok_or_else(trunc)?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(trunc)?;
        self.pos = end;
        Ok(bytes)
    }

    fn bytes<const N: usize>(&mut self, what: What) -> Result<[u8; N]> {
        let s = self.take(to_u64(N), what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: What) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: What) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A GGUF string (u64 length + bytes) of at most `limit` bytes: the bytes and their offset.
    fn string_bytes(&mut self, limit: u64, what: What) -> Result<(&'a [u8], u64)> {
        let at = self.offset();
        let len_what = || format!("length of {}", what());
        let len = self.u64(&len_what)?;
        if len > limit {
            return Err(GgufError::TooLarge {
                what: len_what(),
                offset: at,
                value: len,
                limit,
            });
        }
        let start = self.offset();
        Ok((self.take(len, what)?, start))
    }

    /// A key or tensor name: 1..=limit bytes of UTF-8 without NUL.
    fn name(&mut self, limit: u64, what: What) -> Result<String> {
        let (b, at) = self.string_bytes(limit, what)?;
        let invalid = |reason: &str| GgufError::Invalid {
            what: what(),
            offset: at,
            reason: reason.to_string(),
        };
        if b.is_empty() {
            return Err(invalid("it is empty"));
        }
        let s = std::str::from_utf8(b).map_err(|_| GgufError::InvalidUtf8 {
            what: what(),
            offset: at,
        })?;
        if s.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        Ok(s.to_owned())
    }

    fn str_value(&mut self, what: What) -> Result<String> {
        let (b, at) = self.string_bytes(MAX_STRING_LEN, what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                what: what(),
                offset: at,
            }),
        }
    }

    fn bool(&mut self, what: What) -> Result<bool> {
        let at = self.offset();
        match self.bytes::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(GgufError::Invalid {
                what: what(),
                offset: at,
                reason: format!("bool byte is {b}, expected 0 or 1"),
            }),
        }
    }

    fn value(&mut self, type_id: u32, type_at: u64, what: What) -> Result<Value> {
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            what: what(),
            id: type_id,
            offset: type_at,
        })?;
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.bytes(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.bytes(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.bytes(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.bytes(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.bytes(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.bytes(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.bytes(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.bytes(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.bytes(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.bytes(what)?)),
            ValueType::Bool => Value::Bool(self.bool(what)?),
            ValueType::Str => Value::Str(self.str_value(what)?),
            ValueType::Array => Value::Array(self.array(1, what)?),
        })
    }

    /// `count` fixed-size little-endian elements (the caller has bounded `count`).
    fn fixed<const N: usize, T>(
        &mut self,
        count: u64,
        f: fn([u8; N]) -> T,
        what: What,
    ) -> Result<Vec<T>> {
        let n_bytes = count.saturating_mul(to_u64(N));
        let b = self.take(n_bytes, what)?;
        Ok(b.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }

    fn array(&mut self, depth: usize, what: What) -> Result<Array> {
        let at = self.offset();
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                what: what(),
                offset: at,
                limit: MAX_ARRAY_DEPTH,
            });
        }
        let elem_id = self.u32(&|| format!("element type of {}", what()))?;
        let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
            what: format!("elements of {}", what()),
            id: elem_id,
            offset: at,
        })?;
        let count_at = self.offset();
        let count = self.u64(&|| format!("element count of {}", what()))?;
        let min = elem.min_disk_size();
        let available = self.remaining();
        if count > available / min {
            return Err(GgufError::Truncated {
                what: format!(
                    "{count} {} elements ({min}+ bytes each) of {}",
                    elem.name(),
                    what()
                ),
                offset: count_at,
                needed: count.saturating_mul(min),
                available,
            });
        }
        // Cannot fail: count <= remaining bytes, which fit in usize.
        let cap = usize::try_from(count).unwrap_or(0).min(PREALLOC_CAP);
        Ok(match elem {
            ValueType::U8 => Array::U8(self.take(count, what)?.to_vec()),
            ValueType::I8 => Array::I8(self.fixed(count, i8::from_le_bytes, what)?),
            ValueType::U16 => Array::U16(self.fixed(count, u16::from_le_bytes, what)?),
            ValueType::I16 => Array::I16(self.fixed(count, i16::from_le_bytes, what)?),
            ValueType::U32 => Array::U32(self.fixed(count, u32::from_le_bytes, what)?),
            ValueType::I32 => Array::I32(self.fixed(count, i32::from_le_bytes, what)?),
            ValueType::F32 => Array::F32(self.fixed(count, f32::from_le_bytes, what)?),
            ValueType::U64 => Array::U64(self.fixed(count, u64::from_le_bytes, what)?),
            ValueType::I64 => Array::I64(self.fixed(count, i64::from_le_bytes, what)?),
            ValueType::F64 => Array::F64(self.fixed(count, f64::from_le_bytes, what)?),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(cap);
                for _ in 0..count {
                    v.push(self.bool(what)?);
                }
                Array::Bool(v)
            }
            ValueType::Str => {
                let mut v = Vec::with_capacity(cap);
                for _ in 0..count {
                    v.push(self.str_value(what)?);
                }
                Array::Str(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(cap);
                for _ in 0..count {
                    v.push(self.array(depth + 1, what)?);
                }
                Array::Array(v)
            }
        })
    }
}

/// Why a tensor shape is invalid.
pub(crate) enum ShapeError {
    UnknownType(u32),
    Bad(String),
}

/// Validates a shape and returns `(n_elems, n_bytes)`.
pub(crate) fn check_shape(
    dims: &[u64],
    ty: GgmlType,
) -> std::result::Result<(u64, u64), ShapeError> {
    let bad = |s: String| Err(ShapeError::Bad(s));
    let n_dims = dims.len();
    if n_dims == 0 || to_u64(n_dims) > u64::from(MAX_DIMS) {
        return bad(format!("n_dims is {n_dims}, must be 1..={MAX_DIMS}"));
    }
    for (i, &d) in dims.iter().enumerate() {
        if d == 0 {
            return bad(format!(
                "dimension {i} is 0 (empty tensors are not accepted)"
            ));
        }
        if d > i64::MAX.unsigned_abs() {
            return bad(format!("dimension {i} is {d}, which is negative as int64"));
        }
    }
    let (Some(name), Some(be), Some(bb)) = (ty.name(), ty.block_elems(), ty.block_bytes()) else {
        return Err(ShapeError::UnknownType(ty.0));
    };
    let Some(n_elems) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
        return bad(format!("element count of dims {dims:?} overflows u64"));
    };
    if n_elems > i64::MAX.unsigned_abs() {
        return bad(format!("element count {n_elems} exceeds 2^63-1"));
    }
    if !dims[0].is_multiple_of(be) {
        return bad(format!(
            "row length {} is not a multiple of the {name} block size {be}",
            dims[0]
        ));
    }
    let Some(n_bytes) = (n_elems / be).checked_mul(bb) else {
        return bad(format!(
            "byte size of {n_elems} {name} elements overflows u64"
        ));
    };
    Ok((n_elems, n_bytes))
}

/// `(n_elems, n_bytes)` of a tensor, or `None` if the shape or type is invalid under the
/// rules enforced at open (1..=4 dims, each 1..2^63, known type, block-multiple rows, no
/// overflow).
pub fn tensor_size(dims: &[u64], ty: GgmlType) -> Option<(u64, u64)> {
    check_shape(dims, ty).ok()
}

/// Validates a `general.alignment` value.
pub(crate) fn check_alignment(v: &Value) -> std::result::Result<u64, String> {
    let Value::U32(a) = v else {
        return Err(format!("stored as {}, must be u32", v.type_name()));
    };
    let a = u64::from(*a);
    if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
        return Err(format!("{a} is not a power of two in 1..={MAX_ALIGNMENT}"));
    }
    Ok(a)
}

/// Parses and validates a whole GGUF file held in `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed> {
    let file_size = to_u64(buf.len());
    if buf.len() < GGUF_MAGIC.len() && GGUF_MAGIC.starts_with(buf) {
        return Err(GgufError::Truncated {
            what: "magic".into(),
            offset: 0,
            needed: 4,
            available: file_size,
        });
    }
    if buf.get(..4) != Some(&GGUF_MAGIC[..]) {
        return Err(GgufError::BadMagic);
    }
    let mut r = Reader { buf, pos: 4 };
    let version = r.u32(&|| "version".into())?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 2 | 3) => return Err(GgufError::BigEndian(v.swap_bytes())),
        v => return Err(GgufError::UnsupportedVersion(v)),
    }
    let tensor_count = r.u64(&|| "tensor count".into())?;
    let kv_count = r.u64(&|| "metadata KV count".into())?;
    let remaining = r.remaining();
    if kv_count > remaining / MIN_KV_BYTES {
        return Err(GgufError::TooLarge {
            what: format!(
                "metadata KV count ({MIN_KV_BYTES}+ bytes each, {remaining} bytes remain)"
            ),
            offset: 16,
            value: kv_count,
            limit: remaining / MIN_KV_BYTES,
        });
    }
    let left = remaining - kv_count * MIN_KV_BYTES;
    if tensor_count > left / MIN_TENSOR_INFO_BYTES {
        return Err(GgufError::TooLarge {
            what: format!(
                "tensor count ({MIN_TENSOR_INFO_BYTES}+ bytes each, {left} bytes remain after the KVs' minimum)"
            ),
            offset: 8,
            value: tensor_count,
            limit: left / MIN_TENSOR_INFO_BYTES,
        });
    }

    // Metadata.
    let cap = |n: u64| usize::try_from(n).unwrap_or(0).min(PREALLOC_CAP);
    let mut entries = Vec::with_capacity(cap(kv_count));
    let mut kv_offsets = Vec::with_capacity(cap(kv_count));
    for i in 0..kv_count {
        let at = r.offset();
        let key = r.name(MAX_KEY_LEN, &|| format!("key of metadata KV #{i}"))?;
        let type_at = r.offset();
        let type_id = r.u32(&|| format!("value type of key '{key}'"))?;
        let value = r.value(type_id, type_at, &|| format!("value of key '{key}'"))?;
        entries.push((key, value));
        kv_offsets.push(at);
    }
    let align_at = entries
        .iter()
        .position(|(k, _)| k == "general.alignment")
        .and_then(|i| kv_offsets.get(i).copied());
    let metadata = Metadata::build(entries, &kv_offsets)?;
    drop(kv_offsets);
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => check_alignment(v).map_err(|reason| GgufError::BadAlignment {
            offset: align_at.unwrap_or(0),
            reason,
        })?,
    };

    // Tensor infos.
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(cap(tensor_count));
    let mut info_offsets = Vec::with_capacity(cap(tensor_count));
    for i in 0..tensor_count {
        let at = r.offset();
        let name = r.name(MAX_TENSOR_NAME_LEN, &|| format!("name of tensor #{i}"))?;
        let bad = |offset: u64, reason: String| GgufError::BadTensor {
            name: name.clone(),
            offset,
            reason,
        };
        let nd_at = r.offset();
        let n_dims = r.u32(&|| format!("n_dims of tensor '{name}'"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(
                nd_at,
                format!("n_dims is {n_dims}, must be 1..={MAX_DIMS}"),
            ));
        }
        let dims_at = r.offset();
        let mut dims = Vec::with_capacity(4);
        for d in 0..n_dims {
            dims.push(r.u64(&|| format!("dimension {d} of tensor '{name}'"))?);
        }
        let type_at = r.offset();
        let ggml_type = GgmlType(r.u32(&|| format!("ggml type of tensor '{name}'"))?);
        let off_at = r.offset();
        let offset = r.u64(&|| format!("data offset of tensor '{name}'"))?;
        let (n_elems, n_bytes) = match check_shape(&dims, ggml_type) {
            Ok(s) => s,
            Err(ShapeError::UnknownType(id)) => {
                return Err(GgufError::UnknownGgmlType {
                    name,
                    id,
                    offset: type_at,
                })
            }
            Err(ShapeError::Bad(reason)) => return Err(bad(dims_at, reason)),
        };
        if offset % alignment != 0 {
            return Err(bad(
                off_at,
                format!("data offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elems,
            n_bytes,
        });
        info_offsets.push(at);
    }

    let mut by_name: Vec<usize> = (0..tensors.len()).collect();
    by_name.sort_unstable_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name).then(a.cmp(&b)));
    for w in by_name.windows(2) {
        if tensors[w[0]].name == tensors[w[1]].name {
            return Err(GgufError::DuplicateTensor {
                name: tensors[w[1]].name.clone(),
                offset: info_offsets.get(w[1]).copied().unwrap_or(0),
            });
        }
    }

    // Data section.
    let header_end = r.offset();
    let data_offset = header_end
        .checked_add(alignment - 1)
        .map(|x| x / alignment * alignment)
        .ok_or_else(|| GgufError::Invalid {
            what: "data section start".into(),
            offset: header_end,
            reason: "aligning it overflows u64".into(),
        })?;
    let data_size = match file_size.checked_sub(data_offset) {
        Some(s) => s,
        None if tensors.is_empty() => 0,
        None => {
            return Err(GgufError::Truncated {
                what: "padding before the data section".into(),
                offset: header_end,
                needed: data_offset - header_end,
                available: file_size.saturating_sub(header_end),
            })
        }
    };
    for (t, &at) in tensors.iter().zip(&info_offsets) {
        let Some(end) = t.offset.checked_add(t.n_bytes) else {
            return Err(GgufError::BadTensor {
                name: t.name.clone(),
                offset: at,
                reason: format!(
                    "data offset {} + size {} overflows u64",
                    t.offset, t.n_bytes
                ),
            });
        };
        if end > data_size {
            return Err(GgufError::TensorOutOfBounds {
                name: t.name.clone(),
                start: u128::from(data_offset) + u128::from(t.offset),
                end: u128::from(data_offset) + u128::from(end),
                file_size,
            });
        }
    }
    let mut by_offset: Vec<usize> = (0..tensors.len()).collect();
    by_offset.sort_unstable_by_key(|&i| (tensors[i].offset, i));
    for w in by_offset.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        // In bounds, so no overflow: offset + n_bytes <= data_size <= file_size.
        if a.offset + a.n_bytes > b.offset {
            return Err(GgufError::TensorOverlap {
                first: a.name.clone(),
                first_start: data_offset + a.offset,
                first_end: data_offset + a.offset + a.n_bytes,
                second: b.name.clone(),
                second_start: data_offset + b.offset,
                second_end: data_offset + b.offset + b.n_bytes,
            });
        }
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        by_name,
        alignment,
        data_offset,
    })
}
