//! Integer dot products on 8-bit quantized activations, as llama.cpp's CPU backend computes
//! them: `x` is quantized once per product into 32-element blocks (ggml's `block_q8_0` /
//! `block_q8_1`: an f16 scale `d`, 32 `i8`s, and for Q8_1 the f16 block sum `s = d * sum(q)`),
//! then each weight row is dotted block by block in integers:
//!
//! - Q4_0 × Q8_0: `d_w d_x Σ (q_w - 8) q_x`
//! - Q4_1 × Q8_1: `d_w d_x Σ q_w q_x + m_w s_x`
//! - Q8_0 × Q8_0: `d_w d_x Σ q_w q_x`
//!
//! (ggml-quants.c `quantize_row_q8_0/1`, ggml-cpu `ggml_vec_dot_q4_0_q8_0` etc.) The values
//! quantized are exactly those [`crate::round_activations`] produces, so this path equals
//! "round, dequantize, dot in f32" up to float summation order and the f16 rounding of `s`.
//! [`dot_q8_reference`] is the scalar twin; [`dot_q8`] picks AVX2 at run time.
//!
//! For many tokens at once (prompt processing), [`gemm_q8`] / [`gemm_q8_rows`] compute a
//! whole block of (row, token) dots with a register-blocked AVX2 kernel
//! (`q8_gemm_avx2.rs`); each result is bit-identical to the [`dot_q8`] call for that pair.

use crate::quant::{f16_to_f32, f32_to_f16};
use crate::DType;

/// One quantized block of 32 activations. Scales are kept as the f32 values of their f16s.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    /// `d * sum(qs)` rounded to f16 (used by Q4_1 weights only).
    pub s: f32,
    pub qs: [i8; 32],
}

/// True if weights of type `w` have an integer path here.
pub fn has_q8_path(w: DType) -> bool {
    matches!(w, DType::Q4_0 | DType::Q4_1 | DType::Q8_0)
}

/// Quantizes `x` (a multiple of 32 long) into `out` (cleared first).
pub fn quantize_q8(x: &[f32], out: &mut Vec<BlockQ8>) {
    out.clear();
    out.resize(x.len() / 32, BlockQ8::default());
    quantize_q8_into(x, out);
}

/// Quantizes `x` (a multiple of 32 long) into `out` (`x.len() / 32` blocks).
pub fn quantize_q8_into(x: &[f32], out: &mut [BlockQ8]) {
    assert_eq!(
        x.len() % 32,
        0,
        "activation length must be a multiple of 32"
    );
    assert_eq!(out.len(), x.len() / 32, "one block per 32 activations");
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/F16C detected.
        unsafe { quantize_q8_avx2(x, out) };
        return;
    }
    for (o, xb) in out.iter_mut().zip(x.chunks_exact(32)) {
        *o = quantize_block(xb);
    }
}

/// The loop of [`quantize_q8_into`] inside the AVX2 context, so the block kernel inlines.
///
/// # Safety
/// AVX2 and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn quantize_q8_avx2(x: &[f32], out: &mut [BlockQ8]) {
    for (o, xb) in out.iter_mut().zip(x.chunks_exact(32)) {
        *o = quantize_block_avx2(xb).unwrap_or_else(|| quantize_block(xb));
    }
}

/// One block of 32, the scalar reference.
fn quantize_block(xb: &[f32]) -> BlockQ8 {
    let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xb) {
        // Round half to even without a libm call: adding 1.5 * 2^23 rounds to an integer.
        *q = ((v * id + 12_582_912.0) - 12_582_912.0) as i8;
        sum += *q as i32;
    }
    block_of(d, sum, qs)
}

#[inline(always)]
fn block_of(d: f32, sum: i32, qs: [i8; 32]) -> BlockQ8 {
    BlockQ8 {
        d: f16_to_f32(f32_to_f16(d)),
        s: f16_to_f32(f32_to_f16(sum as f32 * d)),
        qs,
    }
}

/// [`quantize_block`] with AVX2: the same operations on 8 lanes, so the same bits; `None` for
/// a block with a NaN or an infinity (the scalar path's conversions of those differ from the
/// vector instructions').
///
/// # Safety
/// AVX2 and F16C; `xb.len() == 32`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn quantize_block_avx2(xb: &[f32]) -> Option<BlockQ8> {
    use std::arch::x86_64::*;
    debug_assert_eq!(xb.len(), 32);
    let p = xb.as_ptr();
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    let mut bad = _mm256_setzero_ps();
    for vi in v {
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(vi, vi, _CMP_UNORD_Q));
        m = _mm256_max_ps(_mm256_andnot_ps(sign, vi), m);
    }
    if _mm256_movemask_ps(bad) != 0 {
        return None;
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
    if !amax.is_finite() {
        return None;
    }
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let magic = _mm256_set1_ps(12_582_912.0);
    let q: [__m256i; 4] = std::array::from_fn(|i| {
        let r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v[i], id), magic), magic);
        _mm256_cvttps_epi32(r)
    });
    let s4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s2 = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
    let s1 = _mm_add_epi32(s2, _mm_unpackhi_epi64(s2, s2));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(s1, _mm_shuffle_epi32(s1, 1)));
    // i32 → i16 → i8 within 128-bit lanes, then the 32-bit groups back in order
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let mut qs = [0i8; 32];
    _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, ordered);
    Some(block_of(d, sum, qs))
}

