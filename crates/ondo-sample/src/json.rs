//! A byte-level recognizer of one JSON object (RFC 8259), for constrained sampling
//! (`response_format: {"type": "json_object"}`): the sampler asks whether a token's bytes can
//! extend the text so far and still lead to a valid object, and masks the tokens that cannot.
//!
//! The state is `Copy` (the container stack is a bit set), so trying a token on a copy costs
//! no allocation: checking the whole vocabulary is one pass over its bytes.
//!
//! Limits that keep a model from running on forever where JSON allows it: at most
//! [`MAX_DEPTH`] nested containers and [`MAX_WHITESPACE`] whitespace bytes in a row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Nested objects and arrays at most (the stack is a 64-bit set).
pub const MAX_DEPTH: u8 = 64;
/// Whitespace bytes in a row at most, outside strings.
pub const MAX_WHITESPACE: u8 = 32;

const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// Where the recognizer stands after the bytes fed so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonObjectState {
    mode: Mode,
    /// Bit `i` set: the container at depth `i` is an object (else an array).
    stack: u64,
    depth: u8,
    /// Whitespace bytes in a row just before.
    spaces: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    /// Before the top-level object: whitespace or `{`.
    Start,
    /// A value must start (after `:`, or after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ArrayFirst,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the container's closing bracket.
    After,
    /// Inside a string (a key or a value).
    Str {
        key: bool,
        escape: Escape,
        continuation: u8,
    },
    Number(Number),
    /// Inside `true`, `false` or `null`: which one, and how many bytes are matched.
    Literal {
        which: u8,
        matched: u8,
    },
    /// The object is closed: only whitespace may follow.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Escape {
    None,
    /// After a backslash.
    Backslash,
    /// Inside `\uXXXX`: hex digits still expected.
    Hex(u8),
}

