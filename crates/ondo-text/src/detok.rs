//! [`Detokenizer`]: incremental id → text conversion that never emits broken UTF-8.
//! Bytes of a character split across tokens are held back until the character is
//! complete; a sequence becomes U+FFFD only once no further byte can complete it.

use crate::Tokenizer;

/// Streaming detokenizer. Create one per generated sequence.
#[derive(Debug, Clone, Default)]
pub struct Detokenizer {
    pending: Vec<u8>,
    skip_special: bool,
    strip_leading_space: bool,
    seen_any: bool,
}

impl Detokenizer {
    /// A detokenizer; `skip_special` hides control tokens (like `<|im_end|>`), as
    /// [`Tokenizer::decode`] with `skip_special = true` does. It does not remove the
    /// SentencePiece leading space (generated continuations keep their spaces); see
    /// [`Detokenizer::strip_leading_space`].
    pub fn new(skip_special: bool) -> Self {
        Detokenizer {
            skip_special,
            ..Default::default()
        }
    }

    /// Also remove the leading space of the first token (after a leading BOS) when the
    /// tokenizer adds a SentencePiece space prefix, so that the concatenated output
    /// equals [`Tokenizer::decode`] of the whole sequence.
    pub fn strip_leading_space(mut self, yes: bool) -> Self {
        self.strip_leading_space = yes;
        self
    }

    /// Add one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        let piece = tok.token_piece(id, !self.skip_special);
        let first = !self.seen_any;
        if first && Some(id) == tok.bos_id() {
            // A leading BOS does not consume the leading-space removal.
            self.pending.extend_from_slice(piece);
        } else {
            self.seen_any = true;
            let strip = first && self.strip_leading_space && tok.strips_leading_space();
            let piece = if strip {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            self.pending.extend_from_slice(piece);
        }
        self.drain(false)
    }

    /// Emit whatever is left at the end of the sequence (incomplete characters as U+FFFD).
    pub fn flush(&mut self) -> String {
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> String {
        let mut out = String::new();
        let mut pos = 0;
        loop {
            match std::str::from_utf8(&self.pending[pos..]) {
                Ok(s) => {
                    out.push_str(s);
                    pos = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix was validated by from_utf8.
                    out.push_str(
                        std::str::from_utf8(&self.pending[pos..pos + valid]).unwrap_or_default(),
                    );
                    pos += valid;
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            pos += bad;
                        }
                        None if at_end => {
                            out.push('\u{FFFD}');
                            pos = self.pending.len();
                            break;
                        }
                        // Incomplete but possibly valid: wait for more bytes.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..pos);
        out
    }
}
