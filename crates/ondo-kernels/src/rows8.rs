//! Q4_1 and Q8_0 weights repacked eight rows at a time ("rows8"), computing exactly what
//! [`crate::dot_q8`] (ggml's AVX2 `vec_dot_q4_1_q8_1` / `vec_dot_q8_0_q8_0`) computes for
//! every row, for eight rows at once, in decoding and in prefill alike.
//!
//! Layout, per group of 8 rows and per 32-element block: the 8 rows' f16 `d` (16 bytes), for
//! Q4_1 the 8 rows' f16 `m` (16 bytes), then chunks of 32 bytes where chunk `c` holds quant
//! bytes `4c..4c+4` of each row, row after row (4 chunks for Q4_0/Q4_1, 8 for Q8_0); the
//! group's bytes per block equal 8 plain blocks. A 32-bit lane of a chunk is one row. Q4_0
//! shares the layout ([`repack_rows8`], [`unpack_row`]) but has its own kernel
//! ([`crate::q4_0x8`]).
//!
//! ggml keeps, per row, an 8-lane f32 accumulator; lane `l` of a block's integer products
//! covers 4 consecutive elements (for Q4_1: low nibbles of quant bytes `4l..4l+4` for l < 4,
//! high nibbles of bytes `4(l-4)..` for l ≥ 4; for Q8_0: bytes `4l..4l+4`). Here accumulator
//! `A_l` holds lane `l` of all 8 rows (lane = row), fed the same exact integer lane sums with
//! the same fused multiply-add, and the final horizontal sum is ggml's (lo + hi, then pairs)
//! done lane-wise across the 8 accumulators, plus Q4_1's `Σ m_w s_x` summed in block order.
//! So results are bit-identical to `dot_q8` (tested), which keeps the fidelity test exact.

use crate::q8::BlockQ8;
use crate::DType;

/// True if `w` has the rows8 kernel (ggml's exact row dot, eight rows at once).
pub fn has_rows8(w: DType) -> bool {
    matches!(w, DType::Q4_1 | DType::Q8_0)
}

/// True if `w` can be repacked into the eight-row layout: the rows8 types and Q4_0, whose
/// layout is the same (its own kernel is [`crate::q4_0x8`]).
pub fn has_layout(w: DType) -> bool {
    has_rows8(w) || w == DType::Q4_0
}

/// Bytes of one group of 8 rows for one block.
pub fn group_block_bytes(w: DType) -> usize {
    8 * w.block_bytes()
}

/// Scale bytes at the start of a group block (d, and m for Q4_1).
fn scale_bytes(w: DType) -> usize {
    if w == DType::Q4_1 {
        32
    } else {
        16
    }
}

/// Quant bytes per block of one row.
fn quant_bytes(w: DType) -> usize {
    if w == DType::Q8_0 {
        32
    } else {
        16
    }
}

/// Repacks `rows` rows (`rows % 8 == 0`) of `cols` elements of type `w` into `out`
/// (`src.len()` bytes).
pub fn repack_rows8(w: DType, src: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(has_layout(w), "no eight-row layout for {w}");
    assert!(rows % 8 == 0 && cols % 32 == 0, "rows8 needs rows % 8 == 0");
    let (bb, blocks) = (w.block_bytes(), cols / 32);
    let row_len = blocks * bb;
    assert_eq!(src.len(), rows * row_len, "{w} matrix size");
    assert_eq!(out.len(), src.len(), "rows8 output size");
    let (gbb, sb, qb) = (group_block_bytes(w), scale_bytes(w), quant_bytes(w));
    let group_len = blocks * gbb;
    crate::pool::for_each_share(out, group_len, 8, |first, share| {
        let groups = share.len() / group_len;
        assert!(
            src.len() >= (first + groups) * 8 * row_len,
            "source too short"
        );
        let (sp, op) = (src.as_ptr(), share.as_mut_ptr());
        for gi in 0..groups {
            let g = first + gi;
            for j in 0..blocks {
                // SAFETY: group g's 8 source rows lie in `src` (checked above: g < first +
                // groups), block j < blocks lies in each row, and this group block lies in
                // `share` (gi < groups = share.len() / group_len); unaligned reads and writes.
                unsafe {
                    let o = op.add(gi * group_len + j * gbb);
                    let row = |r: usize| sp.add((8 * g + r) * row_len + j * bb);
                    for r in 0..8 {
                        std::ptr::copy_nonoverlapping(row(r), o.add(2 * r), 2);
                        if w == DType::Q4_1 {
                            std::ptr::copy_nonoverlapping(row(r).add(2), o.add(16 + 2 * r), 2);
                        }
                    }
                    // Quant bytes in 16-byte halves: each is a 4x4 transpose of u32 words per
                    // 4 rows (chunk c gets word c of every row).
                    for half in 0..qb / 16 {
                        let q: [*const u8; 8] =
                            std::array::from_fn(|r| row(r).add(bb - qb + 16 * half));
                        transpose_words(q, o.add(sb + 128 * half));
                    }
                }
            }
        }
    });
}

