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

    #[inline(always)]
    unsafe fn rows<const K: u8>(
        rows_bytes: &[u8],
        row_len: usize,
        xq: &[BlockQ8],
        out: &mut [f32],
    ) {
        let base = rows_bytes.as_ptr();
        let n = out.len();
        let mut eights = out.chunks_exact_mut(8);
        for (i, o) in (&mut eights).enumerate() {
            let r = eight::<K>(base.add(8 * i * row_len), row_len, xq);
            _mm256_storeu_ps(o.as_mut_ptr(), r);
        }
        let rest = eights.into_remainder();
        let done = n - rest.len();
        for (i, o) in rest.iter_mut().enumerate() {
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

    /// The exact integer block sum Σ q_w q_x of one row's block at `p`, in 8 i32 lanes
    /// (without Q4_0's -8 offset, which the callers subtract once per block).
    #[inline(always)]
    unsafe fn lane_sums<const K: u8>(p: *const u8, qy: __m256i) -> __m256i {
        let ones = _mm256_set1_epi16(1);
        match K {
            Q4_0 => _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p.add(2)), qy), ones),
            Q4_1 => _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p.add(4)), qy), ones),
            _ => {
                let qx = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let ax = _mm256_sign_epi8(qx, qx);
                let sy = _mm256_sign_epi8(qy, qx);
                _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones)
            }
        }
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
    unsafe fn reduce8(m: [__m256i; 8]) -> __m256i {
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

    /// The f16 at `p + k * stride` for k in 0..8, as 8 f32 lanes.
    #[inline(always)]
    unsafe fn f16x8(p: *const u8, stride: usize) -> __m256 {
        let h = |k: usize| std::ptr::read_unaligned(p.add(k * stride) as *const i16);
        _mm256_cvtph_ps(_mm_setr_epi16(
            h(0),
            h(1),
            h(2),
            h(3),
            h(4),
            h(5),
            h(6),
            h(7),
        ))
    }

    #[inline(always)]
    unsafe fn eight<const K: u8>(row0: *const u8, row_len: usize, xq: &[BlockQ8]) -> __m256 {
        let bb = block_bytes(K);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm256_setzero_ps();
        for (j, x) in xq.iter().enumerate() {
            let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let p = row0.add(j * bb);
            let mut m = [_mm256_setzero_si256(); 8];
            for (r, mr) in m.iter_mut().enumerate() {
                *mr = lane_sums::<K>(p.add(r * row_len), qy);
            }
            let mut isum = reduce8(m);
            if K == Q4_0 {
                isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * sum_y(qy)));
            }
            let d = _mm256_mul_ps(f16x8(p, row_len), _mm256_set1_ps(x.d));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
            if K == Q4_1 {
                acc_m = _mm256_fmadd_ps(f16x8(p.add(2), row_len), _mm256_set1_ps(x.s), acc_m);
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
