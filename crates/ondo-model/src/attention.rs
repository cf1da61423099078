//! Causal attention of a batch of consecutive tokens against the f16 KV cache.
//!
//! A batch (prefill, perplexity): one task per (token, head): scores `q·K[p] / sqrt(head_dim)`
//! over positions `0..=pos`, softmax, then the probability-weighted sum of `V`. Under
//! `Numerics::LlamaCpp` the scores use ggml's vector exp, the probabilities are rounded to
//! f16, and `P·V` sums in tinyBLAS's lane order, as llama.cpp's batched evaluation does.
//! One token (decoding): one task per KV head, whose query heads share every key and value row
//! read, sums over positions in order with the accumulators in registers. The cache is laid out
//! per KV head, so each task streams contiguous memory.

use std::cell::RefCell;

use ondo_kernels::attn::{scores_group, scores_lanes8, weighted_sum_group, weighted_sum_seq};
use ondo_kernels::ggml_math::{softmax_ggml, weighted_sum_lanes8};

use crate::kv::round_f16;
use crate::{KvCache, LlamaConfig, Numerics};

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// q: [n][dim] (already rounded as the numerics want), att: [n][dim]; the cache holds this
/// layer's keys and values of positions `0..start + n`. Token `i` sits at position `start + i`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    c: &LlamaConfig,
    q: &[f32],
    kv: &KvCache,
    layer: usize,
    start: usize,
    n: usize,
    att: &mut [f32],
    numerics: Numerics,
) {
    let (dim, hd) = (c.dim, c.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let group = c.group_size();
    if n == 1 {
        return attend_decode(c, q, &|_| (kv, start), layer, &mut att[..dim], numerics);
    }
    let task = |idx: usize, out: &mut [f32], scores: &mut Vec<f32>| {
        let (i, h) = (idx / c.n_heads, idx % c.n_heads);
        let kvh = h / group;
        let qh = &q[i * dim + h * hd..i * dim + (h + 1) * hd];
        let len = start + i + 1;
        if scores.capacity() < len {
            // Grow in steps of 1024 positions: decoding reallocates once per 1024 tokens.
            scores.reserve(len.next_multiple_of(1024) - scores.len());
        }
        scores.resize(len, 0.0);
        let (keys, vals) = (
            kv.head_keys(layer, kvh, len),
            kv.head_values(layer, kvh, len),
        );
        scores_lanes8(qh, keys, hd, scale, scores);
        match numerics {
            Numerics::LlamaCpp | Numerics::BlockSums => softmax_ggml(scores),
            Numerics::Exact => ondo_kernels::softmax_inplace(scores),
        }
        round_f16(scores, numerics);
        if numerics.llama_cpp() {
            weighted_sum_lanes8(out, scores, vals, hd);
        } else {
            weighted_sum_seq(out, scores, vals, hd);
        }
    };
    ondo_kernels::pool::for_each_share(&mut att[..n * dim], hd, 1, |first, share| {
        SCORES.with(|s| {
            let mut scores = s.borrow_mut();
            for (j, out) in share.chunks_exact_mut(hd).enumerate() {
                task(first + j, out, &mut scores);
            }
        })
    });
}

/// Decoding: one token of each of several sequences, q and att [seqs][dim]; `seq(r)` gives
/// sequence r's cache and its position. One task per (sequence, KV head), whose query heads
/// share every key and value row read (`scores_group`, `weighted_sum_group`: per head the same
/// arithmetic as the one-head kernels, sums over positions in order). A sequence's result does
/// not depend on the others.
pub(crate) fn attend_decode<'k>(
    c: &LlamaConfig,
    q: &[f32],
    seq: &(dyn Fn(usize) -> (&'k KvCache, usize) + Sync),
    layer: usize,
    att: &mut [f32],
    numerics: Numerics,
) {
    let (hd, group, n_kv) = (c.head_dim, c.group_size(), c.n_kv_heads);
    let scale = 1.0 / (hd as f32).sqrt();
    let unit = group * hd;
    // One task per (sequence, kv head), claimed one at a time by the threads.
    let tasks = att.len() / unit;
    assert_eq!(
        att.len(),
        tasks * unit,
        "att is whole (sequence, kv head) groups"
    );
    let att_ptr = crate::matmul::OutPtr(att.as_mut_ptr());
    ondo_kernels::pool::for_each_claimed_index(tasks, |task| {
        // SAFETY: task < tasks, so the range lies in `att`; each task is claimed once, so
        // the ranges handed out are disjoint; `att` stays borrowed until the region ends.
        let out = unsafe { std::slice::from_raw_parts_mut(att_ptr.get().add(task * unit), unit) };
        SCORES.with(|s| {
            let mut scores = s.borrow_mut();
            let (r, kvh) = (task / n_kv, task % n_kv);
            let (kv, pos) = seq(r);
            let len = pos + 1;
            let need = group * len;
            if scores.capacity() < need {
                let have = scores.len();
                scores.reserve(need.next_multiple_of(1024 * group) - have);
            }
            scores.resize(need, 0.0);
            let qg = &q[task * unit..(task + 1) * unit];
            let keys = kv.head_keys(layer, kvh, len);
            scores_group(qg, hd, keys, hd, scale, &mut scores);
            for sh in scores.chunks_exact_mut(len) {
                match numerics {
                    Numerics::LlamaCpp | Numerics::BlockSums => softmax_ggml(sh),
                    Numerics::Exact => ondo_kernels::softmax_inplace(sh),
                }
                round_f16(sh, numerics);
            }
            let values = kv.head_values(layer, kvh, len);
            weighted_sum_group(out, hd, &scores, values, hd);
        })
    });
}