/// Plain scalar dot of one weight row with quantized activations.
pub fn dot_q8_reference(w: DType, row: &[u8], xq: &[BlockQ8]) -> f32 {
    let bb = w.block_bytes();
    assert_eq!(
        row.len(),
        xq.len() * bb,
        "row and activations differ in length"
    );
    let f16 = |b: &[u8], at: usize| f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]));
    let mut sum = 0.0f32;
    for (b, x) in row.chunks_exact(bb).zip(xq) {
        let block = match w {
            DType::Q4_0 => {
                let mut isum = 0i32;
                for j in 0..16 {
                    let (lo, hi) = ((b[2 + j] & 0x0F) as i32 - 8, (b[2 + j] >> 4) as i32 - 8);
                    isum += lo * x.qs[j] as i32 + hi * x.qs[j + 16] as i32;
                }
                f16(b, 0) * x.d * isum as f32
            }
            DType::Q4_1 => {
                let mut isum = 0i32;
                for j in 0..16 {
                    let (lo, hi) = ((b[4 + j] & 0x0F) as i32, (b[4 + j] >> 4) as i32);
                    isum += lo * x.qs[j] as i32 + hi * x.qs[j + 16] as i32;
                }
                f16(b, 0) * x.d * isum as f32 + f16(b, 2) * x.s
            }
            DType::Q8_0 => {
                let isum: i32 = (0..32)
                    .map(|j| b[2 + j] as i8 as i32 * x.qs[j] as i32)
                    .sum();
                f16(b, 0) * x.d * isum as f32
            }
            other => panic!("no Q8 integer path for {other}"),
        };
        sum += block;
    }
    sum
}

/// The fast dot (AVX2 where the CPU has it).
pub fn dot_q8(w: DType, row: &[u8], xq: &[BlockQ8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            assert_eq!(
                row.len(),
                xq.len() * w.block_bytes(),
                "row and activations differ in length"
            );
            // SAFETY: AVX2/FMA/F16C were detected; the kernel reads block by block within
            // `row` and `xq`, whose lengths were just checked to match.
            return unsafe { super::q8_avx2::dot(w, row, xq) };
        }
    }
    dot_q8_reference(w, row, xq)
}

/// Dots of one weight row with four activation rows at once (the row is unpacked once per
/// block); equal to four [`dot_q8`] calls.
pub fn dot_q8_x4(w: DType, row: &[u8], xq: [&[BlockQ8]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            for x in &xq {
                assert_eq!(
                    row.len(),
                    x.len() * w.block_bytes(),
                    "row and activations differ in length"
                );
            }
            // SAFETY: AVX2/FMA/F16C were detected; all four lengths were just checked.
            return unsafe { super::q8_avx2::dot4(w, row, xq) };
        }
    }
    xq.map(|x| dot_q8_reference(w, row, x))
}

/// Sizes of one [`gemm_q8`] call: weight rows, tokens, blocks per row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub rows: usize,
    pub ntok: usize,
    pub nb: usize,
}

/// Many dots at once: `out[t * out_stride + r] = dot_q8(w, row r, token t)` for every
/// `r < rows`, `t < ntok`, each bit-identical to that [`dot_q8`] call.
///
/// `rows_bytes` holds `rows` consecutive weight rows and `xq` holds `ntok` activation rows
/// of equally many blocks (`xq.len() / ntok`); `out_stride >= rows` (token-major output).
/// With AVX2 this runs a register-blocked kernel (tiles of weight rows × tokens); any row
/// range and any `ntok >= 1` work, tails included.
pub fn gemm_q8(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(out_stride >= rows, "out_stride {out_stride} < rows {rows}");
    gemm_strided(w, rows_bytes, rows, xq, ntok, out, (1, out_stride));
}

/// [`gemm_q8`] with row-major output: `out[r * out_stride + t]` (`out_stride >= ntok`), the
/// layout a caller sharing weight rows among threads can split into disjoint row ranges.
pub fn gemm_q8_rows(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(out_stride >= ntok, "out_stride {out_stride} < ntok {ntok}");
    gemm_strided(w, rows_bytes, rows, xq, ntok, out, (out_stride, 1));
}

