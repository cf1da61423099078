//! LoRA linear: y = x Wᵀ + scale · (x Aᵀ) Bᵀ, W: [out][in] frozen, A: [r][in], B: [out][r],
//! scale = alpha / r (PEFT's convention; A random, B zero, so training starts at the base).
//!
//! With xa = x Aᵀ: [n][r] kept from the forward, for dy: [n][out]:
//!   dB  += scale · dyᵀ xa        [out][n] · [n][r]  → [out][r]
//!   dxa  = scale · dy B          [n][out] · [out][r] → [n][r]
//!   dA  += dxaᵀ x                [r][n] · [n][in]   → [r][in]
//!   dx  += dy W + dxa A          [n][in]

use crate::ops::linear::{self, Dense};
use crate::{Float, Rng};

/// One adapter. Its gradient is a `Lora` of the same shape (`zeros_like`), so an optimizer
/// walks parameters and gradients in step.
#[derive(Clone, Debug, PartialEq)]
pub struct Lora<F> {
    /// [r][in]
    pub a: Dense<F>,
    /// [out][r]
    pub b: Dense<F>,
    /// alpha / r
    pub scale: F,
}

impl<F: Float> Lora<F> {
    /// PEFT's initialization: A ~ U(-1/√in, 1/√in) (kaiming_uniform with a = √5), B = 0.
    pub fn new(n_in: usize, n_out: usize, rank: usize, alpha: f64, seed: u64) -> Lora<F> {
        assert!(rank > 0);
        let mut rng = Rng::new(seed);
        let bound = 1.0 / (n_in as f64).sqrt();
        Lora {
            a: Dense::new(rank, n_in, rng.vec_uniform(rank * n_in, -bound, bound)),
            b: Dense::zeros(n_out, rank),
            scale: F::from_f64(alpha / rank as f64),
        }
    }

    pub fn rank(&self) -> usize {
        self.a.rows
    }

    /// Zeros of the same shape (the gradient's holder).
    pub fn zeros_like(&self) -> Lora<F> {
        Lora {
            a: self.a.zeros_like(),
            b: self.b.zeros_like(),
            scale: self.scale,
        }
    }

    pub fn cast<G: Float>(&self) -> Lora<G> {
        Lora {
            a: self.a.cast(),
            b: self.b.cast(),
            scale: G::from_f64(self.scale.to_f64()),
        }
    }
}

/// The adapter's term alone: x: [n][in] → xa: [n][r] (kept for the backward), y += scale · xa Bᵀ.
pub fn forward_add<F: Float>(lora: &Lora<F>, x: &[F], xa: &mut [F], y: &mut [F]) {
    let (r, n_out) = (lora.rank(), lora.b.rows);
    linear::forward(&lora.a, x, xa);
    for (xar, yr) in xa.chunks_exact(r).zip(y.chunks_exact_mut(n_out)) {
        for (o, yo) in yr.iter_mut().enumerate() {
            *yo += lora.scale * linear::dot(lora.b.row(o), xar);
        }
    }
}

/// x: [n][in] → y: [n][out] = x Wᵀ + scale · (x Aᵀ) Bᵀ, xa: [n][r].
pub fn forward<F: Float>(w: &Dense<F>, lora: &Lora<F>, x: &[F], y: &mut [F], xa: &mut [F]) {
    linear::forward(w, x, y);
    forward_add(lora, x, xa, y);
}

/// The adapter's part of the backward: x: [n][in], xa: [n][r], dy: [n][out] →
/// dx += dxa A (not the dy W term), grad.a += dA, grad.b += dB.
pub fn backward_add<F: Float>(
    lora: &Lora<F>,
    x: &[F],
    xa: &[F],
    dy: &[F],
    dx: &mut [F],
    grad: &mut Lora<F>,
) {
    let (r, n_out) = (lora.rank(), lora.b.rows);
    let n = dy.len() / n_out;
    assert!(dy.len() == n * n_out && xa.len() == n * r);
    // dy_s = scale · dy: [n][out]
    let dy_s: Vec<F> = dy.iter().map(|&g| g * lora.scale).collect();
    // dB += dy_sᵀ xa
    linear::backward_w(xa, &dy_s, &mut grad.b);
    // dxa = dy_s B: [n][r]
    let mut dxa = vec![F::ZERO; n * r];
    linear::backward_x(&lora.b, &dy_s, &mut dxa);
    // dA += dxaᵀ x, dx += dxa A
    linear::backward_w(x, &dxa, &mut grad.a);
    linear::backward_x(&lora.a, &dxa, dx);
}

/// The whole backward with W frozen: dx += dy W + dxa A, grad.a += dA, grad.b += dB.
pub fn backward<F: Float>(
    w: &Dense<F>,
    lora: &Lora<F>,
    x: &[F],
    xa: &[F],
    dy: &[F],
    dx: &mut [F],
    grad: &mut Lora<F>,
) {
    linear::backward_x(w, dy, dx);
    backward_add(lora, x, xa, dy, dx, grad);
}
