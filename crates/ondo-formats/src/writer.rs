//! [`GgufWriter`]: builds a GGUF v3 file (metadata, tensor infos, aligned tensor data).
//!
//! [`GgufWriter::to_bytes`] serializes whatever it was given (the fixture generator relies on
//! that to produce invalid files); [`GgufWriter::validate`] applies the reader's rules, and
//! [`GgufWriter::write`] validates before streaming to disk.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use crate::parse::{check_alignment, check_shape, to_u64, ShapeError};
use crate::{
    Array, GgmlType, GgufError, Value, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_KEY_LEN,
    MAX_STRING_LEN, MAX_TENSOR_NAME_LEN,
};

#[derive(Clone, Debug)]
struct PendingTensor<'a> {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Cow<'a, [u8]>,
}

/// A GGUF v3 file under construction. Tensor data is owned or borrowed (`'a`: for example
/// from another file's memory map, so rewriting a model does not copy it into memory).
#[derive(Clone, Debug, Default)]
pub struct GgufWriter<'a> {
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor<'a>>,
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&to_u64(s.len()).to_le_bytes());
    out.extend_from_slice(s);
}

/// The value's payload (without its type id).
pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::Str(s) => put_string(out, s.as_bytes()),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Element type id, count, elements.
pub(crate) fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.elem_type().id().to_le_bytes());
    out.extend_from_slice(&to_u64(a.len()).to_le_bytes());
    fn each<T, const N: usize>(out: &mut Vec<u8>, v: &[T], f: fn(&T) -> [u8; N]) {
        for x in v {
            out.extend_from_slice(&f(x));
        }
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(out, v, |x| x.to_le_bytes()),
        Array::U16(v) => each(out, v, |x| x.to_le_bytes()),
        Array::I16(v) => each(out, v, |x| x.to_le_bytes()),
        Array::U32(v) => each(out, v, |x| x.to_le_bytes()),
        Array::I32(v) => each(out, v, |x| x.to_le_bytes()),
        Array::F32(v) => each(out, v, |x| x.to_le_bytes()),
        Array::Bool(v) => each(out, v, |x| [u8::from(*x)]),
        Array::Str(v) => v.iter().for_each(|s| put_string(out, s.as_bytes())),
        Array::U64(v) => each(out, v, |x| x.to_le_bytes()),
        Array::I64(v) => each(out, v, |x| x.to_le_bytes()),
        Array::F64(v) => each(out, v, |x| x.to_le_bytes()),
        Array::Array(v) => v.iter().for_each(|a| put_array(out, a)),
    }
}

fn padding(len: u64, align: u64) -> u64 {
    (align - len % align) % align
}

fn check_value(key: &str, v: &Value) -> Result<(), GgufError> {
    fn arr(key: &str, a: &Array, depth: usize) -> Result<(), GgufError> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::Write(format!(
                "key '{key}': arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
            )));
        }
        match a {
            Array::Str(v) => v.iter().try_for_each(|s| string(key, s)),
            Array::Array(v) => v.iter().try_for_each(|a| arr(key, a, depth + 1)),
            _ => Ok(()),
        }
    }
    fn string(key: &str, s: &str) -> Result<(), GgufError> {
        if to_u64(s.len()) > MAX_STRING_LEN {
            return Err(GgufError::Write(format!(
                "key '{key}': string of {} bytes exceeds {MAX_STRING_LEN}",
                s.len()
            )));
        }
        Ok(())
    }
    match v {
        Value::Str(s) => string(key, s),
        Value::Array(a) => arr(key, a, 1),
        _ => Ok(()),
    }
}

fn check_name(kind: &str, name: &str, limit: u64) -> Result<(), GgufError> {
    if name.is_empty() || to_u64(name.len()) > limit || name.contains('\0') {
        return Err(GgufError::Write(format!(
            "{kind} '{name}' must be 1..={limit} bytes without NUL"
        )));
    }
    Ok(())
}

