//! A whole Llama model for training: embedding → blocks → final RMSNorm → output projection →
//! masked cross-entropy, with one call for the loss and one for loss + gradients (of one
//! sequence, or of a batch of them in one pass).
//!
//!   x0 = E[tokens]                       [n][dim]
//!   x_{l+1} = block_l(x_l)               [n][dim]
//!   logits = rmsnorm(x_L, norm) Woutᵀ    [n][vocab]   (Wout = E when tied)
//!   loss = mean over masked t of -log softmax(logits_t)[target_t]

use crate::block::{block_backward, block_forward};
use crate::data::Example;
use crate::ops::linear::{self, Dense};
use crate::ops::rope::RopeTable;
use crate::ops::{cross_entropy, embedding, rmsnorm};
use crate::params::{BlockConfig, BlockLora, BlockWeights, Target};
use crate::{Float, Rng, TrainError};

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub n_vocab: usize,
    pub n_layers: usize,
    /// Longest sequence a batch may hold (the rope table's length).
    pub max_seq: usize,
    pub block: BlockConfig,
}

/// The model's weights (also the holder of their gradients in full fine-tuning).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelWeights<F> {
    /// [n_vocab][dim]
    pub embd: Dense<F>,
    pub blocks: Vec<BlockWeights<F>>,
    /// [dim]
    pub norm: Vec<F>,
    /// [n_vocab][dim]; None: tied to `embd`
    pub output: Option<Dense<F>>,
}

impl<F: Float> ModelWeights<F> {
    /// Random weights for tests and toy models.
    pub fn random(c: &ModelConfig, tied: bool, seed: u64) -> ModelWeights<F> {
        let (v, d) = (c.n_vocab, c.block.dim);
        let mut rng = Rng::new(seed);
        ModelWeights {
            embd: Dense::new(v, d, rng.vec_uniform(v * d, -1.0, 1.0)),
            blocks: (0..c.n_layers)
                .map(|l| BlockWeights::random(&c.block, seed.wrapping_add(1 + l as u64)))
                .collect(),
            norm: rng.vec_uniform(d, 0.5, 1.5),
            output: (!tied).then(|| Dense::new(v, d, rng.vec_uniform(v * d, -0.5, 0.5))),
        }
    }

    /// Every weight as a flat slice, in a fixed order (for optimizers and tests).
    pub fn tensors_mut(&mut self) -> Vec<&mut [F]> {
        let mut t = vec![&mut self.embd.w[..]];
        for b in &mut self.blocks {
            t.extend(b.tensors_mut());
        }
        t.push(&mut self.norm[..]);
        if let Some(o) = &mut self.output {
            t.push(&mut o.w[..]);
        }
        t
    }

    /// Per entry of [`ModelWeights::tensors_mut`]: false for the RMSNorm weights, which
    /// AdamW leaves undecayed (as Hugging Face's trainer does), true for the matrices.
    pub fn decay_mask(&self) -> Vec<bool> {
        let block = [false, true, true, true, true, false, true, true, true];
        let mut m = vec![true];
        for _ in &self.blocks {
            m.extend(block);
        }
        m.push(false);
        if self.output.is_some() {
            m.push(true);
        }
        m
    }

    /// Whether some matrix is a quantized base (which cannot train).
    pub fn is_quantized(&self) -> bool {
        self.embd.is_quantized()
            || self.output().is_quantized()
            || self
                .blocks
                .iter()
                .any(|b| Target::ALL.iter().any(|&t| b.proj(t).is_quantized()))
    }

    /// Every weight as a flat slice, in the order of [`ModelWeights::tensors_mut`].
    pub fn tensors(&self) -> Vec<&[F]> {
        let mut t = vec![&self.embd.w[..]];
        for b in &self.blocks {
            t.extend(b.tensors());
        }
        t.push(&self.norm[..]);
        if let Some(o) = &self.output {
            t.push(&o.w[..]);
        }
        t
    }

    pub fn zeros_like(&self) -> ModelWeights<F> {
        ModelWeights {
            embd: self.embd.zeros_like(),
            blocks: self.blocks.iter().map(|b| b.zeros_like()).collect(),
            norm: vec![F::ZERO; self.norm.len()],
            output: self.output.as_ref().map(|o| o.zeros_like()),
        }
    }

    pub fn cast<G: Float>(&self) -> ModelWeights<G> {
        ModelWeights {
            embd: self.embd.cast(),
            blocks: self.blocks.iter().map(|b| b.cast()).collect(),
            norm: linear::cast_vec(&self.norm),
            output: self.output.as_ref().map(|o| o.cast()),
        }
    }

    /// The output projection (the embedding when tied).
    pub fn output(&self) -> &Dense<F> {
        self.output.as_ref().unwrap_or(&self.embd)
    }
}

/// LoRA adapters for every block (its gradient has the same shape: `zeros_like`).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelLora<F> {
    pub blocks: Vec<BlockLora<F>>,
}

