//! The fast batched forward pass agrees with the scalar reference, on a small random model
//! written with the GGUF writer (several quant types) and on the real default model when cached.

use std::path::PathBuf;
use std::sync::Arc;

use ondo_formats::{GgmlType, GgufFile, GgufWriter, Value};
use ondo_kernels::DType;
use ondo_model::{load_model, reference, LlamaModel, Logits, Numerics};

struct Xorshift(u64);
impl Xorshift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A random Llama with dim 256 (so K-quants fit), 2 layers, GQA 4/2, vocab 300.
fn tiny_model(types: &[DType]) -> Arc<GgufFile> {
    let (dim, ffn, vocab, layers) = (256usize, 512usize, 300usize, 2usize);
    let mut rng = Xorshift(0x1234_5678_9abc_def1);
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::Str("llama".into()));
    w.add_kv("llama.embedding_length", Value::U32(dim as u32));
    w.add_kv("llama.block_count", Value::U32(layers as u32));
    w.add_kv("llama.feed_forward_length", Value::U32(ffn as u32));
    w.add_kv("llama.attention.head_count", Value::U32(4));
    w.add_kv("llama.attention.head_count_kv", Value::U32(2));
    w.add_kv("llama.context_length", Value::U32(128));
    w.add_kv("llama.rope.freq_base", Value::F32(10000.0));
    w.add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    let mut ti = 0usize;
    let mut tensor =
        |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, dtype: DType, scale: f32| {
            let vals: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
            let mut bytes = vec![0u8; dtype.row_bytes(cols).unwrap() * rows];
            let rb = dtype.row_bytes(cols).unwrap();
            if let Some(scales) = k_quant_scale_offsets(dtype) {
                // No K-quant quantizer here: random bits with small, finite f16 scales.
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = (vals[i % vals.len()].to_bits() >> 7) as u8;
                }
                for block in bytes.chunks_exact_mut(dtype.block_bytes()) {
                    for &o in scales {
                        let d =
                            ondo_kernels::f32_to_f16(scale * 0.01 * (1.0 + rng.next_f32().abs()));
                        block[o..o + 2].copy_from_slice(&d.to_le_bytes());
                    }
                }
            } else {
                for r in 0..rows {
                    ondo_kernels::quantize_row(
                        dtype,
                        &vals[r * cols..(r + 1) * cols],
                        &mut bytes[r * rb..(r + 1) * rb],
                    )
                    .unwrap();
                }
            }
            let dims: Vec<u64> = if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            };
            w.add_tensor(name, &dims, GgmlType(dtype.ggml_id()), bytes);
        };
    let mut pick = || {
        ti += 1;
        types[ti % types.len()]
    };
    tensor(&mut w, "token_embd.weight", vocab, dim, pick(), 1.0);
    for l in 0..layers {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        tensor(&mut w, &n("attn_norm"), 1, dim, DType::F32, 1.0);
        tensor(&mut w, &n("ffn_norm"), 1, dim, DType::F32, 1.0);
        tensor(&mut w, &n("attn_q"), dim, dim, pick(), 0.2);
        tensor(&mut w, &n("attn_k"), 128, dim, pick(), 0.2);
        tensor(&mut w, &n("attn_v"), 128, dim, pick(), 0.2);
        tensor(&mut w, &n("attn_output"), dim, dim, pick(), 0.1);
        tensor(&mut w, &n("ffn_gate"), ffn, dim, pick(), 0.1);
        tensor(&mut w, &n("ffn_up"), ffn, dim, pick(), 0.1);
        tensor(&mut w, &n("ffn_down"), dim, ffn, pick(), 0.1);
    }
    tensor(&mut w, "output_norm.weight", 1, dim, DType::F32, 1.0);
    tensor(&mut w, "output.weight", vocab, dim, pick(), 0.2);
    Arc::new(GgufFile::from_bytes(w.to_bytes()).expect("tiny model parses"))
}

