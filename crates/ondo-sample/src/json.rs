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
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::schema::JsonSchema;
use crate::schema_state::SchemaState;

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
pub(crate) enum Escape {
    None,
    /// After a backslash.
    Backslash,
    /// Inside `\uXXXX`: hex digits still expected, the value of the first two read, and
    /// whether this is the low half of a surrogate pair (`\uDC00`-`\uDFFF` required).
    Hex {
        left: u8,
        high_byte: u8,
        low: bool,
    },
    /// After a high surrogate `\uD800`-`\uDBFF`: its low half must follow, `\` then `u`.
    PairBackslash,
    PairU,
}

/// One hex digit of a `\u` escape: surrogates only in pairs, a high half (`D800`-`DBFF`)
/// then a low one (`DC00`-`DFFF`), refused at the digit that makes them impossible (strict
/// parsers such as serde_json refuse a lone half).
fn hex_digit(left: u8, high_byte: u8, low: bool, b: u8) -> StrStep {
    let v = (b as char).to_digit(16).unwrap_or(0) as u8;
    let read = 4 - left;
    let high_byte = if read < 2 {
        high_byte * 16 + v
    } else {
        high_byte
    };
    let ok = match (read, low) {
        (0, true) => v == 0xD,
        (1, true) => (0xDC..=0xDF).contains(&high_byte),
        (1, false) => !(0xDC..=0xDF).contains(&high_byte),
        _ => true,
    };
    if !ok {
        return StrStep::Reject;
    }
    let escape = match left {
        1 if !low && (0xD8..=0xDB).contains(&high_byte) => Escape::PairBackslash,
        1 => Escape::None,
        _ => Escape::Hex {
            left: left - 1,
            high_byte,
            low,
        },
    };
    StrStep::Go(escape, 0)
}

/// Bytes of one number at most, outside strings: with at most two exponent digits, every
/// number read fits an f64 (RFC 8259 lets parsers refuse larger ones, and serde_json does).
pub const MAX_NUMBER_LEN: u8 = 24;

/// The states of RFC 8259's number grammar, named by what was read last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NumPart {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp1,
    Exp2,
}

/// Where a number stands: its grammar state and its length so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Number {
    part: NumPart,
    len: u8,
}

impl Number {
    /// A number starting with `b` (`-` or a digit).
    pub(crate) fn start(b: u8) -> Option<Number> {
        let part = match b {
            b'-' => NumPart::Minus,
            b'0' => NumPart::Zero,
            b'1'..=b'9' => NumPart::Int,
            _ => return None,
        };
        Some(Number { part, len: 1 })
    }

    /// The number after `b`, or `None` if it cannot take `b` (it may have ended before it).
    /// `integer`: no fraction or exponent.
    pub(crate) fn next(self, b: u8, integer: bool) -> Option<Number> {
        use NumPart::*;
        if self.len >= MAX_NUMBER_LEN || (integer && matches!(b, b'.' | b'e' | b'E')) {
            return None;
        }
        let digit = b.is_ascii_digit();
        let part = match (self.part, b) {
            (Minus, b'0') => Zero,
            (Minus, _) if digit => Int,
            (Int, _) if digit => Int,
            (Zero | Int, b'.') => Dot,
            (Dot | Frac, _) if digit => Frac,
            (Zero | Int | Frac, b'e' | b'E') => E,
            (E, b'+' | b'-') => ESign,
            (E | ESign, _) if digit => Exp1,
            (Exp1, _) if digit => Exp2,
            _ => return None,
        };
        let n = Number {
            part,
            len: self.len + 1,
        };
        // A number that cannot end yet keeps room for the digit that ends it.
        (n.can_end() || n.len < MAX_NUMBER_LEN).then_some(n)
    }

    /// What was read is a whole number.
    pub(crate) fn can_end(self) -> bool {
        !matches!(
            self.part,
            NumPart::Minus | NumPart::Dot | NumPart::E | NumPart::ESign
        )
    }
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
                if let Some(next) = n.next(b, false) {
                    self.mode = Mode::Number(next);
                    return true;
                }
                if !n.can_end() {
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
            b'-' | b'0'..=b'9' => Mode::Number(Number::start(b).expect("a number's start")),
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
        match string_step(escape, continuation, b) {
            StrStep::Reject => false,
            StrStep::End => {
                if key {
                    self.mode = Mode::Colon;
                } else {
                    self.value_done();
                }
                true
            }
            StrStep::Go(escape, continuation) => {
                self.mode = Mode::Str {
                    key,
                    escape,
                    continuation,
                };
                true
            }
        }
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

    /// Token `id`'s text, if it may be sampled in JSON mode.
    fn piece(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.ends.get(id)?;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        Some(&self.bytes[start..end]).filter(|p| !p.is_empty())
    }

    /// The state after token `id`, if its text can continue the object from `state`.
    pub fn after(&self, state: &JsonObjectState, id: u32) -> Option<JsonObjectState> {
        state.after(self.piece(id)?)
    }

    /// Sets to -inf the logits of the tokens that cannot continue the object from `state`
    /// (and of any beyond the vocabulary); returns how many are left.
    pub fn mask(&self, state: &JsonObjectState, logits: &mut [f32]) -> usize {
        apply_mask(&self.fitting(state), logits)
    }

    /// Bit `id` set: token `id` can continue the object from `state`.
    fn fitting(&self, state: &JsonObjectState) -> Arc<[u64]> {
        let lock = || self.fitting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bits) = lock().get(state) {
            return bits.clone();
        }
        let bits = self.fitting_bits(state.in_plain_string(), |p| state.after(p).is_some());
        remember(&mut lock(), *state, bits.clone());
        bits
    }

