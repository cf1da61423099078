//! The optimizer side of a training step: AdamW with PyTorch's semantics, global-norm gradient
//! clipping, the learning-rate schedule (linear warm-up, then cosine decay to a floor) and
//! gradient accumulation.
//!
//! Parameters and gradients travel as the flat-slice lists that `tensors_mut()` returns
//! (`ModelLora::tensors_mut`, `ModelWeights::tensors_mut`): list i of the gradients belongs to
//! list i of the parameters, and the optimizer keeps one moment pair per list entry.
//!
//! One optimizer step over gradients *summed* over G micro-batches (the backward adds into the
//! holders) is [`AdamW::apply`]: scale by 1/G, clip the global norm, AdamW update, zero the
//! gradients. AdamW, per element, at step t (1-based) with learning rate lr (torch.optim.AdamW,
//! the single-tensor path):
//!
//!   p ← p · (1 − lr · wd)                    (decoupled weight decay, where `decay` says)
//!   m ← β1 m + (1 − β1) g
//!   v ← β2 v + (1 − β2) g²
//!   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)

use crate::{Float, TrainError};
use serde::{Deserialize, Serialize};

/// AdamW's hyperparameters (PyTorch's defaults but for weight decay, which defaults to 0.01
/// there too).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW's state: the step count and the first and second moments of every tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<F> {
    pub config: AdamWConfig,
    /// Steps taken so far (the next step is `step + 1`).
    pub step: u64,
    /// First moments, one per tensor.
    pub m: Vec<Vec<F>>,
    /// Second moments, one per tensor.
    pub v: Vec<Vec<F>>,
    /// Per tensor: whether weight decay applies (norm weights are usually exempt).
    pub decay: Vec<bool>,
}

/// Checks that two tensor lists have the same number of tensors of the same lengths.
fn check_lists<F>(what: &str, a: &[&mut [F]], lens: &[usize]) -> Result<(), TrainError> {
    let same = a.len() == lens.len() && a.iter().zip(lens).all(|(t, &n)| t.len() == n);
    if same {
        Ok(())
    } else {
        Err(TrainError::Optim(format!(
            "{what}: {} tensors of lengths {:?}, expected {} of lengths {lens:?}",
            a.len(),
            a.iter().map(|t| t.len()).collect::<Vec<_>>(),
            lens.len()
        )))
    }
}

impl<F: Float> AdamW<F> {
    /// Zero moments for tensors of the given lengths (`tensors_mut()` of the parameters).
    pub fn new(config: AdamWConfig, lens: &[usize]) -> AdamW<F> {
        AdamW {
            config,
            step: 0,
            m: lens.iter().map(|&n| vec![F::ZERO; n]).collect(),
            v: lens.iter().map(|&n| vec![F::ZERO; n]).collect(),
            decay: vec![true; lens.len()],
        }
    }

    /// The same state with weight decay only on the tensors where `mask` is true.
    pub fn with_decay_mask(mut self, mask: Vec<bool>) -> Result<AdamW<F>, TrainError> {
        if mask.len() != self.m.len() {
            return Err(TrainError::Optim(format!(
                "a decay mask of {} entries for {} tensors",
                mask.len(),
                self.m.len()
            )));
        }
        self.decay = mask;
        Ok(self)
    }

    /// The tensor lengths this state was made for.
    pub fn lens(&self) -> Vec<usize> {
        self.m.iter().map(|m| m.len()).collect()
    }

