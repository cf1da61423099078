//! ggml's vectorized exp (`ggml_v_expf`, adapted there from Arm's optimized routines: max
//! error 1.45 ulp + 0.5) and the SiLU and softmax built on it, reproduced operation for
//! operation so `Numerics::LlamaCpp` gets llama.cpp's exact f32 results: an AVX2 kernel and a
//! scalar twin with the same fused multiply-adds.
//!
//! ggml applies the vector exp to whole groups of 8 and `expf` only to a tail; llama.cpp's
//! attention rows are padded to a multiple of 8 with masked (-inf) entries, so
//! [`softmax_ggml`] applies the vector exp to every element. SwiGLU rows here are multiples
//! of 8 in every Llama shape; a tail falls back to libm exp as in ggml.

const R: f32 = 12582912.0; // 0x1.8p23
const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1
const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7

/// One lane of `ggml_v_expf`.
pub fn expf_ggml(x: f32) -> f32 {
    let z = x.mul_add(LOG2E, R);
    let n = z - R;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = C5
        .mul_add(b, C4)
        .mul_add(u, C3.mul_add(b, C2))
        .mul_add(u, C1 * b);
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// SiLU as ggml's vector path computes it: `x / (1 + v_expf(-x))`.
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + expf_ggml(-x))
}

/// `gate[i] = silu(gate[i]) * up[i]` as `ggml_vec_swiglu_f32` computes it.
pub fn swiglu_ggml(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    let main = gate.len() / 8 * 8;
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/FMA detected; the kernel reads/writes the first `main` elements only.
        unsafe { avx2::swiglu(&mut gate[..main], &up[..main]) };
        for (g, &u) in gate[main..].iter_mut().zip(&up[main..]) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
        return;
    }
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        *g = if i < main {
            silu_ggml(*g)
        } else {
            *g / (1.0 + (-*g).exp())
        } * u;
    }
}

/// Softmax as `ggml_soft_max_f32` computes it: max, `v_expf(x - max)` in groups of 8 whose
/// f32 horizontal sums are added in f64, then a multiply by the f32 reciprocal of the sum.
pub fn softmax_ggml(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        let main = x.len() / 8 * 8;
        // SAFETY: AVX2/FMA detected; the kernel touches the first `main` elements only.
        sum = unsafe { avx2::exp_sub_sum(&mut x[..main], max) };
        start = main;
    }
    for chunk in x[start..].chunks_mut(8) {
        let mut lanes = [0.0f32; 8];
        for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = expf_ggml(*v - max);
            *l = *v;
        }
        sum += hsum8(&lanes) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Dot product as llamafile's tinyBLAS computes f16 products on AVX2 (used by llama.cpp for
/// the batched K·q): one 8-lane accumulator, `acc = fma(a, b, acc)` per group of 8, then the
/// horizontal sum. Lengths that are not a multiple of 8 get a plain tail.
pub fn dot_lanes8<E: KvElem>(a: &[f32], b: &[E]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/FMA/F16C detected; lengths checked equal above.
        return unsafe { avx2::dot_lanes8(a, b) };
    }
    dot_lanes8_scalar(a, b)
}

/// The scalar twin of [`dot_lanes8`].
pub fn dot_lanes8_scalar<E: KvElem>(a: &[f32], b: &[E]) -> f32 {
    let mut acc = [0.0f32; 8];
    let main = a.len() / 8 * 8;
    for (ca, cb) in a[..main].chunks_exact(8).zip(b[..main].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] = ca[l].mul_add(cb[l].to_f32(), acc[l]);
        }
    }
    let tail: f32 = a[main..]
        .iter()
        .zip(&b[main..])
        .map(|(x, y)| x * y.to_f32())
        .sum();
    hsum8(&acc) + tail
}

/// An element of a key/value cache: f32, or f16 stored as its bits (llama.cpp's default).
pub trait KvElem: Copy + Send + Sync + sealed::Sealed + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    /// Loads 8 consecutive elements as f32.
    ///
    /// # Safety
    /// AVX2/F16C available; `p..p+8` readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
}

