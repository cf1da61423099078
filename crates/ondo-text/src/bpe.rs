//! Byte-level BPE merging as in llama.cpp's `llm_tokenizer_bpe_session`: the characters
//! of one (byte-encoded) pre-token are merged pairwise, always taking the pair with the
//! lowest merge rank, ties broken by the leftmost position.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Merge ranks keyed by interned (left, right) strings.
#[derive(Debug, Default)]
pub(crate) struct Merges {
    parts: HashMap<Box<str>, u32>,
    ranks: HashMap<(u32, u32), u32>,
}

impl Merges {
    /// Parse `"left right"` merge rules; the rank is the line index. Lines without a
    /// separating space (after the first character) are skipped and counted.
    pub(crate) fn new(merges: &[String]) -> (Merges, usize) {
        let mut m = Merges::default();
        let mut skipped = 0;
        for (rank, line) in merges.iter().enumerate() {
            // llama.cpp: word.find(' ', 1)
            let split = line
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i);
            let Some(i) = split else {
                skipped += 1;
                continue;
            };
            let a = m.intern(&line[..i]);
            let b = m.intern(&line[i + 1..]);
            m.ranks.entry((a, b)).or_insert(rank as u32);
        }
        (m, skipped)
    }

    fn intern(&mut self, s: &str) -> u32 {
        let next = self.parts.len() as u32;
        *self.parts.entry(s.into()).or_insert(next)
    }

    pub(crate) fn len(&self) -> usize {
        self.ranks.len()
    }

    fn rank(&self, a: &str, b: &str) -> Option<u32> {
        let a = *self.parts.get(a)?;
        let b = *self.parts.get(b)?;
        self.ranks.get(&(a, b)).copied()
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Merge the characters of `word`; returns the byte ranges of the final symbols.
pub(crate) fn merge_word(word: &str, merges: &Merges) -> Vec<std::ops::Range<usize>> {
    let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
    let count = word.chars().count();
    for (i, (start, c)) in word.char_indices().enumerate() {
        syms.push(Sym {
            start,
            n: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < count).then_some(i + 1),
        });
    }
    // (rank, left, right, size)
    let mut queue: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
    let text = |s: &Sym| &word[s.start..s.start + s.n];
    let push = |queue: &mut BinaryHeap<_>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (ls, rs) = (&syms[l], &syms[r]);
        if let Some(rank) = merges.rank(text(ls), text(rs)) {
            queue.push(Reverse((rank, l, r, ls.n + rs.n)));
        }
    };
    for i in 1..syms.len() {
        push(&mut queue, &syms, Some(i - 1), Some(i));
    }
    while let Some(Reverse((_, l, r, size))) = queue.pop() {
        let (ln, rn) = (syms[l].n, syms[r].n);
        // Outdated pair: one side was merged away or grew since it was queued.
        if ln == 0 || rn == 0 || ln + rn != size {
            continue;
        }
        syms[l].n += rn;
        syms[r].n = 0;
        let rnext = syms[r].next;
        syms[l].next = rnext;
        if let Some(nx) = rnext {
            syms[nx].prev = Some(l);
        }
        let lprev = syms[l].prev;
        push(&mut queue, &syms, lprev, Some(l));
        push(&mut queue, &syms, Some(l), rnext);
    }
    syms.iter()
        .filter(|s| s.n > 0)
        .map(|s| s.start..s.start + s.n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_rank() {
        let rules: Vec<String> = ["a b", "b c", "ab c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (m, skipped) = Merges::new(&rules);
        assert_eq!(skipped, 0);
        let r = merge_word("abc", &m);
        assert_eq!(r, vec![0..3]);
        let r = merge_word("bcab", &m);
        assert_eq!(r, vec![0..2, 2..4]);
    }

    #[test]
    fn malformed_rules_skipped() {
        let rules: Vec<String> = ["ab", " x y"].iter().map(|s| s.to_string()).collect();
        let (m, skipped) = Merges::new(&rules);
        assert_eq!(skipped, 1);
        assert_eq!(m.len(), 1);
    }
}
