//! AVX2 kernels for [`crate::q8`]: llama.cpp's block structure (`bytes_from_nibbles_32`,
//! `_mm256_maddubs_epi16` on |a| and sign-adjusted b) over 8-bit activations.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use crate::q8::BlockQ8;
use crate::DType;

#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// 16 bytes of packed nibbles → 32 bytes: low nibbles first (elements 0..15), then high.
#[inline(always)]
pub(crate) unsafe fn nibbles(p: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Sum of unsigned a[i] * signed b[i] in 8 i32 lanes, as f32.
#[inline(always)]
unsafe fn mul_sum_u8_i8(a: __m256i, b: __m256i) -> __m256 {
    let dot16 = _mm256_maddubs_epi16(a, b);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)))
}

/// Sum of signed a[i] * signed b[i] in 8 i32 lanes, as f32.
#[inline(always)]
unsafe fn mul_sum_i8_i8(a: __m256i, b: __m256i) -> __m256 {
    mul_sum_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
}

#[inline(always)]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `row.len() == xq.len() * w.block_bytes()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot(w: DType, row: &[u8], xq: &[BlockQ8]) -> f32 {
    let bb = w.block_bytes();
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (b, x) in row.chunks_exact(bb).zip(xq) {
        let p = b.as_ptr();
        let qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
        match w {
            DType::Q4_0 => {
                let qx = _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8));
                let d = _mm256_set1_ps(f16_at(p) * x.d);
                acc = _mm256_fmadd_ps(d, mul_sum_i8_i8(qx, qy), acc);
            }
            DType::Q4_1 => {
                let qx = nibbles(p.add(4));
                let d = _mm256_set1_ps(f16_at(p) * x.d);
                acc = _mm256_fmadd_ps(d, mul_sum_u8_i8(qx, qy), acc);
                summs += f16_at(p.add(2)) * x.s;
            }
            DType::Q8_0 => {
                let qx = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let d = _mm256_set1_ps(f16_at(p) * x.d);
                acc = _mm256_fmadd_ps(d, mul_sum_i8_i8(qx, qy), acc);
            }
            _ => unreachable!("dispatch checks has_q8_path"),
        }
    }
    hsum(acc) + summs
}

/// Four dots of one row with four activation rows, unpacking each weight block once.
///
/// # Safety
/// AVX2, FMA and F16C must be available; every `xq[k].len() * w.block_bytes() == row.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot4(w: DType, row: &[u8], xq: [&[BlockQ8]; 4]) -> [f32; 4] {
    let bb = w.block_bytes();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut summs = [0.0f32; 4];
    for (j, b) in row.chunks_exact(bb).enumerate() {
        let p = b.as_ptr();
        let dw = f16_at(p);
        let (qx, signed) = match w {
            DType::Q4_0 => (
                _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)),
                true,
            ),
            DType::Q4_1 => (nibbles(p.add(4)), false),
            DType::Q8_0 => (_mm256_loadu_si256(p.add(2) as *const __m256i), true),
            _ => unreachable!("dispatch checks has_q8_path"),
        };
        let ax = if signed { _mm256_sign_epi8(qx, qx) } else { qx };
        for k in 0..4 {
            let x = &xq[k][j];
            let mut qy = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            if signed {
                qy = _mm256_sign_epi8(qy, qx);
            }
            let d = _mm256_set1_ps(dw * x.d);
            acc[k] = _mm256_fmadd_ps(d, mul_sum_u8_i8(ax, qy), acc[k]);
            if !signed {
                summs[k] += f16_at(p.add(2)) * x.s;
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
