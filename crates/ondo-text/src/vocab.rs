//! The [`Tokenizer`]: vocabulary, special tokens, encoding and decoding, following
//! llama.cpp's `llama_vocab` (special-token partitioning, EOG detection by token text,
//! `token_to_piece`, BOS/EOS insertion and SentencePiece space handling).

use crate::bpe::{merge_word, Merges};
use crate::pretok::PreTokenizer;
use crate::special::{
    attr_from_type, detect_special, A_BYTE, A_CONTROL, A_NORMAL, A_UNKNOWN, A_USER_DEFINED,
};
use crate::spm::{self, SpmVocab};
use crate::unicode::{byte_decode, byte_encode};
use crate::TextError;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

/// Tokenizer algorithm, from GGUF `tokenizer.ggml.model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE (`"gpt2"`).
    Bpe,
    /// SentencePiece BPE with scores (`"llama"`).
    Spm,
}

impl TokenizerKind {
    /// Map a `tokenizer.ggml.model` value; other models (`"bert"`, `"t5"`, `"rwkv"`...)
    /// are rejected with an error naming them.
    pub fn from_gguf_model(s: &str) -> Result<Self, TextError> {
        match s {
            "gpt2" => Ok(TokenizerKind::Bpe),
            "llama" => Ok(TokenizerKind::Spm),
            other => Err(TextError::UnsupportedModel(other.to_string())),
        }
    }
}

/// Vocabulary description, filled by the caller from GGUF `tokenizer.ggml.*` metadata.
/// `None` options mean "key absent": llama.cpp's default for the kind applies.
#[derive(Debug, Clone)]
pub struct VocabConfig {
    /// `tokenizer.ggml.model`.
    pub kind: TokenizerKind,
    /// `tokenizer.ggml.pre` (BPE only).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` (BPE only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
}

impl VocabConfig {
    /// A config with the given tokens and every optional key absent.
    pub fn new(kind: TokenizerKind, tokens: Vec<String>) -> Self {
        VocabConfig {
            kind,
            pre: None,
            tokens,
            scores: None,
            token_types: None,
            merges: Vec::new(),
            bos_id: None,
            eos_id: None,
            eot_id: None,
            eom_id: None,
            unk_id: None,
            pad_id: None,
            add_bos: None,
            add_eos: None,
            add_space_prefix: None,
        }
    }
}

/// A tokenizer reproducing llama.cpp's ids for one GGUF vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    kind: TokenizerKind,
    pretok: Option<PreTokenizer>,
    ignore_merges: bool,
    tokens: Vec<String>,
    attrs: Vec<u16>,
    scores: Vec<f32>,
    token_to_id: HashMap<String, u32>,
    merges: Merges,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    eog: BTreeSet<u32>,
    /// Control/user-defined/unknown tokens, longest text first.
    special_cache: Vec<u32>,
    /// `token_to_piece(id, special = true)` for every token.
    pieces: Vec<Box<[u8]>>,
    byte_tokens: [Option<u32>; 256],
    warnings: Vec<String>,
}

/// A piece of input: raw text still to tokenize, or an already-recognised special token.
enum Frag<'a> {
    Text(&'a str),
    Tok(u32),
}

fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl Tokenizer {
    /// Build and validate a tokenizer. Errors on an empty vocab, duplicate tokens,
    /// score/type arrays whose length differs from the vocab, special ids out of range,
    /// malformed `<0xXX>` byte tokens, or `add_bos`/`add_eos` without the token id.
    /// An unknown or missing `pre` falls back to llama.cpp's default pre-tokenizer and
    /// is reported in [`Tokenizer::warnings`].
    pub fn new(cfg: VocabConfig) -> Result<Tokenizer, TextError> {
        let bad = |m: String| Err(TextError::InvalidVocab(m));
        let n = cfg.tokens.len();
        if n == 0 {
            return bad("the vocabulary is empty".into());
        }
        if n > i32::MAX as usize {
            return bad(format!("the vocabulary has {n} tokens, too many"));
        }
        let mut warnings = Vec::new();
        let scores = match cfg.scores {
            Some(s) if s.len() != n => {
                return bad(format!("{} scores for {n} tokens", s.len()));
            }
            Some(s) => s,
            None => vec![0.0; n],
        };
        let mut attrs: Vec<u16> = match &cfg.token_types {
            Some(t) if t.len() != n => {
                return bad(format!("{} token types for {n} tokens", t.len()));
            }
            Some(t) => t.iter().map(|&t| attr_from_type(t)).collect(),
            None => vec![A_NORMAL; n],
        };
        let mut tokens = cfg.tokens;
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, tok) in tokens.iter_mut().enumerate() {
            if tok.is_empty() {
                warnings.push(format!("empty token at index {i}"));
                *tok = format!("[EMPTY_{i}]");
            }
            if let Some(prev) = token_to_id.insert(tok.clone(), i as u32) {
                return bad(format!("duplicate token {tok:?} has ids {prev} and {i}"));
            }
            if attrs[i] & A_BYTE != 0 && parse_byte_token(tok).is_none() {
                return bad(format!(
                    "byte token {i} has malformed text {tok:?} (expected <0xXX>)"
                ));
            }
        }

        let check = |name: &str, id: Option<u32>| -> Result<Option<u32>, TextError> {
            match id {
                Some(v) if v as usize >= n => Err(TextError::InvalidVocab(format!(
                    "{name} token id {v} is out of range (vocab size {n})"
                ))),
                other => Ok(other),
            }
        };
        let spm = cfg.kind == TokenizerKind::Spm;
        // llama.cpp's defaults for SentencePiece vocabularies: <unk>=0, <s>=1, </s>=2.
        let default = |id: u32| (spm && (id as usize) < n).then_some(id);
        let bos = check("BOS", cfg.bos_id.or_else(|| default(1)))?;
        let eos = check("EOS", cfg.eos_id.or_else(|| default(2)))?;
        let unk = check("UNK", cfg.unk_id.or_else(|| default(0)))?;
        let eot = check("EOT", cfg.eot_id)?;
        let eom = check("EOM", cfg.eom_id)?;
        let pad = check("PAD", cfg.pad_id)?;

        let (pretok, ignore_merges, default_add_bos, merges) = match cfg.kind {
            TokenizerKind::Spm => (None, false, true, Merges::default()),
            TokenizerKind::Bpe => {
                let (p, info) = PreTokenizer::new(cfg.pre.as_deref())?;
                if !info.known {
                    warnings.push(match &cfg.pre {
                        None => "missing pre-tokenizer type, using 'default' (quality may degrade)".to_string(),
                        Some(p) => format!("unknown pre-tokenizer type {p:?}, using 'default' (quality may degrade)"),
                    });
                }
                let (m, skipped) = Merges::new(&cfg.merges);
                if skipped > 0 {
                    warnings.push(format!("{skipped} malformed merge rules skipped"));
                }
                if cfg.merges.is_empty() {
                    warnings.push("BPE vocabulary without merges".to_string());
                }
                (Some(p), info.ignore_merges, info.default_add_bos, m)
            }
        };
        let add_bos = cfg.add_bos.unwrap_or(default_add_bos);
        let add_eos = cfg.add_eos.unwrap_or(false);
        let add_space_prefix = spm && cfg.add_space_prefix.unwrap_or(true);
        if add_bos && bos.is_none() {
            return bad("add_bos_token is true, but bos_token_id is not set".into());
        }
        if add_eos && eos.is_none() {
            return bad("add_eos_token is true, but eos_token_id is not set".into());
        }

        let (eot, eom, eog) = detect_special(&tokens, &mut attrs, eos, eot, eom);

        let mut special_cache: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN) != 0)
            .collect();
        special_cache.sort_by_key(|&i| std::cmp::Reverse(tokens[i as usize].len()));

        let pieces = tokens
            .iter()
            .zip(&attrs)
            .map(|(t, &a)| -> Box<[u8]> {
                if a & (A_UNKNOWN | A_CONTROL | A_USER_DEFINED) != 0 {
                    t.as_bytes().into()
                } else if a & A_NORMAL != 0 {
                    if spm {
                        t.replace('\u{2581}', " ").into_bytes().into()
                    } else {
                        byte_decode(t).into()
                    }
                } else if a & A_BYTE != 0 {
                    vec![parse_byte_token(t).unwrap_or(0)].into()
                } else {
                    Box::default()
                }
            })
            .collect();

        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = token_to_id
                .get(&format!("<0x{b:02X}>"))
                .copied()
                .or_else(|| {
                    let c = char::from_u32(b as u32).filter(|c| c.is_ascii())?;
                    token_to_id.get(c.to_string().as_str()).copied()
                });
        }

        Ok(Tokenizer {
            kind: cfg.kind,
            pretok,
            ignore_merges,
            tokens,
            attrs,
            scores,
            token_to_id,
            merges,
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            eog,
            special_cache,
            pieces,
            byte_tokens,
            warnings,
        })
    }

    /// Messages about fallbacks taken while building (unknown pre-tokenizer, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The tokenizer algorithm.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// Number of BPE merge rules in use (0 for SentencePiece).
    pub fn n_merges(&self) -> usize {
        self.merges.len()
    }

    /// Tokenize plain text: text that looks like a control token (`"<|im_start|>"`) is
    /// tokenized as ordinary text. As in llama.cpp, user-defined (type 4) tokens are
    /// still matched. `add_special` adds BOS/EOS according to `add_bos`/`add_eos`.
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.tokenize(text, add_special, false)
    }

    /// Tokenize text in which control/special token strings become their ids. Only for
    /// trusted text such as chat template scaffolding.
    pub fn encode_with_special(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.tokenize(text, add_special, true)
    }

    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.tokenize_parts(
            self.partition(text, parse_special, &[]),
            text.len(),
            add_special,
        )
    }

    fn tokenize_parts(&self, frags: Vec<Frag<'_>>, len: usize, add_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(len / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match self.kind {
            TokenizerKind::Spm => {
                let v = SpmVocab {
                    token_to_id: &self.token_to_id,
                    scores: &self.scores,
                    byte_tokens: &self.byte_tokens,
                    unk: self.unk,
                };
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Frag::Text(s) => {
                            let mut t = String::with_capacity(s.len() + 1);
                            if self.add_space_prefix && prev_special {
                                t.push(' ');
                            }
                            t.push_str(s);
                            spm::tokenize(&t.replace(' ', "\u{2581}"), &v, &mut out);
                            prev_special = false;
                        }
                        Frag::Tok(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            TokenizerKind::Bpe => {
                for f in frags {
                    match f {
                        Frag::Text(s) => self.bpe_text(s, &mut out),
                        Frag::Tok(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    fn bpe_text(&self, text: &str, out: &mut Vec<u32>) {
        let Some(pretok) = &self.pretok else { return };
        for word in pretok.split(text) {
            let enc = byte_encode(word);
            if self.ignore_merges {
                if let Some(&id) = self.token_to_id.get(&enc) {
                    out.push(id);
                    continue;
                }
            }
            for r in merge_word(&enc, &self.merges) {
                let piece = &enc[r];
                if let Some(&id) = self.token_to_id.get(piece) {
                    out.push(id);
                    continue;
                }
                // llama.cpp looks up each byte of the symbol as a one-byte token; only
                // ASCII bytes can match.
                let mut buf = [0u8; 4];
                for &b in piece.as_bytes() {
                    if b.is_ascii() {
                        let s = char::from(b).encode_utf8(&mut buf);
                        if let Some(&id) = self.token_to_id.get(&*s) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }

    /// Split out special tokens (longest first), as llama.cpp's `tokenizer_st_partition`.
    /// With `parse_special`, control tokens are matched except where they overlap a
    /// byte range of `plain` (untrusted content inside a rendered chat template).
    fn partition<'a>(
        &self,
        text: &'a str,
        parse_special: bool,
        plain: &[Range<usize>],
    ) -> Vec<Frag<'a>> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Frag::Text(text));
        let base = text.as_ptr() as usize;
        for &id in &self.special_cache {
            let control = self.attrs[id as usize] & (A_CONTROL | A_UNKNOWN) != 0;
            if !parse_special && control {
                continue;
            }
            let pat = self.tokens[id as usize].as_str();
            if !frags
                .iter()
                .any(|f| matches!(f, Frag::Text(s) if s.contains(pat)))
            {
                continue;
            }
            let blocked =
                |s: usize, e: usize| control && plain.iter().any(|r| r.start < e && s < r.end);
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(seg) = f else {
                    next.push(f);
                    continue;
                };
                let off = seg.as_ptr() as usize - base;
                let (mut last, mut from) = (0, 0);
                while let Some(i) = seg[from..].find(pat).map(|i| i + from) {
                    if blocked(off + i, off + i + pat.len()) {
                        from = i + seg[i..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    if i > last {
                        next.push(Frag::Text(&seg[last..i]));
                    }
                    next.push(Frag::Tok(id));
                    last = i + pat.len();
                    from = last;
                }
                if last < seg.len() {
                    next.push(Frag::Text(&seg[last..]));
                }
            }
            frags = next;
        }
        frags
    }

    /// Tokenize a rendered chat prompt: control tokens are recognised in the template
    /// scaffold but not inside the `plain` byte ranges (message contents). No BOS/EOS.
    pub(crate) fn encode_chat(&self, text: &str, plain: &[Range<usize>]) -> Vec<u32> {
        self.tokenize_parts(self.partition(text, true, plain), text.len(), false)
    }

    /// The bytes a token stands for (llama.cpp `token_to_piece` with `special = true`):
    /// byte-level decoded for BPE, `▁` → space for SentencePiece, `<0x41>` → `0x41`,
    /// control tokens → their text. Empty for ids out of range.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], |p| p)
    }

    /// llama.cpp's `token_to_piece(id, special)`: with `special = false`, control and
    /// unknown tokens produce nothing.
    pub fn token_piece(&self, id: u32, special: bool) -> &[u8] {
        match self.attrs.get(id as usize) {
            Some(&a) if !special && a & (A_CONTROL | A_UNKNOWN) != 0 => &[],
            Some(_) => &self.pieces[id as usize],
            None => &[],
        }
    }

    /// Decode ids to text. `skip_special` drops control/unknown tokens (llama.cpp's
    /// `special = false`). With SentencePiece `add_space_prefix`, the space added in
    /// front of the first word is removed (after a leading BOS). Invalid UTF-8 becomes
    /// U+FFFD only in the final conversion; ids out of range are ignored.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip = self.strips_leading_space();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_piece(id, !skip_special);
            if strip && i == 0 && Some(id) == self.bos {
                bytes.extend_from_slice(piece);
                continue;
            }
            if strip {
                strip = false;
                bytes.extend_from_slice(piece.strip_prefix(b" ").unwrap_or(piece));
            } else {
                bytes.extend_from_slice(piece);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether decoding removes the space SentencePiece put in front of the text.
    pub(crate) fn strips_leading_space(&self) -> bool {
        self.kind == TokenizerKind::Spm && self.add_space_prefix
    }

    /// BOS token id.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    /// EOS token id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn token id (given or found by text).
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }
    /// End-of-message token id (given or found by text).
    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }
    /// Unknown-token id.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }
    /// Padding token id.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(.., add_special = true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(.., add_special = true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// Whether SentencePiece input gets a leading space.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Whether `id` ends generation: EOS, EOT, EOM and the tokens llama.cpp adds to its
    /// EOG set by their text (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, FIM pad...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The text each token adds to generated output (`token_piece(id, false)`), empty for the
    /// end-of-generation tokens: what a constrained sampler chooses among, by id.
    pub fn output_pieces(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.n_vocab() as u32).map(|id| {
            if self.is_eog(id) {
                &[][..]
            } else {
                self.token_piece(id, false)
            }
        })
    }

    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.eog.iter().copied().collect()
    }

    /// Whether `id` is a control token (hidden by `decode(.., skip_special = true)`).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|&a| a & (A_CONTROL | A_UNKNOWN) != 0)
    }

    /// The vocabulary text of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token by its exact vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
}