impl<F: Float> ModelLora<F> {
    /// PEFT-initialized adapters (A random, B zero) on `targets` of every block.
    pub fn new(c: &ModelConfig, targets: &[Target], rank: usize, alpha: f64, seed: u64) -> Self {
        ModelLora {
            blocks: (0..c.n_layers)
                .map(|l| {
                    let s = seed.wrapping_mul(1000).wrapping_add(l as u64);
                    BlockLora::new(&c.block, targets, rank, alpha, s)
                })
                .collect(),
        }
    }

    /// No adapters anywhere (full fine-tuning).
    pub fn none(c: &ModelConfig) -> Self {
        ModelLora {
            blocks: (0..c.n_layers).map(|_| BlockLora::none()).collect(),
        }
    }

    /// A and B of every adapter, block by block, as flat slices.
    pub fn tensors_mut(&mut self) -> Vec<&mut [F]> {
        self.blocks
            .iter_mut()
            .flat_map(|b| b.tensors_mut())
            .collect()
    }

    pub fn zeros_like(&self) -> Self {
        ModelLora {
            blocks: self.blocks.iter().map(|b| b.zeros_like()).collect(),
        }
    }

    pub fn cast<G: Float>(&self) -> ModelLora<G> {
        ModelLora {
            blocks: self.blocks.iter().map(|b| b.cast()).collect(),
        }
    }
}

/// Config, frozen weights and the rope table.
pub struct Model<F> {
    pub config: ModelConfig,
    pub weights: ModelWeights<F>,
    rope: RopeTable<F>,
}

impl<F: Float> Model<F> {
    /// Checks every shape against the config.
    pub fn new(config: ModelConfig, weights: ModelWeights<F>) -> Result<Model<F>, TrainError> {
        let c = &config.block;
        c.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        let (v, d) = (config.n_vocab, c.dim);
        if v == 0 || config.max_seq == 0 {
            return bad("n_vocab and max_seq must be positive".into());
        }
        if weights.blocks.len() != config.n_layers {
            return bad(format!(
                "{} blocks for n_layers {}",
                weights.blocks.len(),
                config.n_layers
            ));
        }
        let shape_ok = |m: &Dense<F>, r, cols| m.rows == r && m.cols == cols;
        if !shape_ok(&weights.embd, v, d) || !shape_ok(weights.output(), v, d) {
            return bad("embedding or output is not [n_vocab][dim]".into());
        }
        if weights.norm.len() != d {
            return bad("final norm is not [dim]".into());
        }
        for (l, b) in weights.blocks.iter().enumerate() {
            let projs_ok = Target::ALL.iter().all(|&t| {
                let (o, i) = c.proj_shape(t);
                shape_ok(b.proj(t), o, i)
            });
            if !projs_ok || b.attn_norm.len() != d || b.ffn_norm.len() != d {
                return bad(format!(
                    "block {l}: a weight's shape disagrees with the config"
                ));
            }
        }
        let rope = RopeTable::new(
            c.head_dim,
            c.rope_dim,
            F::from_f64(c.rope_base),
            config.max_seq,
        );
        Ok(Model {
            config,
            weights,
            rope,
        })
    }

    fn check_batch(
        &self,
        lora: &ModelLora<F>,
        tokens: &[u32],
        targets: &[u32],
        mask: &[bool],
        lens: &[usize],
    ) -> Result<(), TrainError> {
        let (n, c) = (tokens.len(), &self.config);
        let longest = lens.iter().copied().max().unwrap_or(0);
        let lens_ok = lens.iter().all(|&m| m > 0) && lens.iter().sum::<usize>() == n;
        if n == 0 || longest > c.max_seq || !lens_ok || targets.len() != n || mask.len() != n {
            let m = format!(
                "{n} tokens in sequences of {lens:?}, {} targets, {} mask (max_seq {})",
                targets.len(),
                mask.len(),
                c.max_seq
            );
            return Err(TrainError::Batch(m));
        }
        if let Some(&id) = tokens
            .iter()
            .chain(targets)
            .find(|&&t| t as usize >= c.n_vocab)
        {
            return Err(TrainError::BadToken {
                id,
                n_vocab: c.n_vocab,
            });
        }
        if lora.blocks.len() != c.n_layers {
            return Err(TrainError::Batch(
                "adapters for a different layer count".into(),
            ));
        }
        Ok(())
    }

    /// The mean masked cross-entropy of one sequence (tokens: [n], targets: [n], mask: [n]).
    pub fn loss(
        &self,
        lora: &ModelLora<F>,
        tokens: &[u32],
        targets: &[u32],
        mask: &[bool],
    ) -> Result<F, TrainError> {
        self.run(lora, tokens, targets, mask, &[tokens.len()], None)
    }

