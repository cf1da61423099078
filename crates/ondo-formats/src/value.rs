//! Metadata values ([`Value`], [`Array`]) and the ordered key → value map ([`Metadata`]) with
//! typed getters that reject type confusion.

use crate::GgufError;

/// GGUF metadata value type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    Str = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type for a raw id, or `None` if the id is not 0..=12.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => Str,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The raw id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The smallest number of bytes one value of this type occupies on disk.
    pub fn min_disk_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | Str => 8,
            Array => 12,
        }
    }

    /// A short lowercase name (`"u32"`, `"string"`, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            Str => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous metadata array. Nested arrays are allowed up to [`crate::MAX_ARRAY_DEPTH`].
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Array(Vec<Array>),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::Str(_) => ValueType::Str,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A descriptive type name for error messages (`"u32"`, `"array of i8"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Array(a) => a.type_name(),
            v => v.value_type().name(),
        }
    }

    /// The value as a wide integer if it is any integer type (not bool, not float).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl Array {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::Str(_) => ValueType::Str,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
            Array::Array(_) => ValueType::Array,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Str(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `"array of <elem>"`.
    pub fn type_name(&self) -> &'static str {
        match self.elem_type() {
            ValueType::U8 => "array of u8",
            ValueType::I8 => "array of i8",
            ValueType::U16 => "array of u16",
            ValueType::I16 => "array of i16",
            ValueType::U32 => "array of u32",
            ValueType::I32 => "array of i32",
            ValueType::F32 => "array of f32",
            ValueType::Bool => "array of bool",
            ValueType::Str => "array of string",
            ValueType::Array => "array of array",
            ValueType::U64 => "array of u64",
            ValueType::I64 => "array of i64",
            ValueType::F64 => "array of f64",
        }
    }
}

/// Ordered metadata: key → value in file order, with unique keys and O(log n) lookup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    /// Indices into `entries`, sorted by key.
    sorted: Vec<usize>,
}

impl Metadata {
    /// Builds metadata from ordered entries; a duplicate key is an error.
    pub fn from_entries(entries: Vec<(String, Value)>) -> Result<Metadata, GgufError> {
        Metadata::build(entries, &[])
    }

    /// `offsets[i]` (if given) is the file offset of entry `i`, used in error messages.
    pub(crate) fn build(
        entries: Vec<(String, Value)>,
        offsets: &[u64],
    ) -> Result<Metadata, GgufError> {
        let mut sorted: Vec<usize> = (0..entries.len()).collect();
        sorted.sort_unstable_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
        for w in sorted.windows(2) {
            if entries[w[0]].0 == entries[w[1]].0 {
                return Err(GgufError::DuplicateKey {
                    key: entries[w[1]].0.clone(),
                    offset: offsets.get(w[1]).copied().unwrap_or(0),
                });
            }
        }
        Ok(Metadata { entries, sorted })
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self
            .sorted
            .binary_search_by(|&i| self.entries[i].0.as_str().cmp(key))
            .ok()?;
        Some(&self.entries[self.sorted[i]].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_string(),
            expected,
            found: found.type_name(),
        }
    }

    fn int<T: TryFrom<i128>>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Some(wide) = v.as_i128() else {
            return Err(Metadata::wrong(key, expected, v));
        };
        T::try_from(wide)
            .map(Some)
            .map_err(|_| GgufError::ValueOutOfRange {
                key: key.to_string(),
                value: format!("{wide} ({})", v.type_name()),
                expected,
            })
    }

    /// Any integer type whose value fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.int(key, "u32")
    }

    /// Any integer type whose value fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.int(key, "u64")
    }

    /// Any integer type whose value fits in `i32`.
    pub fn get_i32(&self, key: &str) -> Result<Option<i32>, GgufError> {
        self.int(key, "i32")
    }

    /// Any integer type whose value fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.int(key, "i64")
    }

    /// A FLOAT32, or a FLOAT64 converted to `f32`.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(v) => Err(Metadata::wrong(key, "f32", v)),
        }
    }

    /// A BOOL.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(v)) => Ok(Some(*v)),
            Some(v) => Err(Metadata::wrong(key, "bool", v)),
        }
    }

    /// A STRING.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(v)) => Ok(Some(v)),
            Some(v) => Err(Metadata::wrong(key, "string", v)),
        }
    }

    /// Any ARRAY.
    pub fn get_array(&self, key: &str) -> Result<Option<&Array>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(Metadata::wrong(key, "array", v)),
        }
    }

    /// An ARRAY of STRING.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::Str(v))) => Ok(Some(v)),
            Some(v) => Err(Metadata::wrong(key, "array of string", v)),
        }
    }

    /// An ARRAY of FLOAT32 only (an INT8 array is type confusion and an error).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<&[f32]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::F32(v))) => Ok(Some(v)),
            Some(v) => Err(Metadata::wrong(key, "array of f32", v)),
        }
    }

    /// An ARRAY of INT32 only.
    pub fn get_i32_array(&self, key: &str) -> Result<Option<&[i32]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::I32(v))) => Ok(Some(v)),
            Some(v) => Err(Metadata::wrong(key, "array of i32", v)),
        }
    }

    /// An ARRAY of UINT32 only.
    pub fn get_u32_array(&self, key: &str) -> Result<Option<&[u32]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::U32(v))) => Ok(Some(v)),
            Some(v) => Err(Metadata::wrong(key, "array of u32", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> Metadata {
        Metadata::from_entries(vec![
            ("a".into(), Value::U8(7)),
            ("neg".into(), Value::I32(-1)),
            ("big".into(), Value::U64(u64::from(u32::MAX) + 1)),
            ("f".into(), Value::F64(0.5)),
            ("s".into(), Value::Str("x".into())),
            ("scores".into(), Value::Array(Array::I8(vec![1, 2]))),
        ])
        .unwrap()
    }

    #[test]
    fn typed_getters() {
        let m = md();
        assert_eq!(m.get_u32("a").unwrap(), Some(7));
        assert_eq!(m.get_u32("missing").unwrap(), None);
        assert!(matches!(
            m.get_u32("neg"),
            Err(GgufError::ValueOutOfRange { .. })
        ));
        assert!(matches!(
            m.get_u32("big"),
            Err(GgufError::ValueOutOfRange { .. })
        ));
        assert_eq!(m.get_u64("big").unwrap(), Some(1 << 32));
        assert_eq!(m.get_i64("neg").unwrap(), Some(-1));
        assert_eq!(m.get_f32("f").unwrap(), Some(0.5));
        assert!(matches!(m.get_u32("s"), Err(GgufError::WrongType { .. })));
        assert_eq!(m.get_str("s").unwrap(), Some("x"));
        let e = m.get_f32_array("scores").unwrap_err();
        assert_eq!(
            e.to_string(),
            "metadata key 'scores' has type array of i8, expected array of f32"
        );
        assert!(m.get_i32_array("scores").is_err());
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "neg", "big", "f", "s", "scores"]);
    }

    #[test]
    fn duplicate_keys_rejected() {
        let e =
            Metadata::from_entries(vec![("k".into(), Value::U8(1)), ("k".into(), Value::U8(2))])
                .unwrap_err();
        assert!(matches!(e, GgufError::DuplicateKey { .. }));
    }
}
