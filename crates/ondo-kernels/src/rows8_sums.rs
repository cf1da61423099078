//! A throughput kernel for Q4_1 and Q8_0 weights in the rows8 layout (`crate::rows8`): per
//! 32-element block, the integer products of a row are summed *as integers* (i16 then i32)
//! and scaled once, `acc += d_w d_x · Σ q_w q_x (+ m_w s_x for Q4_1)`, instead of ggml's eight
//! lane accumulators with one f32 rounding each. About half the instructions per block, and
//! the unpacked weights of a block are shared by four tokens at a time.
//!
//! Not ggml's rounding order, so results differ from `dot_q8` in the last bits (they are, if
//! anything, more accurate: fewer roundings). Each token's result is computed by the same
//! instruction sequence whatever the other tokens are, so a product with any number of tokens
//! gives every token bit for bit what it gets alone: a server can use this kernel for every
//! batch size and keep its answers independent of the batch.
//!
//! [`gemm_rows8_sums_reference`] is the scalar twin, bit-identical (the integer sums are exact
//! and the f32 operations are the same, in the same order).

use crate::q8::BlockQ8;
use crate::rows8::{check_out, check_product, has_rows8, scatter, unpack_row};
use crate::DType;

/// `out[t * out_stride + r]` = row r · token t for `rows` rows (a multiple of 8) and `ntok`
/// tokens (`xq`: ntok rows of blocks), with per-block integer sums.
pub fn gemm_rows8_sums(
    w: DType,
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    check_out(out, rows, ntok, out_stride);
    // SAFETY: `out` holds every element written (checked above) and is borrowed mutably.
    unsafe { gemm_rows8_sums_raw(w, packed, rows, xq, ntok, out.as_mut_ptr(), out_stride) }
}

/// [`gemm_rows8_sums`] through a raw output pointer (see [`crate::rows8::gemm_rows8_raw`]).
///
/// # Safety
/// `out.add(t * out_stride + r)` for `t < ntok`, `r < rows` must be valid for writes, and no
/// one else may access those elements during the call.
pub unsafe fn gemm_rows8_sums_raw(
    w: DType,
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    assert!(has_rows8(w), "no rows8 layout for {w}");
    let Some(blocks) = check_product(w, packed, rows, xq, ntok) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/FMA/F16C detected; packed and xq lengths checked above, out by the
        // caller.
        unsafe { avx2::gemm(w, packed, rows, blocks, xq, ntok, out, out_stride) };
        return;
    }
    let mut tile = vec![0.0f32; ntok * rows];
    gemm_rows8_sums_reference(w, packed, rows, xq, ntok, &mut tile, rows);
    scatter(&tile, rows, out, out_stride);
}

