//! The safetensors header: the length prefix, a schema-driven JSON parser (no recursion, no
//! generic JSON tree, duplicate keys detected), and the layout check of the reference's
//! `validate`. See the policies in the parent module.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use super::{Dtype, SafetensorsError as E, TensorInfo, MAX_HEADER_LEN, SUB_BYTE_DTYPES};

/// A validated header.
pub(super) struct Parsed {
    pub header_len: u64,
    /// Absolute offset of the data buffer (8 + N), within the file.
    pub data_start: usize,
    /// In data order: ascending `(data_offsets, name)`.
    pub tensors: Vec<TensorInfo>,
    /// Indices into `tensors`, sorted by name.
    pub by_name: Vec<usize>,
    pub metadata: BTreeMap<String, String>,
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Element count × dtype size, `None` on overflow.
pub(super) fn byte_size(shape: &[u64], dtype: Dtype) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))?
        .checked_mul(dtype.size())
}

/// Validates a whole file: length prefix, header, and every tensor's range.
pub(super) fn parse(file: &[u8]) -> Result<Parsed, E> {
    let file_len = to_u64(file.len());
    let Some(prefix) = file.get(..8) else {
        return Err(E::TooShort { len: file_len });
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(prefix);
    let n = u64::from_le_bytes(le);
    if n > MAX_HEADER_LEN {
        return Err(E::HeaderTooLarge {
            len: n,
            limit: MAX_HEADER_LEN,
        });
    }
    let available = file_len - 8;
    let data_start = match usize::try_from(n).ok().and_then(|n| n.checked_add(8)) {
        Some(end) if n <= available => end,
        _ => return Err(E::HeaderPastEnd { len: n, available }),
    };
    let raw = file.get(8..data_start).unwrap_or(&[]);
    let text = std::str::from_utf8(raw).map_err(|e| E::HeaderNotUtf8 {
        offset: 8 + to_u64(e.valid_up_to()),
    })?;
    let mut p = Parser {
        text,
        pos: 0,
        buffer_len: available - n,
    };
    let (mut tensors, positions, metadata) = p.header()?;

    // Duplicate tensor names (the second occurrence in file order is reported).
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name)); // stable: file order
    if let Some(w) = order
        .windows(2)
        .find(|w| tensors[w[0]].name == tensors[w[1]].name)
    {
        return Err(E::DuplicateKey {
            key: tensors[w[1]].name.clone(),
            offset: 8 + to_u64(positions[w[1]]),
        });
    }

    layout(&mut tensors, available - n)?;
    let mut by_name: Vec<usize> = (0..tensors.len()).collect();
    by_name.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name));
    Ok(Parsed {
        header_len: n,
        data_start,
        tensors,
        by_name,
        metadata,
    })
}

/// The reference's `validate`: sorted by offsets, the ranges tile `0..buffer_len` exactly.
fn layout(tensors: &mut [TensorInfo], buffer_len: u64) -> Result<(), E> {
    tensors.sort_by(|a, b| (a.data_offsets, &a.name).cmp(&(b.data_offsets, &b.name)));
    let mut cursor = 0u64;
    let mut prev: Option<&TensorInfo> = None;
    for t in tensors.iter() {
        let [begin, end] = t.data_offsets;
        if begin != cursor {
            let reason = match prev {
                None => format!("the first tensor's data begins at {begin}, not 0"),
                Some(p) if begin > cursor => format!(
                    "a gap of {} bytes precedes its data {begin}..{end} (tensor {:?} ends at {cursor})",
                    begin - cursor,
                    p.name
                ),
                Some(p) => format!(
                    "its data {begin}..{end} overlaps tensor {:?} ({cursor_b}..{cursor})",
                    p.name,
                    cursor_b = p.data_offsets[0]
                ),
            };
            let name = t.name.clone();
            return Err(E::Layout { name, reason });
        }
        cursor = end;
        prev = Some(t);
    }
    if cursor != buffer_len {
        return Err(E::TrailingBytes {
            used: cursor,
            buffer_len,
        });
    }
    Ok(())
}

struct Parser<'h> {
    text: &'h str,
    /// Position in `text` (the header starts at file offset 8).
    pos: usize,
    buffer_len: u64,
}

/// `(tensors in file order, the offset of each one's key, metadata)`.
type Header = (Vec<TensorInfo>, Vec<usize>, BTreeMap<String, String>);

