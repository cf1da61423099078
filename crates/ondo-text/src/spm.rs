//! SentencePiece-style ("llama") tokenization as in llama.cpp's `llm_tokenizer_spm`:
//! start from single characters, repeatedly merge the adjacent pair whose
//! concatenation is a vocab token with the highest score (ties: leftmost first), then
//! emit each final symbol as its token, or as `<0xXX>` byte tokens when it has none.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// What the SPM merger needs from the vocabulary.
pub(crate) struct SpmVocab<'a> {
    pub token_to_id: &'a HashMap<String, u32>,
    pub scores: &'a [f32],
    pub byte_tokens: &'a [Option<u32>; 256],
    pub unk: Option<u32>,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then smaller `left`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Tokenize already-escaped text (spaces replaced by U+2581) and append the ids.
pub(crate) fn tokenize(text: &str, v: &SpmVocab<'_>, out: &mut Vec<u32>) {
    let count = text.chars().count();
    let mut syms: Vec<Sym> = text
        .char_indices()
        .enumerate()
        .map(|(i, (start, c))| Sym {
            start,
            n: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < count).then_some(i + 1),
        })
        .collect();
    let mut queue = BinaryHeap::new();
    let try_add =
        |queue: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (ls, rs) = (&syms[l], &syms[r]);
            let s = &text[ls.start..ls.start + ls.n + rs.n];
            if let Some(&id) = v.token_to_id.get(s) {
                queue.push(Bigram {
                    score: v.scores.get(id as usize).copied().unwrap_or(0.0),
                    left: l,
                    right: r,
                    size: s.len(),
                });
            }
        };
    for i in 1..syms.len() {
        try_add(&mut queue, &syms, Some(i - 1), Some(i));
    }
    while let Some(b) = queue.pop() {
        let (ln, rn) = (syms[b.left].n, syms[b.right].n);
        if ln == 0 || rn == 0 || ln + rn != b.size {
            continue;
        }
        syms[b.left].n += rn;
        syms[b.right].n = 0;
        let rnext = syms[b.right].next;
        syms[b.left].next = rnext;
        if let Some(nx) = rnext {
            syms[nx].prev = Some(b.left);
        }
        let lprev = syms[b.left].prev;
        try_add(&mut queue, &syms, lprev, Some(b.left));
        try_add(&mut queue, &syms, Some(b.left), rnext);
    }
    let mut i = if syms.is_empty() { None } else { Some(0) };
    while let Some(idx) = i {
        let s = syms[idx];
        let piece = &text[s.start..s.start + s.n];
        match v.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            None => {
                // Merged symbols are always tokens, so this is a single character
                // missing from the vocab: fall back to its bytes.
                for &byte in piece.as_bytes() {
                    if let Some(id) = v.byte_tokens[byte as usize].or(v.unk) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}
