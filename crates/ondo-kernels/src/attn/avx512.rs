//! AVX-512 twins of the grouped attention kernels ([`super::scores_group`],
//! [`super::weighted_sum_group`]), bit-identical to the AVX2 ones:
//!
//! - scores: a 64-byte vector holds one head's 8-lane sums for two positions (lanes 0-7 the
//!   first, 8-15 the second), each lane fed the same fused multiply-adds in the same order as
//!   the AVX2 kernel's 8-lane accumulator; the horizontal sums of 16 (head, position) pairs
//!   are then done together with shuffles, in ggml's order per pair (lane `l + 4` added to lane
//!   `l`, then lane 2 to 0 and 3 to 1, then lane 1 to 0);
//! - value sums: 16 columns per vector, one fused multiply-add per position in order of
//!   position, as the AVX2 kernel does 8 columns at a time.
//!
//! Every output is the same chain of f32 operations as before, so the kernels agree bit for
//! bit with the AVX2 ones (and with one-head attention: tested against them).

use std::arch::x86_64::*;

use super::PREFETCH_ROWS;
use crate::ggml_math::KvElem;

/// Elements `p[0..8]` and `p2[0..8]` as f32, in the low and high halves.
#[inline(always)]
unsafe fn load_two<E: KvElem>(p: *const E, p2: *const E) -> __m512 {
    let lo = _mm512_castps256_ps512(E::load8(p));
    _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castps_pd(lo),
        _mm256_castps_pd(E::load8(p2)),
        1,
    ))
}

/// # Safety
/// AVX-512F and AVX2/FMA/F16C; `hd % 8 == 0`, `q.len() / hd` in 1..=8; key rows
/// `p * stride .. p * stride + hd` inside `keys` for `p < len`.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_group<E: KvElem>(
    q: &[f32],
    hd: usize,
    keys: &[E],
    next: &[E],
    stride: usize,
    scale: f32,
    out: &mut [f32],
    len: usize,
) {
    let a = (q, hd, keys, next, stride, scale, out, len);
    // Heads × position pairs: at most 16 accumulators.
    match q.len() / hd {
        1 => scores_tiles::<E, 1, 4>(a),
        2 => scores_tiles::<E, 2, 4>(a),
        3 => scores_tiles::<E, 3, 4>(a),
        4 => scores_tiles::<E, 4, 4>(a),
        5 => scores_tiles::<E, 5, 2>(a),
        6 => scores_tiles::<E, 6, 2>(a),
        7 => scores_tiles::<E, 7, 2>(a),
        _ => scores_tiles::<E, 8, 2>(a),
    }
}

/// `G` heads, tiles of `2 * PP` positions (the last tile's missing positions read the last
/// row again and are not stored).
#[inline(always)]
#[allow(clippy::type_complexity)]
unsafe fn scores_tiles<E: KvElem, const G: usize, const PP: usize>(
    (q, hd, keys, next, stride, scale, out, len): (
        &[f32],
        usize,
        &[E],
        &[E],
        usize,
        f32,
        &mut [f32],
        usize,
    ),
) {
    let (qp, kp, nv) = (q.as_ptr(), keys.as_ptr(), hd / 8);
    let (row, next_bytes) = (stride * size_of::<E>(), size_of_val(next));
    let scale = _mm512_set1_ps(scale);
    let mut p0 = 0;
    while p0 < len {
        let n = (len - p0).min(2 * PP);
        let ahead = kp.wrapping_add((p0 + PREFETCH_ROWS) * stride) as *const u8;
        crate::quant::prefetch(ahead, 2 * PP * row);
        if p0 * row < next_bytes {
            let at = (next.as_ptr() as *const u8).add(p0 * row);
            crate::quant::prefetch(at, (2 * PP * row).min(next_bytes - p0 * row));
        }
        // rows of the tile's positions, the missing ones the last row again
        let rows: [*const E; 8] = std::array::from_fn(|i| kp.add((p0 + i.min(n - 1)) * stride));
        let mut acc = [[_mm512_setzero_ps(); PP]; G];
        for v in 0..nv {
            let k: [__m512; PP] = std::array::from_fn(|j| {
                load_two(rows[2 * j].add(8 * v), rows[2 * j + 1].add(8 * v))
            });
            for (h, a) in acc.iter_mut().enumerate() {
                let qv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(
                    _mm256_loadu_ps(qp.add(h * hd + 8 * v)),
                )));
                for (aj, kj) in a.iter_mut().zip(&k) {
                    *aj = _mm512_fmadd_ps(qv, *kj, *aj);
                }
            }
        }
        // 16 accumulators (heads × pairs, head-major) at a time, the last group padded
        let flat = acc.as_flattened();
        for first in (0..G * PP).step_by(8) {
            let x: [__m512; 8] = std::array::from_fn(|m| {
                flat.get(first + m).copied().unwrap_or(_mm512_setzero_ps())
            });
            let mut sums = [0.0f32; 16];
            _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_mul_ps(hsum16(x), scale));
            // lane 4L + i holds accumulator 2i + L/2, the pair's position L % 2
            for (l, s) in sums.iter().enumerate() {
                let (big, i) = (l / 4, l % 4);
                let m = first + 2 * i + big / 2;
                let (h, j) = (m / PP, m % PP);
                let p = 2 * j + big % 2;
                if h < G && p < n {
                    *out.get_unchecked_mut(h * len + p0 + p) = *s;
                }
            }
        }
        p0 += n;
    }
}