/// The states of RFC 8259's number grammar, named by what was read last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Number {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Default for JsonObjectState {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonObjectState {
    /// Nothing read yet.
    pub fn new() -> Self {
        JsonObjectState {
            mode: Mode::Start,
            stack: 0,
            depth: 0,
            spaces: 0,
        }
    }

    /// The top-level object is closed (whitespace may still follow).
    pub fn is_complete(&self) -> bool {
        self.mode == Mode::Done
    }

    /// Inside a string with no escape or UTF-8 sequence under way: any complete UTF-8 text
    /// without `"`, `\` or control bytes continues it and leaves the state as it is.
    fn in_plain_string(&self) -> bool {
        matches!(
            self.mode,
            Mode::Str {
                escape: Escape::None,
                continuation: 0,
                ..
            }
        )
    }

    /// The state after `bytes`, if they keep the text a prefix of a valid object.
    pub fn after(&self, bytes: &[u8]) -> Option<Self> {
        let mut s = *self;
        bytes.iter().all(|&b| s.feed(b)).then_some(s)
    }

    /// Reads one byte; false (the state then undefined) if it cannot continue an object.
    pub fn feed(&mut self, b: u8) -> bool {
        match self.mode {
            Mode::Str {
                key,
                escape,
                continuation,
            } => return self.string_byte(key, escape, continuation, b),
            Mode::Number(n) => {
                if let Some(next) = number_byte(n, b) {
                    self.mode = Mode::Number(next);
                    return true;
                }
                if matches!(n, Number::Minus | Number::Dot | Number::E | Number::ESign) {
                    return false;
                }
                // The number ended before `b`, which the container reads.
                self.mode = Mode::After;
            }
            Mode::Literal { which, matched } => {
                let lit = LITERALS[which as usize];
                if b != lit[matched as usize] {
                    return false;
                }
                if matched as usize + 1 == lit.len() {
                    self.value_done();
                } else {
                    self.mode = Mode::Literal {
                        which,
                        matched: matched + 1,
                    };
                }
                return true;
            }
            _ => {}
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            self.spaces += 1;
            return self.spaces <= MAX_WHITESPACE;
        }
        self.spaces = 0;
        match (self.mode, b) {
            (Mode::Start, b'{') => self.open(true),
            (Mode::ArrayFirst, b']') => self.close(false),
            (Mode::Value | Mode::ArrayFirst, _) => self.value_start(b),
            (Mode::ObjectFirst, b'}') => self.close(true),
            (Mode::ObjectFirst | Mode::Key, b'"') => {
                self.mode = Mode::Str {
                    key: true,
                    escape: Escape::None,
                    continuation: 0,
                };
                true
            }
            (Mode::Colon, b':') => {
                self.mode = Mode::Value;
                true
            }
            (Mode::After, b',') => {
                self.mode = if self.in_object() {
                    Mode::Key
                } else {
                    Mode::Value
                };
                true
            }
            (Mode::After, b'}') if self.in_object() => self.close(true),
            (Mode::After, b']') if !self.in_object() => self.close(false),
            _ => false,
        }
    }

    fn value_start(&mut self, b: u8) -> bool {
        self.mode = match b {
            b'{' => return self.open(true),
            b'[' => return self.open(false),
            b'"' => Mode::Str {
                key: false,
                escape: Escape::None,
                continuation: 0,
            },
            b'-' => Mode::Number(Number::Minus),
            b'0' => Mode::Number(Number::Zero),
            b'1'..=b'9' => Mode::Number(Number::Int),
            b't' | b'f' | b'n' => Mode::Literal {
                which: match b {
                    b't' => 0,
                    b'f' => 1,
                    _ => 2,
                },
                matched: 1,
            },
            _ => return false,
        };
        true
    }

    fn string_byte(&mut self, key: bool, escape: Escape, continuation: u8, b: u8) -> bool {
        let (escape, continuation) = if continuation > 0 {
            if !(0x80..=0xBF).contains(&b) {
                return false;
            }
            (escape, continuation - 1)
        } else {
            match (escape, b) {
                (Escape::Backslash, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    (Escape::None, 0)
                }
                (Escape::Backslash, b'u') => (Escape::Hex(4), 0),
                (Escape::Backslash, _) => return false,
                (Escape::Hex(n), _) if b.is_ascii_hexdigit() => (
                    if n > 1 {
                        Escape::Hex(n - 1)
                    } else {
                        Escape::None
                    },
                    0,
                ),
                (Escape::Hex(_), _) => return false,
                (Escape::None, b'"') => {
                    if key {
                        self.mode = Mode::Colon;
                    } else {
                        self.value_done();
                    }
                    return true;
                }
                (Escape::None, b'\\') => (Escape::Backslash, 0),
                (Escape::None, 0x00..=0x1F) => return false,
                (Escape::None, 0x20..=0x7F) => (Escape::None, 0),
                (Escape::None, 0xC2..=0xDF) => (Escape::None, 1),
                (Escape::None, 0xE0..=0xEF) => (Escape::None, 2),
                (Escape::None, 0xF0..=0xF4) => (Escape::None, 3),
                (Escape::None, _) => return false,
            }
        };
        self.mode = Mode::Str {
            key,
            escape,
            continuation,
        };
        true
    }

    fn in_object(&self) -> bool {
        self.depth > 0 && (self.stack >> (self.depth - 1)) & 1 == 1
    }

    fn open(&mut self, object: bool) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        self.stack |= u64::from(object) << self.depth;
        self.depth += 1;
        self.mode = if object {
            Mode::ObjectFirst
        } else {
            Mode::ArrayFirst
        };
        true
    }

    fn close(&mut self, object: bool) -> bool {
        debug_assert_eq!(self.in_object(), object);
        self.depth -= 1;
        self.stack &= !(1u64 << self.depth);
        self.value_done();
        true
    }

    fn value_done(&mut self) {
        self.mode = if self.depth == 0 {
            Mode::Done
        } else {
            Mode::After
        };
    }
}

