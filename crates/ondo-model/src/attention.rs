//! Causal attention of a batch of consecutive tokens against the f16 KV cache.
//!
//! One task per (token, head): scores `q·K[p] / sqrt(head_dim)` over positions `0..=pos`,
//! softmax, then the probability-weighted sum of `V`. Under `Numerics::LlamaCpp` the scores use
//! ggml's vector exp, the probabilities are rounded to f16, and a batch sums `P·V` in
//! tinyBLAS's lane order, as llama.cpp's batched evaluation does; a single token (decoding)
//! sums in position order with the accumulators in registers. Heads of one KV group are
//! adjacent tasks, so a thread's share reads each cached key row for the whole group while it
//! is in cache.

use std::cell::RefCell;

use ondo_kernels::attn::{scores_lanes8, weighted_sum_seq};
use ondo_kernels::ggml_math::{softmax_ggml, weighted_sum_lanes8};

use crate::kv::{round_f16, F16};
use crate::{LlamaConfig, Numerics};

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// q: [n][dim] (already rounded as the numerics want), keys/values: [start + n][kv_dim] of
/// this layer, att: [n][dim]. Token `i` sits at position `start + i`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    c: &LlamaConfig,
    q: &[f32],
    keys: &[F16],
    values: &[F16],
    start: usize,
    n: usize,
    att: &mut [f32],
    numerics: Numerics,
) {
    let (dim, kv_dim, hd) = (c.dim, c.kv_dim(), c.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let group = c.group_size();
    let one_token = n == 1;
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
        scores_lanes8(qh, &keys[kvh * hd..], kv_dim, scale, scores);
        match numerics {
            Numerics::LlamaCpp => softmax_ggml(scores),
            Numerics::Exact => ondo_kernels::softmax_inplace(scores),
        }
        round_f16(scores, numerics);
        let vals = &values[kvh * hd..];
        if numerics == Numerics::LlamaCpp && !one_token {
            weighted_sum_lanes8(out, scores, vals, kv_dim);
        } else {
            weighted_sum_seq(out, scores, vals, kv_dim);
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
