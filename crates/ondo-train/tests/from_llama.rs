//! The training model built from the default model computes what inference computes: its
//! loss on a sentence equals the cross-entropy of `ondo_model`'s logits (f32 numerics,
//! `Numerics::Exact`) to 1e-3, and a step of LoRA training on it lowers that loss. Also how
//! fast a forward + backward runs (printed, not asserted).

use std::sync::Arc;
use std::time::Instant;

use ondo_formats::GgufFile;
use ondo_model::{load_model, Logits, Numerics};
use ondo_train::from_llama::{lora_deltas, model_from_llama};
use ondo_train::{ModelLora, Target};

#[test]
fn training_model_matches_inference_and_learns() {
    let Some(path) = ondo_formats::testdata::cached_default_model() else {
        if std::env::var("ONDO_REQUIRE_MODEL").is_ok_and(|v| v == "1") {
            panic!("the default model is not cached");
        }
        return;
    };
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let mut m = load_model(&file).unwrap();
    m.numerics = Numerics::Exact;
    let tok = ondo_text::tokenizer_from_gguf(file.metadata()).unwrap();
    let ids = tok.encode(
        "The quick brown fox jumps over the lazy dog near the river bank.",
        false,
    );
    let (tokens, targets) = (&ids[..ids.len() - 1], &ids[1..]);
    let mask = vec![true; tokens.len()];

    let mut kv = m.new_cache(ids.len()).unwrap();
    let logits = m.forward(tokens, &mut kv, Logits::All).unwrap();
    let nv = m.config.n_vocab;
    let mut want = 0.0f64;
    for (t, &y) in targets.iter().enumerate() {
        let row = &logits[t * nv..(t + 1) * nv];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max
            + row
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln();
        want += lse - row[y as usize] as f64;
    }
    want /= targets.len() as f64;

    let model = model_from_llama(&m, 64).unwrap();
    let targets_all = [Target::Q, Target::V];
    let lora = ModelLora::<f32>::new(&model.config, &targets_all, 8, 16.0, 1);
    let got = f64::from(model.loss(&lora, tokens, targets, &mask).unwrap());
    eprintln!("loss: training model {got:.6}, inference {want:.6}");
    assert!((got - want).abs() < 1e-3 * want.max(1.0), "{got} vs {want}");

    // A few plain gradient steps on B (A random, B zero at start) lower the loss.
    let mut lora = lora;
    let t0 = Instant::now();
    let steps = 3;
    let mut last = got;
    for _ in 0..steps {
        let mut grad = lora.zeros_like();
        let l = model
            .forward_backward(&lora, tokens, targets, &mask, &mut grad, None)
            .unwrap();
        last = f64::from(l);
        for (p, g) in lora.tensors_mut().into_iter().zip(grad.tensors_mut()) {
            for (x, d) in p.iter_mut().zip(g.iter()) {
                *x -= 1e-2 * d;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "forward+backward: {:.1} tokens/s ({} tokens x {steps} steps in {secs:.2} s)",
        (tokens.len() * steps) as f64 / secs,
        tokens.len()
    );
    let after = f64::from(model.loss(&lora, tokens, targets, &mask).unwrap());
    eprintln!("loss after {steps} steps: {after:.4} (was {got:.4}, last step {last:.4})");
    assert!(after < got, "training did not lower the loss");
    assert_eq!(lora_deltas(&lora).len(), 2 * m.config.n_layers);
}
