//! Q4_0 weights repacked eight rows at a time ("Q4_0x8"), for decoding and prefill on CPUs
//! where a horizontal reduction per row and block would cost more than the products.
//!
//! Layout ([`crate::rows8::repack_rows8`]), per group of 8 rows and per 32-element block `j`
//! (144 bytes, as 8 Q4_0 blocks): the 8 rows' f16 scales (16 bytes), then 4 chunks of 32 bytes
//! where chunk `c` holds bytes `4c..4c+4` of each row's 16 quant bytes, row after row. A 32-bit
//! lane of a chunk is then one row, so the products of 8 rows land in the 8 lanes of a register
//! with no reduction: byte `b` of a row holds element `b` in its low nibble and element
//! `b + 16` in its high nibble.
//!
//! Every (row, token) result is `Σ_j fma(d_w d_x, isum_j)` in block order with the exact
//! integer block sum `isum_j = Σ (q_w - 8) q_x`: the same value from [`gemv_q4_0x8`],
//! [`gemm_q4_0x8`] and the scalar twin [`q4_0x8_reference`], bit for bit, so decoding and
//! batched evaluation agree exactly. (The float order differs from ggml's 8-lane
//! `vec_dot_q4_0_q8_0`; llama.cpp's own repacked Q4_0 kernels differ from it too.)

use crate::q8::BlockQ8;

/// Bytes of one group of 8 rows for one 32-element block.
pub const GROUP_BLOCK_BYTES: usize = 8 * 18;

/// Repacks `rows` Q4_0 rows of `cols` elements (`rows % 8 == 0`, `cols % 32 == 0`): the
/// [`crate::rows8`] layout.
pub fn repack_q4_0x8(src: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; src.len()];
    let lay = crate::rows8::Layout::new(crate::DType::Q4_0, rows, cols, false);
    crate::rows8::repack_rows8(lay, src, &mut out);
    out
}

/// The scalar twin: `out[t * out_stride + r]` for `ntok` tokens (`xq`: ntok rows of blocks).
pub fn q4_0x8_reference(
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    crate::rows8::check_out(out, rows, ntok, out_stride);
    let Some(blocks) = crate::rows8::check_product(crate::DType::Q4_0, packed, rows, xq, ntok)
    else {
        return;
    };
    for t in 0..ntok {
        let x = &xq[t * blocks..(t + 1) * blocks];
        for r in 0..rows {
            let (g, ri) = (r / 8, r % 8);
            let mut acc = 0.0f32;
            for (j, xb) in x.iter().enumerate() {
                let o = &packed[(g * blocks + j) * GROUP_BLOCK_BYTES..][..GROUP_BLOCK_BYTES];
                let d = crate::f16_to_f32(u16::from_le_bytes([o[2 * ri], o[2 * ri + 1]]));
                let mut isum = 0i32;
                for c in 0..4 {
                    for k in 0..4 {
                        let byte = o[16 + 32 * c + 4 * ri + k];
                        let e = 4 * c + k;
                        isum += ((byte & 0x0F) as i32 - 8) * xb.qs[e] as i32;
                        isum += ((byte >> 4) as i32 - 8) * xb.qs[e + 16] as i32;
                    }
                }
                acc = (d * xb.d).mul_add(isum as f32, acc);
            }
            out[t * out_stride + r] = acc;
        }
    }
}

/// Decode: `out[r]` for the `out.len()` rows (a multiple of 8) in `packed`.
pub fn gemv_q4_0x8(packed: &[u8], xq: &[BlockQ8], out: &mut [f32]) {
    gemm_q4_0x8(packed, out.len(), xq, 1, out, 0)
}

/// Prefill: `out[t * out_stride + r]` for `rows` rows and `ntok` tokens.
pub fn gemm_q4_0x8(
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    crate::rows8::check_out(out, rows, ntok, out_stride);
    // SAFETY: `out` holds every element written (checked above) and is borrowed mutably.
    unsafe { gemm_q4_0x8_raw(packed, rows, xq, ntok, out.as_mut_ptr(), out_stride) }
}

