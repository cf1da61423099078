//! Attention inner loops over a key/value cache of f32 or f16 ([`KvElem`]):
//!
//! - [`scores_lanes8`]: `out[p] = dot(q, K[p]) * scale` for every cached position, each dot in
//!   [`crate::ggml_math::dot_lanes8`]'s order (so batched and one-token attention agree with
//!   the batched path's tinyBLAS order, bit for bit), several positions in flight at once.
//! - [`weighted_sum_seq`]: `out[d] = Σ_p probs[p] V[p][d]`, fused multiply-adds in order of
//!   `p` with the accumulators in registers (the one-token path; the batched path keeps
//!   tinyBLAS's lane order with [`crate::ggml_math::weighted_sum_lanes8`]).
//! - [`scores_group`] and [`weighted_sum_group`]: the same for the query heads that share one
//!   KV head, each key and value row read once for all of them (AVX2, or AVX-512 in
//!   `avx512.rs`: the same bits).

use crate::ggml_math::{dot_lanes8, KvElem};

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Key rows the grouped score kernels prefetch ahead of the ones they read (measured on the
/// default model's 8-sequence decoding step: 16 rows ahead gain ~1.5%, 64 ~3%, 128 ~1%).
#[cfg(target_arch = "x86_64")]
const PREFETCH_ROWS: usize = 64;

/// `out[p] = dot_lanes8(q, keys[p * stride .. p * stride + q.len()]) * scale` for
/// `p in 0..out.len()`.
pub fn scores_lanes8<E: KvElem>(q: &[f32], keys: &[E], stride: usize, scale: f32, out: &mut [f32]) {
    let hd = q.len();
    if let Some(last) = out.len().checked_sub(1) {
        assert!(keys.len() >= last * stride + hd, "keys too short");
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() && hd.is_multiple_of(8) {
        // SAFETY: AVX2/FMA/F16C detected; every key row lies in `keys` (checked above).
        unsafe { avx2::scores(q, keys, stride, scale, out) };
        return;
    }
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot_lanes8(q, &keys[p * stride..p * stride + hd]) * scale;
    }
}

/// `out[d] = Σ_p probs[p] * values[p * stride + d]`, one fused multiply-add per term in order
/// of `p`.
pub fn weighted_sum_seq<E: KvElem>(out: &mut [f32], probs: &[f32], values: &[E], stride: usize) {
    let hd = out.len();
    if let Some(last) = probs.len().checked_sub(1) {
        assert!(values.len() >= last * stride + hd, "values too short");
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() && hd.is_multiple_of(8) && hd <= 128 {
        // SAFETY: AVX2/FMA/F16C detected; every value row lies in `values` (checked above).
        unsafe { avx2::weighted_sum_seq(out, probs, values, stride) };
        return;
    }
    weighted_sum_seq_scalar(out, probs, values, stride);
}

/// The scalar twin of [`weighted_sum_seq`].
pub fn weighted_sum_seq_scalar<E: KvElem>(
    out: &mut [f32],
    probs: &[f32],
    values: &[E],
    stride: usize,
) {
    out.fill(0.0);
    for (p, &w) in probs.iter().enumerate() {
        for (o, v) in out.iter_mut().zip(&values[p * stride..]) {
            *o = v.to_f32().mul_add(w, *o);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::PREFETCH_ROWS;
    use crate::ggml_math::KvElem;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// # Safety
    /// AVX2/FMA/F16C; `q.len() % 8 == 0`; rows `p*stride .. p*stride+q.len()` inside `keys`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores<E: KvElem>(
        q: &[f32],
        keys: &[E],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let nv = q.len() / 8;
        let (qp, kp) = (q.as_ptr(), keys.as_ptr());
        let n = out.len();
        let mut p = 0;
        while p + 4 <= n {
            let mut acc = [_mm256_setzero_ps(); 4];
            for v in 0..nv {
                let qv = _mm256_loadu_ps(qp.add(8 * v));
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(qv, E::load8(kp.add((p + j) * stride + 8 * v)), *a);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                out[p + j] = hsum(*a) * scale;
            }
            p += 4;
        }
        while p < n {
            let mut acc = _mm256_setzero_ps();
            for v in 0..nv {
                let qv = _mm256_loadu_ps(qp.add(8 * v));
                acc = _mm256_fmadd_ps(qv, E::load8(kp.add(p * stride + 8 * v)), acc);
            }
            out[p] = hsum(acc) * scale;
            p += 1;
        }
    }

    /// # Safety
    /// AVX2/FMA/F16C; `out.len() % 8 == 0` and at most 128; value rows inside `values`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum_seq<E: KvElem>(
        out: &mut [f32],
        probs: &[f32],
        values: &[E],
        stride: usize,
    ) {
        match out.len() / 8 {
            8 => wsum::<E, 8>(out, probs, values, stride),
            16 => wsum::<E, 16>(out, probs, values, stride),
            4 => wsum::<E, 4>(out, probs, values, stride),
            _ => super::weighted_sum_seq_scalar(out, probs, values, stride),
        }
    }

    /// # Safety
    /// AVX/F16C available.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn round_to_f16(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let h = _mm256_cvtps_ph(_mm256_loadu_ps(c.as_ptr()), _MM_FROUND_TO_NEAREST_INT);
            _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
        for v in chunks.into_remainder() {
            *v = crate::f16_to_f32(crate::f32_to_f16(*v));
        }
    }

    /// # Safety
    /// AVX/F16C available; `src.len() == dst.len()`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn to_f16(src: &[f32], dst: &mut [u16]) {
        let n8 = src.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            let h = _mm256_cvtps_ph(
                _mm256_loadu_ps(src.as_ptr().add(i)),
                _MM_FROUND_TO_NEAREST_INT,
            );
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
        }
        for i in n8..src.len() {
            dst[i] = crate::f32_to_f16(src[i]);
        }
    }

    /// # Safety
    /// AVX2/FMA/F16C; `hd % 8 == 0`, `hd <= 256`, `q.len() / hd <= 8`; key rows inside `keys`.
    #[target_feature(enable = "avx2,fma,f16c")]
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
        // Heads × positions in flight: enough independent sums to hide the FMA latency.
        match q.len() / hd {
            1 => scores_gp::<E, 1, 4>(a),
            2 => scores_gp::<E, 2, 4>(a),
            3 => scores_gp::<E, 3, 3>(a),
            4 => scores_gp::<E, 4, 2>(a),
            5 => scores_gp::<E, 5, 2>(a),
            6 => scores_gp::<E, 6, 2>(a),
            7 => scores_gp::<E, 7, 1>(a),
            _ => scores_gp::<E, 8, 1>(a),
        }
    }

    /// `G` heads, `P` positions at a time (then one at a time); per (head, position) the
    /// arithmetic of the one-head kernel.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    unsafe fn scores_gp<E: KvElem, const G: usize, const P: usize>(
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
        let nv = hd / 8;
        let (qp, kp) = (q.as_ptr(), keys.as_ptr());
        // The keys come from memory (a decoding step's cache does not stay in the caches
        // between layers): ask for them well ahead, and for `next` at the same pace.
        let (row, next_bytes) = (stride * size_of::<E>(), size_of_val(next));
        let mut p = 0;
        while p + P <= len {
            let ahead = kp.wrapping_add((p + PREFETCH_ROWS) * stride) as *const u8;
            crate::quant::prefetch(ahead, P * row);
            if p * row < next_bytes {
                let at = (next.as_ptr() as *const u8).add(p * row);
                crate::quant::prefetch(at, (P * row).min(next_bytes - p * row));
            }
            let acc = scores_tile::<E, G, P>(qp, hd, kp.add(p * stride), stride, nv);
            for (j, a) in acc.iter().enumerate() {
                for (h, v) in a.iter().enumerate() {
                    out[h * len + p + j] = hsum(*v) * scale;
                }
            }
            p += P;
        }
        while p < len {
            let acc = scores_tile::<E, G, 1>(qp, hd, kp.add(p * stride), stride, nv);
            for (h, v) in acc[0].iter().enumerate() {
                out[h * len + p] = hsum(*v) * scale;
            }
            p += 1;
        }
    }

    #[inline(always)]
    unsafe fn scores_tile<E: KvElem, const G: usize, const P: usize>(
        qp: *const f32,
        hd: usize,
        kp: *const E,
        stride: usize,
        nv: usize,
    ) -> [[__m256; G]; P] {
        let mut acc = [[_mm256_setzero_ps(); G]; P];
        for v in 0..nv {
            let k: [__m256; P] = std::array::from_fn(|j| E::load8(kp.add(j * stride + 8 * v)));
            for h in 0..G {
                let qv = _mm256_loadu_ps(qp.add(h * hd + 8 * v));
                for (a, kj) in acc.iter_mut().zip(&k) {
                    a[h] = _mm256_fmadd_ps(qv, *kj, a[h]);
                }
            }
        }
        acc
    }

    /// # Safety
    /// AVX2/FMA/F16C; `hd % 8 == 0`, `out.len() / hd <= 8`; value rows inside `values`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum_group<E: KvElem>(
        out: &mut [f32],
        hd: usize,
        probs: &[f32],
        values: &[E],
        stride: usize,
        len: usize,
    ) {
        // Column strips of 8 per pass: heads × strips accumulators in registers, enough
        // independent sums to hide the FMA latency; the strips of every value row are read
        // once for all heads.
        let (g, nv) = (out.len() / hd, hd / 8);
        let want = match g {
            1..=3 => 4,
            4 => 2,
            _ => 1,
        };
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
            (4, 2) => wsum_gs::<E, 4, 2>(a),
            (4, _) => wsum_gs::<E, 4, 1>(a),
            (5, _) => wsum_gs::<E, 5, 1>(a),
            (6, _) => wsum_gs::<E, 6, 1>(a),
            (7, _) => wsum_gs::<E, 7, 1>(a),
            _ => wsum_gs::<E, 8, 1>(a),
        }
    }

    /// `G` heads, `S` strips of 8 columns at a time (`hd / 8 % S == 0`); per output the
    /// arithmetic of the one-head kernel (fused multiply-adds in order of position).
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    unsafe fn wsum_gs<E: KvElem, const G: usize, const S: usize>(
        (out, hd, probs, values, stride, len): (&mut [f32], usize, &[f32], &[E], usize, usize),
    ) {
        let vp = values.as_ptr();
        for v0 in (0..hd / 8).step_by(S) {
            let mut acc = [[_mm256_setzero_ps(); S]; G];
            for p in 0..len {
                let row = vp.add(p * stride + 8 * v0);
                let x: [__m256; S] = std::array::from_fn(|s| E::load8(row.add(8 * s)));
                for (h, a) in acc.iter_mut().enumerate() {
                    let w = _mm256_set1_ps(*probs.get_unchecked(h * len + p));
                    for (aj, xj) in a.iter_mut().zip(&x) {
                        *aj = _mm256_fmadd_ps(*xj, w, *aj);
                    }
                }
            }
            for (h, a) in acc.iter().enumerate() {
                for (j, aj) in a.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(h * hd + 8 * (v0 + j)), *aj);
                }
            }
        }
    }

    /// Accumulators in registers for `N` groups of 8 outputs.
    #[inline(always)]
    unsafe fn wsum<E: KvElem, const N: usize>(
        out: &mut [f32],
        probs: &[f32],
        values: &[E],
        stride: usize,
    ) {
        let mut acc = [_mm256_setzero_ps(); N];
        let vp = values.as_ptr();
        for (p, &w) in probs.iter().enumerate() {
            let wv = _mm256_set1_ps(w);
            let row = vp.add(p * stride);
            for (v, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(E::load8(row.add(8 * v)), wv, *a);
            }
        }
        for (v, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), *a);
        }
    }
}

