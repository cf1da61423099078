//! Causal attention of a batch of consecutive tokens against the f16 KV cache.
//!
//! A batch (prefill, perplexity): one task per (token, head), the threads claiming tokens
//! longest first: scores `q·K[p] / sqrt(head_dim)`
//! over positions `0..=pos`, softmax, then the probability-weighted sum of `V`. Under
//! `Numerics::LlamaCpp` the scores use ggml's vector exp, the probabilities are rounded to
//! f16, and `P·V` sums in tinyBLAS's lane order, as llama.cpp's batched evaluation does.
//! One token (decoding): one task per KV head, whose query heads share every key and value row
//! read, sums over positions in order with the accumulators in registers. The cache is laid out
//! per KV head, so each task streams contiguous memory.

use std::cell::RefCell;

use ondo_kernels::attn::{scores_group, scores_lanes8, weighted_sum_group, weighted_sum_seq};
use ondo_kernels::ggml_math::{softmax_ggml, weighted_sum_lanes8};

use crate::kv::{round_f16, LayerHeads, F16};
use crate::matmul::OutPtr;
use crate::rope::Rope;
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
    // A token's work grows with its position: the threads claim whole tokens, the last (the
    // longest) first, so they finish together instead of one taking the long half.
    let out = OutPtr(att[..n * dim].as_mut_ptr());
    ondo_kernels::pool::for_each_claimed_index(n, |k| {
        let i = n - 1 - k;
        // SAFETY: token i's row of `att` (in bounds: i < n) is claimed by this item alone, and
        // `att` stays borrowed until the region ends.
        let row = unsafe { std::slice::from_raw_parts_mut(out.get().add(i * dim), dim) };
        SCORES.with(|s| {
            let mut scores = s.borrow_mut();
            for (h, head_out) in row.chunks_exact_mut(hd).enumerate() {
                task(i * c.n_heads + h, head_out, &mut scores);
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
    let att_ptr = OutPtr(att.as_mut_ptr());
    ondo_kernels::pool::for_each_claimed_index(tasks, |task| {
        // SAFETY: task < tasks, so the range lies in `att`; each task is claimed once, so
        // the ranges handed out are disjoint; `att` stays borrowed until the region ends.
        let out = unsafe { std::slice::from_raw_parts_mut(att_ptr.get().add(task * unit), unit) };
        let (r, kvh) = (task / n_kv, task % n_kv);
        let (kv, pos) = seq(r);
        let len = pos + 1;
        let qg = &q[task * unit..(task + 1) * unit];
        let (keys, values) = (
            kv.head_keys(layer, kvh, len),
            kv.head_values(layer, kvh, len),
        );
        attend_group(qg, keys, values, hd, scale, out, numerics);
    });
}

/// The query heads `qg` ([group][hd]) sharing one KV head against its `keys` and `values`
/// ([len][hd]) into `out` ([group][hd]): `scores_group`, a softmax per head, `weighted_sum_group`.
fn attend_group(
    qg: &[f32],
    keys: &[F16],
    values: &[F16],
    hd: usize,
    scale: f32,
    out: &mut [f32],
    numerics: Numerics,
) {
    let (group, len) = (qg.len() / hd, keys.len() / hd);
    SCORES.with(|s| {
        let mut scores = s.borrow_mut();
        let need = group * len;
        if scores.capacity() < need {
            let have = scores.len();
            scores.reserve(need.next_multiple_of(1024 * group) - have);
        }
        scores.resize(need, 0.0);
        scores_group(qg, hd, keys, values, hd, scale, &mut scores);
        for sh in scores.chunks_exact_mut(len) {
            match numerics {
                Numerics::LlamaCpp | Numerics::BlockSums => softmax_ggml(sh),
                Numerics::Exact => ondo_kernels::softmax_inplace(sh),
            }
            round_f16(sh, numerics);
        }
        weighted_sum_group(out, hd, &scores, values, hd);
    })
}

/// A decoding step's attention with the work before it: one token of each of several
/// sequences, q [seqs][dim] and k, v [seqs][kv_dim] fresh from their projections, `angles`
/// [seqs][pairs] each token's RoPE angles, `heads[r]` sequence r's cache view of this layer.
/// Per (sequence, KV head) task, in one parallel region: RoPE of the head's key and of its
/// query heads, the key and value stored in the cache at the sequence's next position, the
/// queries rounded as the numerics want, then [`attend_decode`]'s attention. Per token the
/// same arithmetic as rotating, storing and rounding whole rows first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_decode_fresh(
    c: &LlamaConfig,
    rope: &Rope,
    angles: &[(f32, f32)],
    q: &mut [f32],
    k: &mut [f32],
    v: &[f32],
    heads: &[LayerHeads],
    att: &mut [f32],
    numerics: Numerics,
) {
    let (dim, kv_dim, hd, n_kv) = (c.dim, c.kv_dim(), c.head_dim, c.n_kv_heads);
    let (unit, pairs, seqs) = (c.group_size() * hd, rope.pairs(), heads.len());
    let scale = 1.0 / (hd as f32).sqrt();
    assert!(
        q.len() == seqs * dim && att.len() == seqs * dim,
        "q and att are [seqs][dim]"
    );
    assert!(
        k.len() == seqs * kv_dim && v.len() == seqs * kv_dim,
        "k, v are [seqs][kv_dim]"
    );
    assert_eq!(angles.len(), seqs * pairs, "angles are [seqs][pairs]");
    assert_eq!(
        unit * n_kv,
        dim,
        "the query heads split evenly among the KV heads"
    );
    let (q_ptr, k_ptr) = (OutPtr(q.as_mut_ptr()), OutPtr(k.as_mut_ptr()));
    let att_ptr = OutPtr(att.as_mut_ptr());
    ondo_kernels::pool::for_each_claimed_index(seqs * n_kv, |task| {
        let (r, kvh) = (task / n_kv, task % n_kv);
        // SAFETY: task (r, kvh) is claimed once and alone touches query heads kvh*group..,
        // key head kvh and output heads kvh*group.. of token r: disjoint ranges of q, k and
        // att (sizes asserted above), which stay borrowed until the region ends.
        let (qg, kh, out) = unsafe {
            (
                std::slice::from_raw_parts_mut(q_ptr.get().add(task * unit), unit),
                std::slice::from_raw_parts_mut(k_ptr.get().add(r * kv_dim + kvh * hd), hd),
                std::slice::from_raw_parts_mut(att_ptr.get().add(task * unit), unit),
            )
        };
        let a = &angles[r * pairs..(r + 1) * pairs];
        let vh = &v[r * kv_dim + kvh * hd..r * kv_dim + (kvh + 1) * hd];
        // SAFETY: the caller lends every sequence's cache for the region; this task alone
        // touches KV head kvh of sequence r.
        unsafe { fresh_head(rope, a, qg, kh, vh, heads[r], kvh, scale, out, numerics) };
    });
}

/// [`attend_decode_fresh`] for one token (q_t, att_t [dim], k_t, v_t [kv_dim], its angles and
/// its sequence's cache view), all its KV heads in turn: for a caller that shares tokens among
/// threads itself (a decoding batch's attention made inside the output projection's region).
///
/// # Safety
/// The cache behind `heads` is alive and no one else touches it during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attend_token_fresh(
    c: &LlamaConfig,
    rope: &Rope,
    angles: &[(f32, f32)],
    q_t: &mut [f32],
    k_t: &mut [f32],
    v_t: &[f32],
    heads: LayerHeads,
    att_t: &mut [f32],
    numerics: Numerics,
) {
    let (hd, unit) = (c.head_dim, c.group_size() * c.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    assert!(
        q_t.len() == c.dim && att_t.len() == c.dim,
        "q and att are one token's"
    );
    assert!(
        k_t.len() == c.kv_dim() && v_t.len() == c.kv_dim(),
        "k, v are one token's"
    );
    assert_eq!(
        unit * c.n_kv_heads,
        c.dim,
        "the query heads split evenly among the KV heads"
    );
    let groups = q_t.chunks_exact_mut(unit).zip(att_t.chunks_exact_mut(unit));
    let kv = k_t.chunks_exact_mut(hd).zip(v_t.chunks_exact(hd));
    for (kvh, ((qg, out), (kh, vh))) in groups.zip(kv).enumerate() {
        fresh_head(rope, angles, qg, kh, vh, heads, kvh, scale, out, numerics);
    }
}

/// One token's KV head `kvh`: RoPE of its key `kh` and query heads `qg`, the key and value
/// stored in the cache, the queries rounded, then [`attend_group`] into `out`.
///
/// # Safety
/// As [`LayerHeads::write_row`] for head `kvh`.
#[allow(clippy::too_many_arguments)]
unsafe fn fresh_head(
    rope: &Rope,
    angles: &[(f32, f32)],
    qg: &mut [f32],
    kh: &mut [f32],
    vh: &[f32],
    heads: LayerHeads,
    kvh: usize,
    scale: f32,
    out: &mut [f32],
    numerics: Numerics,
) {
    rope.apply_angles(kh, angles);
    rope.apply_angles(qg, angles);
    round_f16(qg, numerics);
    let (keys, values) = heads.write_row(kvh, kh, vh);
    attend_group(qg, keys, values, kh.len(), scale, out, numerics);
}