    /// One AdamW update at learning rate `lr` with the gradients as they are (no scaling, no
    /// clipping; see [`AdamW::apply`] for the whole step). The gradients are left untouched.
    pub fn update(
        &mut self,
        params: &mut [&mut [F]],
        grads: &[&mut [F]],
        lr: f64,
    ) -> Result<(), TrainError> {
        let lens = self.lens();
        check_lists("parameters", params, &lens)?;
        check_lists("gradients", grads, &lens)?;
        self.step += 1;
        let c = self.config;
        let t = self.step as f64;
        let bc1 = 1.0 - c.beta1.powf(t);
        let bc2_sqrt = (1.0 - c.beta2.powf(t)).sqrt();
        let decay = F::from_f64(1.0 - lr * c.weight_decay);
        let step_size = F::from_f64(lr / bc1);
        let (b1, b2) = (F::from_f64(c.beta1), F::from_f64(c.beta2));
        let (one_b1, one_b2) = (F::from_f64(1.0 - c.beta1), F::from_f64(1.0 - c.beta2));
        let (bc2_sqrt, eps) = (F::from_f64(bc2_sqrt), F::from_f64(c.eps));
        // Elementwise, so the pieces may run on any thread in any order: the pool shares
        // them out (pieces of 64 Ki values).
        const PIECE: usize = 1 << 16;
        let mut pieces = Vec::new();
        let tensors = params
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut().zip(&mut self.v));
        for (i, ((p, g), (m, v))) in tensors.enumerate() {
            let decay = if self.decay.get(i) == Some(&false) {
                F::ONE
            } else {
                decay
            };
            let chunks = p.chunks_mut(PIECE).zip(g.chunks(PIECE));
            for ((p, g), (m, v)) in chunks.zip(m.chunks_mut(PIECE).zip(v.chunks_mut(PIECE))) {
                pieces.push((p, g, m, v, decay));
            }
        }
        ondo_kernels::pool::for_each_share(&mut pieces, 1, 1, |_, share| {
            for (p, g, m, v, decay) in share.iter_mut() {
                for j in 0..p.len() {
                    let gj = g[j];
                    p[j] *= *decay;
                    m[j] = b1 * m[j] + one_b1 * gj;
                    v[j] = b2 * v[j] + one_b2 * gj * gj;
                    let denom = v[j].sqrt() / bc2_sqrt + eps;
                    p[j] -= step_size * m[j] / denom;
                }
            }
        });
        Ok(())
    }

    /// One optimizer step on gradients summed over `accum` micro-batches: scale them by
    /// 1/`accum`, clip their global norm to `max_norm` (if given), update at `lr`, then zero
    /// them for the next accumulation. Returns the global norm of the averaged gradients
    /// before clipping.
    pub fn apply(
        &mut self,
        params: &mut [&mut [F]],
        grads: &mut [&mut [F]],
        accum: usize,
        max_norm: Option<f64>,
        lr: f64,
    ) -> Result<f64, TrainError> {
        if accum == 0 {
            return Err(TrainError::Optim("gradient accumulation of 0 steps".into()));
        }
        check_lists("gradients", grads, &self.lens())?;
        if accum > 1 {
            scale_grads(grads, 1.0 / accum as f64);
        }
        let norm = match max_norm {
            Some(max) => clip_grad_norm(grads, max),
            None => global_norm(grads),
        };
        self.update(params, grads, lr)?;
        for g in grads.iter_mut() {
            g.fill(F::ZERO);
        }
        Ok(norm)
    }
}

/// Multiplies every gradient by `s`.
pub fn scale_grads<F: Float>(grads: &mut [&mut [F]], s: f64) {
    let s = F::from_f64(s);
    for g in grads.iter_mut().flat_map(|t| t.iter_mut()) {
        *g *= s;
    }
}

/// √(Σ g²) over every element of every tensor, summed in f64.
pub fn global_norm<F: Float>(grads: &[&mut [F]]) -> f64 {
    let sq: f64 = grads
        .iter()
        .flat_map(|t| t.iter())
        .map(|g| g.to_f64() * g.to_f64())
        .sum();
    sq.sqrt()
}

/// PyTorch's `clip_grad_norm_`: with n the global norm, scales every gradient by
/// max_norm / (n + 1e-6) when that is below 1. Returns n (before clipping).
pub fn clip_grad_norm<F: Float>(grads: &mut [&mut [F]], max_norm: f64) -> f64 {
    let n = global_norm(grads);
    let coef = max_norm / (n + 1e-6);
    if coef < 1.0 {
        scale_grads(grads, coef);
    }
    n
}

/// Linear warm-up over `warmup` steps to `peak_lr`, then cosine decay to `min_lr` at step
/// `total`, `min_lr` after. Steps are 0-based optimizer steps: step s < warmup gets
/// peak · (s + 1) / warmup (so the first step already moves and step warmup − 1 reaches the
/// peak); from warmup to total, with p = (s − warmup) / (total − warmup),
/// lr = min + (peak − min) · (1 + cos(π p)) / 2.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    pub total: u64,
}

impl Schedule {
    pub fn validate(&self) -> Result<(), TrainError> {
        let ok = self.peak_lr.is_finite()
            && self.min_lr.is_finite()
            && 0.0 <= self.min_lr
            && self.min_lr <= self.peak_lr
            && self.warmup <= self.total;
        if ok {
            Ok(())
        } else {
            Err(TrainError::Optim(format!(
                "schedule needs 0 ≤ min_lr ≤ peak_lr and warmup ≤ total: {self:?}"
            )))
        }
    }

    /// The learning rate of (0-based) optimizer step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak_lr * (step + 1) as f64 / self.warmup as f64;
        }
        if step >= self.total {
            return self.min_lr;
        }
        let p = (step - self.warmup) as f64 / (self.total - self.warmup) as f64;
        let cos = (1.0 + (std::f64::consts::PI * p).cos()) / 2.0;
        self.min_lr + (self.peak_lr - self.min_lr) * cos
    }
}
