//! What a block is made of: its shape ([`BlockConfig`]), its frozen weights
//! ([`BlockWeights`], also the holder of their gradients in full fine-tuning) and its LoRA
//! adapters ([`BlockLora`], one per [`Target`] projection, also the holder of their gradients).

use crate::ops::attention::AttnShape;
use crate::ops::linear::{self, Dense};
use crate::ops::lora::Lora;
use crate::{Float, Rng, TrainError};

/// The shape of a block. q_dim = n_heads · head_dim need not equal dim.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockConfig {
    pub dim: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Rotated dims per head (even, ≤ head_dim).
    pub rope_dim: usize,
    pub ffn_dim: usize,
    pub eps: f64,
    pub rope_base: f64,
}

impl BlockConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.dim == 0 || self.n_heads == 0 || self.head_dim == 0 || self.ffn_dim == 0 {
            return bad("dim, n_heads, head_dim and ffn_dim must be positive");
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad("n_heads must be a multiple of n_kv_heads");
        }
        if !self.rope_dim.is_multiple_of(2) || self.rope_dim > self.head_dim {
            return bad("rope_dim must be even and at most head_dim");
        }
        Ok(())
    }

    pub fn attn(&self) -> AttnShape {
        AttnShape {
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// (out, in) of a projection.
    pub fn proj_shape(&self, t: Target) -> (usize, usize) {
        let (d, qd, kvd, f) = (
            self.dim,
            self.attn().q_dim(),
            self.attn().kv_dim(),
            self.ffn_dim,
        );
        match t {
            Target::Q => (qd, d),
            Target::K | Target::V => (kvd, d),
            Target::O => (d, qd),
            Target::Gate | Target::Up => (f, d),
            Target::Down => (d, f),
        }
    }
}

/// The seven projections of a block, the places a LoRA adapter can go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The name `--targets` uses: q, k, v, o, gate, up, down.
    pub fn name(self) -> &'static str {
        ["q", "k", "v", "o", "gate", "up", "down"][self as usize]
    }
}

/// Frozen weights of one block (also the holder of their gradients in full fine-tuning).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWeights<F> {
    /// [dim]
    pub attn_norm: Vec<F>,
    /// [q_dim][dim], [kv_dim][dim], [kv_dim][dim], [dim][q_dim]
    pub wq: Dense<F>,
    pub wk: Dense<F>,
    pub wv: Dense<F>,
    pub wo: Dense<F>,
    /// [dim]
    pub ffn_norm: Vec<F>,
    /// [ffn][dim], [ffn][dim], [dim][ffn]
    pub w_gate: Dense<F>,
    pub w_up: Dense<F>,
    pub w_down: Dense<F>,
}

impl<F: Float> BlockWeights<F> {
    /// Random weights (U(-1/√in, 1/√in), norms near 1), for tests and toy models.
    pub fn random(c: &BlockConfig, seed: u64) -> BlockWeights<F> {
        let mut rng = Rng::new(seed);
        let mut mat = |t: Target| {
            let (o, i) = c.proj_shape(t);
            let b = 1.0 / (i as f64).sqrt();
            Dense::new(o, i, rng.vec_uniform(o * i, -b, b))
        };
        let (wq, wk, wv, wo) = (
            mat(Target::Q),
            mat(Target::K),
            mat(Target::V),
            mat(Target::O),
        );
        let (w_gate, w_up, w_down) = (mat(Target::Gate), mat(Target::Up), mat(Target::Down));
        let mut rng = Rng::new(seed ^ 0x5EED);
        BlockWeights {
            attn_norm: rng.vec_uniform(c.dim, 0.5, 1.5),
            ffn_norm: rng.vec_uniform(c.dim, 0.5, 1.5),
            wq,
            wk,
            wv,
            wo,
            w_gate,
            w_up,
            w_down,
        }
    }

    pub fn proj(&self, t: Target) -> &Dense<F> {
        match t {
            Target::Q => &self.wq,
            Target::K => &self.wk,
            Target::V => &self.wv,
            Target::O => &self.wo,
            Target::Gate => &self.w_gate,
            Target::Up => &self.w_up,
            Target::Down => &self.w_down,
        }
    }