    /// Bit `id` set: token `id`'s text `fits`. `in_text`: inside a string, where plain text
    /// fits without being read.
    fn fitting_bits(&self, in_text: bool, fits: impl Fn(&[u8]) -> bool) -> Arc<[u64]> {
        let mut first = [false; 256];
        for (b, ok) in first.iter_mut().enumerate() {
            *ok = fits(&[b as u8]);
        }
        let mut bits = vec![0u64; self.ends.len().div_ceil(64)];
        for id in 0..self.ends.len() {
            let ok = self.piece(id as u32).is_some_and(|piece| {
                first[piece[0] as usize] && ((in_text && self.plain[id]) || fits(piece))
            });
            bits[id / 64] |= u64::from(ok) << (id % 64);
        }
        bits.into()
    }
}

/// Keeps `bits` for `state`, forgetting everything once [`MAX_CACHED_STATES`] are kept.
fn remember<S: Eq + Hash>(cache: &mut HashMap<S, Arc<[u64]>>, state: S, bits: Arc<[u64]>) {
    if cache.len() >= MAX_CACHED_STATES {
        cache.clear();
    }
    cache.insert(state, bits);
}

/// Sets to -inf the logits whose bit is clear; returns how many are left.
fn apply_mask(bits: &[u64], logits: &mut [f32]) -> usize {
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

/// What a constrained output must be.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonFormat {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    Object,
    /// A value valid under this schema (`response_format: {"type": "json_schema"}`).
    Schema(Arc<JsonSchema>),
}

/// What the output must be: any JSON object, or a value valid under a schema.
// One per request, updated in place: the schema state's size (a fixed stack) costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    Object(JsonObjectState),
    Schema {
        schema: Arc<JsonSchema>,
        state: SchemaState,
        /// Fitting tokens per state met (the vocabulary's cache holds object mode's only:
        /// these states mean something under this schema alone).
        masks: HashMap<SchemaState, Arc<[u64]>>,
    },
}

/// JSON mode's draw for one output: the sampler's pick when its text fits the value so far,
/// else a new draw with every token that does not fit masked out (llama.cpp's grammar
/// sampling does the same).
pub struct JsonSampling {
    target: Target,
    vocab: Arc<JsonVocab>,
    /// The logits row as it came, kept between tokens.
    unchanged: Vec<f32>,
}

impl JsonSampling {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    pub fn new(vocab: Arc<JsonVocab>) -> Self {
        JsonSampling {
            target: Target::Object(JsonObjectState::new()),
            vocab,
            unchanged: Vec::new(),
        }
    }

    /// A value valid under `schema` (`response_format: {"type": "json_schema"}`).
    pub fn with_schema(vocab: Arc<JsonVocab>, schema: Arc<JsonSchema>) -> Self {
        JsonSampling {
            target: Target::Schema {
                schema,
                state: SchemaState::new(),
                masks: HashMap::new(),
            },
            vocab,
            unchanged: Vec::new(),
        }
    }

    /// The draw for `format`.
    pub fn for_format(vocab: Arc<JsonVocab>, format: &JsonFormat) -> Self {
        match format {
            JsonFormat::Object => Self::new(vocab),
            JsonFormat::Schema(s) => Self::with_schema(vocab, s.clone()),
        }
    }

    /// The value is complete: generation should end.
    pub fn is_complete(&self) -> bool {
        match &self.target {
            Target::Object(s) => s.is_complete(),
            Target::Schema { state, .. } => state.is_complete(),
        }
    }

    /// Token `id` can come next; with `advance`, the state moves past it.
    fn take(&mut self, id: u32, advance: bool) -> bool {
        let Some(piece) = self.vocab.piece(id) else {
            return false;
        };
        match &mut self.target {
            Target::Object(s) => step(s, advance, |s| s.after(piece)),
            Target::Schema { schema, state, .. } => {
                step(state, advance, |s| s.after(schema, piece))
            }
        }
    }

