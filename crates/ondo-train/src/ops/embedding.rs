//! Embedding lookup: x[t] = E[token_t]; the backward scatter-adds each row's gradient into the
//! row it came from (a token used twice gets both).

use crate::ops::linear::Dense;
use crate::Float;

/// e: [n_vocab][dim], tokens: [n] (each < n_vocab) → x: [n][dim]
pub fn forward<F: Float>(e: &Dense<F>, tokens: &[u32], x: &mut [F]) {
    assert_eq!(x.len(), tokens.len() * e.cols);
    for (&t, xr) in tokens.iter().zip(x.chunks_exact_mut(e.cols)) {
        e.row_into(t as usize, xr);
    }
}

/// tokens: [n], dx: [n][dim] → de[token_t] += dx[t]
pub fn backward<F: Float>(tokens: &[u32], dx: &[F], de: &mut Dense<F>) {
    let dim = de.cols;
    assert_eq!(dx.len(), tokens.len() * dim);
    for (&t, g) in tokens.iter().zip(dx.chunks_exact(dim)) {
        let row = &mut de.w[t as usize * dim..(t as usize + 1) * dim];
        for (d, &gi) in row.iter_mut().zip(g) {
            *d += gi;
        }
    }
}