impl KvElem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl KvElem for u16 {
    fn to_f32(self) -> f32 {
        crate::f16_to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        crate::f32_to_f16(v)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

/// `out[d] = sum_p probs[p] * values[p * stride + d]` accumulated as tinyBLAS does for the
/// batched P·V product: per output element one 8-lane accumulator, lane = p mod 8, fused
/// multiply-adds in order of p, then the horizontal sum.
pub fn weighted_sum_lanes8<E: KvElem>(out: &mut [f32], probs: &[f32], values: &[E], stride: usize) {
    let hd = out.len();
    if let Some(last) = probs.len().checked_sub(1) {
        assert!(values.len() >= last * stride + hd, "values too short");
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() && hd.is_multiple_of(8) && hd <= 256 {
        // SAFETY: AVX2/FMA/F16C detected; every row p*stride..p*stride+hd lies in `values`.
        unsafe { avx2::weighted_sum_lanes8(out, probs, values, stride) };
        return;
    }
    weighted_sum_lanes8_scalar(out, probs, values, stride);
}

/// The scalar twin of [`weighted_sum_lanes8`].
pub fn weighted_sum_lanes8_scalar<E: KvElem>(
    out: &mut [f32],
    probs: &[f32],
    values: &[E],
    stride: usize,
) {
    let hd = out.len();
    let mut acc = vec![[0.0f32; 8]; hd];
    for (p, &w) in probs.iter().enumerate() {
        let row = &values[p * stride..p * stride + hd];
        let lane = p % 8;
        for (a, &v) in acc.iter_mut().zip(row) {
            a[lane] = v.to_f32().mul_add(w, a[lane]);
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = hsum8(a);
    }
}

/// The horizontal sum order of ggml's AVX2 code: (hi + lo), then (0+2, 1+3), then 0 + 1.
fn hsum8(l: &[f32; 8]) -> f32 {
    let s = [l[4] + l[0], l[5] + l[1], l[6] + l[2], l[7] + l[3]];
    let t = [s[0] + s[2], s[1] + s[3]];
    t[0] + t[1]
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    #[inline(always)]
    unsafe fn v_expf(x: __m256) -> __m256 {
        let r = _mm256_set1_ps(R);
        let z = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(
            n,
            _mm256_set1_ps(LN2_LO),
            _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x),
        );
        let e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            e,
            _mm256_castps_si256(_mm256_set1_ps(1.0)),
        ));
        let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        let c = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0), _CMP_GT_OQ);
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(_mm256_set1_ps(C5), b, _mm256_set1_ps(C4)),
                u,
                _mm256_fmadd_ps(_mm256_set1_ps(C3), b, _mm256_set1_ps(C2)),
            ),
            u,
            _mm256_mul_ps(_mm256_set1_ps(C1), b),
        );
        if _mm256_movemask_ps(c) == 0 {
            return _mm256_fmadd_ps(j, k, k);
        }
        let g = _mm256_and_si256(
            _mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
            _mm256_set1_epi32(0x8200_0000u32 as i32),
        );
        let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
        let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
        let d = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0), _CMP_GT_OQ);
        _mm256_or_ps(
            _mm256_and_ps(d, _mm256_mul_ps(s1, s1)),
            _mm256_andnot_ps(
                d,
                _mm256_or_ps(
                    _mm256_and_ps(c, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                    _mm256_andnot_ps(c, _mm256_fmadd_ps(k, j, k)),
                ),
            ),
        )
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// # Safety
    /// AVX2 and FMA must be available; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_lanes8<E: KvElem>(a: &[f32], b: &[E]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let main = a.len() / 8 * 8;
        for (ca, cb) in a[..main].chunks_exact(8).zip(b[..main].chunks_exact(8)) {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(ca.as_ptr()), E::load8(cb.as_ptr()), acc);
        }
        let tail: f32 = a[main..]
            .iter()
            .zip(&b[main..])
            .map(|(x, y)| x * y.to_f32())
            .sum();
        hsum(acc) + tail
    }

    /// # Safety
    /// AVX2 and FMA must be available; `out.len()` a multiple of 8 and at most 256; every row
    /// `p*stride .. p*stride + out.len()` inside `values`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum_lanes8<E: KvElem>(
        out: &mut [f32],
        probs: &[f32],
        values: &[E],
        stride: usize,
    ) {
        let hd = out.len();
        let nv = hd / 8;
        // acc[lane][v]: lane = p % 8, v = group of 8 output elements.
        let mut acc = [[_mm256_setzero_ps(); 32]; 8];
        for (p, &w) in probs.iter().enumerate() {
            let wv = _mm256_set1_ps(w);
            let row = values.as_ptr().add(p * stride);
            let lane = &mut acc[p % 8];
            for (v, a) in lane.iter_mut().enumerate().take(nv) {
                *a = _mm256_fmadd_ps(E::load8(row.add(8 * v)), wv, *a);
            }
        }
        #[allow(clippy::needless_range_loop)] // v indexes the second level of acc[lane][v]
        for v in 0..nv {
            // out[8v + i] = hsum8 over lanes of acc[lane][v][i], in ggml's order.
            let l = |k: usize| acc[k][v];
            let s0 = _mm256_add_ps(l(4), l(0));
            let s1 = _mm256_add_ps(l(5), l(1));
            let s2 = _mm256_add_ps(l(6), l(2));
            let s3 = _mm256_add_ps(l(7), l(3));
            let t = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), t);
        }
    }

    /// exp(x - max) in place with ggml's vector exp; returns the sum of the per-8 f32
    /// horizontal sums, added in f64. # Safety: AVX2/FMA; `x.len()` a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_sub_sum(x: &mut [f32], max: f32) -> f64 {
        let m = _mm256_set1_ps(max);
        let mut sum = 0.0f64;
        for c in x.chunks_exact_mut(8) {
            let v = v_expf(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m));
            _mm256_storeu_ps(c.as_mut_ptr(), v);
            sum += hsum(v) as f64;
        }
        sum
    }

    /// # Safety
    /// AVX2 and FMA must be available; `gate.len() == up.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.chunks_exact_mut(8).zip(up.chunks_exact(8)) {
            let x = _mm256_loadu_ps(g.as_ptr());
            let e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            _mm256_storeu_ps(
                g.as_mut_ptr(),
                _mm256_mul_ps(s, _mm256_loadu_ps(u.as_ptr())),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_the_published_hex_floats() {
        assert_eq!(LOG2E, std::f32::consts::LOG2_E);
        assert!((LN2_HI + LN2_LO - std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(C1, 0.999_999_4_f32);
    }

    #[test]
    fn ggml_exp_is_within_two_ulp_of_libm() {
        let mut x = -100.0f32;
        while x < 88.0 {
            let (a, b) = (expf_ggml(x), x.exp());
            let ulp = (b.to_bits() as i64 - a.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}): {a} vs {b} ({ulp} ulp)");
            x += 0.0137;
        }
        assert_eq!(expf_ggml(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf_ggml(-200.0), 0.0);
    }

    #[test]
    fn swiglu_simd_equals_scalar_twin() {
        let g: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.73).collect();
        let u: Vec<f32> = (0..37).map(|i| (i as f32 * 0.31).sin()).collect();
        let mut fast = g.clone();
        swiglu_ggml(&mut fast, &u);
        for i in 0..32 {
            assert_eq!(fast[i], silu_ggml(g[i]) * u[i], "element {i}");
        }
    }

    #[test]
    fn simd_attention_helpers_equal_their_scalar_twins() {
        let a: Vec<f32> = (0..64)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.37)
            .collect();
        let b: Vec<f32> = (0..64)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.21)
            .collect();
        assert_eq!(
            dot_lanes8(&a, &b).to_bits(),
            dot_lanes8_scalar(&a, &b).to_bits()
        );
        let probs: Vec<f32> = (0..21).map(|i| 1.0 / (i as f32 + 1.5)).collect();
        let values: Vec<f32> = (0..21 * 192)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) * 0.013)
            .collect();
        let (mut fast, mut slow) = (vec![0.0; 64], vec![0.0; 64]);
        weighted_sum_lanes8(&mut fast, &probs, &values[64..], 192);
        weighted_sum_lanes8_scalar(&mut slow, &probs, &values[64..], 192);
        assert_eq!(fast, slow);
        let x: Vec<f32> = (0..29).map(|i| (i as f32 * 0.77).sin() * 9.0).collect();
        let mut via_dispatch = x.clone();
        softmax_ggml(&mut via_dispatch);
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        let mut manual = x.clone();
        for c in manual.chunks_mut(8) {
            let mut lanes = [0.0f32; 8];
            for (l, v) in lanes.iter_mut().zip(c.iter_mut()) {
                *v = expf_ggml(*v - max);
                *l = *v;
            }
            sum += hsum8(&lanes) as f64;
        }
        let inv = (1.0 / sum) as f32;
        manual.iter_mut().for_each(|v| *v *= inv);
        assert_eq!(via_dispatch, manual);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x: Vec<f32> = (0..13).map(|i| i as f32 * 0.5 - 3.0).collect();
        softmax_ggml(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
}
