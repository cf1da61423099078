//! AVX2 kernels for [`crate::q8k`], following ggml's `ggml_vec_dot_qX_K_q8_K` (x86): the
//! weight quants are unpacked to unsigned bytes, multiplied with the activation bytes by
//! `_mm256_maddubs_epi16`, scaled per group by `_mm256_madd_epi16` with the group scales
//! broadcast by `vpshufb`, summed in i32 lanes, and each super-block is scaled once in f32.
//!
//! * Q4_K/Q5_K: ggml's kmask unpacking of the 6-bit scales and mins; the mins term is
//!   `Σ m_j (bsums_2j + bsums_2j+1)`, one `_mm_madd_epi16` per super-block.
//! * Q6_K/Q3_K: the quants are dotted unsigned (`q` and `q + 4·hbit`), and the offsets
//!   (`-32`, `-4`) are removed per super-block as `offset · Σ_g sc_g bsums_g` (one madd)
//!   instead of ggml's per-chunk `maddubs(32, q8)` (Q6_K) / second maddubs (Q3_K).
//! * Q2_K: as ggml, mins through the bsums.
//!
//! Every kernel is generic over the number of activation rows `N` and walks a super-block in
//! the same order for each row, so `dot4` (N = 4) equals four `dot` (N = 1) calls bit for bit.
//!
//! Q2_K and Q4_K perform ggml's AVX2 float operations in ggml's order (so they should give
//! llama.cpp's AVX2 results bit for bit); Q5_K accumulates its mins term like Q4_K (ggml sums
//! it in a scalar), and Q3_K/Q6_K spread the bsums correction over other i32 lanes: those
//! three agree with ggml up to f32 rounding.
//!
//! Tried and dropped (slower here, Zen 3): unpacking the Q4_K scales in SIMD lanes instead of
//! ggml's general-register kmask code, and forcing `vpshufb` for the scale broadcasts.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use crate::q8k::BlockQ8K;
use crate::DType;

/// # Safety
/// AVX2, FMA and F16C must be available; `w` is a K-quant and
/// `row.len() == xq.len() * w.block_bytes()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot(w: DType, row: &[u8], xq: &[BlockQ8K]) -> f32 {
    dot_n(w, row, [xq])[0]
}

/// Four dots of one row with four activation rows, unpacking each weight super-block once.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` is a K-quant and every
/// `xq[k].len() * w.block_bytes() == row.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot4(w: DType, row: &[u8], xq: [&[BlockQ8K]; 4]) -> [f32; 4] {
    dot_n(w, row, xq)
}

