//! SwiGLU: h = silu(g) · u with silu(g) = g σ(g).
//!   dg = dh · u · σ(g) (1 + g (1 - σ(g))),   du = dh · silu(g)

use crate::Float;

fn sigmoid<F: Float>(x: F) -> F {
    F::ONE / (F::ONE + (-x).exp())
}

/// gate, up: [n][ffn] → h: [n][ffn]
pub fn forward<F: Float>(gate: &[F], up: &[F], h: &mut [F]) {
    assert!(gate.len() == up.len() && h.len() == gate.len());
    for i in 0..h.len() {
        let g = gate[i];
        h[i] = g * sigmoid(g) * up[i];
    }
}

/// gate, up, dh: [n][ffn] → dgate += [n][ffn], dup += [n][ffn]
pub fn backward<F: Float>(gate: &[F], up: &[F], dh: &[F], dgate: &mut [F], dup: &mut [F]) {
    let len = gate.len();
    assert!(up.len() == len && dh.len() == len && dgate.len() == len && dup.len() == len);
    for i in 0..len {
        let g = gate[i];
        let s = sigmoid(g);
        dgate[i] += dh[i] * up[i] * s * (F::ONE + g * (F::ONE - s));
        dup[i] += dh[i] * g * s;
    }
}
