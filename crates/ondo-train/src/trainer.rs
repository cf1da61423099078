//! The training loop's state and one optimizer step: everything a resumed run needs
//! ([`TrainState`]: adapters, AdamW moments, step, RNG, data position, configuration) lives in
//! one struct, so a checkpoint (`checkpoint.rs`) is that struct on disk, plus the model's
//! weights when they train too (`TrainConfig::full`).
//!
//! The optimizer's tensors are the adapters' (`ModelLora::tensors_mut`) followed, in full
//! fine-tuning, by every weight of the model (`ModelWeights::tensors_mut`); the norms' weights
//! are exempt from weight decay.
//!
//! Data order: epoch e visits the examples in a permutation drawn from
//! `Rng::new(seed ^ e·φ)` (Fisher–Yates), so the position (epoch, index) alone says which
//! example comes next; nothing about the order has to be stored.

use crate::data::Example;
use crate::optim::{AdamW, AdamWConfig, Schedule};
use crate::{Model, ModelLora, ModelWeights, Rng, TrainError};
use serde::{Deserialize, Serialize};

/// The hyperparameters of a run (saved in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub adamw: AdamWConfig,
    pub schedule: Schedule,
    /// Micro-batches summed before one optimizer step.
    pub grad_accum: usize,
    /// Sequences per micro-batch, run side by side in one pass (its loss: the mean over their
    /// trained tokens).
    #[serde(default = "one")]
    pub batch: usize,
    /// Global-norm clipping of the averaged gradients; None: no clipping.
    pub max_grad_norm: Option<f64>,
    /// Seeds the data order (and the RNG's start).
    pub seed: u64,
    /// Every weight of the model trains too (full fine-tuning).
    #[serde(default)]
    pub full: bool,
}

fn one() -> usize {
    1
}

/// Where the data stream stands: `index` examples of epoch `epoch`'s order are consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPos {
    pub epoch: u64,
    pub index: u64,
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean of the micro-batches' losses.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub lr: f64,
    /// Tokens the forward passes ran over.
    pub tokens: usize,
}

/// A run in progress (the model's weights, which full fine-tuning changes, live in the
/// [`Model`] that [`TrainState::step`] is given).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub config: TrainConfig,
    pub lora: ModelLora<f32>,
    pub opt: AdamW<f32>,
    /// The run's RNG (for anything stochastic beyond the data order); checkpointed.
    pub rng: Rng,
    pub pos: DataPos,
    /// Full fine-tuning's gradient holder, kept between steps (it is all zeros then).
    pub(crate) scratch: GradScratch,
}

/// A reusable gradient holder: not part of a run's state (a clone starts without one, and
/// any two compare equal), only memory the next step need not allocate and clear again.
#[derive(Default)]
pub(crate) struct GradScratch(Option<ModelWeights<f32>>);

impl Clone for GradScratch {
    fn clone(&self) -> Self {
        GradScratch(None)
    }
}

impl PartialEq for GradScratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for GradScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GradScratch")
    }
}

/// The permutation of 0..n that epoch `epoch` visits.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

impl TrainState {
    /// A fresh run: `lora` as initialized, zero moments, step 0, at the start of epoch 0;
    /// `weights` (the model's, whose shapes the moments take) is read in full fine-tuning.
    pub fn new(
        config: TrainConfig,
        mut lora: ModelLora<f32>,
        weights: &ModelWeights<f32>,
    ) -> Result<TrainState, TrainError> {
        config.schedule.validate()?;
        if config.grad_accum == 0 || config.batch == 0 {
            return Err(TrainError::Config(
                "grad_accum and batch must be at least 1".into(),
            ));
        }
        if config.full && weights.is_quantized() {
            return Err(TrainError::Config(
                "full fine-tuning needs f32 weights, not a quantized base".into(),
            ));
        }
        let mut lens: Vec<usize> = lora.tensors_mut().iter().map(|t| t.len()).collect();
        let mut decay = vec![true; lens.len()];
        if config.full {
            lens.extend(weights.tensors().iter().map(|t| t.len()));
            decay.extend(weights.decay_mask());
        }
        Ok(TrainState {
            opt: AdamW::new(config.adamw, &lens).with_decay_mask(decay)?,
            rng: Rng::new(config.seed),
            pos: DataPos::default(),
            scratch: GradScratch::default(),
            config,
            lora,
        })
    }

    /// One optimizer step: `grad_accum` micro-batches of the next `batch` examples each of the
    /// data order (crossing into the next epoch as needed), their gradients summed, then
    /// [`AdamW::apply`] at the schedule's learning rate.
    pub fn step(
        &mut self,
        model: &mut Model<f32>,
        data: &[Example],
    ) -> Result<StepStats, TrainError> {
        if data.is_empty() {
            return Err(TrainError::Batch("no training examples".into()));
        }
        let mut grad = self.lora.zeros_like();
        let mut full_grad = match self.scratch.0.take() {
            Some(g) if self.config.full => Some(g),
            _ => self.config.full.then(|| model.weights.zeros_like()),
        };
        let mut order = epoch_order(self.config.seed, self.pos.epoch, data.len());
        let (mut loss, mut tokens) = (0.0f64, 0usize);
        for _ in 0..self.config.grad_accum {
            let mut batch = Vec::with_capacity(self.config.batch);
            for _ in 0..self.config.batch {
                if self.pos.index as usize >= data.len() {
                    self.pos = DataPos {
                        epoch: self.pos.epoch + 1,
                        index: 0,
                    };
                    order = epoch_order(self.config.seed, self.pos.epoch, data.len());
                }
                batch.push(&data[order[self.pos.index as usize]]);
                self.pos.index += 1;
            }
            let l =
                model.forward_backward_batch(&self.lora, &batch, &mut grad, full_grad.as_mut())?;
            loss += f64::from(l);
            tokens += batch.iter().map(|e| e.tokens.len()).sum::<usize>();
        }
        let lr = self.config.schedule.lr(self.opt.step);
        let c = &self.config;
        let mut params = self.lora.tensors_mut();
        let mut grads = grad.tensors_mut();
        if let Some(g) = &mut full_grad {
            params.extend(model.weights.tensors_mut());
            grads.extend(g.tensors_mut());
        }
        let grad_norm =
            self.opt
                .apply(&mut params, &mut grads, c.grad_accum, c.max_grad_norm, lr)?;
        drop((params, grads));
        self.scratch.0 = full_grad; // zeroed by `apply`
        Ok(StepStats {
            loss: loss / c.grad_accum as f64,
            grad_norm,
            lr,
            tokens,
        })
    }
}