impl<'a> GgufWriter<'a> {
    /// An empty writer.
    pub fn new() -> GgufWriter<'a> {
        GgufWriter::default()
    }

    /// Appends a metadata entry (a duplicate key is caught by [`GgufWriter::validate`]).
    pub fn add_kv(&mut self, key: impl Into<String>, value: Value) -> &mut GgufWriter<'a> {
        self.kvs.push((key.into(), value));
        self
    }

    /// Replaces the value of `key` in place, or appends it if absent.
    pub fn set_kv(&mut self, key: impl Into<String>, value: Value) -> &mut GgufWriter<'a> {
        let key = key.into();
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key, value)),
        }
        self
    }

    /// Removes `key`, returning its value.
    pub fn remove_kv(&mut self, key: &str) -> Option<Value> {
        let i = self.kvs.iter().position(|(k, _)| k == key)?;
        Some(self.kvs.remove(i).1)
    }

    /// Appends a tensor; `dims` are in ggml order (`dims[0]` is the row length).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> &mut GgufWriter<'a> {
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type,
            data: data.into(),
        });
        self
    }

    /// Removes the tensor named `name`, returning whether it existed.
    pub fn remove_tensor(&mut self, name: &str) -> bool {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.name != name);
        self.tensors.len() != before
    }

    /// The alignment used: a valid `general.alignment`, otherwise 32.
    pub fn alignment(&self) -> u64 {
        self.kvs
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| check_alignment(v).ok())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Applies the reader's rules: unique valid keys and names, valid alignment, shapes and
    /// data lengths that agree.
    pub fn validate(&self) -> Result<(), GgufError> {
        let mut keys: Vec<&str> = self.kvs.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(GgufError::Write(format!(
                "duplicate metadata key '{}'",
                w[0]
            )));
        }
        for (k, v) in &self.kvs {
            check_name("metadata key", k, MAX_KEY_LEN)?;
            check_value(k, v)?;
            if k == "general.alignment" {
                check_alignment(v)
                    .map_err(|r| GgufError::Write(format!("general.alignment: {r}")))?;
            }
        }
        let mut names: Vec<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(GgufError::Write(format!(
                "duplicate tensor name '{}'",
                w[0]
            )));
        }
        for t in &self.tensors {
            check_name("tensor name", &t.name, MAX_TENSOR_NAME_LEN)?;
            let n_bytes = match check_shape(&t.dims, t.ggml_type) {
                Ok((_, b)) => b,
                Err(ShapeError::UnknownType(id)) => {
                    return Err(GgufError::Write(format!(
                        "tensor '{}': unknown ggml type id {id}",
                        t.name
                    )))
                }
                Err(ShapeError::Bad(r)) => {
                    return Err(GgufError::Write(format!("tensor '{}': {r}", t.name)))
                }
            };
            if to_u64(t.data.len()) != n_bytes {
                return Err(GgufError::Write(format!(
                    "tensor '{}': {} bytes of data, but dims {:?} of type {} need {n_bytes}",
                    t.name,
                    t.data.len(),
                    t.dims,
                    t.ggml_type
                )));
            }
        }
        Ok(())
    }

    /// Header: magic, version 3, counts, KVs, tensor infos, padding up to the data section.
    fn header(&self) -> Vec<u8> {
        let align = self.alignment();
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&to_u64(self.tensors.len()).to_le_bytes());
        out.extend_from_slice(&to_u64(self.kvs.len()).to_le_bytes());
        for (k, v) in &self.kvs {
            put_string(&mut out, k.as_bytes());
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut out, t.name.as_bytes());
            out.extend_from_slice(
                &u32::try_from(t.dims.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.0.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            let len = to_u64(t.data.len());
            offset = offset.saturating_add(len.saturating_add(padding(len, align)));
        }
        let pad = padding(to_u64(out.len()), align);
        out.resize(out.len() + usize::try_from(pad).unwrap_or(0), 0);
        out
    }

    fn write_into(&self, w: &mut impl Write) -> std::io::Result<()> {
        let align = self.alignment();
        w.write_all(&self.header())?;
        let zeros = vec![0u8; usize::try_from(align).unwrap_or(0)];
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let pad = usize::try_from(padding(to_u64(t.data.len()), align)).unwrap_or(0);
            w.write_all(&zeros[..pad.min(zeros.len())])?;
        }
        Ok(())
    }

    /// The serialized file. Does not validate: invalid input yields a file the reader rejects.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_into(&mut out);
        out
    }

    /// Validates, then streams the file to `path`.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        self.validate()?;
        let file = std::fs::File::create(path).map_err(|e| GgufError::io_at(path, e))?;
        let mut w = std::io::BufWriter::new(file);
        self.write_into(&mut w)
            .and_then(|()| w.flush())
            .map_err(|e| GgufError::io_at(path, e))
    }
}