/// `out[r]` = the dot of row `r` of `rows` (each `row_len` bytes) with `xq`: one dispatch for
/// all rows (decoding calls this per matrix, not per row).
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` is a K-quant,
/// `row_len == xq.len() * w.block_bytes()` and `rows.len() == out.len() * row_len`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemv(w: DType, rows: &[u8], row_len: usize, xq: &[BlockQ8K], out: &mut [f32]) {
    // A macro, not a function pointer: the kernels must inline into this AVX2 function.
    macro_rules! each {
        ($kernel:ident) => {
            for (o, row) in out.iter_mut().zip(rows.chunks_exact(row_len)) {
                *o = $kernel::<1>(row, [xq])[0];
            }
        };
    }
    match w {
        DType::Q2_K => each!(q2_k),
        DType::Q3_K => each!(q3_k),
        DType::Q4_K => each!(q4_k),
        DType::Q5_K => each!(q5_k),
        DType::Q6_K => each!(q6_k),
        _ => unreachable!("dispatch checks has_q8k_path"),
    }
}

#[inline(always)]
unsafe fn dot_n<const N: usize>(w: DType, row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    match w {
        DType::Q2_K => q2_k(row, xq),
        DType::Q3_K => q3_k(row, xq),
        DType::Q4_K => q4_k(row, xq),
        DType::Q5_K => q5_k(row, xq),
        DType::Q6_K => q6_k(row, xq),
        _ => unreachable!("dispatch checks has_q8k_path"),
    }
}

#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline(always)]
unsafe fn u32_at(p: *const u8) -> u32 {
    u32::from_le_bytes(std::ptr::read_unaligned(p as *const [u8; 4]))
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    hsum4(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps(v, 1),
    ))
}

#[inline(always)]
unsafe fn hsum4(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `vpshufb` control putting 16-bit element `lo` of a lane into every slot of the low lane
/// and element `hi` into every slot of the high lane (ggml's `get_scale_shuffle_*`).
#[inline(always)]
unsafe fn pick16(lo: usize, hi: usize) -> __m256i {
    let ctl = |e: usize| _mm_set1_epi16((((2 * e + 1) << 8) | (2 * e)) as i16);
    _mm256_set_m128i(ctl(hi), ctl(lo))
}

/// Both lanes set to the low lane of `v`, and both set to the high lane.
#[inline(always)]
unsafe fn split_lanes(v: __m256i) -> [__m256i; 2] {
    [
        _mm256_permute2x128_si256(v, v, 0x00),
        _mm256_permute2x128_si256(v, v, 0x11),
    ]
}

/// `acc + madd(scale, maddubs(q, y[0..32]))`: unsigned weight bytes times activation bytes,
/// pairs summed to i16, times the i16 group scale, pairs summed to i32.
#[inline(always)]
unsafe fn mac(acc: __m256i, scale: __m256i, q: __m256i, y: *const i8) -> __m256i {
    let p16 = _mm256_maddubs_epi16(q, _mm256_loadu_si256(y as *const __m256i));
    _mm256_add_epi32(acc, _mm256_madd_epi16(scale, p16))
}

#[inline(always)]
unsafe fn bsums(x: &BlockQ8K) -> __m256i {
    _mm256_loadu_si256(x.bsums.as_ptr() as *const __m256i)
}

/// Super-block `i` of every activation row (caller guarantees `i < xq[k].len()`).
#[inline(always)]
unsafe fn rows_at<'a, const N: usize>(xq: &[&'a [BlockQ8K]; N], i: usize) -> [&'a BlockQ8K; N] {
    std::array::from_fn(|k| xq[k].get_unchecked(i))
}

/// Ends a 16-group super-block whose weight bytes carry an offset `2^SHIFT` (Q3_K: 4,
/// Q6_K: 32): for each row, `acc += d_x d_w (sumi - 2^SHIFT Σ_g sc_g bsums_g)`, with `s16`
/// the 16 group scales as i16.
#[inline(always)]
unsafe fn finish16<const N: usize, const SHIFT: i32>(
    acc: &mut [__m256; N],
    sumi: [__m256i; N],
    s16: __m256i,
    dw: f32,
    xs: &[&BlockQ8K; N],
) {
    for ((a, s), x) in acc.iter_mut().zip(sumi).zip(xs) {
        let corr = _mm256_slli_epi32(_mm256_madd_epi16(s16, bsums(x)), SHIFT);
        let s = _mm256_sub_epi32(s, corr);
        *a = _mm256_fmadd_ps(_mm256_set1_ps(x.d * dw), _mm256_cvtepi32_ps(s), *a);
    }
}

/// Q2_K: `block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }`.
#[inline(always)]
unsafe fn q2_k<const N: usize>(row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, b) in row.chunks_exact(84).enumerate() {
        let p = b.as_ptr();
        let xs = rows_at(&xq, i);
        let packed = _mm_loadu_si128(p as *const __m128i);
        let s16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, m15));
        let m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m15));
        let halves = split_lanes(s16);
        let mut sumi = [_mm256_setzero_si256(); N];
        for (h, sc) in halves.iter().enumerate() {
            let bits = load(p.add(16 + 32 * h));
            let q = [
                _mm256_and_si256(bits, m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
            ];
            for (c, qc) in q.iter().enumerate() {
                let scale = _mm256_shuffle_epi8(*sc, pick16(2 * c, 2 * c + 1));
                for (s, x) in sumi.iter_mut().zip(&xs) {
                    *s = mac(*s, scale, *qc, x.qs.as_ptr().add(128 * h + 32 * c));
                }
            }
        }
        let (dw, dmin) = (f16_at(p.add(80)), f16_at(p.add(82)));
        for ((a, s), x) in acc.iter_mut().zip(sumi).zip(&xs) {
            let prod = _mm256_cvtepi32_ps(_mm256_madd_epi16(m16, bsums(x)));
            *a = _mm256_fmadd_ps(_mm256_set1_ps(-x.d * dmin), prod, *a);
            *a = _mm256_fmadd_ps(_mm256_set1_ps(x.d * dw), _mm256_cvtepi32_ps(s), *a);
        }
    }
    std::array::from_fn(|k| hsum(acc[k]))
}

/// Q3_K: `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }`. The weight bytes are
/// `low + 4·hbit` (0..8); the `-4` is removed through the bsums.
#[inline(always)]
unsafe fn q3_k<const N: usize>(row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    const KM1: u32 = 0x0303_0303;
    const KM2: u32 = 0x0f0f_0f0f;
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, b) in row.chunks_exact(110).enumerate() {
        let p = b.as_ptr();
        let xs = rows_at(&xq, i);
        let (a0, a1, t) = (u32_at(p.add(96)), u32_at(p.add(100)), u32_at(p.add(104)));
        let packed = _mm_set_epi32(
            (((a1 >> 4) & KM2) | (((t >> 6) & KM1) << 4)) as i32,
            (((a0 >> 4) & KM2) | (((t >> 4) & KM1) << 4)) as i32,
            ((a1 & KM2) | (((t >> 2) & KM1) << 4)) as i32,
            ((a0 & KM2) | ((t & KM1) << 4)) as i32,
        );
        let s16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(packed, _mm_set1_epi8(32)));
        let halves = split_lanes(s16);
        let hmask = load(p);
        let mut sumi = [_mm256_setzero_si256(); N];
        for (h, sc) in halves.iter().enumerate() {
            let bits = load(p.add(32 + 32 * h));
            // Bit 4h + c of hmask moved to bit 2 (16-bit shifts keep each byte's bits apart
            // at the positions that survive the mask).
            let hb = if h == 0 {
                hmask
            } else {
                _mm256_srli_epi16(hmask, 4)
            };
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(bits, m3),
                    _mm256_and_si256(_mm256_slli_epi16(hb, 2), m4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                    _mm256_and_si256(_mm256_slli_epi16(hb, 1), m4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                    _mm256_and_si256(hb, m4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
                    _mm256_and_si256(_mm256_srli_epi16(hb, 1), m4),
                ),
            ];
            for (c, qc) in q.iter().enumerate() {
                let scale = _mm256_shuffle_epi8(*sc, pick16(2 * c, 2 * c + 1));
                for (s, x) in sumi.iter_mut().zip(&xs) {
                    *s = mac(*s, scale, *qc, x.qs.as_ptr().add(128 * h + 32 * c));
                }
            }
        }
        finish16::<N, 2>(&mut acc, sumi, s16, f16_at(p.add(108)), &xs);
    }
    std::array::from_fn(|k| hsum(acc[k]))
}

/// ggml's kmask unpacking of the 12 packed bytes of Q4_K/Q5_K: (the 8 scales as i16 in both
/// lanes, the 8 mins as i16). The same bit operations as ggml's scalar `u32` masks, on all 12
/// bytes at once (reads 16 bytes from `p`: the quants follow the scales in the block).
#[inline(always)]
unsafe fn k4_scales_mins(p: *const u8) -> (__m256i, __m128i) {
    // dwords u0, u1, u2: sc_lo = u0 & 0x3f.., mins_lo = u1 & 0x3f..,
    // sc_hi = (u2 & 0x0f..) | ((u0 >> 6) & 0x03..) << 4, mins_hi = (u2 >> 4 & 0x0f..) | ((u1 >> 6) & 0x03..) << 4
    let v = _mm_loadu_si128(p as *const __m128i);
    let lo = _mm_and_si128(v, _mm_set1_epi8(0x3f));
    let top = _mm_and_si128(_mm_srli_epi16(v, 6), _mm_set1_epi8(0x03));
    let u2 = _mm_shuffle_epi32(v, 0b10_10_10_10);
    let nib = _mm_set1_epi8(0x0f);
    let u2_nibbles = _mm_unpacklo_epi32(
        _mm_and_si128(u2, nib),
        _mm_and_si128(_mm_srli_epi16(u2, 4), nib),
    );
    let hi = _mm_or_si128(u2_nibbles, _mm_slli_epi16(top, 4));
    // [sc_lo, sc_hi, mins_lo, mins_hi]
    let v = _mm256_cvtepu8_epi16(_mm_unpacklo_epi32(lo, hi));
    (
        _mm256_permute2x128_si256(v, v, 0x00),
        _mm256_extracti128_si256(v, 1),
    )
}

/// The mins term of Q4_K/Q5_K for each row: `acc_m -= d_x dmin Σ_j m_j (bsums_2j + bsums_2j+1)`.
#[inline(always)]
unsafe fn k4_mins<const N: usize>(
    acc_m: &mut [__m128; N],
    mins: __m128i,
    dmin: f32,
    xs: &[&BlockQ8K; N],
) {
    for (a, x) in acc_m.iter_mut().zip(xs) {
        let bs = bsums(x);
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        let prod = _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs));
        *a = _mm_fmadd_ps(_mm_set1_ps(-x.d * dmin), prod, *a);
    }
}

/// Q4_K: `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }`.
#[inline(always)]
unsafe fn q4_k<const N: usize>(row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [_mm_setzero_ps(); N];
    for (i, b) in row.chunks_exact(144).enumerate() {
        let p = b.as_ptr();
        if N == 1 {
            crate::quant::prefetch_ahead(p, 144);
        }
        let xs = rows_at(&xq, i);
        let (scales, mins) = k4_scales_mins(p.add(4));
        let mut sumi = [_mm256_setzero_si256(); N];
        for j in 0..4 {
            let bits = load(p.add(16 + 32 * j));
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            let s_lo = _mm256_shuffle_epi8(scales, pick16(2 * j, 2 * j));
            let s_hi = _mm256_shuffle_epi8(scales, pick16(2 * j + 1, 2 * j + 1));
            for (s, x) in sumi.iter_mut().zip(&xs) {
                let y = x.qs.as_ptr().add(64 * j);
                *s = mac(mac(*s, s_lo, lo, y), s_hi, hi, y.add(32));
            }
        }
        k4_mins(&mut acc_m, mins, f16_at(p.add(2)), &xs);
        let dw = f16_at(p);
        for ((a, s), x) in acc.iter_mut().zip(sumi).zip(&xs) {
            *a = _mm256_fmadd_ps(_mm256_set1_ps(x.d * dw), _mm256_cvtepi32_ps(s), *a);
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + hsum4(acc_m[k]))
}

/// Q5_K: `block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }`.
#[inline(always)]
unsafe fn q5_k<const N: usize>(row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m16 = _mm256_set1_epi8(0x10);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [_mm_setzero_ps(); N];
    for (i, b) in row.chunks_exact(176).enumerate() {
        let p = b.as_ptr();
        let xs = rows_at(&xq, i);
        let (scales, mins) = k4_scales_mins(p.add(4));
        let qh = load(p.add(16));
        // Group c takes bit c of qh as its 16s bit; move it to bit 4. Even groups from `qh`,
        // odd ones from `qh >> 1`, each by a shift of 4 - c (16-bit shifts: the bits that
        // cross between the bytes of a word never reach bit 4 of either).
        let odd = _mm256_srli_epi16(qh, 1);
        let h16 = |v: __m256i, j: usize| {
            let s = match j {
                0 => _mm256_slli_epi16(v, 4),
                1 => _mm256_slli_epi16(v, 2),
                2 => v,
                _ => _mm256_srli_epi16(v, 2),
            };
            _mm256_and_si256(s, m16)
        };
        let mut sumi = [_mm256_setzero_si256(); N];
        for j in 0..4 {
            let bits = load(p.add(48 + 32 * j));
            let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), h16(qh, j));
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                h16(odd, j),
            );
            let s_lo = _mm256_shuffle_epi8(scales, pick16(2 * j, 2 * j));
            let s_hi = _mm256_shuffle_epi8(scales, pick16(2 * j + 1, 2 * j + 1));
            for (s, x) in sumi.iter_mut().zip(&xs) {
                let y = x.qs.as_ptr().add(64 * j);
                *s = mac(mac(*s, s_lo, lo, y), s_hi, hi, y.add(32));
            }
        }
        k4_mins(&mut acc_m, mins, f16_at(p.add(2)), &xs);
        let dw = f16_at(p);
        for ((a, s), x) in acc.iter_mut().zip(sumi).zip(&xs) {
            *a = _mm256_fmadd_ps(_mm256_set1_ps(x.d * dw), _mm256_cvtepi32_ps(s), *a);
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + hsum4(acc_m[k]))
}

/// Q6_K: `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }`. The weight bytes are
/// the unsigned 6-bit values (0..64); the `-32` is removed through the bsums.
#[inline(always)]
unsafe fn q6_k<const N: usize>(row: &[u8], xq: [&[BlockQ8K]; N]) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, b) in row.chunks_exact(210).enumerate() {
        let p = b.as_ptr();
        if N == 1 {
            crate::quant::prefetch_ahead(p, 210);
        }
        let xs = rows_at(&xq, i);
        let s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
        let halves = split_lanes(s16);
        let mut sumi = [_mm256_setzero_si256(); N];
        for (h, sc) in halves.iter().enumerate() {
            let a = load(p.add(64 * h));
            let c = load(p.add(64 * h + 32));
            let hb = load(p.add(128 + 32 * h));
            // Plane k: low nibble of a/c (k = 0, 1) or high nibble (k = 2, 3); high bits
            // 2k..2k+2 of hb moved to bits 4..6.
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(a, m4),
                    _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(c, m4),
                    _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                    _mm256_and_si256(hb, m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(c, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30),
                ),
            ];
            for (k4, qk) in q.iter().enumerate() {
                let scale = _mm256_shuffle_epi8(*sc, pick16(2 * k4, 2 * k4 + 1));
                for (s, x) in sumi.iter_mut().zip(&xs) {
                    *s = mac(*s, scale, *qk, x.qs.as_ptr().add(128 * h + 32 * k4));
                }
            }
        }
        finish16::<N, 5>(&mut acc, sumi, s16, f16_at(p.add(208)), &xs);
    }
    std::array::from_fn(|k| hsum(acc[k]))
}