    /// [`Model::forward_backward`] over a batch of sequences in one pass (their rows side by
    /// side in every product, attention within each): the loss is the mean over the masked
    /// tokens of all of them.
    pub fn forward_backward_batch(
        &self,
        lora: &ModelLora<F>,
        batch: &[&Example],
        lora_grad: &mut ModelLora<F>,
        full: Option<&mut ModelWeights<F>>,
    ) -> Result<F, TrainError> {
        let lens: Vec<usize> = batch.iter().map(|e| e.tokens.len()).collect();
        let cat = |f: fn(&Example) -> &[u32]| -> Vec<u32> {
            batch.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let (tokens, targets) = (cat(|e| &e.tokens), cat(|e| &e.targets));
        let mask: Vec<bool> = batch.iter().flat_map(|e| e.mask.iter().copied()).collect();
        let grads = Some((lora_grad, full));
        self.run(lora, &tokens, &targets, &mask, &lens, grads)
    }

    /// The loss, adding d loss / d adapters into `lora_grad` (same shape as `lora`) and, if
    /// `full` is given (a `zeros_like` of the weights), d loss / d every weight into it.
    pub fn forward_backward(
        &self,
        lora: &ModelLora<F>,
        tokens: &[u32],
        targets: &[u32],
        mask: &[bool],
        lora_grad: &mut ModelLora<F>,
        full: Option<&mut ModelWeights<F>>,
    ) -> Result<F, TrainError> {
        let lens = [tokens.len()];
        self.run(lora, tokens, targets, mask, &lens, Some((lora_grad, full)))
    }

    /// The forward, then the backward when `grads` holds the gradient holders; the rows are
    /// sequences of `lens` tokens.
    fn run(
        &self,
        lora: &ModelLora<F>,
        tokens: &[u32],
        targets: &[u32],
        mask: &[bool],
        lens: &[usize],
        grads: Option<(&mut ModelLora<F>, Option<&mut ModelWeights<F>>)>,
    ) -> Result<F, TrainError> {
        self.check_batch(lora, tokens, targets, mask, lens)?;
        if let Some((lg, full)) = &grads {
            let same = |a: &BlockLora<F>, b: &BlockLora<F>| {
                Target::ALL.iter().all(|&t| match (a.get(t), b.get(t)) {
                    (Some(x), Some(y)) => x.a.w.len() == y.a.w.len() && x.b.w.len() == y.b.w.len(),
                    (x, y) => x.is_none() && y.is_none(),
                })
            };
            let lora_ok = lg.blocks.len() == lora.blocks.len()
                && lora.blocks.iter().zip(&lg.blocks).all(|(a, b)| same(a, b));
            let full_ok = full.as_ref().is_none_or(|f| {
                f.blocks.len() == self.weights.blocks.len()
                    && f.output.is_some() == self.weights.output.is_some()
            });
            if !lora_ok || !full_ok {
                return Err(TrainError::Batch(
                    "a gradient holder of another shape".into(),
                ));
            }
        }
        let (c, w) = (&self.config.block, &self.weights);
        let (n, dim) = (tokens.len(), c.dim);
        let eps = F::from_f64(c.eps);

        // forward, keeping every block's activations
        let mut x = vec![F::ZERO; n * dim];
        embedding::forward(&w.embd, tokens, &mut x);
        let mut acts = Vec::with_capacity(w.blocks.len());
        for (bw, bl) in w.blocks.iter().zip(&lora.blocks) {
            let (out, a) = block_forward(c, &self.rope, bw, bl, &x, lens, 0);
            acts.push(a);
            x = out;
        }
        let (mut r, mut xn) = (vec![F::ZERO; n], vec![F::ZERO; n * dim]);
        rmsnorm::forward(&x, &w.norm, eps, &mut xn, &mut r);
        let mut logits = vec![F::ZERO; n * self.config.n_vocab];
        linear::forward(w.output(), &xn, &mut logits);
        let mut dlogits = vec![F::ZERO; logits.len()];
        let loss = cross_entropy::forward_backward(&logits, targets, mask, F::ONE, &mut dlogits);
        let Some((lora_grad, mut full)) = grads else {
            return Ok(loss);
        };

        // backward
        let mut dxn = vec![F::ZERO; n * dim];
        linear::backward_x(w.output(), &dlogits, &mut dxn);
        if let Some(f) = full.as_deref_mut() {
            let dout = f.output.as_mut().unwrap_or(&mut f.embd);
            linear::backward_w(&xn, &dlogits, dout);
        }
        let mut dx = vec![F::ZERO; n * dim];
        let dnorm = full.as_deref_mut().map(|f| f.norm.as_mut_slice());
        rmsnorm::backward(&x, &w.norm, &r, &dxn, &mut dx, dnorm);
        for (l, a) in acts.iter().enumerate().rev() {
            let fb = full.as_deref_mut().map(|f| &mut f.blocks[l]);
            let (bw, bl, bg) = (&w.blocks[l], &lora.blocks[l], &mut lora_grad.blocks[l]);
            dx = block_backward(c, &self.rope, bw, bl, a, &dx, bg, fb);
        }
        if let Some(f) = full {
            embedding::backward(tokens, &dx, &mut f.embd);
        }
        Ok(loss)
    }
}