    /// Masks every token that cannot come next; returns how many are left.
    fn mask(&mut self, logits: &mut [f32]) -> usize {
        let vocab = &self.vocab;
        match &mut self.target {
            Target::Object(s) => vocab.mask(s, logits),
            Target::Schema {
                schema,
                state,
                masks,
            } => {
                let bits = match masks.get(state) {
                    Some(b) => b.clone(),
                    None => {
                        let st = *state;
                        let bits = vocab
                            .fitting_bits(st.in_plain_string(), |p| st.after(schema, p).is_some());
                        remember(masks, st, bits.clone());
                        bits
                    }
                };
                apply_mask(&bits, logits)
            }
        }
    }

    /// Draws a token that fits and advances past it.
    pub fn sample(
        &mut self,
        sampler: &mut crate::Sampler,
        logits: &mut [f32],
    ) -> Result<u32, NoFittingToken> {
        self.unchanged.clear();
        self.unchanged.extend_from_slice(logits);
        let picked = sampler.sample(logits);
        // The usual case: the pick fits, and reading it once also advances the state.
        if self.take(picked, true) {
            return Ok(picked);
        }
        logits.copy_from_slice(&self.unchanged);
        if self.mask(logits) == 0 {
            return Err(NoFittingToken);
        }
        // Kept for the fallback below: the draw may apply penalties to `logits`.
        self.unchanged.copy_from_slice(logits);
        let mut picked = sampler.sample(logits);
        if !self.take(picked, true) {
            // The draw's own fallback can land on a masked token (rounding in its cumulative
            // sum): take the most likely token that fits.
            picked = crate::argmax(&self.unchanged);
            if !self.take(picked, true) {
                return Err(NoFittingToken);
            }
        }
        Ok(picked)
    }
}

/// Whether `next` accepts from `s`; with `advance`, `s` becomes the state it returns.
fn step<S: Copy>(s: &mut S, advance: bool, next: impl Fn(&S) -> Option<S>) -> bool {
    match next(s) {
        Some(n) => {
            if advance {
                *s = n;
            }
            true
        }
        None => false,
    }
}

/// No token of the vocabulary can continue the JSON object.
#[derive(Debug, thiserror::Error)]
#[error("no token of the vocabulary can continue the JSON object")]
pub struct NoFittingToken;

/// What one byte does inside a string.
pub(crate) enum StrStep {
    Reject,
    /// The closing quote.
    End,
    /// Still inside, with this escape and UTF-8 continuation state.
    Go(Escape, u8),
}

/// One byte of a string's contents (after the opening quote): RFC 8259's escapes, no control
/// bytes, well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
/// U+10FFFF). `continuation`: UTF-8 bytes still expected, in its low 2 bits; its high bits say
/// that the next one has a narrower range (after the lead bytes E0, ED, F0 and F4).
pub(crate) fn string_step(escape: Escape, continuation: u8, b: u8) -> StrStep {
    if continuation > 0 {
        let (lo, hi) = match continuation >> 4 {
            1 => (0xA0, 0xBF),
            2 => (0x80, 0x9F),
            3 => (0x90, 0xBF),
            4 => (0x80, 0x8F),
            _ => (0x80, 0xBF),
        };
        return if (lo..=hi).contains(&b) {
            StrStep::Go(escape, (continuation & 3) - 1)
        } else {
            StrStep::Reject
        };
    }
    let escape = match (escape, b) {
        (Escape::Backslash, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Escape::None,
        (Escape::Backslash, b'u') => Escape::Hex {
            left: 4,
            high_byte: 0,
            low: false,
        },
        (Escape::Backslash, _) => return StrStep::Reject,
        (
            Escape::Hex {
                left,
                high_byte,
                low,
            },
            _,
        ) if b.is_ascii_hexdigit() => return hex_digit(left, high_byte, low, b),
        (Escape::Hex { .. }, _) => return StrStep::Reject,
        (Escape::PairBackslash, b'\\') => Escape::PairU,
        (Escape::PairU, b'u') => Escape::Hex {
            left: 4,
            high_byte: 0,
            low: true,
        },
        (Escape::PairBackslash | Escape::PairU, _) => return StrStep::Reject,
        (Escape::None, b'"') => return StrStep::End,
        (Escape::None, b'\\') => Escape::Backslash,
        (Escape::None, 0x00..=0x1F) => return StrStep::Reject,
        (Escape::None, 0x20..=0x7F) => Escape::None,
        (Escape::None, 0xC2..=0xDF) => return StrStep::Go(Escape::None, 1),
        (Escape::None, 0xE0) => return StrStep::Go(Escape::None, 0x12),
        (Escape::None, 0xED) => return StrStep::Go(Escape::None, 0x22),
        (Escape::None, 0xE1..=0xEF) => return StrStep::Go(Escape::None, 2),
        (Escape::None, 0xF0) => return StrStep::Go(Escape::None, 0x33),
        (Escape::None, 0xF4) => return StrStep::Go(Escape::None, 0x43),
        (Escape::None, 0xF1..=0xF3) => return StrStep::Go(Escape::None, 3),
        (Escape::None, _) => return StrStep::Reject,
    };
    StrStep::Go(escape, 0)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