/// Byte offsets of the f16 super-block scales (d, dmin) of the K-quant block layouts.
fn k_quant_scale_offsets(dtype: DType) -> Option<&'static [usize]> {
    match dtype {
        DType::Q2_K => Some(&[80, 82]),
        DType::Q3_K => Some(&[108]),
        DType::Q4_K | DType::Q5_K => Some(&[0, 2]),
        DType::Q6_K => Some(&[208]),
        _ => None,
    }
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Batched forward over `tokens` vs the reference fed token by token: every position's logits.
///
/// Under `Numerics::Exact` the two differ only by the order of float additions, so `tol` is
/// tight. Under `Numerics::LlamaCpp` activations are re-quantized to 8 bits before every
/// product, which turns tiny differences into whole quantization steps now and then (as in
/// llama.cpp itself), so the callers pass a looser bound there.
fn check_against_reference(model: &LlamaModel, tokens: &[u32], tol: f32) {
    let n_vocab = model.config.n_vocab;
    let mut kv_fast = model.new_cache(tokens.len() + 1).unwrap();
    let fast = model.forward(tokens, &mut kv_fast, Logits::All).unwrap();
    let mut kv_ref = model.new_cache(tokens.len() + 1).unwrap();
    for (p, &t) in tokens.iter().enumerate() {
        let reference = reference::forward_token(model, t, &mut kv_ref).unwrap();
        let d = max_rel_diff(&fast[p * n_vocab..(p + 1) * n_vocab], &reference);
        assert!(
            d < tol,
            "position {p}: fast vs reference differ by {d} (relative to max |logit|)"
        );
    }
    // Decoding one more token on top of the batched prefix agrees too.
    let last = model.forward(&[7], &mut kv_fast, Logits::Last).unwrap();
    let reference = reference::forward_token(model, 7, &mut kv_ref).unwrap();
    assert!(max_rel_diff(&last, &reference) < tol);
}

/// A tiny model mixing `types` agrees with the reference under both numerics.
fn tiny_model_matches_reference(types: &[DType]) {
    let file = tiny_model(types);
    let mut model = load_model(&file).unwrap();
    let tokens = [1, 5, 99, 250, 3, 3, 17, 42, 299, 0];
    model.numerics = Numerics::Exact;
    check_against_reference(&model, &tokens, 1e-4);
    model.numerics = Numerics::LlamaCpp;
    check_against_reference(&model, &tokens, 2e-2);
}

#[test]
fn tiny_model_fast_matches_reference_for_every_type() {
    tiny_model_matches_reference(&[
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
    ]);
}

#[test]
fn tiny_model_fast_matches_reference_for_k_quants() {
    tiny_model_matches_reference(&[
        DType::Q4_K,
        DType::Q6_K,
        DType::Q5_K,
        DType::Q3_K,
        DType::Q2_K,
    ]);
}

#[test]
fn tokens_outside_the_vocabulary_and_a_full_context_are_errors() {
    let file = tiny_model(&[DType::Q8_0]);
    let model = load_model(&file).unwrap();
    let mut kv = model.new_cache(4).unwrap();
    assert!(model.forward(&[300], &mut kv, Logits::Last).is_err());
    assert!(model.forward(&[u32::MAX], &mut kv, Logits::Last).is_err());
    assert_eq!(kv.len(), 0);
    assert!(model
        .forward(&[1, 2, 3, 4, 5], &mut kv, Logits::Last)
        .is_err());
    model.forward(&[1, 2, 3, 4], &mut kv, Logits::Last).unwrap();
    assert!(model.forward(&[1], &mut kv, Logits::Last).is_err());
}

fn cached_model() -> Option<PathBuf> {
    ondo_formats::testdata::cached_default_model()
}

#[test]
fn smollm2_fast_matches_reference() {
    let Some(path) = cached_model() else { return };
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let mut model = load_model(&file).unwrap();
    assert_eq!(model.config.n_layers, 30);
    assert_eq!(model.config.dim, 576);
    assert_eq!((model.config.n_heads, model.config.n_kv_heads), (9, 3));
    // "The capital of France is" in SmolLM2's vocabulary, as ids (any ids work here).
    let tokens = [504, 3575, 282, 4649, 314];
    model.numerics = Numerics::Exact;
    // SmolLM2's activations reach ~2e4 in layers 10-11, which magnifies the different float
    // summation orders of the fast attention (8-lane fused dots) and the reference (plain
    // sums) to a few 1e-4 of the largest logit.
    check_against_reference(&model, &tokens, 1e-3);
    model.numerics = Numerics::LlamaCpp;
    check_against_reference(&model, &tokens, 0.1);
}

#[test]
fn truncating_the_cache_and_continuing_equals_a_fresh_run() {
    let file = tiny_model(&[DType::Q8_0, DType::Q4_1]);
    let model = load_model(&file).unwrap();
    let (a, b, c) = ([3u32, 14, 15, 92], [65u32, 35], [89u32, 79, 32]);
    let mut kv = model.new_cache(16).unwrap();
    model.forward(&a, &mut kv, Logits::Last).unwrap();
    model.forward(&b, &mut kv, Logits::Last).unwrap();
    kv.truncate(a.len());
    let reused = model.forward(&c, &mut kv, Logits::All).unwrap();
    let mut fresh_kv = model.new_cache(16).unwrap();
    let ac: Vec<u32> = a.iter().chain(&c).copied().collect();
    let fresh = model.forward(&ac, &mut fresh_kv, Logits::All).unwrap();
    let n_vocab = model.config.n_vocab;
    let d = max_rel_diff(&reused, &fresh[a.len() * n_vocab..]);
    assert!(d < 1e-5, "reused prefix differs from a fresh run by {d}");
}
