//! Rotary position embeddings, llama.cpp's "normal" mode used by GGUF Llama models: adjacent
//! pairs (x[2i], x[2i+1]) of each head's first `rope_dim` dims rotate by theta_i, where
//! theta_0 = pos and theta_{i+1} = theta_i * base^(-2/rope_dim), computed by repeated f32
//! multiplication exactly as ggml's rope cache does; Llama 3.1 scaling divides theta_i by a
//! per-pair frequency factor, linear scaling multiplies it by 1/factor.
//! (convert_hf_to_gguf.py permutes Q/K rows so this matches HF's rotate_half layout.)

use crate::{LlamaConfig, RopeScaling};

pub struct Rope {
    theta_scale: f32,
    half: usize,
    scaling: Option<RopeScaling>,
    head_dim: usize,
}

impl Rope {
    pub fn new(cfg: &LlamaConfig) -> Rope {
        Rope {
            theta_scale: cfg.rope_base.powf(-2.0 / cfg.rope_dim as f32),
            half: cfg.rope_dim / 2,
            scaling: cfg.rope_scaling.clone(),
            head_dim: cfg.head_dim,
        }
    }

    /// Rotated pairs per head (`rope_dim / 2`).
    pub fn pairs(&self) -> usize {
        self.half
    }

    /// (cos, sin) of every rotated pair at position `pos` into `out` (`pairs()` long).
    pub fn angles_into(&self, pos: usize, out: &mut [(f32, f32)]) {
        let mut theta = pos as f32;
        for (i, o) in out.iter_mut().enumerate().take(self.half) {
            let t = match &self.scaling {
                Some(RopeScaling::Linear { factor }) => theta * (1.0 / factor),
                Some(RopeScaling::FreqFactors(f)) => theta / f[i],
                None => theta,
            };
            theta *= self.theta_scale;
            let (sin, cos) = t.sin_cos();
            *o = (cos, sin);
        }
    }

    /// Rotates every head in `x` ([n_heads][head_dim]) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let mut angles = vec![(0.0, 0.0); self.half];
        self.angles_into(pos, &mut angles);
        self.apply_angles(x, &angles);
    }

    /// Rotates every head in `x` by precomputed `angles` (from [`Rope::angles_into`]).
    pub fn apply_angles(&self, x: &mut [f32], angles: &[(f32, f32)]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: FMA is available. (Without it `mul_add` is a libm call: same values.)
            return unsafe { self.apply_angles_fma(x, angles) };
        }
        self.rotate(x, angles);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn apply_angles_fma(&self, x: &mut [f32], angles: &[(f32, f32)]) {
        self.rotate(x, angles);
    }

    #[inline(always)]
    fn rotate(&self, x: &mut [f32], angles: &[(f32, f32)]) {
        for head in x.chunks_exact_mut(self.head_dim) {
            for (i, &(cos, sin)) in angles.iter().enumerate() {
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                // One product of each pair fused, as ggml's rope kernel compiles.
                head[2 * i] = a.mul_add(cos, -(b * sin));
                head[2 * i + 1] = a.mul_add(sin, b * cos);
            }
        }
    }
}