/// [`gemm_q4_0x8`] through a raw output pointer (see [`crate::rows8::gemm_rows8_raw`]).
///
/// # Safety
/// `out.add(t * out_stride + r)` for `t < ntok`, `r < rows` must be valid for writes, and no
/// one else may access those elements during the call.
pub unsafe fn gemm_q4_0x8_raw(
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let Some(blocks) = crate::rows8::check_product(crate::DType::Q4_0, packed, rows, xq, ntok)
    else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/FMA/F16C detected; packed and xq lengths checked above, out by the
        // caller.
        unsafe { avx2::gemm(packed, rows, blocks, xq, ntok, out, out_stride) };
        return;
    }
    let mut tile = vec![0.0f32; ntok * rows];
    q4_0x8_reference(packed, rows, xq, ntok, &mut tile, rows);
    crate::rows8::scatter(&tile, rows, out, out_stride);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::GROUP_BLOCK_BYTES;
    use crate::q8::BlockQ8;

    /// Tokens per pass over a group's weights.
    const TILE: usize = 4;

    /// # Safety
    /// AVX2/FMA/F16C; lengths as checked by `gemm_q4_0x8`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gemm(
        packed: &[u8],
        rows: usize,
        blocks: usize,
        xq: &[BlockQ8],
        ntok: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        // 8 Σ q_x per token and block: Q4_0's offset, Σ (q-8) y = Σ q y - 8 Σ y.
        let mut stack = [0i32; 1024];
        let mut heap = Vec::new();
        let ys8: &mut [i32] = if xq.len() <= stack.len() {
            &mut stack[..xq.len()]
        } else {
            heap.resize(xq.len(), 0);
            &mut heap
        };
        for (s, x) in ys8.iter_mut().zip(xq) {
            let v = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), v);
            let q = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            let h = _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b01_00_11_10));
            let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
            *s = 8 * _mm_cvtsi128_si32(h);
        }
        for g in 0..rows / 8 {
            let wg = packed.as_ptr().add(g * blocks * GROUP_BLOCK_BYTES);
            let mut t = 0;
            while t < ntok {
                let n = (ntok - t).min(TILE);
                let accs = match n {
                    4 => tile::<4>(wg, blocks, xq, ys8, t),
                    3 => pad(tile::<3>(wg, blocks, xq, ys8, t)),
                    2 => pad(tile::<2>(wg, blocks, xq, ys8, t)),
                    _ => pad(tile::<1>(wg, blocks, xq, ys8, t)),
                };
                for (k, a) in accs.iter().enumerate().take(n) {
                    _mm256_storeu_ps(out.add((t + k) * out_stride + 8 * g), *a);
                }
                t += n;
            }
        }
    }

    #[inline(always)]
    unsafe fn pad<const N: usize>(a: [__m256; N]) -> [__m256; TILE] {
        let mut r = [_mm256_setzero_ps(); TILE];
        r[..N].copy_from_slice(&a);
        r
    }

    /// One group of 8 rows × `N` tokens starting at token `t0`, over all blocks.
    #[inline(always)]
    unsafe fn tile<const N: usize>(
        wg: *const u8,
        blocks: usize,
        xq: &[BlockQ8],
        ys8: &[i32],
        t0: usize,
    ) -> [__m256; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        for j in 0..blocks {
            let o = wg.add(j * GROUP_BLOCK_BYTES);
            if N == 1 {
                crate::quant::prefetch_ahead(o, GROUP_BLOCK_BYTES);
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
            let mut lo = [_mm256_setzero_si256(); 4];
            let mut hi = [_mm256_setzero_si256(); 4];
            for c in 0..4 {
                let w = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                lo[c] = _mm256_and_si256(w, low);
                hi[c] = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
            }
            for (k, a) in acc.iter_mut().enumerate() {
                let x = &xq[(t0 + k) * blocks + j];
                let y = x.qs.as_ptr() as *const i32;
                let mut s16 = _mm256_setzero_si256();
                for c in 0..4 {
                    let ylo = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                    let yhi = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(4 + c)));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo[c], ylo));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi[c], yhi));
                }
                // |s16 lanes| ≤ 16 · 15 · 127 = 30480: no i16 overflow before widening.
                let isum = _mm256_sub_epi32(
                    _mm256_madd_epi16(s16, ones),
                    _mm256_set1_epi32(ys8[(t0 + k) * blocks + j]),
                );
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                *a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), *a);
            }
        }
        acc
    }
}