/// The scalar twin of [`gemm_rows8_sums`]: the same values, bit for bit.
pub fn gemm_rows8_sums_reference(
    w: DType,
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(has_rows8(w), "no rows8 layout for {w}");
    check_out(out, rows, ntok, out_stride);
    let Some(blocks) = check_product(w, packed, rows, xq, ntok) else {
        return;
    };
    let bb = w.block_bytes();
    let mut row = vec![0u8; blocks * bb];
    for r in 0..rows {
        unpack_row(w, packed, blocks * 32, r, &mut row);
        for t in 0..ntok {
            let mut acc = 0.0f32;
            for (j, b) in row.chunks_exact(bb).enumerate() {
                let x = &xq[t * blocks + j];
                let dw = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                let sum: i32 = if w == DType::Q4_1 {
                    let qs = &b[4..20];
                    (0..16)
                        .map(|i| {
                            i32::from(qs[i] & 0x0F) * i32::from(x.qs[i])
                                + i32::from(qs[i] >> 4) * i32::from(x.qs[16 + i])
                        })
                        .sum()
                } else {
                    let qs = &b[2..34];
                    (0..32)
                        .map(|i| i32::from(qs[i] as i8) * i32::from(x.qs[i]))
                        .sum()
                };
                acc = (dw * x.d).mul_add(sum as f32, acc);
                if w == DType::Q4_1 {
                    let mw = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
                    acc = mw.mul_add(x.s, acc);
                }
            }
            out[t * out_stride + r] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::q8::BlockQ8;
    use crate::DType;

    const Q4_1: u8 = 1;
    const Q8_0: u8 = 2;
    /// Tokens sharing one unpacking of a block's weights.
    const TILE: usize = 4;

    /// # Safety
    /// AVX2/FMA/F16C; lengths as checked by `gemm_rows8_sums`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gemm(
        w: DType,
        packed: &[u8],
        rows: usize,
        blocks: usize,
        xq: &[BlockQ8],
        ntok: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        match w {
            DType::Q4_1 => run::<Q4_1>(packed, rows, blocks, xq, ntok, out, out_stride),
            _ => run::<Q8_0>(packed, rows, blocks, xq, ntok, out, out_stride),
        }
    }

    const fn gbb(k: u8) -> usize {
        if k == Q4_1 {
            160
        } else {
            272
        }
    }

    #[inline(always)]
    unsafe fn run<const K: u8>(
        packed: &[u8],
        rows: usize,
        blocks: usize,
        xq: &[BlockQ8],
        ntok: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        for g in 0..rows / 8 {
            let wg = packed.as_ptr().add(g * blocks * gbb(K));
            let mut t = 0;
            while t + TILE <= ntok {
                let r = tile::<K, TILE, false>(wg, blocks, xq, t);
                for (k, v) in r.iter().enumerate() {
                    _mm256_storeu_ps(out.add((t + k) * out_stride + 8 * g), *v);
                }
                t += TILE;
            }
            while t < ntok {
                // decoding streams the weights once: prefetch them
                let r = if ntok == 1 {
                    tile::<K, 1, true>(wg, blocks, xq, t)
                } else {
                    tile::<K, 1, false>(wg, blocks, xq, t)
                };
                _mm256_storeu_ps(out.add(t * out_stride + 8 * g), r[0]);
                t += 1;
            }
        }
    }

    /// 8 rows (lane = row) × `N` tokens from token `t0`.
    #[inline(always)]
    unsafe fn tile<const K: u8, const N: usize, const PF: bool>(
        wg: *const u8,
        blocks: usize,
        xq: &[BlockQ8],
        t0: usize,
    ) -> [__m256; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        for j in 0..blocks {
            let o = wg.add(j * gbb(K));
            if PF {
                crate::quant::prefetch_ahead(o, gbb(K));
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
            if K == Q4_1 {
                let mw = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
                let mut q = [_mm256_setzero_si256(); 8];
                for c in 0..4 {
                    let wv = _mm256_loadu_si256(o.add(32 + 32 * c) as *const __m256i);
                    q[c] = _mm256_and_si256(wv, low);
                    q[4 + c] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
                }
                for (k, a) in acc.iter_mut().enumerate() {
                    let x = &xq[(t0 + k) * blocks + j];
                    let y = x.qs.as_ptr() as *const i32;
                    // |each maddubs pair| ≤ 2·15·128, eight of them fit in i16
                    let mut s = _mm256_setzero_si256();
                    for (c, qc) in q.iter().enumerate() {
                        let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*qc, yv));
                    }
                    let sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, ones));
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                    *a = _mm256_fmadd_ps(d, sum, *a);
                    *a = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s), *a);
                }
            } else {
                let mut q = [_mm256_setzero_si256(); 8];
                let mut qa = [_mm256_setzero_si256(); 8];
                for c in 0..8 {
                    q[c] = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                    qa[c] = _mm256_sign_epi8(q[c], q[c]);
                }
                for (k, a) in acc.iter_mut().enumerate() {
                    let x = &xq[(t0 + k) * blocks + j];
                    let y = x.qs.as_ptr() as *const i32;
                    // a maddubs pair reaches 2·128·127: widen each chunk to i32 before adding
                    let mut s = _mm256_setzero_si256();
                    for c in 0..8 {
                        let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        let p = _mm256_maddubs_epi16(qa[c], _mm256_sign_epi8(yv, q[c]));
                        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                    }
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                    *a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *a);
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows8::repack_rows8;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }

    #[test]
    fn simd_equals_the_scalar_twin_and_each_token_is_batch_independent() {
        for w in [DType::Q4_1, DType::Q8_0] {
            for (rows, cols, ntok) in [(8, 32, 1), (16, 96, 5), (24, 576, 9), (8, 64, 4)] {
                let mut seed = (rows * 31 + cols + ntok) as u64;
                let vals: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed) * 3.0).collect();
                let rb = w.row_bytes(cols).unwrap();
                let mut plain = vec![0u8; rows * rb];
                for (s, d) in vals.chunks_exact(cols).zip(plain.chunks_exact_mut(rb)) {
                    crate::quantize_row(w, s, d).unwrap();
                }
                let mut packed = vec![0u8; plain.len()];
                repack_rows8(w, &plain, rows, cols, &mut packed);
                let x: Vec<f32> = (0..ntok * cols).map(|_| lcg(&mut seed) * 10.0).collect();
                let mut xq = Vec::new();
                crate::quantize_q8(&x, &mut xq);
                let mut fast = vec![0.0f32; ntok * rows];
                let mut slow = vec![0.0f32; ntok * rows];
                gemm_rows8_sums(w, &packed, rows, &xq, ntok, &mut fast, rows);
                gemm_rows8_sums_reference(w, &packed, rows, &xq, ntok, &mut slow, rows);
                assert_eq!(fast, slow, "{w} {rows}x{cols} x{ntok}");
                // every token alone gives what it gets in the batch
                let blocks = cols / 32;
                for t in 0..ntok {
                    let mut one = vec![0.0f32; rows];
                    let xt = &xq[t * blocks..(t + 1) * blocks];
                    gemm_rows8_sums(w, &packed, rows, xt, 1, &mut one, rows);
                    assert_eq!(one, fast[t * rows..(t + 1) * rows], "{w} token {t}");
                }
                // and it is ggml's dot up to rounding
                for t in 0..ntok {
                    for r in 0..rows {
                        let g = crate::dot_q8(
                            w,
                            &plain[r * rb..(r + 1) * rb],
                            &xq[t * blocks..(t + 1) * blocks],
                        );
                        let f = fast[t * rows + r];
                        assert!((f - g).abs() <= 1e-4 * g.abs().max(1.0), "{f} vs {g}");
                    }
                }
            }
        }
    }
}
