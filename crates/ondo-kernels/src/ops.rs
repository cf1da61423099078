//! Plain f32 operations used by the model: RMS norm, softmax, SiLU, dot product and axpy.
//!
//! Semantics follow llama.cpp's `ggml_compute_forward_rms_norm` (mean of squares, `1/sqrt`),
//! `ggml_vec_soft_max` (max-subtracted exp) and `ggml_silu_f32` (`x / (1 + exp(-x))`).
//! [`dot_f32`] uses the run-time selected AVX2+FMA kernel on x86_64.

/// `out[i] = x[i] * weight[i] / sqrt(mean(x^2) + eps)`. Panics on length mismatch.
#[track_caller]
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    assert_eq!(out.len(), x.len(), "rmsnorm: out/x length mismatch");
    assert_eq!(weight.len(), x.len(), "rmsnorm: weight/x length mismatch");
    if x.is_empty() {
        return;
    }
    // Sum of squares in f64 like ggml (`ggml_float`), so large rows do not lose precision.
    let ss: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (ss / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// Numerically stable softmax in place. An empty slice is left alone; a row of all
/// `-inf` becomes all NaN (as in ggml), so callers should mask with finite values.
pub fn softmax_inplace(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU (swish): `x * sigmoid(x) = x / (1 + exp(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `sum(a[i] * b[i])`. Uses AVX2+FMA when available. Panics on length mismatch.
#[track_caller]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        return crate::quant::avx2_dot_f32(a, b);
    }
    dot_f32_portable(a, b)
}

/// Portable dot product with 8 independent accumulators (autovectorizes well).
pub(crate) fn dot_f32_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y[i] += a * x[i]`. Panics on length mismatch.
#[track_caller]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len(), "axpy: length mismatch");
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_dot_matches_naive() {
        for n in [0usize, 1, 7, 8, 9, 33, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let scale: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 * *y as f64).abs())
                .sum();
            let got = dot_f32_portable(&a, &b) as f64;
            assert!((got - naive).abs() <= 1e-6 * scale + 1e-12, "n={n}");
        }
    }

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu(-20.0)).abs() < 1e-7);
        assert_eq!(silu(100.0), 100.0);
    }
}