/// The 16 horizontal sums of the 8 accumulators `x` (each two 8-lane sums), each in ggml's
/// order; lane `4L + i` of the result is the sum of half `L % 2` of `x[2i + L / 2]`.
#[inline(always)]
unsafe fn hsum16(x: [__m512; 8]) -> __m512 {
    // per half: lanes l + (l + 4) → 128-bit lane L of s[i] = half L % 2 of x[2i + L / 2]
    let s: [__m512; 4] = std::array::from_fn(|i| {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4(a, b, 0b10_00_10_00),
            _mm512_shuffle_f32x4(a, b, 0b11_01_11_01),
        )
    });
    // lanes 0 + 2 and 1 + 3 of each 128-bit lane: [s0, s0', s1, s1'] per lane
    let u: [__m512; 2] = std::array::from_fn(|j| {
        let (a, b) = (s[2 * j], s[2 * j + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps(a, b, 0b01_00_01_00),
            _mm512_shuffle_ps(a, b, 0b11_10_11_10),
        )
    });
    // lane 0 + 1 of each pair
    _mm512_add_ps(
        _mm512_shuffle_ps(u[0], u[1], 0b10_00_10_00),
        _mm512_shuffle_ps(u[0], u[1], 0b11_01_11_01),
    )
}

/// # Safety
/// AVX-512F and AVX2/FMA/F16C; `hd % 16 == 0`, `out.len() / hd` in 1..=8; value rows inside
/// `values` for `p < len`.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub(super) unsafe fn weighted_sum_group<E: KvElem>(
    out: &mut [f32],
    hd: usize,
    probs: &[f32],
    values: &[E],
    stride: usize,
    len: usize,
) {
    let (g, nv) = (out.len() / hd, hd / 16);
    let want = if g <= 4 { 4 } else { 2 };
    let strips = (1..=want).rev().find(|s| nv % s == 0).unwrap_or(1);
    let a = (out, hd, probs, values, stride, len);
    match (g, strips) {
        (1, 4) => wsum_gs::<E, 1, 4>(a),
        (1, 2) => wsum_gs::<E, 1, 2>(a),
        (1, _) => wsum_gs::<E, 1, 1>(a),
        (2, 4) => wsum_gs::<E, 2, 4>(a),
        (2, 2) => wsum_gs::<E, 2, 2>(a),
        (2, _) => wsum_gs::<E, 2, 1>(a),
        (3, 4) => wsum_gs::<E, 3, 4>(a),
        (3, 2) => wsum_gs::<E, 3, 2>(a),
        (3, _) => wsum_gs::<E, 3, 1>(a),
        (4, 4) => wsum_gs::<E, 4, 4>(a),
        (4, 2) => wsum_gs::<E, 4, 2>(a),
        (4, _) => wsum_gs::<E, 4, 1>(a),
        (5, 2) => wsum_gs::<E, 5, 2>(a),
        (5, _) => wsum_gs::<E, 5, 1>(a),
        (6, 2) => wsum_gs::<E, 6, 2>(a),
        (6, _) => wsum_gs::<E, 6, 1>(a),
        (7, 2) => wsum_gs::<E, 7, 2>(a),
        (7, _) => wsum_gs::<E, 7, 1>(a),
        (_, 2) => wsum_gs::<E, 8, 2>(a),
        _ => wsum_gs::<E, 8, 1>(a),
    }
}

/// `G` heads, `S` strips of 16 columns at a time (`hd / 16 % S == 0`).
#[inline(always)]
#[allow(clippy::type_complexity)]
unsafe fn wsum_gs<E: KvElem, const G: usize, const S: usize>(
    (out, hd, probs, values, stride, len): (&mut [f32], usize, &[f32], &[E], usize, usize),
) {
    let vp = values.as_ptr();
    for v0 in (0..hd / 16).step_by(S) {
        let mut acc = [[_mm512_setzero_ps(); S]; G];
        for p in 0..len {
            let row = vp.add(p * stride + 16 * v0);
            let x: [__m512; S] =
                std::array::from_fn(|s| load_two(row.add(16 * s), row.add(16 * s + 8)));
            for (h, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*probs.get_unchecked(h * len + p));
                for (aj, xj) in a.iter_mut().zip(&x) {
                    *aj = _mm512_fmadd_ps(*xj, w, *aj);
                }
            }
        }
        for (h, a) in acc.iter().enumerate() {
            for (j, aj) in a.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(h * hd + 16 * (v0 + j)), *aj);
            }
        }
    }
}
