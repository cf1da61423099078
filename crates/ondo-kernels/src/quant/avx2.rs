//! x86_64 AVX2 + FMA + F16C fast paths, selected at run time (detection cached in a
//! `OnceLock`; set `ONDO_NO_SIMD=1` to force the portable path).
//!
//! Fused dequantize-dot kernels on f32 activations for F32, F16, Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, Q4_K, Q5_K and Q6_K; the bit unpacking mirrors the scalar reference in
//! `legacy.rs`/`kquants.rs` (llama.cpp `dequantize_row_*`), the per-block structure follows
//! llama.cpp's `ggml_vec_dot_*` AVX2 code but keeps the activations in f32 (no Q8 activation
//! quantization), so results equal the reference up to f32 summation order.
//! Types without a kernel here (BF16, Q2_K, Q3_K) return `None` from [`dot_kernel`] and use
//! the generic block path (scalar block dequantize + SIMD f32 dot).
//!
//! Every kernel walks the row with `chunks_exact(block_bytes).zip(x.chunks_exact(block_elems))`,
//! so each raw-pointer load below stays inside one block-sized slice whatever the caller passes.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::kquants::scale_min_k4;
use super::DotFn;
use crate::DType;

/// True if this CPU has AVX2, FMA and F16C (checked once).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var_os("ONDO_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// The fused kernel for `dtype`, or `None` if the CPU lacks the features or the type has no
/// dedicated kernel.
pub(crate) fn dot_kernel(dtype: DType) -> Option<DotFn> {
    if !available() {
        return None;
    }
    // SAFETY (all closures): the target features these `unsafe fn`s enable were detected
    // above, and each kernel bounds its own loads by the slices it is given.
    let k: DotFn = match dtype {
        DType::F32 => |r, x| unsafe { dot_f32_bytes(r, x) },
        DType::F16 => |r, x| unsafe { dot_f16(r, x) },
        DType::Q4_0 => |r, x| unsafe { dot_q4_0(r, x) },
        DType::Q4_1 => |r, x| unsafe { dot_q4_1(r, x) },
        DType::Q5_0 => |r, x| unsafe { dot_q5_0(r, x) },
        DType::Q5_1 => |r, x| unsafe { dot_q5_1(r, x) },
        DType::Q8_0 => |r, x| unsafe { dot_q8_0(r, x) },
        DType::Q4_K => |r, x| unsafe { dot_q4_k(r, x) },
        DType::Q5_K => |r, x| unsafe { dot_q5_k(r, x) },
        DType::Q6_K => |r, x| unsafe { dot_q6_k(r, x) },
        DType::BF16 | DType::Q2_K | DType::Q3_K => return None,
    };
    Some(k)
}

/// f32 dot product; the caller must have checked [`available`].
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert!(available());
    let n = a.len().min(b.len());
    // SAFETY: features checked by the caller (`available()`); reads are `n` floats from each
    // slice, and both slices hold at least `n`.
    unsafe { dot_raw(a.as_ptr(), b.as_ptr(), n) }
}

/// F16 row to f32 with F16C; the caller must have checked [`available`].
pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    debug_assert!(available());
    let n = (src.len() / 2).min(dst.len());
    let (mut i, s, d) = (0, src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: features checked by the caller; every 8-element load/store lies within the
    // first `n` elements of `src` (2 bytes each) and `dst`.
    unsafe {
        while i + 8 <= n {
            let h = _mm_loadu_si128(s.add(2 * i) as *const __m128i);
            _mm256_storeu_ps(d.add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
    }
    for j in i..n {
        dst[j] = super::f16_to_f32(u16::from_le_bytes([src[2 * j], src[2 * j + 1]]));
    }
}

// ---------------------------------------------------------------------------------------
// helpers (all require the features; inlined into the kernels)

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The little-endian f16 at `b[at..at + 2]`, via F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Low 8 signed bytes of `v` as 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8_lo(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
}

/// High 8 signed bytes of `v` as 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8_hi(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)))
}

/// `sum(q[i] * x[i])` for 16 signed bytes `q` and 16 floats at `x`, as 8 lanes.
/// `x` must point to 16 readable floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot16(q: __m128i, x: *const f32) -> __m256 {
    let s = _mm256_mul_ps(i8_lo(q), _mm256_loadu_ps(x));
    _mm256_fmadd_ps(i8_hi(q), _mm256_loadu_ps(x.add(8)), s)
}

/// Sum of the 32 floats at `x`, as 8 lanes. `x` must point to 32 readable floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sum32(x: *const f32) -> __m256 {
    let a = _mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8)));
    let b = _mm256_add_ps(_mm256_loadu_ps(x.add(16)), _mm256_loadu_ps(x.add(24)));
    _mm256_add_ps(a, b)
}

