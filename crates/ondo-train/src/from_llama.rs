//! The bridge to inference: a training [`Model`] from a loaded [`LlamaModel`] (its block
//! matrices kept quantized, multiplied by the inference kernels, or dequantized to f32, the
//! same values inference multiplies by; embedding and norms always f32), and trained adapters
//! as `ondo_model::lora::LoraDelta`s (A [r][in], B [out][r], scale alpha/r: the layout both
//! sides share), ready for the GGUF and PEFT adapter writers.

use ondo_model::lora::LoraDelta;
use ondo_model::{LlamaModel, QWeight};

use crate::{
    BlockConfig, BlockWeights, Dense, Model, ModelConfig, ModelLora, ModelWeights, Target,
    TrainError,
};

fn dense(w: &QWeight) -> Dense<f32> {
    let mut v = vec![0.0f32; w.rows * w.cols];
    for (r, row) in v.chunks_exact_mut(w.cols.max(1)).enumerate() {
        w.dequantize_row(r, row);
    }
    Dense::new(w.rows, w.cols, v)
}

/// How the training model holds the base's block matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseWeights {
    /// As inference holds them (QLoRA-style): frozen, for LoRA training.
    Quantized,
    /// Dequantized to f32: needed to train them (full fine-tuning).
    F32,
}

/// A training model from `m`'s weights, for sequences of up to `max_seq` tokens. Tied output
/// projections stay tied. RoPE scaling (Llama 3.1) is not supported yet.
pub fn model_from_llama(
    m: &LlamaModel,
    max_seq: usize,
    base: BaseWeights,
) -> Result<Model<f32>, TrainError> {
    let c = &m.config;
    if c.rope_scaling.is_some() {
        return Err(TrainError::Config(
            "training models with RoPE scaling is not supported yet".into(),
        ));
    }
    let config = ModelConfig {
        n_vocab: c.n_vocab,
        n_layers: c.n_layers,
        max_seq,
        block: BlockConfig {
            dim: c.dim,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            rope_dim: c.rope_dim,
            ffn_dim: c.ffn_dim,
            eps: f64::from(c.norm_eps),
            rope_base: f64::from(c.rope_base),
        },
    };
    let mat = |w: &QWeight| match base {
        BaseWeights::Quantized => Dense::quantized(w.clone()),
        BaseWeights::F32 => dense(w),
    };
    let tied = m.output.bytes() == m.token_embd.bytes() && m.output.dtype == m.token_embd.dtype;
    let embd = mat(&m.token_embd);
    let out = mat(&m.output);
    let weights = ModelWeights {
        embd,
        blocks: m
            .layers
            .iter()
            .map(|l| BlockWeights {
                attn_norm: l.attn_norm.clone(),
                wq: mat(&l.wq),
                wk: mat(&l.wk),
                wv: mat(&l.wv),
                wo: mat(&l.wo),
                ffn_norm: l.ffn_norm.clone(),
                w_gate: mat(&l.w_gate),
                w_up: mat(&l.w_up),
                w_down: mat(&l.w_down),
            })
            .collect(),
        norm: m.output_norm.clone(),
        output: (!tied).then_some(out),
    };
    Model::new(config, weights)
}

/// The GGUF tensor a block's projection is.
pub fn gguf_name(layer: usize, t: Target) -> String {
    let name = match t {
        Target::Q => "attn_q",
        Target::K => "attn_k",
        Target::V => "attn_v",
        Target::O => "attn_output",
        Target::Gate => "ffn_gate",
        Target::Up => "ffn_up",
        Target::Down => "ffn_down",
    };
    format!("blk.{layer}.{name}.weight")
}

/// Every weight of `w` under its GGUF tensor name (the output projection only when untied), for
/// writing a fully fine-tuned model back: the training model keeps GGUF's row order (Q and K
/// rows permuted for RoPE as llama.cpp stores them), so values go back as they are.
pub fn named_weights(w: &ModelWeights<f32>) -> Vec<(String, &[f32])> {
    let mut out: Vec<(String, &[f32])> = vec![("token_embd.weight".into(), &w.embd.w[..])];
    for (l, b) in w.blocks.iter().enumerate() {
        out.push((format!("blk.{l}.attn_norm.weight"), &b.attn_norm[..]));
        out.push((format!("blk.{l}.ffn_norm.weight"), &b.ffn_norm[..]));
        for t in Target::ALL {
            out.push((gguf_name(l, t), &b.proj(t).w[..]));
        }
    }
    out.push(("output_norm.weight".into(), &w.norm[..]));
    if let Some(o) = &w.output {
        out.push(("output.weight".into(), &o.w[..]));
    }
    out
}

/// Every adapter as (GGUF tensor name, delta), block by block in target order.
pub fn lora_deltas(lora: &ModelLora<f32>) -> Vec<(String, LoraDelta)> {
    let mut out = Vec::new();
    for (l, b) in lora.blocks.iter().enumerate() {
        for t in Target::ALL {
            if let Some(a) = b.get(t) {
                out.push((
                    gguf_name(l, t),
                    LoraDelta {
                        rank: a.rank(),
                        a: a.a.w.clone(),
                        b: a.b.w.clone(),
                        scale: a.scale,
                        slot: None,
                    },
                ));
            }
        }
    }
    out
}