/// Writes word `c` (4 bytes) of each of the 8 rows' 16 bytes at `q[r]` to
/// `out + 32 c + 4 r`, for c in 0..4.
///
/// # Safety
/// `q[r]..q[r]+16` readable, `out..out+128` writable.
#[inline(always)]
unsafe fn transpose_words(q: [*const u8; 8], out: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SSE2 is part of x86_64.
        for quad in 0..2 {
            let l = |r: usize| _mm_loadu_si128(q[4 * quad + r] as *const __m128i);
            let (a, b, c, d) = (l(0), l(1), l(2), l(3));
            let ab_lo = _mm_unpacklo_epi32(a, b);
            let ab_hi = _mm_unpackhi_epi32(a, b);
            let cd_lo = _mm_unpacklo_epi32(c, d);
            let cd_hi = _mm_unpackhi_epi32(c, d);
            let words = [
                _mm_unpacklo_epi64(ab_lo, cd_lo),
                _mm_unpackhi_epi64(ab_lo, cd_lo),
                _mm_unpacklo_epi64(ab_hi, cd_hi),
                _mm_unpackhi_epi64(ab_hi, cd_hi),
            ];
            for (k, v) in words.iter().enumerate() {
                _mm_storeu_si128(out.add(32 * k + 16 * quad) as *mut __m128i, *v);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (r, p) in q.iter().enumerate() {
        for c in 0..4 {
            let v = std::ptr::read_unaligned(p.add(4 * c) as *const u32);
            std::ptr::write_unaligned(out.add(32 * c + 4 * r) as *mut u32, v);
        }
    }
}

/// Row `r` of a rows8 matrix back in the plain block layout (`out`: one row's bytes).
pub fn unpack_row(w: DType, packed: &[u8], cols: usize, r: usize, out: &mut [u8]) {
    let (bb, blocks) = (w.block_bytes(), cols / 32);
    let (gbb, sb, qb) = (group_block_bytes(w), scale_bytes(w), quant_bytes(w));
    let (g, ri) = (r / 8, r % 8);
    for (j, b) in out.chunks_exact_mut(bb).enumerate().take(blocks) {
        let o = &packed[(g * blocks + j) * gbb..][..gbb];
        b[..2].copy_from_slice(&o[2 * ri..2 * ri + 2]);
        if w == DType::Q4_1 {
            b[2..4].copy_from_slice(&o[16 + 2 * ri..18 + 2 * ri]);
        }
        for c in 0..qb / 4 {
            b[bb - qb + 4 * c..bb - qb + 4 * c + 4]
                .copy_from_slice(&o[sb + 32 * c + 4 * ri..sb + 32 * c + 4 * ri + 4]);
        }
    }
}

/// The shape checks of a product over an eight-row matrix (`rows8` or `q4_0x8`): `None` when
/// there is nothing to compute, else the blocks per row. Panics on inconsistent shapes.
pub(crate) fn check_product(
    w: DType,
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
) -> Option<usize> {
    if ntok == 0 || rows == 0 {
        return None;
    }
    let blocks = xq.len() / ntok;
    assert_eq!(xq.len(), ntok * blocks, "activations are ntok whole rows");
    assert_eq!(rows % 8, 0, "eight-row matrices have rows in groups of 8");
    assert_eq!(
        packed.len(),
        rows * blocks * w.block_bytes(),
        "{w} eight-row matrix and activations differ in length"
    );
    Some(blocks)
}

/// Panics unless `out` holds `out[t * out_stride + r]` for every token and row.
pub(crate) fn check_out(out: &[f32], rows: usize, ntok: usize, out_stride: usize) {
    if ntok > 0 && rows > 0 {
        assert!(
            out.len() >= (ntok - 1) * out_stride + rows,
            "output too short"
        );
    }
}

/// Writes `tile` ([ntok][rows]) to `out[t * out_stride + r]`.
///
/// # Safety
/// As for [`gemm_rows8_raw`]'s `out`.
pub(crate) unsafe fn scatter(tile: &[f32], rows: usize, out: *mut f32, out_stride: usize) {
    for (t, v) in tile.chunks_exact(rows).enumerate() {
        std::ptr::copy_nonoverlapping(v.as_ptr(), out.add(t * out_stride), rows);
    }
}

/// `out[t * out_stride + r] = dot_q8(w, row r, token t)` for `rows` rows (a multiple of 8) and
/// `ntok` tokens (`xq`: ntok rows of blocks).
pub fn gemm_rows8(
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
    unsafe { gemm_rows8_raw(w, packed, rows, xq, ntok, out.as_mut_ptr(), out_stride) }
}

/// [`gemm_rows8`] through a raw output pointer, for callers whose threads write interleaved
/// parts of one output (row ranges of every token's row).
///
/// # Safety
/// `out.add(t * out_stride + r)` for `t < ntok`, `r < rows` must be valid for writes, and no
/// one else may access those elements during the call.
pub unsafe fn gemm_rows8_raw(
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
    let mut row = vec![0u8; blocks * w.block_bytes()];
    let mut tile = vec![0.0f32; ntok * rows];
    for r in 0..rows {
        unpack_row(w, packed, blocks * 32, r, &mut row);
        for t in 0..ntok {
            tile[t * rows + r] = crate::dot_q8(w, &row, &xq[t * blocks..(t + 1) * blocks]);
        }
    }
    scatter(&tile, rows, out, out_stride);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::q8::BlockQ8;
    use crate::DType;

    const Q4_1: u8 = 1;
    const Q8_0: u8 = 2;

    /// # Safety
    /// AVX2/FMA/F16C; lengths as checked by `gemm_rows8`.
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
        // One token per pass over the group's weights (which stay in L1 across tokens): with
        // two, the 16 accumulators spill, which measured slower at 8 and at 128 tokens.
        for g in 0..rows / 8 {
            let wg = packed.as_ptr().add(g * blocks * gbb(K));
            for t in 0..ntok {
                // decoding streams the weights once: prefetch them
                let r = if ntok == 1 {
                    tile::<K, 1, true>(wg, blocks, xq, t)
                } else {
                    tile::<K, 1, false>(wg, blocks, xq, t)
                };
                _mm256_storeu_ps(out.add(t * out_stride + 8 * g), r[0]);
            }
        }
    }

    /// 8 rows × `N` tokens from token `t0`: per token, the 8 ggml lane accumulators (lane =
    /// row in each), then ggml's horizontal sum lane-wise.
    #[inline(always)]
    unsafe fn tile<const K: u8, const N: usize, const PF: bool>(
        wg: *const u8,
        blocks: usize,
        xq: &[BlockQ8],
        t0: usize,
    ) -> [__m256; N] {
        let mut acc = [[_mm256_setzero_ps(); 8]; N];
        let mut summs = [_mm256_setzero_ps(); N];
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        for j in 0..blocks {
            let o = wg.add(j * gbb(K));
            if PF {
                crate::quant::prefetch_ahead(o, gbb(K));
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
            for k in 0..N {
                let x = &xq[(t0 + k) * blocks + j];
                let y = x.qs.as_ptr() as *const i32;
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                let a = &mut acc[k];
                if K == Q4_1 {
                    for c in 0..4 {
                        let wv = _mm256_loadu_si256(o.add(32 + 32 * c) as *const __m256i);
                        let lo = _mm256_and_si256(wv, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
                        let ylo = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        let yhi = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(4 + c)));
                        let l = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), ones);
                        let h = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), ones);
                        a[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(l), a[c]);
                        a[4 + c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(h), a[4 + c]);
                    }
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
                    summs[k] = _mm256_add_ps(summs[k], _mm256_mul_ps(m, _mm256_set1_ps(x.s)));
                } else {
                    for (c, ac) in a.iter_mut().enumerate() {
                        let wv = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                        let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        let p = _mm256_maddubs_epi16(
                            _mm256_sign_epi8(wv, wv),
                            _mm256_sign_epi8(yv, wv),
                        );
                        let l = _mm256_madd_epi16(p, ones);
                        *ac = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(l), *ac);
                    }
                }
            }
        }
        let mut res = [_mm256_setzero_ps(); N];
        for k in 0..N {
            let a = &acc[k];
            // ggml's hsum_float_8 per row: (lane i + lane i+4), then (0+2, 1+3), then 0 + 1.
            let s: [__m256; 4] = std::array::from_fn(|i| _mm256_add_ps(a[i], a[i + 4]));
            let t0v = _mm256_add_ps(s[0], s[2]);
            let t1v = _mm256_add_ps(s[1], s[3]);
            let r = _mm256_add_ps(t0v, t1v);
            res[k] = if K == Q4_1 {
                _mm256_add_ps(r, summs[k])
            } else {
                r
            };
        }
        res
    }
}
