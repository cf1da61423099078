//! Matrix-vector product for decoding: many Q4_0/Q4_1/Q8_0 weight rows against one token's
//! 8-bit quantized activations. Four rows go through the block loop together, so each
//! activation block is loaded once per four rows and the four accumulator chains overlap;
//! every row's arithmetic is exactly [`crate::dot_q8`]'s (same per-lane accumulation order,
//! same horizontal sum), so results are bit-identical to it.

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
    use crate::q8_avx2::{f16_at, hsum, mul_sum_i8_i8, mul_sum_u8_i8, nibbles};
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
        let mut quads = out.chunks_exact_mut(4);
        for (i, o) in (&mut quads).enumerate() {
            let p = base.add(4 * i * row_len);
            let r = four::<K>(p, row_len, xq);
            o.copy_from_slice(&r);
        }
        let rest = quads.into_remainder();
        let done = n - rest.len();
        for (i, o) in rest.iter_mut().enumerate() {
            *o = one::<K>(base.add((done + i) * row_len), xq);
        }
    }

    /// The block's weights as bytes ready for `mul_sum_*`, and whether they are signed.
    #[inline(always)]
    unsafe fn weights<const K: u8>(p: *const u8) -> __m256i {
        match K {
            Q4_0 => _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)),
            Q4_1 => nibbles(p.add(4)),
            _ => _mm256_loadu_si256(p.add(2) as *const __m256i),
        }
    }

    #[inline(always)]
    unsafe fn block_product<const K: u8>(qx: __m256i, qy: __m256i) -> __m256 {
        if K == Q4_1 {
            mul_sum_u8_i8(qx, qy)
        } else {
            mul_sum_i8_i8(qx, qy)
        }
    }

    const fn block_bytes(k: u8) -> usize {
        match k {
            Q4_0 => 18,
            Q4_1 => 20,
            _ => 34,
        }
    }

    #[inline(always)]
    unsafe fn one<const K: u8>(row: *const u8, xq: &[BlockQ8]) -> f32 {
        let bb = block_bytes(K);
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (j, x) in xq.iter().enumerate() {
            let p = row.add(j * bb);
            let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let d = _mm256_set1_ps(f16_at(p) * x.d);
            acc = _mm256_fmadd_ps(d, block_product::<K>(weights::<K>(p), qy), acc);
            if K == Q4_1 {
                summs += f16_at(p.add(2)) * x.s;
            }
        }
        hsum(acc) + summs
    }

    #[inline(always)]
    unsafe fn four<const K: u8>(row0: *const u8, row_len: usize, xq: &[BlockQ8]) -> [f32; 4] {
        let bb = block_bytes(K);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = [0.0f32; 4];
        for (j, x) in xq.iter().enumerate() {
            let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            for r in 0..4 {
                let p = row0.add(r * row_len + j * bb);
                let d = _mm256_set1_ps(f16_at(p) * x.d);
                acc[r] = _mm256_fmadd_ps(d, block_product::<K>(weights::<K>(p), qy), acc[r]);
                if K == Q4_1 {
                    summs[r] += f16_at(p.add(2)) * x.s;
                }
            }
        }
        [
            hsum(acc[0]) + summs[0],
            hsum(acc[1]) + summs[1],
            hsum(acc[2]) + summs[2],
            hsum(acc[3]) + summs[3],
        ]
    }
}
