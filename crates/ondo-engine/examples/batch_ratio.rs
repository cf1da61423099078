//! What batching pays, measured steadily: steps of one sequence and of N sequences alternate
//! in one process (bare batched forward passes on the default model, the server's BlockSums
//! numerics), so both see the same moments of a machine whose speed drifts; prints the median
//! step of each and the ratio of their throughputs. `cargo run --release -p ondo-engine
//! --example batch_ratio -- [N] [STEPS]` (ONDO_THREADS=T for T threads).

use std::sync::Arc;
use std::time::Instant;

use ondo_formats::GgufFile;
use ondo_model::{KvCache, LlamaModel, Logits, SeqInput};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(8).max(1);
    let steps = args.get(1).copied().unwrap_or(200).max(2);
    if let Some(t) = std::env::var("ONDO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        ondo_kernels::pool::set_threads(t);
    }
    let path = ondo_formats::testdata::cached_default_model().expect("run `ondo pull` first");
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let model = ondo_model::load_model_for(&file, ondo_model::Numerics::BlockSums).unwrap();
    let tok = ondo_text::tokenizer_from_gguf(file.metadata()).unwrap();
    let prompt = tok.encode("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", true);
    let ctx = prompt.len() + steps + 1;
    let mut logits = Vec::new();
    let mut caches = |count: usize| -> Vec<KvCache> {
        (0..count)
            .map(|_| {
                let mut kv = model.new_cache(ctx).unwrap();
                model
                    .forward_into(&prompt, &mut kv, Logits::Last, &mut logits)
                    .unwrap();
                kv
            })
            .collect()
    };
    let (mut one, mut many) = (caches(1), caches(n));
    let (mut t_one, mut t_many) = (Vec::new(), Vec::new());
    for s in 0..steps {
        t_one.push(step(&model, &mut one, s, &mut logits));
        t_many.push(step(&model, &mut many, s, &mut logits));
    }
    let (m1, mn) = (median(t_one), median(t_many));
    println!(
        "1 sequence: median step {:.2} ms ({:.1} tok/s); {n} sequences: median step {:.2} ms \
         ({:.1} tok/s); ratio {:.2}",
        m1 * 1e3,
        1.0 / m1,
        mn * 1e3,
        n as f64 / mn,
        n as f64 * m1 / mn
    );
}

/// One batched step of every sequence in `kvs`; returns its seconds.
fn step(model: &LlamaModel, kvs: &mut [KvCache], s: usize, logits: &mut Vec<f32>) -> f64 {
    let toks: Vec<u32> = (0..kvs.len()).map(|i| (100 + s + i) as u32).collect();
    let mut inputs = SeqInput::decoding(kvs, &toks);
    let t0 = Instant::now();
    model.forward_batch(&mut inputs, logits).unwrap();
    t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
