//! Llama hyperparameters read from GGUF metadata (`{arch}.*` keys), validated so the forward
//! pass can index without checks: every count is non-zero and every division is exact.

use ondo_formats::Metadata;

use crate::ModelError;

/// How closely the forward pass follows llama.cpp's CPU numerics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numerics {
    /// Activations rounded to the weight type's `vec_dot_type` (Q8_0/Q8_1/Q8_K/f16) before
    /// every matrix product, keys, values, queries and attention weights at f16 precision:
    /// what llama.cpp computes, so results agree with it closely.
    #[default]
    LlamaCpp,
    /// Everything in f32: slightly more accurate, and deterministic enough to compare fast
    /// paths with the reference tightly.
    Exact,
    /// llama.cpp's numerics but for Q4_1/Q8_0 products, which sum each block's integer
    /// products exactly and round once per block (`ondo_kernels::rows8_sums`) for every token
    /// count: about twice the batched throughput, results within rounding of `LlamaCpp`, and
    /// each sequence's result independent of the batch. What the server runs.
    BlockSums,
}

impl Numerics {
    /// Whether activations, attention and the MLP follow llama.cpp's rounding (everything but
    /// `Exact`).
    pub fn llama_cpp(self) -> bool {
        self != Numerics::Exact
    }
}

/// Llama 3.1-style frequency-dependent RoPE scaling (`rope_freqs` factors), or linear scaling.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Positions are divided by `factor` (`{arch}.rope.scaling.type = linear`).
    Linear { factor: f32 },
    /// Per-frequency divisors, one per rotated pair (`rope_freqs.weight`, Llama 3.1+).
    FreqFactors(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub arch: String,
    pub n_vocab: usize,
    /// Width of the residual stream (n_embd).
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    /// Number of leading dims of each head that are rotated.
    pub rope_dim: usize,
    pub rope_base: f32,
    pub rope_scaling: Option<RopeScaling>,
    pub norm_eps: f32,
    /// Context length the model was trained for.
    pub context_length: usize,
}

/// Upper bounds that keep a hostile file from asking for absurd buffers.
const MAX_DIM: usize = 1 << 16;
const MAX_LAYERS: usize = 1 << 10;
const MAX_HEADS: usize = 1 << 10;

impl LlamaConfig {
    /// Reads the config; `n_vocab` comes from the caller (the embedding's row count).
    pub fn from_metadata(meta: &Metadata, arch: &str, n_vocab: usize) -> Result<Self, ModelError> {
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> {
            let full = key(k);
            let v = meta
                .get_u64(&full)?
                .ok_or(ModelError::MissingKey(full.clone()))?;
            usize::try_from(v).map_err(|_| bad(format!("{full} = {v} is too large")))
        };
        let dim = req("embedding_length")?;
        let n_layers = req("block_count")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = match meta.get_u64(&key("attention.head_count_kv"))? {
            Some(v) => usize::try_from(v).map_err(|_| bad(format!("head_count_kv = {v}")))?,
            None => n_heads,
        };
        let ffn_dim = req("feed_forward_length")?;
        let context_length = match meta.get_u64(&key("context_length"))? {
            Some(v) => usize::try_from(v).unwrap_or(usize::MAX).min(1 << 24),
            None => 4096,
        };
        for (name, v, max) in [
            ("embedding_length", dim, MAX_DIM),
            ("block_count", n_layers, MAX_LAYERS),
            ("attention.head_count", n_heads, MAX_HEADS),
            ("attention.head_count_kv", n_kv_heads, MAX_HEADS),
            ("feed_forward_length", ffn_dim, MAX_DIM * 8),
        ] {
            if v == 0 || v > max {
                return Err(bad(format!("{arch}.{name} = {v} (must be 1..={max})")));
            }
        }
        if dim % n_heads != 0 {
            return Err(bad(format!(
                "embedding_length {dim} is not a multiple of head_count {n_heads}"
            )));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(bad(format!(
                "head_count {n_heads} is not a multiple of head_count_kv {n_kv_heads}"
            )));
        }
        let head_dim = match meta.get_u64(&key("attention.key_length"))? {
            Some(v) if v as usize != dim / n_heads => {
                return Err(bad(format!(
                    "attention.key_length {v} != embedding_length / head_count"
                )))
            }
            _ => dim / n_heads,
        };
        let rope_dim = match meta.get_u64(&key("rope.dimension_count"))? {
            Some(v) => usize::try_from(v).unwrap_or(usize::MAX),
            None => head_dim,
        };
        if rope_dim == 0 || rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(bad(format!(
                "rope.dimension_count {rope_dim} must be even and at most {head_dim}"
            )));
        }
        let rope_base = meta.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(bad(format!(
                "rope.freq_base {rope_base} must be a finite number > 1"
            )));
        }
        let norm_eps = meta
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        if !(norm_eps.is_finite() && norm_eps >= 0.0) {
            return Err(bad(format!(
                "layer_norm_rms_epsilon {norm_eps} must be finite and >= 0"
            )));
        }
        let rope_scaling = match meta.get_str(&key("rope.scaling.type"))? {
            Some("linear") => {
                let factor = meta.get_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0);
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(bad(format!("rope.scaling.factor {factor} must be > 0")));
                }
                (factor != 1.0).then_some(RopeScaling::Linear { factor })
            }
            Some("none") | None => None,
            Some(other) => {
                return Err(bad(format!(
                    "rope.scaling.type '{other}' is not supported (linear, none)"
                )))
            }
        };
        Ok(LlamaConfig {
            arch: arch.to_string(),
            n_vocab,
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim,
            rope_dim,
            rope_base,
            rope_scaling,
            norm_eps,
            context_length,
        })
    }

    /// Width of the keys and values of one position in one layer.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Query heads per key/value head (grouped-query attention).
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

fn bad(msg: String) -> ModelError {
    ModelError::BadHyperparameter(msg)
}
