//! Linear layer y = x Wᵀ with W: [out][in] (no bias, as in Llama).
//!
//! [`Dense`] is the frozen-weight matrix of the block and the one place the weight format is
//! known: today plain `F` values; a quantized base (QLoRA-style) replaces `Dense` and its two
//! products, `forward` and `backward_x`, with the inference kernels (y = x Wᵀ is the same
//! product inference runs; dx = dy W is its transpose). `backward_w` is only for full
//! fine-tuning, where W is plain floats anyway.
//!   dx = dy W          [n][out] · [out][in] → [n][in]
//!   dW += dyᵀ x        [out][n] · [n][in]  → [out][in]

use crate::Float;

/// A weight matrix, `w`: [rows = out][cols = in], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<F> {
    pub rows: usize,
    pub cols: usize,
    pub w: Vec<F>,
}

impl<F: Float> Dense<F> {
    pub fn new(rows: usize, cols: usize, w: Vec<F>) -> Dense<F> {
        assert_eq!(w.len(), rows * cols);
        Dense { rows, cols, w }
    }

    pub fn zeros(rows: usize, cols: usize) -> Dense<F> {
        Dense::new(rows, cols, vec![F::ZERO; rows * cols])
    }

    /// A matrix of zeros of the same shape (for its gradient).
    pub fn zeros_like(&self) -> Dense<F> {
        Dense::zeros(self.rows, self.cols)
    }

    /// Row r: [cols]
    pub fn row(&self, r: usize) -> &[F] {
        &self.w[r * self.cols..(r + 1) * self.cols]
    }

    /// The same matrix in another float type.
    pub fn cast<G: Float>(&self) -> Dense<G> {
        Dense::new(self.rows, self.cols, cast_vec(&self.w))
    }
}

/// Every value converted through f64.
pub fn cast_vec<F: Float, G: Float>(v: &[F]) -> Vec<G> {
    v.iter().map(|x| G::from_f64(x.to_f64())).collect()
}

/// x: [n][in], w: [out][in] → y: [n][out] (overwritten)
pub fn forward<F: Float>(w: &Dense<F>, x: &[F], y: &mut [F]) {
    let n = x.len() / w.cols;
    assert!(x.len() == n * w.cols && y.len() == n * w.rows);
    F::linear_forward(w.rows, w.cols, &w.w, x, y)
}

/// dy: [n][out], w: [out][in] → dx += [n][in]
pub fn backward_x<F: Float>(w: &Dense<F>, dy: &[F], dx: &mut [F]) {
    let n = dy.len() / w.rows;
    assert!(dy.len() == n * w.rows && dx.len() == n * w.cols);
    F::linear_backward_x(w.rows, w.cols, &w.w, dy, dx)
}

/// x: [n][in], dy: [n][out] → dw += [out][in]
pub fn backward_w<F: Float>(x: &[F], dy: &[F], dw: &mut Dense<F>) {
    let n = x.len() / dw.cols;
    assert!(x.len() == n * dw.cols && dy.len() == n * dw.rows);
    F::linear_backward_w(dw.rows, dw.cols, x, dy, &mut dw.w)
}

/// The plain loops of [`forward`] (the reference; f64 uses them).
pub fn naive_forward<F: Float>(rows: usize, cols: usize, w: &[F], x: &[F], y: &mut [F]) {
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
        for (o, yo) in yr.iter_mut().enumerate() {
            *yo = dot(&w[o * cols..(o + 1) * cols], xr);
        }
    }
}

/// The plain loops of [`backward_x`].
pub fn naive_backward_x<F: Float>(rows: usize, cols: usize, w: &[F], dy: &[F], dx: &mut [F]) {
    for (dyr, dxr) in dy.chunks_exact(rows).zip(dx.chunks_exact_mut(cols)) {
        for (o, &g) in dyr.iter().enumerate() {
            axpy(g, &w[o * cols..(o + 1) * cols], dxr);
        }
    }
}

/// The plain loops of [`backward_w`].
pub fn naive_backward_w<F: Float>(rows: usize, cols: usize, x: &[F], dy: &[F], dw: &mut [F]) {
    for (xr, dyr) in x.chunks_exact(cols).zip(dy.chunks_exact(rows)) {
        for (o, &g) in dyr.iter().enumerate() {
            axpy(g, xr, &mut dw[o * cols..(o + 1) * cols]);
        }
    }
}

/// Σ a_i b_i
pub fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

/// y += alpha · x
pub fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}
