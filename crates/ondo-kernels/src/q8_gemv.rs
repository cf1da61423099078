//! Matrix-vector product for decoding: many Q4_0/Q4_1/Q8_0 weight rows against one token's
//! 8-bit quantized activations. Eight rows go through the block loop together: each
//! activation block is loaded once per eight rows, each row's block sum stays an exact
//! integer, the eight sums are reduced into one vector (lane = row), and the eight scales are
//! applied with one vector multiply-add. The result per row is `Σ_blocks d_w d_x isum` summed
//! in block order (plus `m_w s_x` for Q4_1): the same integers as [`crate::dot_q8`], whose
//! float sums go in ggml's 8-lane order instead, so the two agree to f32 rounding, not bit for
//! bit. Leftover rows (fewer than eight) use the one-row loop with the same arithmetic.

use crate::q8::BlockQ8;
use crate::DType;

/// `out[r] = dot_q8(w, row r, xq)` for the `out.len()` consecutive rows in `rows_bytes`.
pub fn gemv_q8(w: DType, rows_bytes: &[u8], xq: &[BlockQ8], out: &mut [f32]) {
    let row_len = xq.len() * w.block_bytes();
    assert_eq!(
        rows_bytes.len(),
        out.len() * row_len,
        "weight rows and activations differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() && crate::q8::has_q8_path(w) {
            // SAFETY: AVX2/FMA/F16C were detected; lengths were checked above, and every
            // kernel reads `xq.len()` blocks of each row.
            unsafe { avx2::gemv(w, rows_bytes, row_len, xq, out) };
            return;
        }
    }
    for (o, row) in out.iter_mut().zip(rows_bytes.chunks_exact(row_len.max(1))) {
        *o = crate::q8::dot_q8(w, row, xq);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::q8::BlockQ8;
    use crate::q8_avx2::{f16_at, nibbles};
    use crate::DType;

    const Q4_0: u8 = 0;
    const Q4_1: u8 = 1;
    const Q8_0: u8 = 2;

    /// # Safety
    /// AVX2/FMA/F16C available; `rows_bytes.len() == out.len() * row_len`,
    /// `row_len == xq.len() * w.block_bytes()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gemv(
        w: DType,
        rows_bytes: &[u8],
        row_len: usize,
        xq: &[BlockQ8],
        out: &mut [f32],
    ) {
        match w {
            DType::Q4_0 => rows::<Q4_0>(rows_bytes, row_len, xq, out),
            DType::Q4_1 => rows::<Q4_1>(rows_bytes, row_len, xq, out),
            DType::Q8_0 => rows::<Q8_0>(rows_bytes, row_len, xq, out),
            _ => unreachable!("dispatch checks has_q8_path"),
        }
    }

    /// Largest row (in blocks) whose activation sums are precomputed on the stack.
    const MAX_BLOCKS: usize = 1024;

    #[inline(always)]
    unsafe fn rows<const K: u8>(
        rows_bytes: &[u8],
        row_len: usize,
        xq: &[BlockQ8],
        out: &mut [f32],
    ) {
        let base = rows_bytes.as_ptr();
        let n = out.len();
        // Q4_0's offset term 8 Σ y per block, once per product.
        let mut ys8 = [0i32; MAX_BLOCKS];
        let gather_ok = xq.len() <= MAX_BLOCKS && 8 * row_len < i32::MAX as usize;
        if K == Q4_0 && gather_ok {
            for (s, x) in ys8.iter_mut().zip(xq) {
                *s = 8 * sum_y(_mm256_loadu_si256(x.qs.as_ptr() as *const __m256i));
            }
        }
        let mut done = 0;
        if gather_ok {
            let mut eights = out.chunks_exact_mut(8);
            for (i, o) in (&mut eights).enumerate() {
                let r = eight::<K>(base.add(8 * i * row_len), row_len, xq, &ys8);
                _mm256_storeu_ps(o.as_mut_ptr(), r);
            }
            done = n - eights.into_remainder().len();
        }
        for (i, o) in out[done..].iter_mut().enumerate() {
            *o = one::<K>(base.add((done + i) * row_len), xq);
        }
    }

    const fn block_bytes(k: u8) -> usize {
        match k {
            Q4_0 => 18,
            Q4_1 => 20,
            _ => 34,
        }
    }

    /// A block's 32 nibbles at `p` as bytes: low nibbles (elements 0..15) in the low 128 bits,
    /// high nibbles (16..31) in the high 128 bits.
    #[inline(always)]
    unsafe fn nibbles_fast(p: *const u8) -> __m256i {
        let both = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
        let shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
        _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
    }

    /// The exact integer block sum Σ q_w q_x of one row's block at `p`, in 8 i32 lanes
    /// (without Q4_0's -8 offset, which the callers subtract once per block).
    #[inline(always)]
    unsafe fn lane_sums<const K: u8>(p: *const u8, qy: __m256i) -> __m256i {
        let ones = _mm256_set1_epi16(1);
        match K {
            Q4_0 => _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p.add(2)), qy), ones),
            Q4_1 => _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p.add(4)), qy), ones),
            _ => _mm256_madd_epi16(pair_sums_i8(p, qy), ones),
        }
    }

    /// Q8_0: signed × signed products summed in pairs (|sum| ≤ 2·127·127, so i16 is safe).
    #[inline(always)]
    unsafe fn pair_sums_i8(p: *const u8, qy: __m256i) -> __m256i {
        let qx = _mm256_loadu_si256(p.add(2) as *const __m256i);
        _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx))
    }

    /// Σ of the 8 i32 lanes.
    #[inline(always)]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// Σ of the 32 activations of a block (Q4_0's offset correction: Σ (q-8) y = Σ q y - 8 Σ y).
    #[inline(always)]
    unsafe fn sum_y(qy: __m256i) -> i32 {
        let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), qy);
        hsum_i32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// Eight vectors of 8 i32 lanes → one vector whose lane r is the sum of vector r's lanes.
    #[inline(always)]
    unsafe fn reduce8_i32(m: [__m256i; 8]) -> __m256i {
        let a01 = _mm256_hadd_epi32(m[0], m[1]);
        let a23 = _mm256_hadd_epi32(m[2], m[3]);
        let a45 = _mm256_hadd_epi32(m[4], m[5]);
        let a67 = _mm256_hadd_epi32(m[6], m[7]);
        let b0 = _mm256_hadd_epi32(a01, a23);
        let b1 = _mm256_hadd_epi32(a45, a67);
        let lo = _mm256_permute2x128_si256(b0, b1, 0x20);
        let hi = _mm256_permute2x128_si256(b0, b1, 0x31);
        _mm256_add_epi32(lo, hi)
    }

    /// Eight vectors of 16 i16 pair sums of 4-bit × 8-bit products (|each| ≤ 2·15·127) → one
    /// vector of 8 i32 whose lane r is the sum of vector r's lanes. Three levels of i16 adds stay
    /// below 16·15·127 = 30480, inside i16.
    #[inline(always)]
    unsafe fn reduce8_i16(p: [__m256i; 8]) -> __m256i {
        let a01 = _mm256_hadd_epi16(p[0], p[1]);
        let a23 = _mm256_hadd_epi16(p[2], p[3]);
        let a45 = _mm256_hadd_epi16(p[4], p[5]);
        let a67 = _mm256_hadd_epi16(p[6], p[7]);
        let b0 = _mm256_hadd_epi16(a01, a23);
        let b1 = _mm256_hadd_epi16(a45, a67);
        // Per 128-bit half: lane r = row r's sum over that half's 16 elements.
        let c = _mm256_hadd_epi16(b0, b1);
        let lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(c));
        let hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(c, 1));
        _mm256_add_epi32(lo, hi)
    }

    /// The two f16s at `p + k * stride` (k in 0..8) as two vectors of 8 f32: the first f16 of
    /// each pair (d) and the second (Q4_1's m; garbage for other types).
    #[inline(always)]
    unsafe fn scales8(p: *const u8, stride: usize) -> (__m256, __m256) {
        let s = stride as i32;
        let offs = _mm256_setr_epi32(0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s);
        let g = _mm256_i32gather_epi32::<1>(p as *const i32, offs);
        // Per 128-bit half: the low f16s of its 4 words, then the high ones.
        let split = _mm256_shuffle_epi8(
            g,
            _mm256_setr_epi8(
                0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, //
                0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
            ),
        );
        let v = _mm256_permute4x64_epi64(split, 0b11_01_10_00);
        (
            _mm256_cvtph_ps(_mm256_castsi256_si128(v)),
            _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)),
        )
    }

    #[inline(always)]
    unsafe fn eight<const K: u8>(
        row0: *const u8,
        row_len: usize,
        xq: &[BlockQ8],
        ys8: &[i32; MAX_BLOCKS],
    ) -> __m256 {
        let bb = block_bytes(K);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm256_setzero_ps();
        for (j, x) in xq.iter().enumerate() {
            let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let p = row0.add(j * bb);
            let mut isum = if K == Q8_0 {
                let mut m = [_mm256_setzero_si256(); 8];
                for (r, mr) in m.iter_mut().enumerate() {
                    *mr = _mm256_madd_epi16(
                        pair_sums_i8(p.add(r * row_len), qy),
                        _mm256_set1_epi16(1),
                    );
                }
                reduce8_i32(m)
            } else {
                let off = if K == Q4_0 { 2 } else { 4 };
                let mut m = [_mm256_setzero_si256(); 8];
                for (r, mr) in m.iter_mut().enumerate() {
                    *mr = _mm256_maddubs_epi16(nibbles_fast(p.add(r * row_len + off)), qy);
                }
                reduce8_i16(m)
            };
            if K == Q4_0 {
                isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(ys8[j]));
            }
            let (dw, mw) = scales8(p, row_len);
            let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
            if K == Q4_1 {
                acc_m = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s), acc_m);
            }
        }
        if K == Q4_1 {
            _mm256_add_ps(acc, acc_m)
        } else {
            acc
        }
    }

    #[inline(always)]
    unsafe fn one<const K: u8>(row: *const u8, xq: &[BlockQ8]) -> f32 {
        let bb = block_bytes(K);
        let (mut acc, mut acc_m) = (0.0f32, 0.0f32);
        for (j, x) in xq.iter().enumerate() {
            let p = row.add(j * bb);
            let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let mut isum = hsum_i32(lane_sums::<K>(p, qy));
            if K == Q4_0 {
                isum -= 8 * sum_y(qy);
            }
            acc = (f16_at(p) * x.d).mul_add(isum as f32, acc);
            if K == Q4_1 {
                acc_m = f16_at(p.add(2)).mul_add(x.s, acc_m);
            }
        }
        acc + acc_m
    }
}