/// Shared checks and dispatch; output (r, t) goes to `out[r * rs + t * ts]`.
fn gemm_strided(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    (rs, ts): (usize, usize),
) {
    assert!(has_q8_path(w), "no Q8 integer path for {w}");
    if rows == 0 || ntok == 0 {
        return;
    }
    assert_eq!(xq.len() % ntok, 0, "activations are not ntok equal rows");
    let nb = xq.len() / ntok;
    assert_eq!(
        rows.checked_mul(nb * w.block_bytes()),
        Some(rows_bytes.len()),
        "weight rows and activations differ in length"
    );
    let last = ((rows - 1).checked_mul(rs))
        .zip((ntok - 1).checked_mul(ts))
        .and_then(|(a, b)| a.checked_add(b));
    assert!(
        last.is_some_and(|last| last < out.len()),
        "output too short"
    );
    let shape = Shape { rows, ntok, nb };
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            // SAFETY: AVX2/FMA/F16C were detected, `w` has a Q8 path, the weight and
            // activation lengths match `shape`, and the largest output index is in bounds
            // (all indices are r * rs + t * ts with r < rows, t < ntok).
            unsafe { super::q8_gemm_avx2::gemm(w, rows_bytes, xq, shape, out, (rs, ts)) };
            return;
        }
    }
    gemm_portable(w, rows_bytes, xq, shape, out, (rs, ts));
}

/// The portable path: one [`dot_q8`] per pair (lengths already checked).
fn gemm_portable(
    w: DType,
    rows_bytes: &[u8],
    xq: &[BlockQ8],
    shape: Shape,
    out: &mut [f32],
    (rs, ts): (usize, usize),
) {
    let rb = shape.nb * w.block_bytes();
    for r in 0..shape.rows {
        let row = &rows_bytes[r * rb..(r + 1) * rb];
        for t in 0..shape.ntok {
            let x = &xq[t * shape.nb..(t + 1) * shape.nb];
            out[r * rs + t * ts] = dot_q8(w, row, x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 quantizer gives the scalar one's bits, ties and odd values included, and
    /// leaves blocks with a NaN or an infinity to it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_quantizer_equals_the_scalar_one() {
        if !crate::quant::avx2_available() {
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut blocks: Vec<[f32; 32]> = Vec::new();
        for scale in [1e-30f32, 1e-3, 1.0, 7.5, 1e4, 3e38] {
            for _ in 0..200 {
                blocks.push(std::array::from_fn(|_| next() * scale));
            }
        }
        // exact ties after scaling (amax 127: values k + 0.5), zeros, one spike
        blocks.push(std::array::from_fn(|i| {
            if i == 0 {
                127.0
            } else {
                i as f32 + 0.5 - 16.0
            }
        }));
        blocks.push([0.0; 32]);
        blocks.push(std::array::from_fn(|i| if i == 5 { -3.0 } else { 1e-7 }));
        let bits = |q: BlockQ8| (q.d.to_bits(), q.s.to_bits(), q.qs);
        for b in &blocks {
            // SAFETY: AVX2 detected above.
            let fast = unsafe { quantize_block_avx2(b) }.expect("finite block");
            assert_eq!(bits(fast), bits(quantize_block(b)), "{b:?}");
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut b = [1.0f32; 32];
            b[17] = bad;
            // SAFETY: AVX2 detected above.
            assert!(unsafe { quantize_block_avx2(&b) }.is_none());
            let mut out = Vec::new();
            quantize_q8(&b, &mut out);
            assert_eq!(bits(out[0]), bits(quantize_block(&b)));
        }
    }

    /// The portable path (what non-AVX2 machines and `ONDO_NO_SIMD` run) fills both layouts
    /// with the per-pair dots.
    #[test]
    fn portable_gemm_is_one_dot_per_pair() {
        let (rows, ntok, nb) = (3, 4, 2);
        let x: Vec<f32> = (0..ntok * nb * 32)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.1)
            .collect();
        let mut xq = Vec::new();
        quantize_q8(&x, &mut xq);
        for w in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
            let wv: Vec<f32> = (0..rows * nb * 32)
                .map(|i| ((i * 53 % 31) as f32 - 15.0) * 0.07)
                .collect();
            let mut wb = vec![0u8; w.row_bytes(wv.len()).unwrap()];
            crate::quantize_row(w, &wv, &mut wb).unwrap();
            let rb = wb.len() / rows;
            let shape = Shape { rows, ntok, nb };
            for (rs, ts) in [(ntok, 1), (1, rows + 1)] {
                let mut out = vec![f32::NAN; rows * ntok + rows * 2];
                gemm_portable(w, &wb, &xq, shape, &mut out, (rs, ts));
                for r in 0..rows {
                    for t in 0..ntok {
                        let want = dot_q8(w, &wb[r * rb..(r + 1) * rb], &xq[t * nb..(t + 1) * nb]);
                        assert_eq!(
                            out[r * rs + t * ts].to_bits(),
                            want.to_bits(),
                            "{w} ({r},{t})"
                        );
                    }
                }
            }
        }
    }
}
