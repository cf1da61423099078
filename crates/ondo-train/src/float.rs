//! `Float`: the few operations the training ops need, implemented for f32 (training) and f64
//! (the gradient checks' reference). Not a general numeric tower: just enough to write every op
//! once.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use ondo_model::QWeight;

pub trait Float:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn powf(self, e: Self) -> Self;
    /// (sin, cos)
    fn sin_cos(self) -> (Self, Self);
    fn max(self, o: Self) -> Self;
    fn abs(self) -> Self;

    /// y[n][rows] = x[n][cols] · Wᵀ (overwritten). f32 runs ondo's tiled, threaded kernel;
    /// f64 (the gradient checks) the plain loops of `ops::linear`.
    fn linear_forward(rows: usize, cols: usize, w: &[Self], x: &[Self], y: &mut [Self]) {
        crate::ops::linear::naive_forward(rows, cols, w, x, y)
    }
    /// dx[n][cols] += dy[n][rows] · W
    fn linear_backward_x(rows: usize, cols: usize, w: &[Self], dy: &[Self], dx: &mut [Self]) {
        crate::ops::linear::naive_backward_x(rows, cols, w, dy, dx)
    }
    /// dW[rows][cols] += dyᵀ x
    fn linear_backward_w(rows: usize, cols: usize, x: &[Self], dy: &[Self], dw: &mut [Self]) {
        crate::ops::linear::naive_backward_w(rows, cols, x, dy, dw)
    }
    /// y[n][rows] = x[n][cols] · Wᵀ for a quantized W (only `Dense::<f32>::quantized` makes
    /// one, so only f32 overrides this).
    fn quant_forward(_w: &QWeight, _x: &[Self], _y: &mut [Self]) {
        unreachable!("quantized base matrices are f32 only")
    }
    /// dx[n][cols] += dy[n][rows] · W for a quantized W (f32 only, as above).
    fn quant_backward_x(_w: &QWeight, _dy: &[Self], _dx: &mut [Self]) {
        unreachable!("quantized base matrices are f32 only")
    }
}

macro_rules! impl_float {
    ($t:ty $(, $extra:item)*) => {
        impl Float for $t {
            $($extra)*
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            fn sin_cos(self) -> (Self, Self) {
                <$t>::sin_cos(self)
            }
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
        }
    };
}

impl_float!(
    f32,
    fn linear_forward(rows: usize, cols: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
        let n = x.len() / cols.max(1);
        ondo_model::grad::dense_forward(rows, cols, w, x, n, y)
    },
    fn linear_backward_x(rows: usize, cols: usize, w: &[f32], dy: &[f32], dx: &mut [f32]) {
        let n = dy.len() / rows.max(1);
        ondo_model::grad::matmul_t_with(rows, cols, dy, n, dx, |r, out| {
            out.copy_from_slice(&w[r * cols..(r + 1) * cols])
        })
    },
    fn linear_backward_w(rows: usize, cols: usize, x: &[f32], dy: &[f32], dw: &mut [f32]) {
        let n = x.len() / cols.max(1);
        ondo_model::grad::weight_grad(rows, cols, x, dy, n, dw)
    },
    fn quant_forward(w: &QWeight, x: &[f32], y: &mut [f32]) {
        let n = x.len() / w.cols.max(1);
        ondo_model::grad::quant_forward(w, x, n, y)
    },
    fn quant_backward_x(w: &QWeight, dy: &[f32], dx: &mut [f32]) {
        let n = dy.len() / w.rows.max(1);
        ondo_model::grad::matmul_t(w, dy, n, dx)
    }
);
impl_float!(f64);
