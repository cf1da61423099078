//! Causal multi-head attention with grouped-query heads: query head h reads key/value head
//! h / (n_heads / n_kv_heads). For one head, tokens i (query) and j ≤ i (key):
//!   s_ij = q_i · k_j / √head_dim,   p_i = softmax_j(s_ij),   o_i = Σ_j p_ij v_j
//! Backward, with dp_ij = do_i · v_j:
//!   dv_j += Σ_i p_ij do_i
//!   ds_ij = p_ij (dp_ij - Σ_j' p_ij' dp_ij')
//!   dq_i += Σ_j ds_ij k_j / √head_dim,   dk_j += Σ_i ds_ij q_i / √head_dim
//! The probabilities are kept for the backward: [n_heads][n][n], zero above the diagonal.
//! (n² per head: fine for the context lengths a CPU trains on; a flash-style recompute can
//! replace it later.)

use crate::ops::linear::{axpy, dot};
use crate::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Width of a q row (n_heads · head_dim).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of a k or v row (n_kv_heads · head_dim).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The key/value head query head h reads.
    fn kv_head(&self, h: usize) -> usize {
        h / (self.n_heads / self.n_kv_heads)
    }

    fn check(&self, n: usize, q: usize, k: usize, v: usize, probs: usize) {
        assert!(self.n_kv_heads > 0 && self.n_heads.is_multiple_of(self.n_kv_heads));
        assert!(q == n * self.q_dim() && k == n * self.kv_dim() && v == k);
        assert_eq!(probs, self.n_heads * n * n);
    }
}

/// q: [n][n_heads][hd], k, v: [n][n_kv_heads][hd] → out: [n][n_heads][hd] (overwritten),
/// probs: [n_heads][n][n] (overwritten).
pub fn forward<F: Float>(s: AttnShape, q: &[F], k: &[F], v: &[F], out: &mut [F], probs: &mut [F]) {
    let hd = s.head_dim;
    let n = q.len() / s.q_dim().max(1);
    s.check(n, q.len(), k.len(), v.len(), probs.len());
    assert_eq!(out.len(), q.len());
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let inv_sqrt = F::ONE / F::from_usize(hd).sqrt();
    out.fill(F::ZERO);
    probs.fill(F::ZERO);
    for h in 0..s.n_heads {
        let g = s.kv_head(h);
        for i in 0..n {
            let qi = &q[i * qd + h * hd..i * qd + (h + 1) * hd];
            // p: [i + 1], the scores then the softmax
            let p = &mut probs[(h * n + i) * n..(h * n + i) * n + i + 1];
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = dot(qi, &k[j * kvd + g * hd..j * kvd + (g + 1) * hd]) * inv_sqrt;
            }
            let max = p.iter().fold(F::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = F::ZERO;
            for pj in p.iter_mut() {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let oi = &mut out[i * qd + h * hd..i * qd + (h + 1) * hd];
            for (j, pj) in p.iter_mut().enumerate() {
                *pj /= sum;
                axpy(*pj, &v[j * kvd + g * hd..j * kvd + (g + 1) * hd], oi);
            }
        }
    }
}

/// q, k, v, probs as in [`forward`], dout: [n][n_heads][hd] →
/// dq += [n][n_heads][hd], dk += [n][n_kv_heads][hd], dv += [n][n_kv_heads][hd].
#[allow(clippy::too_many_arguments)]
pub fn backward<F: Float>(
    s: AttnShape,
    q: &[F],
    k: &[F],
    v: &[F],
    probs: &[F],
    dout: &[F],
    dq: &mut [F],
    dk: &mut [F],
    dv: &mut [F],
) {
    let hd = s.head_dim;
    let n = q.len() / s.q_dim().max(1);
    s.check(n, q.len(), k.len(), v.len(), probs.len());
    assert!(dout.len() == q.len() && dq.len() == q.len());
    assert!(dk.len() == k.len() && dv.len() == v.len());
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let inv_sqrt = F::ONE / F::from_usize(hd).sqrt();
    // ds: [n] scratch for one query row
    let mut ds = vec![F::ZERO; n];
    for h in 0..s.n_heads {
        let g = s.kv_head(h);
        for i in 0..n {
            let qrow = i * qd + h * hd..i * qd + (h + 1) * hd;
            let p = &probs[(h * n + i) * n..(h * n + i) * n + i + 1];
            let doi = &dout[qrow.clone()];
            // dp_ij = do_i · v_j, and dv_j += p_ij do_i
            let mut pdp = F::ZERO;
            for j in 0..=i {
                let kv = j * kvd + g * hd..j * kvd + (g + 1) * hd;
                let dp = dot(doi, &v[kv.clone()]);
                ds[j] = dp;
                pdp += p[j] * dp;
                axpy(p[j], doi, &mut dv[kv]);
            }
            // ds_ij = p_ij (dp_ij - Σ p dp), then into dq_i and dk_j
            for j in 0..=i {
                let kv = j * kvd + g * hd..j * kvd + (g + 1) * hd;
                let dsj = p[j] * (ds[j] - pdp) * inv_sqrt;
                axpy(dsj, &k[kv.clone()], &mut dq[qrow.clone()]);
                axpy(dsj, &q[qrow.clone()], &mut dk[kv]);
            }
        }
    }
}