    pub fn proj_mut(&mut self, t: Target) -> &mut Dense<F> {
        match t {
            Target::Q => &mut self.wq,
            Target::K => &mut self.wk,
            Target::V => &mut self.wv,
            Target::O => &mut self.wo,
            Target::Gate => &mut self.w_gate,
            Target::Up => &mut self.w_up,
            Target::Down => &mut self.w_down,
        }
    }

    /// Every weight as a flat slice, in a fixed order (for optimizers and tests).
    pub fn tensors_mut(&mut self) -> Vec<&mut [F]> {
        vec![
            &mut self.attn_norm[..],
            &mut self.wq.w[..],
            &mut self.wk.w[..],
            &mut self.wv.w[..],
            &mut self.wo.w[..],
            &mut self.ffn_norm[..],
            &mut self.w_gate.w[..],
            &mut self.w_up.w[..],
            &mut self.w_down.w[..],
        ]
    }

    /// Every weight as a flat slice, in the order of [`BlockWeights::tensors_mut`].
    pub fn tensors(&self) -> Vec<&[F]> {
        vec![
            &self.attn_norm[..],
            &self.wq.w[..],
            &self.wk.w[..],
            &self.wv.w[..],
            &self.wo.w[..],
            &self.ffn_norm[..],
            &self.w_gate.w[..],
            &self.w_up.w[..],
            &self.w_down.w[..],
        ]
    }

    pub fn zeros_like(&self) -> BlockWeights<F> {
        self.map(|d| d.zeros_like(), |v| vec![F::ZERO; v.len()])
    }

    pub fn cast<G: Float>(&self) -> BlockWeights<G> {
        self.map(|d| d.cast(), |v| linear::cast_vec(v))
    }

    fn map<G>(
        &self,
        mut m: impl FnMut(&Dense<F>) -> Dense<G>,
        mut v: impl FnMut(&[F]) -> Vec<G>,
    ) -> BlockWeights<G> {
        BlockWeights {
            attn_norm: v(&self.attn_norm),
            wq: m(&self.wq),
            wk: m(&self.wk),
            wv: m(&self.wv),
            wo: m(&self.wo),
            ffn_norm: v(&self.ffn_norm),
            w_gate: m(&self.w_gate),
            w_up: m(&self.w_up),
            w_down: m(&self.w_down),
        }
    }
}

/// The LoRA adapters of one block, indexed by [`Target`] (None: no adapter there). The
/// gradients have the same shape (`zeros_like`).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLora<F> {
    pub adapters: [Option<Lora<F>>; 7],
}

impl<F: Float> BlockLora<F> {
    /// No adapters (full fine-tuning, or a frozen block).
    pub fn none() -> BlockLora<F> {
        BlockLora {
            adapters: Default::default(),
        }
    }

    /// PEFT-initialized adapters (A random, B zero) of `rank` on each of `targets`.
    pub fn new(
        c: &BlockConfig,
        targets: &[Target],
        rank: usize,
        alpha: f64,
        seed: u64,
    ) -> BlockLora<F> {
        let mut l = BlockLora::none();
        for &t in targets {
            let (o, i) = c.proj_shape(t);
            let s = seed.wrapping_mul(31).wrapping_add(t as u64);
            l.adapters[t as usize] = Some(Lora::new(i, o, rank, alpha, s));
        }
        l
    }

    pub fn get(&self, t: Target) -> Option<&Lora<F>> {
        self.adapters[t as usize].as_ref()
    }

    /// A then B of every adapter, in target order, as flat slices (for optimizers and tests).
    pub fn tensors_mut(&mut self) -> Vec<&mut [F]> {
        let mut v = Vec::new();
        for l in self.adapters.iter_mut().flatten() {
            v.push(&mut l.a.w[..]);
            v.push(&mut l.b.w[..]);
        }
        v
    }

    pub fn zeros_like(&self) -> BlockLora<F> {
        BlockLora {
            adapters: self.adapters.clone().map(|a| a.map(|l| l.zeros_like())),
        }
    }

    pub fn cast<G: Float>(&self) -> BlockLora<G> {
        BlockLora {
            adapters: self.adapters.clone().map(|a| a.map(|l| l.cast())),
        }
    }
}