impl Parser<'_> {
    fn offset(&self) -> u64 {
        8 + to_u64(self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// What is at the current position, for messages.
    fn found(&self) -> String {
        match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            None => "the end of the header".into(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn json_err(&self, reason: String) -> E {
        E::Json {
            offset: self.offset(),
            reason,
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace; consumes `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.peek() == Some(c);
        self.pos += usize::from(hit);
        hit
    }

    /// Skips whitespace; whether an object starts here (not consumed).
    fn at_object(&mut self) -> bool {
        self.ws();
        self.peek() == Some(b'{')
    }

    /// A JSON string literal, decoded (`serde_json` decodes escapes and rejects control
    /// characters and lone surrogates).
    fn string(&mut self) -> Result<String, E> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.json_err(format!("expected a string, found {}", self.found())));
        }
        let (bytes, start) = (self.text.as_bytes(), self.pos);
        let mut i = start + 1;
        let mut plain = true;
        loop {
            match bytes.get(i) {
                None => return Err(self.json_err("unterminated string".into())),
                Some(b'"') => break,
                Some(b'\\') => (plain, i) = (false, i + 2),
                Some(&c) => (plain, i) = (plain && c >= 0x20, i + 1),
            }
        }
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        let raw = self.text.get(start..=i).unwrap_or("\"\"");
        let s = if plain {
            raw[1..raw.len() - 1].to_owned()
        } else {
            serde_json::from_str::<String>(raw)
                .map_err(|e| self.json_err(format!("invalid string: {e}")))?
        };
        self.pos = i + 1;
        Ok(s)
    }

    /// A JSON integer in `0..2^64` (no sign, fraction or exponent). On error the reason,
    /// for the caller to attach to the field.
    fn uint(&mut self) -> Result<u64, String> {
        self.ws();
        let (bytes, start) = (self.text.as_bytes(), self.pos);
        if self.peek() == Some(b'-') {
            return Err("is negative".into());
        }
        let mut v = 0u64;
        let mut i = start;
        while let Some(c) = bytes.get(i).filter(|c| c.is_ascii_digit()) {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or("does not fit in 64 bits")?;
            i += 1;
        }
        if i == start {
            return Err(format!("expected an integer, found {}", self.found()));
        }
        if i - start > 1 && bytes[start] == b'0' {
            return Err("has a leading zero (not JSON)".into());
        }
        if matches!(bytes.get(i), Some(b'.' | b'e' | b'E')) {
            return Err("is not an integer".into());
        }
        self.pos = i;
        Ok(v)
    }

    /// A list of at most `max` integers (`Err(reason)` beyond).
    fn uint_list(&mut self, max: usize) -> Result<Vec<u64>, String> {
        if !self.eat(b'[') {
            return Err(format!("must be a list, found {}", self.found()));
        }
        let mut out = Vec::new();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            if out.len() == max {
                return Err(format!("has more than {max} items"));
            }
            let item = self.uint().map_err(|r| format!("item {} {r}", out.len()))?;
            out.push(item);
            if !self.eat(b',') {
                return match self.eat(b']') {
                    true => Ok(out),
                    false => Err(format!("expected ',' or ']', found {}", self.found())),
                };
            }
        }
    }

    /// Walks an object: for each key, calls `f(self, key, key position)`, which consumes the
    /// value. Keys are decoded; duplicate detection is left to `f`.
    fn object(
        &mut self,
        mut f: impl FnMut(&mut Self, String, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.eat(b'{') {
            return Err(self.json_err(format!("expected '{{', found {}", self.found())));
        }
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            let at = self.pos;
            let key = self.string()?;
            if !self.eat(b':') {
                return Err(self.json_err(format!("expected ':', found {}", self.found())));
            }
            f(self, key, at)?;
            if !self.eat(b',') {
                return match self.eat(b'}') {
                    true => Ok(()),
                    false => {
                        Err(self.json_err(format!("expected ',' or '}}', found {}", self.found())))
                    }
                };
            }
        }
    }

    fn header(&mut self) -> Result<Header, E> {
        if self.peek() != Some(b'{') {
            let reason = format!(
                "the header must start with '{{', found {} (no leading whitespace)",
                self.found()
            );
            return Err(self.json_err(reason));
        }
        let (mut tensors, mut positions, mut metadata) = (Vec::new(), Vec::new(), None);
        self.object(|p, key, at| {
            if key != "__metadata__" {
                tensors.push(p.tensor(key, at)?);
                positions.push(at);
            } else if metadata.is_some() {
                return Err(E::DuplicateKey {
                    key,
                    offset: 8 + to_u64(at),
                });
            } else {
                metadata = Some(p.metadata()?);
            }
            Ok(())
        })?;
        if let Some(i) = self
            .text
            .as_bytes()
            .get(self.pos..)
            .unwrap_or(&[])
            .iter()
            .position(|&c| c != b' ')
        {
            self.pos += i;
            return Err(self.json_err(format!(
                "only space padding may follow the header object, found {}",
                self.found()
            )));
        }
        Ok((tensors, positions, metadata.unwrap_or_default()))
    }

    fn metadata(&mut self) -> Result<BTreeMap<String, String>, E> {
        let bad = |p: &Self, reason: String| E::BadMetadata {
            offset: p.offset(),
            reason,
        };
        if !self.at_object() {
            return Err(bad(
                self,
                format!("must be an object of strings, found {}", self.found()),
            ));
        }
        let mut map = BTreeMap::new();
        self.object(|p, key, at| {
            p.ws();
            if p.peek() != Some(b'"') {
                return Err(bad(
                    p,
                    format!("the value of {key:?} must be a string, found {}", p.found()),
                ));
            }
            let value = p.string()?;
            match map.entry(key) {
                Entry::Occupied(e) => Err(E::DuplicateKey {
                    key: e.key().clone(),
                    offset: 8 + to_u64(at),
                }),
                Entry::Vacant(e) => {
                    e.insert(value);
                    Ok(())
                }
            }
        })?;
        Ok(map)
    }

    /// One tensor entry, with every check that needs only the entry itself.
    fn tensor(&mut self, name: String, at: usize) -> Result<TensorInfo, E> {
        let bad = |p: &Self, reason: String| E::BadTensor {
            name: name.clone(),
            offset: p.offset(),
            reason,
        };
        if !self.at_object() {
            return Err(bad(
                self,
                format!("the entry must be an object, found {}", self.found()),
            ));
        }
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        self.object(|p, field, field_at| {
            let seen = match field.as_str() {
                "dtype" => dtype.is_some(),
                "shape" => shape.is_some(),
                "data_offsets" => offsets.is_some(),
                _ => {
                    let (name, offset) = (name.clone(), 8 + to_u64(field_at));
                    return Err(E::UnknownField {
                        name,
                        field,
                        offset,
                    });
                }
            };
            if seen {
                return Err(E::DuplicateKey {
                    key: field,
                    offset: 8 + to_u64(field_at),
                });
            }
            p.ws();
            let value_at = p.offset();
            match field.as_str() {
                "dtype" => {
                    if p.peek() != Some(b'"') {
                        return Err(bad(
                            p,
                            format!("dtype must be a string, found {}", p.found()),
                        ));
                    }
                    let s = p.string()?;
                    let (name, offset) = (name.clone(), value_at);
                    dtype = Some(Dtype::from_name(&s).ok_or_else(|| {
                        match SUB_BYTE_DTYPES.iter().find(|d| d.0 == s) {
                            Some(&(_, bits)) => E::UnsupportedDtype {
                                name,
                                dtype: s,
                                bits,
                                offset,
                            },
                            None => E::UnknownDtype {
                                name,
                                dtype: s,
                                offset,
                            },
                        }
                    })?);
                }
                "shape" => {
                    let v = p
                        .uint_list(usize::MAX)
                        .map_err(|r| bad(p, format!("shape {r}")))?;
                    shape = Some(v);
                }
                _ => {
                    let v = p
                        .uint_list(2)
                        .map_err(|r| bad(p, format!("data_offsets {r}")))?;
                    match v[..] {
                        [b, e] => offsets = Some([b, e]),
                        _ => {
                            return Err(bad(
                                p,
                                format!("data_offsets must have 2 items, not {}", v.len()),
                            ))
                        }
                    }
                }
            }
            Ok(())
        })?;
        let missing = |f: &str| E::BadTensor {
            name: name.clone(),
            offset: 8 + to_u64(at),
            reason: format!("missing field '{f}'"),
        };
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let [begin, end] = offsets.ok_or_else(|| missing("data_offsets"))?;

        let n_elems = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let Some((n_elems, n_bytes)) =
            n_elems.and_then(|n| Some((n, n.checked_mul(dtype.size())?)))
        else {
            return Err(E::Overflow { name, dtype });
        };
        if begin > end {
            let reason = format!("data_offsets [{begin}, {end}] end before they begin");
            return Err(E::BadTensor {
                name,
                offset: 8 + to_u64(at),
                reason,
            });
        }
        if end > self.buffer_len {
            let buffer_len = self.buffer_len;
            return Err(E::OutOfBounds {
                name,
                begin,
                end,
                buffer_len,
            });
        }
        if end - begin != n_bytes {
            let actual = end - begin;
            return Err(E::SizeMismatch {
                name,
                dtype,
                expected: n_bytes,
                actual,
            });
        }
        Ok(TensorInfo {
            name,
            dtype,
            shape,
            data_offsets: [begin, end],
            n_elems,
        })
    }
}
