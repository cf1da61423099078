//! Decode throughput with N sequences: the bare batched forward pass against the engine (with
//! sampling and events), on the default model, under the server's numerics (BlockSums; set
//! ONDO_NUMERICS=llamacpp for ggml's exact row dots; ONDO_THREADS=N for N threads). `cargo run --release -p ondo-engine
//! --example batch_decode -- [N] [STEPS]`.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use ondo_engine::{Engine, EngineConfig, Event, EventSink, GenParams, Request};
use ondo_formats::GgufFile;
use ondo_model::{Logits, SeqInput};
use ondo_sample::SamplerConfig;

struct Sink(mpsc::Sender<Event>);

impl EventSink for Sink {
    fn send(&mut self, e: Event) -> bool {
        self.0.send(e).is_ok()
    }
    fn is_closed(&self) -> bool {
        false
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(8);
    if let Some(t) = std::env::var("ONDO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        ondo_kernels::pool::set_threads(t);
    }
    let steps = args.get(1).copied().unwrap_or(64);
    let path = ondo_formats::testdata::cached_default_model().expect("run `ondo pull` first");
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let numerics = match std::env::var("ONDO_NUMERICS").as_deref() {
        Ok("llamacpp") => ondo_model::Numerics::LlamaCpp,
        _ => ondo_model::Numerics::BlockSums,
    };
    let model = ondo_model::load_model_for(&file, numerics).unwrap();
    let model = Arc::new(model);
    let tok = Arc::new(ondo_text::tokenizer_from_gguf(file.metadata()).unwrap());
    let prompt = tok.encode("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", true);

    let mut kvs: Vec<_> = (0..n).map(|_| model.new_cache(1024).unwrap()).collect();
    let mut logits = Vec::new();
    for kv in &mut kvs {
        model
            .forward_into(&prompt, kv, Logits::Last, &mut logits)
            .unwrap();
    }
    let t0 = Instant::now();
    let mut step_secs = Vec::with_capacity(steps);
    for s in 0..steps {
        let ts = Instant::now();
        let toks: Vec<u32> = (0..n).map(|i| (100 + s + i) as u32).collect();
        let mut inputs = SeqInput::decoding(&mut kvs, &toks);
        model.forward_batch(&mut inputs, &mut logits).unwrap();
        step_secs.push(ts.elapsed().as_secs_f64());
    }
    let secs = t0.elapsed().as_secs_f64();
    // The median step is steadier than the mean on a machine shared with other work.
    step_secs.sort_by(f64::total_cmp);
    let median = step_secs[steps / 2];
    println!(
        "forward_batch: {n} sequences, {:.1} tok/s ({:.1} tok/s at the median step, {:.2} ms)",
        (n * steps) as f64 / secs,
        n as f64 / median,
        median * 1e3
    );

    let engine = Engine::start(
        model,
        tok,
        EngineConfig {
            slots: n,
            ctx: 1024,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let reqs = (0..n)
        .map(|i| Request {
            prompt: prompt.clone(),
            params: GenParams {
                max_tokens: steps,
                sampler: SamplerConfig {
                    temperature: 0.0,
                    seed: i as u64,
                    ..SamplerConfig::default()
                },
                stop: vec![],
                logit_bias: vec![(2, -100.0), (0, -100.0)],
                logprobs: None,
                adapter: None,
                json: None,
            },
            sink: Box::new(Sink(tx.clone())),
        })
        .collect();
    let t0 = Instant::now();
    engine.submit(reqs).unwrap();
    let (mut done, mut tokens) = (0, 0);
    while done < n {
        match rx.recv().unwrap() {
            Event::Done {
                completion_tokens, ..
            } => {
                done += 1;
                tokens += completion_tokens;
            }
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "engine: {n} sequences, {:.1} tok/s ({tokens} tokens)",
        tokens as f64 / secs
    );
}
