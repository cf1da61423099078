//! Cross-entropy of next-token logits with a per-position mask: the loss is the mean of
//! -log softmax(z_t)[target_t] over the positions where mask_t is true (0 if none is).
//!   dz_t = (softmax(z_t) - onehot(target_t)) / M   where mask_t, M = number of masked positions
//!   dz_t = 0                                        elsewhere

use crate::Float;

/// logits: [n][vocab], targets: [n], mask: [n] → loss; dlogits: [n][vocab] (overwritten with
/// d loss / d logits, scaled by `dloss`, the gradient arriving from above, usually 1).
pub fn forward_backward<F: Float>(
    logits: &[F],
    targets: &[u32],
    mask: &[bool],
    dloss: F,
    dlogits: &mut [F],
) -> F {
    let n = targets.len();
    assert!(
        n > 0 && mask.len() == n && logits.len().is_multiple_of(n) && dlogits.len() == logits.len()
    );
    let vocab = logits.len() / n;
    let m = mask.iter().filter(|&&b| b).count();
    dlogits.fill(F::ZERO);
    if m == 0 {
        return F::ZERO;
    }
    let inv_m = F::ONE / F::from_usize(m);
    let mut loss = F::ZERO;
    for t in 0..n {
        if !mask[t] {
            continue;
        }
        let z = &logits[t * vocab..(t + 1) * vocab];
        let dz = &mut dlogits[t * vocab..(t + 1) * vocab];
        let target = targets[t] as usize;
        assert!(target < vocab);
        // log Σ exp(z) with the max subtracted
        let max = z.iter().fold(F::NEG_INFINITY, |a, &b| a.max(b));
        let sum: F = z.iter().map(|&v| (v - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - z[target];
        for (d, &v) in dz.iter_mut().zip(z) {
            *d = (v - lse).exp() * inv_m * dloss;
        }
        dz[target] -= inv_m * dloss;
    }
    loss * inv_m
}

/// The loss alone: logits: [n][vocab], targets: [n], mask: [n].
pub fn loss<F: Float>(logits: &[F], targets: &[u32], mask: &[bool]) -> F {
    let mut d = vec![F::ZERO; logits.len()];
    forward_backward(logits, targets, mask, F::ONE, &mut d)
}
