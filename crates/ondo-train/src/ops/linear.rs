//! Linear layer y = x Wᵀ with W: [out][in] (no bias, as in Llama).
//!
//! [`Dense`] is the frozen-weight matrix of the block and the one place the weight format is
//! known: plain `F` values, or (f32 only) a quantized base matrix as inference holds it
//! ([`Dense::quantized`], QLoRA-style), whose two products, `forward` and `backward_x`, are the
//! inference kernels (y = x Wᵀ is the very product inference runs, activations quantized as
//! llama.cpp does; dx = dy W dequantizes one row at a time). `backward_w` is only for full
//! fine-tuning, where W is plain floats.
//!   dx = dy W          [n][out] · [out][in] → [n][in]
//!   dW += dyᵀ x        [out][n] · [n][in]  → [out][in]

use std::sync::Arc;

use ondo_model::QWeight;

use crate::Float;

/// A weight matrix, `w`: [rows = out][cols = in], row-major; or, for a quantized base, no
/// values but the quantized matrix (`w` then is empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<F> {
    pub rows: usize,
    pub cols: usize,
    pub w: Vec<F>,
    quant: Option<QuantBase>,
}

/// A frozen quantized matrix, shared with the inference model it came from.
#[derive(Clone)]
pub struct QuantBase(Arc<QWeight>);

impl PartialEq for QuantBase {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for QuantBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantBase({} {}x{})",
            self.0.dtype.name(),
            self.0.rows,
            self.0.cols
        )
    }
}

impl Dense<f32> {
    /// A frozen base matrix kept quantized: its products run through the inference kernels.
    pub fn quantized(q: QWeight) -> Dense<f32> {
        Dense {
            rows: q.rows,
            cols: q.cols,
            w: Vec::new(),
            quant: Some(QuantBase(Arc::new(q))),
        }
    }
}

impl<F: Float> Dense<F> {
    pub fn new(rows: usize, cols: usize, w: Vec<F>) -> Dense<F> {
        assert_eq!(w.len(), rows * cols);
        Dense {
            rows,
            cols,
            w,
            quant: None,
        }
    }

    /// Whether this is a quantized base matrix (no values of its own).
    pub fn is_quantized(&self) -> bool {
        self.quant.is_some()
    }

    pub fn zeros(rows: usize, cols: usize) -> Dense<F> {
        Dense::new(rows, cols, vec![F::ZERO; rows * cols])
    }

    /// A matrix of zeros of the same shape (for its gradient).
    pub fn zeros_like(&self) -> Dense<F> {
        Dense::zeros(self.rows, self.cols)
    }

    /// Row r: [cols] (of a plain matrix)
    pub fn row(&self, r: usize) -> &[F] {
        &self.w[r * self.cols..(r + 1) * self.cols]
    }

    /// Row r into `out` ([cols]), dequantized if the matrix is quantized.
    pub fn row_into(&self, r: usize, out: &mut [F]) {
        match &self.quant {
            Some(q) => {
                let mut row = vec![0.0f32; self.cols];
                q.0.dequantize_row(r, &mut row);
                for (o, &v) in out.iter_mut().zip(&row) {
                    *o = F::from_f64(f64::from(v));
                }
            }
            None => out.copy_from_slice(self.row(r)),
        }
    }

    /// The same matrix in another float type (a quantized one dequantized).
    pub fn cast<G: Float>(&self) -> Dense<G> {
        match &self.quant {
            Some(q) => Dense::new(self.rows, self.cols, cast_vec(&q.0.to_f32())),
            None => Dense::new(self.rows, self.cols, cast_vec(&self.w)),
        }
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
    match &w.quant {
        Some(q) => F::quant_forward(&q.0, x, y),
        None => F::linear_forward(w.rows, w.cols, &w.w, x, y),
    }
}

/// dy: [n][out], w: [out][in] → dx += [n][in]
pub fn backward_x<F: Float>(w: &Dense<F>, dy: &[F], dx: &mut [F]) {
    let n = dy.len() / w.rows;
    assert!(dy.len() == n * w.rows && dx.len() == n * w.cols);
    match &w.quant {
        Some(q) => F::quant_backward_x(&q.0, dy, dx),
        None => F::linear_backward_x(w.rows, w.cols, &w.w, dy, dx),
    }
}

/// x: [n][in], dy: [n][out] → dw += [out][in] (a plain matrix: full fine-tuning)
pub fn backward_w<F: Float>(x: &[F], dy: &[F], dw: &mut Dense<F>) {
    let n = x.len() / dw.cols;
    assert!(x.len() == n * dw.cols && dy.len() == n * dw.rows);
    assert!(!dw.is_quantized(), "a gradient holder is plain values");
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
