//! `ondo bench`: prompt-processing and generation speed, llama-bench style. A warm-up run is
//! excluded (skip it with --no-warmup); each figure is the median over `-r` repetitions.
//! Prompt tokens are arbitrary ids (speed does not depend on them); generation decodes `-n`
//! tokens one at a time after a prompt of `-p` tokens (at `--depth` extra positions when
//! given). With `--parallel N`, N sequences each take a prompt, then decode together in the
//! server's batched pass (`forward_batch`, block-sum numerics), and the figures are aggregates.
//! `--bandwidth` measures the machine's memory read bandwidth instead, and what an empty
//! parallel region costs (the round trips between the cores).

use std::time::Instant;

use anyhow::Result;
use ondo_model::{KvCache, LlamaModel, Logits, SeqInput};

use crate::cli::BenchArgs;
use crate::{load, store};

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.bandwidth {
        return bandwidth(a.json);
    }
    if a.reps == 0 {
        anyhow::bail!("--reps must be at least 1");
    }
    let path = store::resolve_model(a.model.model.as_deref())?;
    let t0 = Instant::now();
    let numerics = if a.parallel.is_some() {
        ondo_model::Numerics::BlockSums
    } else {
        ondo_model::Numerics::default()
    };
    let l = load::load_for(&path, numerics)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let c = &l.model.config;
    let needed = a.depth.saturating_add(a.prompt).saturating_add(a.n_gen);
    if needed > c.context_length {
        anyhow::bail!(
            "depth + prompt + generated = {needed} exceeds the model's context of {}",
            c.context_length
        );
    }
    let ids = |n: usize, salt: usize| -> Vec<u32> {
        (0..n)
            .map(|i| ((i * 7919 + salt * 104729) % c.n_vocab) as u32)
            .collect()
    };
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    let first = usize::from(a.no_warmup);
    let seqs = a.parallel.map_or(1, usize::from);
    let lower = "lower --parallel, --depth, -p or -n";
    super::check_kv_memory(c, seqs, needed.max(1), lower)?;
    let mut kvs = (0..seqs)
        .map(|_| l.model.new_cache(needed.max(1)))
        .collect::<Result<Vec<_>, _>>()?;
    let depth_ids = ids(a.depth, 1);
    for rep in first..=a.reps {
        for kv in &mut kvs {
            kv.clear();
        }
        for chunk in depth_ids.chunks(512) {
            l.model.forward(chunk, &mut kvs[0], Logits::Last)?;
        }
        let prompts: Vec<Vec<u32>> = (0..seqs).map(|s| ids(a.prompt, rep + 2 + s)).collect();
        let t = Instant::now();
        for (prompt, kv) in prompts.iter().zip(&mut kvs) {
            if !prompt.is_empty() {
                l.model.forward(prompt, kv, Logits::Last)?;
            }
        }
        let pp_s = t.elapsed().as_secs_f64();
        let mut toks: Vec<u32> = prompts
            .iter()
            .map(|p| p.last().copied().unwrap_or(1))
            .collect();
        let t = Instant::now();
        if a.parallel.is_some() {
            decode_together(&l.model, &mut kvs, &mut toks, a.n_gen)?;
        } else {
            decode_alone(&l.model, &mut kvs[0], toks[0], a.n_gen)?;
        }
        let tg_s = t.elapsed().as_secs_f64();
        if rep > 0 {
            pp.push((seqs * a.prompt) as f64 / pp_s.max(1e-9));
            tg.push((seqs * a.n_gen) as f64 / tg_s.max(1e-9));
        }
    }
    let (pp, tg) = (median(&mut pp), median(&mut tg));
    let rss_mb = peak_rss_kb().map(|kb| kb as f64 / 1024.0);
    let threads = ondo_kernels::pool::threads();
    if a.json {
        let v = serde_json::json!({
            "model": path.display().to_string(), "threads": threads, "depth": a.depth,
            "parallel": seqs,
            "pp_tokens": a.prompt, "pp_tok_s": pp, "tg_tokens": a.n_gen, "tg_tok_s": tg,
            "reps": a.reps, "load_ms": load_ms, "peak_rss_mb": rss_mb,
        });
        println!("{v}");
    } else {
        let together = match a.parallel {
            Some(n) => format!(" | {n} sequences together (aggregate tok/s)"),
            None => String::new(),
        };
        println!(
            "model: {} | threads {threads} | depth {}{together} | median of {} runs",
            path.display(),
            a.depth,
            a.reps
        );
        println!("pp{:<5} {:>9.1} tok/s", a.prompt, pp);
        println!("tg{:<5} {:>9.1} tok/s", a.n_gen, tg);
        println!("load    {load_ms:>9.1} ms");
        if let Some(r) = rss_mb {
            println!("peak RSS {r:>8.1} MB");
        }
    }
    Ok(())
}

/// `n` greedy tokens of one sequence, one forward pass each (as `ondo run`).
fn decode_alone(model: &LlamaModel, kv: &mut KvCache, mut tok: u32, n: usize) -> Result<()> {
    let mut logits = Vec::new();
    for _ in 0..n {
        model.forward_into(&[tok], kv, Logits::Last, &mut logits)?;
        tok = ondo_sample::argmax(&logits);
    }
    Ok(())
}

/// `n` greedy tokens of every sequence, all of them advancing in one batched pass per step
/// (as the server's scheduler does).
fn decode_together(
    model: &LlamaModel,
    kvs: &mut [KvCache],
    toks: &mut [u32],
    n: usize,
) -> Result<()> {
    let n_vocab = model.config.n_vocab;
    let mut logits = Vec::new();
    for _ in 0..n {
        let mut inputs = SeqInput::decoding(kvs, toks);
        model.forward_batch(&mut inputs, &mut logits)?;
        for (i, t) in toks.iter_mut().enumerate() {
            *t = ondo_sample::argmax(&logits[i * n_vocab..(i + 1) * n_vocab]);
        }
    }
    Ok(())
}

/// Streaming read bandwidth of a 1 GiB buffer shared among the pool's threads: best of 5.
fn bandwidth(json: bool) -> Result<()> {
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect(); // written, so every page is resident
    let threads = ondo_kernels::pool::threads();
    let per = words.div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        ondo_kernels::pool::run(&|i| {
            let share = &buf[(i * per).min(words)..((i + 1) * per).min(words)];
            let s = share.iter().fold(0u64, |a, &w| a.wrapping_add(w));
            std::hint::black_box(s);
        });
        best = best.max((words * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let region = region_ns();
    if json {
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "read_gb_s": best, "region_ns": region })
        );
    } else {
        println!("read bandwidth {best:.1} GB/s ({threads} threads, 1 GiB, best of 5)");
        println!("parallel region {region:.0} ns (empty, all threads, median of 5 x 20,000)");
    }
    Ok(())
}

/// What opening and closing an empty parallel region of all the pool's threads costs: the
/// round trips between the cores. On this project's 2-vCPU machines it tells where the two
/// vCPUs sit at the moment (~130 ns on one CCX, ~530 ns on two CCDs), which moves the batched
/// decode's speed by ~25% (docs/serve.md).
fn region_ns() -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..20_000 {
                ondo_kernels::pool::run(&|_| {});
            }
            t.elapsed().as_secs_f64() * 1e9 / 20_000.0
        })
        .collect();
    median(&mut runs)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Peak resident set size (VmHWM) on Linux; None elsewhere.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
