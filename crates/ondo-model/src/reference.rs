//! The reference forward pass: one token at a time, scalar kernels, every shape written down,
//! in the spirit of llama2.c. It is slow on purpose and stays forever: every fast path
//! (`LlamaModel::forward`, SIMD kernels, batching) is tested against it.

use ondo_kernels::reference::{dequantize_row, dot_row};
use ondo_kernels::{f16_to_f32, round_activations};

use crate::kv::round_f16;

use crate::{KvCache, LlamaModel, ModelError, Numerics, QWeight};

/// out[r] = sum_c w[r][c] * x[c] — w: [rows][cols], x: [cols], out: [rows].
/// Under `Numerics::LlamaCpp`, x is first rounded as llama.cpp rounds activations for w's type.
fn matvec(w: &QWeight, x: &[f32], out: &mut [f32], numerics: Numerics) {
    let mut xr = x.to_vec();
    if numerics.llama_cpp() {
        round_activations(w.dtype, x, &mut xr);
    }
    let x = &xr;
    let rb = w.bytes().len() / w.rows;
    for (r, o) in out.iter_mut().enumerate() {
        *o = dot_row(w.dtype, &w.bytes()[r * rb..(r + 1) * rb], x);
    }
}

/// out = x / sqrt(mean(x²) + eps) * weight — all [dim]
fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for i in 0..x.len() {
        out[i] = x[i] * inv * weight[i];
    }
}

fn softmax(x: &mut [f32]) {
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Evaluates one token at position `kv.len()`, appends its keys and values, returns logits [n_vocab].
pub fn forward_token(m: &LlamaModel, token: u32, kv: &mut KvCache) -> Result<Vec<f32>, ModelError> {
    let c = &m.config;
    kv.check_room(1)?;
    if token as usize >= c.n_vocab {
        return Err(ModelError::BadToken {
            id: token,
            n_vocab: c.n_vocab,
        });
    }
    let pos = kv.len();
    let (dim, kv_dim, hd) = (c.dim, c.kv_dim(), c.head_dim);

    // x: [dim] = token_embd[token]
    let mut x = vec![0.0f32; dim];
    let rb = m.token_embd.bytes().len() / c.n_vocab;
    let t = token as usize;
    dequantize_row(
        m.token_embd.dtype,
        &m.token_embd.bytes()[t * rb..(t + 1) * rb],
        &mut x,
    );

    let mut xb = vec![0.0f32; dim]; // [dim]
    let mut q = vec![0.0f32; dim]; // [n_heads][head_dim]
    let mut k = vec![0.0f32; kv_dim]; // [n_kv_heads][head_dim]
    let mut v = vec![0.0f32; kv_dim]; // [n_kv_heads][head_dim]
    let mut att = vec![0.0f32; dim]; // [n_heads][head_dim]
    let mut o = vec![0.0f32; dim]; // [dim]
    let mut gate = vec![0.0f32; c.ffn_dim]; // [ffn_dim]
    let mut up = vec![0.0f32; c.ffn_dim]; // [ffn_dim]

    for (l, w) in m.layers.iter().enumerate() {
        // attention
        rmsnorm(&mut xb, &x, &w.attn_norm, c.norm_eps);
        matvec(&w.wq, &xb, &mut q, m.numerics);
        matvec(&w.wk, &xb, &mut k, m.numerics);
        matvec(&w.wv, &xb, &mut v, m.numerics);
        m.rope.apply(&mut q, pos);
        m.rope.apply(&mut k, pos);
        // The cache holds f16 values (llama.cpp's default KV type).
        kv.write(l, pos, &k, &v);
        // llama.cpp dots f16 keys with q converted to f16.
        let mut q16 = q.clone();
        round_f16(&mut q16, m.numerics);
        for h in 0..c.n_heads {
            let kvh = h / c.group_size();
            let keys = kv.head_keys(l, kvh, pos + 1); // [pos+1][head_dim]
            let values = kv.head_values(l, kvh, pos + 1); // [pos+1][head_dim]
            let qh = &q16[h * hd..(h + 1) * hd];
            // scores: [pos+1]
            let mut scores: Vec<f32> = (0..=pos)
                .map(|p| {
                    let kp = &keys[p * hd..(p + 1) * hd];
                    let dot = match m.numerics {
                        Numerics::LlamaCpp | Numerics::BlockSums => {
                            ondo_kernels::ggml_math::dot_lanes8(qh, kp)
                        }
                        Numerics::Exact => qh.iter().zip(kp).map(|(a, b)| a * f16_to_f32(*b)).sum(),
                    };
                    dot * (1.0 / (hd as f32).sqrt())
                })
                .collect();
            match m.numerics {
                Numerics::LlamaCpp | Numerics::BlockSums => {
                    ondo_kernels::ggml_math::softmax_ggml(&mut scores)
                }
                Numerics::Exact => softmax(&mut scores),
            }
            // ... and weights f16 values with probabilities converted to f16.
            round_f16(&mut scores, m.numerics);
            let out = &mut att[h * hd..(h + 1) * hd];
            if m.numerics.llama_cpp() {
                // tinyBLAS's accumulation order (see ondo_kernels::ggml_math).
                ondo_kernels::ggml_math::weighted_sum_lanes8(out, &scores, values, hd);
                continue;
            }
            out.fill(0.0);
            for (p, s) in scores.iter().enumerate() {
                let vp = &values[p * hd..(p + 1) * hd];
                for d in 0..hd {
                    out[d] += s * f16_to_f32(vp[d]);
                }
            }
        }
        matvec(&w.wo, &att, &mut o, m.numerics);
        for i in 0..dim {
            x[i] += o[i];
        }

        // feed-forward: down(silu(gate(x)) * up(x))
        rmsnorm(&mut xb, &x, &w.ffn_norm, c.norm_eps);
        matvec(&w.w_gate, &xb, &mut gate, m.numerics);
        matvec(&w.w_up, &xb, &mut up, m.numerics);
        for i in 0..c.ffn_dim {
            let g = gate[i];
            gate[i] = match m.numerics {
                Numerics::LlamaCpp | Numerics::BlockSums => {
                    ondo_kernels::ggml_math::silu_ggml(g) * up[i]
                }
                Numerics::Exact => g / (1.0 + (-g).exp()) * up[i],
            };
        }
        matvec(&w.w_down, &gate, &mut o, m.numerics);
        for i in 0..dim {
            x[i] += o[i];
        }
    }
    kv.set_len(pos + 1);

    rmsnorm(&mut xb, &x, &m.output_norm, c.norm_eps);
    let mut logits = vec![0.0f32; c.n_vocab]; // [n_vocab]
    matvec(&m.output, &xb, &mut logits, m.numerics);
    Ok(logits)
}