/// Unaligned 16-byte load from `b[at..at + 16]` (bounds-checked slice).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load16(b: &[u8], at: usize) -> __m128i {
    let s = &b[at..at + 16];
    _mm_loadu_si128(s.as_ptr() as *const __m128i)
}

/// Expands the 32 bits of `qh` to 32 bytes: byte `i` = 0x10 if bit `i` is set, else 0
/// (llama.cpp's `bytes_from_bits_32`, masked to the 5th quant bit).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn qh_to_bytes(qh: u32) -> (__m128i, __m128i) {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64));
    let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
    let h = _mm256_and_si256(set, _mm256_set1_epi8(0x10));
    (_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
}

// ---------------------------------------------------------------------------------------
// kernels

/// # Safety
/// Requires AVX2+FMA; `a` and `b` must each point to `n` readable floats.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_raw(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            *acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(j)), _mm256_loadu_ps(b.add(j)), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    while i < n {
        s += *a.add(i) * *b.add(i);
        i += 1;
    }
    s
}

/// # Safety
/// Requires AVX2+FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_bytes(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 4).min(x.len());
    // Unaligned f32 loads from the byte row are fine on x86 (little-endian, `loadu`).
    dot_raw(row.as_ptr() as *const f32, x.as_ptr(), n)
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let (r, xp) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    let h8 = |i: usize| _mm256_cvtph_ps(_mm_loadu_si128(r.add(2 * i) as *const __m128i));
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let j = i + 8 * k;
            *acc = _mm256_fmadd_ps(h8(j), _mm256_loadu_ps(xp.add(j)), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(h8(i), _mm256_loadu_ps(xp.add(i)), acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(v);
    for (j, xj) in x.iter().enumerate().take(n).skip(i) {
        s += f16_at(row, 2 * j) * xj;
    }
    s
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, xs) in row.chunks_exact(34).zip(x.chunks_exact(32)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let (q0, q1) = (load16(b, 2), load16(b, 18));
        let s = _mm256_add_ps(dot16(q0, xs.as_ptr()), dot16(q1, xs.as_ptr().add(16)));
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    hsum(acc)
}

/// Low and high nibbles of 16 bytes, each as 16 bytes in 0..16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(q: __m128i) -> (__m128i, __m128i) {
    let m4 = _mm_set1_epi8(0x0f);
    (
        _mm_and_si128(q, m4),
        _mm_and_si128(_mm_srli_epi16(q, 4), m4),
    )
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    let eight = _mm_set1_epi8(8);
    let mut acc = _mm256_setzero_ps();
    for (b, xs) in row.chunks_exact(18).zip(x.chunks_exact(32)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let (lo, hi) = nibbles(load16(b, 2));
        let (lo, hi) = (_mm_sub_epi8(lo, eight), _mm_sub_epi8(hi, eight));
        let s = _mm256_add_ps(dot16(lo, xs.as_ptr()), dot16(hi, xs.as_ptr().add(16)));
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    hsum(acc)
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_1(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(20).zip(x.chunks_exact(32)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let m = _mm256_set1_ps(f16_at(b, 2));
        let (lo, hi) = nibbles(load16(b, 4));
        let s = _mm256_add_ps(dot16(lo, xs.as_ptr()), dot16(hi, xs.as_ptr().add(16)));
        acc = _mm256_fmadd_ps(d, s, acc);
        accm = _mm256_fmadd_ps(m, sum32(xs.as_ptr()), accm);
    }
    hsum(_mm256_add_ps(acc, accm))
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_0(row: &[u8], x: &[f32]) -> f32 {
    let sixteen = _mm_set1_epi8(16);
    let mut acc = _mm256_setzero_ps();
    for (b, xs) in row.chunks_exact(22).zip(x.chunks_exact(32)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let (h_lo, h_hi) = qh_to_bytes(u32::from_le_bytes([b[2], b[3], b[4], b[5]]));
        let (lo, hi) = nibbles(load16(b, 6));
        let lo = _mm_sub_epi8(_mm_or_si128(lo, h_lo), sixteen);
        let hi = _mm_sub_epi8(_mm_or_si128(hi, h_hi), sixteen);
        let s = _mm256_add_ps(dot16(lo, xs.as_ptr()), dot16(hi, xs.as_ptr().add(16)));
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    hsum(acc)
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_1(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(24).zip(x.chunks_exact(32)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let m = _mm256_set1_ps(f16_at(b, 2));
        let (h_lo, h_hi) = qh_to_bytes(u32::from_le_bytes([b[4], b[5], b[6], b[7]]));
        let (lo, hi) = nibbles(load16(b, 8));
        let (lo, hi) = (_mm_or_si128(lo, h_lo), _mm_or_si128(hi, h_hi));
        let s = _mm256_add_ps(dot16(lo, xs.as_ptr()), dot16(hi, xs.as_ptr().add(16)));
        acc = _mm256_fmadd_ps(d, s, acc);
        accm = _mm256_fmadd_ps(m, sum32(xs.as_ptr()), accm);
    }
    hsum(_mm256_add_ps(acc, accm))
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_k(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(256)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        for p in 0..4 {
            let xp = xs[64 * p..64 * p + 64].as_ptr();
            let (lo0, hi0) = nibbles(load16(b, 16 + 32 * p));
            let (lo1, hi1) = nibbles(load16(b, 16 + 32 * p + 16));
            let s1 = _mm256_add_ps(dot16(lo0, xp), dot16(lo1, xp.add(16)));
            let s2 = _mm256_add_ps(dot16(hi0, xp.add(32)), dot16(hi1, xp.add(48)));
            let (sc1, m1) = scale_min_k4(2 * p, scales);
            let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc1 as f32), s1, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc2 as f32), s2, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m1 as f32), sum32(xp), accm);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m2 as f32), sum32(xp.add(32)), accm);
        }
    }
    hsum(_mm256_sub_ps(acc, accm))
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_k(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let sixteen = _mm_set1_epi8(16);
    for (b, xs) in row.chunks_exact(176).zip(x.chunks_exact(256)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        let (qh0, qh1) = (load16(b, 16), load16(b, 32));
        for p in 0..4 {
            let xp = xs[64 * p..64 * p + 64].as_ptr();
            // 5th bit of the low-nibble elements is bit 2p of qh[l], of the high ones 2p+1.
            let (u1, u2) = (_mm_set1_epi8(1 << (2 * p)), _mm_set1_epi8(2 << (2 * p)));
            let hbit = |qh: __m128i, u: __m128i| {
                _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(qh, u), u), sixteen)
            };
            let (lo0, hi0) = nibbles(load16(b, 48 + 32 * p));
            let (lo1, hi1) = nibbles(load16(b, 48 + 32 * p + 16));
            let lo0 = _mm_or_si128(lo0, hbit(qh0, u1));
            let lo1 = _mm_or_si128(lo1, hbit(qh1, u1));
            let hi0 = _mm_or_si128(hi0, hbit(qh0, u2));
            let hi1 = _mm_or_si128(hi1, hbit(qh1, u2));
            let s1 = _mm256_add_ps(dot16(lo0, xp), dot16(lo1, xp.add(16)));
            let s2 = _mm256_add_ps(dot16(hi0, xp.add(32)), dot16(hi1, xp.add(48)));
            let (sc1, m1) = scale_min_k4(2 * p, scales);
            let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc1 as f32), s1, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc2 as f32), s2, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m1 as f32), sum32(xp), accm);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m2 as f32), sum32(xp.add(32)), accm);
        }
    }
    hsum(_mm256_sub_ps(acc, accm))
}