/// A vocabulary's token texts, laid out for masking under a [`JsonObjectState`]: one pass
/// over the vocabulary, where a byte that cannot come next rules out every token starting with
/// it at once, and inside a string a token of plain text fits without being read. The tokens
/// that fit a state are remembered (a bit set per state, at most [`MAX_CACHED_STATES`]), so a
/// state met again costs one pass over the bits.
pub struct JsonVocab {
    bytes: Vec<u8>,
    /// Token `i`'s text is `bytes[ends[i - 1]..ends[i]]` (empty: never sampled in JSON mode).
    ends: Vec<usize>,
    /// Complete UTF-8 with no `"`, `\` or control byte: fits anywhere inside a string.
    plain: Vec<bool>,
    fitting: Mutex<HashMap<JsonObjectState, Arc<[u64]>>>,
}

/// States whose fitting tokens [`JsonVocab`] keeps (6 KB each for a 49k vocabulary); the
/// memory is forgotten whole when full.
pub const MAX_CACHED_STATES: usize = 512;

impl JsonVocab {
    /// `pieces[id]`: the text token `id` adds to the output; empty for tokens that must never
    /// be sampled in JSON mode (end of generation, control tokens).
    pub fn new<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let (mut bytes, mut ends, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for p in pieces {
            bytes.extend_from_slice(p);
            ends.push(bytes.len());
            let text = std::str::from_utf8(p).is_ok_and(|t| !t.is_empty());
            plain.push(text && p.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\'));
        }
        JsonVocab {
            bytes,
            ends,
            plain,
            fitting: Mutex::new(HashMap::new()),
        }
    }

    fn piece(&self, id: usize) -> &[u8] {
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.bytes[start..self.ends[id]]
    }

    /// The state after token `id`, if its text can continue the object from `state`.
    pub fn after(&self, state: &JsonObjectState, id: u32) -> Option<JsonObjectState> {
        let id = id as usize;
        if id >= self.ends.len() {
            return None;
        }
        let piece = self.piece(id);
        if piece.is_empty() {
            return None;
        }
        state.after(piece)
    }

    /// Sets to -inf the logits of the tokens that cannot continue the object from `state`
    /// (and of any beyond the vocabulary); returns how many are left.
    pub fn mask(&self, state: &JsonObjectState, logits: &mut [f32]) -> usize {
        let bits = self.fitting(state);
        let mut left = 0;
        for (id, l) in logits.iter_mut().enumerate() {
            if bits.get(id / 64).is_some_and(|w| w >> (id % 64) & 1 == 1) {
                left += 1;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        left
    }

    /// Bit `id` set: token `id` can continue the object from `state`.
    fn fitting(&self, state: &JsonObjectState) -> Arc<[u64]> {
        let lock = || self.fitting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bits) = lock().get(state) {
            return bits.clone();
        }
        let mut first = [false; 256];
        for (b, ok) in first.iter_mut().enumerate() {
            *ok = state.after(&[b as u8]).is_some();
        }
        let in_text = state.in_plain_string();
        let mut bits = vec![0u64; self.ends.len().div_ceil(64)];
        for id in 0..self.ends.len() {
            let piece = self.piece(id);
            let fits = !piece.is_empty()
                && first[piece[0] as usize]
                && ((in_text && self.plain[id]) || state.after(piece).is_some());
            bits[id / 64] |= u64::from(fits) << (id % 64);
        }
        let bits: Arc<[u64]> = bits.into();
        let mut cache = lock();
        if cache.len() >= MAX_CACHED_STATES {
            cache.clear();
        }
        cache.insert(*state, bits.clone());
        bits
    }
}

/// JSON mode's draw for one output: the sampler's pick when its text fits the object so far,
/// else a new draw with every token that does not fit masked out (llama.cpp's grammar
/// sampling does the same).
pub struct JsonSampling {
    state: JsonObjectState,
    vocab: Arc<JsonVocab>,
    /// The logits row as it came, kept between tokens.
    unchanged: Vec<f32>,
}

impl JsonSampling {
    pub fn new(vocab: Arc<JsonVocab>) -> Self {
        JsonSampling {
            state: JsonObjectState::new(),
            vocab,
            unchanged: Vec::new(),
        }
    }

    /// The object is closed: generation should end.
    pub fn is_complete(&self) -> bool {
        self.state.is_complete()
    }

    /// Draws a token that fits and advances past it.
    pub fn sample(
        &mut self,
        sampler: &mut crate::Sampler,
        logits: &mut [f32],
    ) -> Result<u32, NoFittingToken> {
        let (vocab, state) = (&self.vocab, &self.state);
        self.unchanged.clear();
        self.unchanged.extend_from_slice(logits);
        let mut picked = sampler.sample(logits);
        if vocab.after(state, picked).is_none() {
            logits.copy_from_slice(&self.unchanged);
            if vocab.mask(state, logits) > 0 {
                // Kept for the fallback below: the draw may apply penalties to `logits`.
                self.unchanged.copy_from_slice(logits);
                picked = sampler.sample(logits);
                if vocab.after(state, picked).is_none() {
                    // The draw's own fallback can land on a masked token (rounding in its
                    // cumulative sum): take the most likely token that fits.
                    picked = crate::argmax(&self.unchanged);
                }
            }
        }
        self.state = vocab.after(state, picked).ok_or(NoFittingToken)?;
        Ok(picked)
    }
}

/// No token of the vocabulary can continue the JSON object.
#[derive(Debug, thiserror::Error)]
#[error("no token of the vocabulary can continue the JSON object")]
pub struct NoFittingToken;

fn number_byte(n: Number, b: u8) -> Option<Number> {
    use Number::*;
    let digit = b.is_ascii_digit();
    Some(match (n, b) {
        (Minus, b'0') => Zero,
        (Minus, _) if digit => Int,
        (Int, _) if digit => Int,
        (Zero | Int, b'.') => Dot,
        (Dot | Frac, _) if digit => Frac,
        (Zero | Int | Frac, b'e' | b'E') => E,
        (E, b'+' | b'-') => ESign,
        (E | ESign | Exp, _) if digit => Exp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &str) -> Option<JsonObjectState> {
        JsonObjectState::new().after(text.as_bytes())
    }

    #[test]
    fn valid_objects_are_accepted_whole_and_byte_by_byte() {
        let docs = [
            "{}",
            " {\n  \"a\": 1, \"b\": [true, false, null, -0.5e+3, 0, 12.25E-2, \"x\"]\n}",
            r#"{"nested": {"deep": [[], {}, [{"k": "v"}]]}, "esc": "q\"\\\/\b\f\n\r\t\u00e9"}"#,
            "{\"utf8\": \"caf\u{e9} \u{1F600} \u{4e2d}\"}",
            "{\"n\": -12}  \n",
        ];
        for doc in docs {
            let s = accepts(doc).unwrap_or_else(|| panic!("refused {doc:?}"));
            assert!(s.is_complete(), "{doc:?} not complete");
            serde_json::from_str::<serde_json::Value>(doc).expect("the test's JSON is valid");
            // every prefix is accepted and none but the whole is complete
            let mut st = JsonObjectState::new();
            let end = doc.trim_end().len();
            for (i, &b) in doc.as_bytes().iter().enumerate() {
                assert!(st.feed(b), "{doc:?} refused at byte {i}");
                assert_eq!(st.is_complete(), i + 1 >= end, "{doc:?} at byte {i}");
            }
        }
    }

    #[test]
    fn invalid_text_is_refused_at_the_first_wrong_byte() {
        // (text, bytes accepted before the refusal)
        let cases: &[(&[u8], usize)] = &[
            (b"[1]", 0),
            (b"\"s\"", 0),
            (b"{a", 1),
            (b"{\"a\" 1", 5),
            (b"{\"a\":}", 5),
            (b"{\"a\":1,}", 7),
            (b"{\"a\":1]", 6),
            (b"{\"a\":[1}", 7),
            (b"{\"a\":01}", 6),
            (b"{\"a\":-}", 6),
            (b"{\"a\":1.}", 7),
            (b"{\"a\":1e}", 7),
            (b"{\"a\":tru}", 8),
            (b"{\"a\":nul1}", 8),
            (b"{\"a\":\"\\x\"}", 7),
            (b"{\"a\":\"\\u12g4\"}", 10),
            (b"{\"a\":\"\n\"}", 6),
            (b"{\"a\":\"\xff\"}", 6),
            (b"{\"a\":\"\xc3(\"}", 7),
            (b"{}x", 2),
            (b"{},", 2),
            (b"{}{}", 2),
        ];
        for &(text, good) in cases {
            let mut st = JsonObjectState::new();
            let n = text.iter().take_while(|&&b| st.feed(b)).count();
            assert_eq!(n, good, "{:?}", String::from_utf8_lossy(text));
            assert!(JsonObjectState::new().after(text).is_none());
        }
    }

    #[test]
    fn the_vocabulary_mask_agrees_with_reading_every_token() {
        let pieces: Vec<&[u8]> = vec![
            b"",
            b"{",
            b"}",
            b"{\"",
            b"\"",
            b"\":",
            b"\": ",
            b"name",
            b" cat",
            b"\\",
            b"\\n",
            b"\\u00",
            b"e9",
            b"12",
            b"-",
            b"0",
            b".5",
            b"e+",
            b"true",
            b"tr",
            b"ue",
            b"null",
            b"[",
            b"]",
            b"],",
            b",",
            b", \"",
            b"  ",
            b"\n",
            b"\t",
            b"caf\xc3\xa9",
            b"\xc3",
            b"\xa9",
            b"\xe4\xb8",
            b"\xad",
            b"\x01",
            b"a\"b",
            b"}\n",
            b"}}",
            b"\x7f",
        ];
        let vocab = JsonVocab::new(pieces.iter().copied());
        let prefixes = [
            "",
            " ",
            "{",
            "{\"",
            "{\"a",
            "{\"a\\",
            "{\"a\\u0",
            "{\"a\"",
            "{\"a\":",
            "{\"a\": 1",
            "{\"a\": -",
            "{\"a\": 0.",
            "{\"a\": [",
            "{\"a\": [1,",
            "{\"a\": t",
            "{\"a\": {\"b\": \"x",
            "{\"a\": \"\u{4e2d}",
            "{\"a\": 1}",
        ];
        let mid_char = [&b"{\"a\": \"\xe4"[..]];
        let states = prefixes.iter().map(|p| p.as_bytes()).chain(mid_char);
        for prefix in states {
            let state = JsonObjectState::new()
                .after(prefix)
                .expect("a valid prefix");
            let prefix = String::from_utf8_lossy(prefix);
            let mut logits = vec![0.0f32; pieces.len() + 3];
            let left = vocab.mask(&state, &mut logits);
            let mut again = vec![0.0f32; pieces.len() + 3];
            assert_eq!(
                vocab.mask(&state, &mut again),
                left,
                "remembered for {prefix:?}"
            );
            assert_eq!(again, logits);
            for (id, &l) in logits.iter().enumerate() {
                let want = pieces
                    .get(id)
                    .is_some_and(|p| !p.is_empty() && state.after(p).is_some());
                assert_eq!(l == 0.0, want, "{prefix:?} + {:?}", pieces.get(id));
                assert_eq!(vocab.after(&state, id as u32).is_some(), want);
            }
            assert_eq!(left, logits.iter().filter(|&&l| l == 0.0).count());
        }
    }

    #[test]
    fn depth_and_whitespace_are_bounded() {
        let deep = format!("{{\"a\":{}", "[".repeat(MAX_DEPTH as usize - 1));
        let st = accepts(&deep).expect("64 levels");
        assert!(st.after(b"[").is_none(), "a 65th level");
        assert!(st.after(b"{").is_none(), "a 65th level");
        let spaces = " ".repeat(MAX_WHITESPACE as usize);
        let st = accepts(&format!("{{{spaces}")).expect("32 spaces");
        assert!(st.after(b" ").is_none(), "a 33rd space");
        assert!(st.after(b"}").is_some_and(|s| s.is_complete()));
        // spaces inside strings are text, not counted
        let long = format!("{{\"{}\": 1}}", " ".repeat(200));
        assert!(accepts(&long).is_some_and(|s| s.is_complete()));
    }
}