/// `x[i]` rounded to the nearest f16 value (ties to even), in place: what storing to and
/// loading from an f16 tensor does.
pub fn round_to_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: F16C/AVX detected; the kernel stays within `x`.
        unsafe { avx2::round_to_f16(x) };
        return;
    }
    for v in x.iter_mut() {
        *v = crate::f16_to_f32(crate::f32_to_f16(*v));
    }
}

/// `dst[i] = f16 bits of src[i]` (ties to even).
pub fn to_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "to_f16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: F16C/AVX detected; lengths checked equal.
        unsafe { avx2::to_f16(src, dst) };
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = crate::f32_to_f16(s);
    }
}

/// Scores of the `G = q.len() / hd` query heads that share one KV head (grouped-query
/// attention), reading each key row once for all of them:
/// `out[h * len + p] = dot_lanes8(q_h, K[p]) * scale`, bit-identical to [`scores_lanes8`]
/// per head. `next` (the values the caller reads next, or nothing) is prefetched along.
pub fn scores_group<E: KvElem>(
    q: &[f32],
    hd: usize,
    keys: &[E],
    next: &[E],
    stride: usize,
    scale: f32,
    out: &mut [f32],
) {
    let g = q.len() / hd.max(1);
    let len = out.len() / g.max(1);
    assert_eq!(q.len(), g * hd, "q is whole heads");
    assert_eq!(out.len(), g * len, "out is [heads][len]");
    if len > 0 {
        assert!(keys.len() >= (len - 1) * stride + hd, "keys too short");
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() && hd.is_multiple_of(8) && (1..=8).contains(&g) {
        // SAFETY: AVX-512F and AVX2/FMA/F16C detected; every key row lies in `keys`.
        unsafe { avx512::scores_group(q, hd, keys, next, stride, scale, out, len) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() && hd.is_multiple_of(8) && hd <= 256 && g <= 8 {
        // SAFETY: AVX2/FMA/F16C detected; every key row lies in `keys` (checked above).
        unsafe { avx2::scores_group(q, hd, keys, next, stride, scale, out, len) };
        return;
    }
    for (qh, o) in q.chunks_exact(hd).zip(out.chunks_exact_mut(len.max(1))) {
        scores_lanes8(qh, keys, stride, scale, &mut o[..len]);
    }
}

/// The value sums of `G` heads sharing one KV head, reading each value row once for all of
/// them: `out[h * hd + d] = Σ_p probs[h * len + p] V[p][d]`, bit-identical to
/// [`weighted_sum_seq`] per head.
pub fn weighted_sum_group<E: KvElem>(
    out: &mut [f32],
    hd: usize,
    probs: &[f32],
    values: &[E],
    stride: usize,
) {
    let g = out.len() / hd.max(1);
    let len = probs.len() / g.max(1);
    assert_eq!(out.len(), g * hd, "out is whole heads");
    assert_eq!(probs.len(), g * len, "probs is [heads][len]");
    if len > 0 {
        assert!(values.len() >= (len - 1) * stride + hd, "values too short");
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() && hd.is_multiple_of(16) && (1..=8).contains(&g) {
        // SAFETY: AVX-512F and AVX2/FMA/F16C detected; every value row lies in `values`.
        unsafe { avx512::weighted_sum_group(out, hd, probs, values, stride, len) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() && hd.is_multiple_of(8) && g <= 8 {
        // SAFETY: AVX2/FMA/F16C detected; every value row lies in `values` (checked above).
        unsafe { avx2::weighted_sum_group(out, hd, probs, values, stride, len) };
        return;
    }
    for (o, p) in out.chunks_exact_mut(hd).zip(probs.chunks_exact(len.max(1))) {
        weighted_sum_seq(o, &p[..len], values, stride);
    }
}