/// # Safety
/// Requires AVX2+FMA+F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q6_k(row: &[u8], x: &[f32]) -> f32 {
    let m4 = _mm_set1_epi8(0x0f);
    let m2 = _mm_set1_epi8(0x03);
    let m2_hi = _mm_set1_epi8(0x0c);
    let m30 = _mm_set1_epi8(0x30);
    let bias = _mm_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    for (b, xs) in row.chunks_exact(210).zip(x.chunks_exact(256)) {
        let d = f16_at(b, 208);
        for h in 0..2 {
            let xp = xs[128 * h..128 * h + 128].as_ptr();
            let sc = &b[192 + 8 * h..192 + 8 * h + 8];
            for (is, l0) in [(0usize, 0usize), (1, 16)] {
                let a = load16(b, 64 * h + l0);
                let c = load16(b, 64 * h + 32 + l0);
                let hb = load16(b, 128 + 32 * h + l0);
                let q1 = _mm_or_si128(
                    _mm_and_si128(a, m4),
                    _mm_slli_epi16(_mm_and_si128(hb, m2), 4),
                );
                let q2 = _mm_or_si128(
                    _mm_and_si128(c, m4),
                    _mm_slli_epi16(_mm_and_si128(hb, m2_hi), 2),
                );
                let q3 = _mm_or_si128(
                    _mm_and_si128(_mm_srli_epi16(a, 4), m4),
                    _mm_and_si128(hb, m30),
                );
                let q4 = _mm_or_si128(
                    _mm_and_si128(_mm_srli_epi16(c, 4), m4),
                    _mm_and_si128(_mm_srli_epi16(hb, 2), m30),
                );
                for (k, q) in [q1, q2, q3, q4].into_iter().enumerate() {
                    let s = dot16(_mm_sub_epi8(q, bias), xp.add(32 * k + l0));
                    let scale = d * (sc[is + 2 * k] as i8) as f32;
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), s, acc);
                }
            }
        }
    }
    hsum(acc)
}
