//! Rotary position embeddings, llama.cpp's "normal" mode used by GGUF Llama models: adjacent
//! pairs (x[2i], x[2i+1]) of each head's first `rope_dim` dims rotate by pos * theta_i, with
//! theta_i = base^(-2i/rope_dim), divided by a frequency factor under Llama 3.1 scaling.
//! (convert_hf_to_gguf.py permutes Q/K rows so this matches HF's rotate_half layout.)

use crate::{LlamaConfig, RopeScaling};

pub struct Rope {
    /// One angle per rotated pair, at position 1.
    inv_freq: Vec<f32>,
    /// Positions are multiplied by this (1 / linear factor).
    pos_scale: f32,
    head_dim: usize,
}

impl Rope {
    pub fn new(cfg: &LlamaConfig) -> Rope {
        let half = cfg.rope_dim / 2;
        // theta_i = base^(-2i/d) by repeated multiplication in f32, exactly as ggml computes it.
        let theta_scale = cfg.rope_base.powf(-2.0 / cfg.rope_dim as f32);
        let mut inv_freq = Vec::with_capacity(half);
        let mut theta = 1.0f32;
        for _ in 0..half {
            inv_freq.push(theta);
            theta *= theta_scale;
        }
        let mut pos_scale = 1.0;
        match &cfg.rope_scaling {
            Some(RopeScaling::Linear { factor }) => pos_scale = 1.0 / factor,
            Some(RopeScaling::FreqFactors(f)) => {
                for (w, d) in inv_freq.iter_mut().zip(f) {
                    *w /= d;
                }
            }
            None => {}
        }
        Rope {
            inv_freq,
            pos_scale,
            head_dim: cfg.head_dim,
        }
    }

    /// Rotates every head in `x` ([n_heads][head_dim]) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let p = pos as f32 * self.pos_scale;
        for head in x.chunks_exact_mut(self.head_dim) {
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let (sin, cos) = (p * f).sin_cos();
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * cos - b * sin;
                head[2 * i + 1] = a * sin + b * cos;
            }
        }
    }
}
