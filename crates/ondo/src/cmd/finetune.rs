//! `ondo finetune`: LoRA training on the CPU. The base's weights are dequantized to f32 and
//! frozen (`ondo_train::from_llama`); the adapters train with AdamW (warm-up, cosine decay,
//! clipping at norm 1, gradient accumulation), one sequence per micro-batch. Progress goes to
//! stderr (loss, learning rate, tokens/s, ETA), the held-out loss after every epoch, and the
//! adapter is written as llama.cpp's GGUF adapter or as PEFT, ready for `--lora`.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ondo_train::checkpoint;
use ondo_train::data::{Dataset, Encoder};
use ondo_train::from_llama::{lora_deltas, model_from_llama};
use ondo_train::optim::{AdamWConfig, Schedule};
use ondo_train::{Model, ModelLora, Target, TrainConfig, TrainState};

use crate::cli::FinetuneArgs;
use crate::{load, store};

pub fn finetune(a: FinetuneArgs) -> Result<()> {
    if a.full {
        bail!("--full (full-parameter fine-tuning) is not implemented yet; LoRA is");
    }
    load::check_output(&a.output, a.force)?;
    if a.lora_rank == 0 || a.lora_rank > 256 || a.grad_accum == 0 || a.ctx < 2 {
        bail!("--lora-rank must be 1..=256, --grad-accum at least 1, --ctx at least 2");
    }
    let targets = parse_targets(&a.targets)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let l = load::load(&path)?;
    let arch = l.arch()?;
    let ctx = a.ctx.min(l.model.config.context_length.max(2));
    let encoder = Encoder {
        tok: &l.tokenizer,
        template: &l.template,
        max_ctx: ctx,
    };
    let read = |p: &std::path::Path| -> Result<Dataset> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read '{}'", p.display()))?;
        let ds = encoder
            .encode_jsonl(&text)
            .with_context(|| format!("'{}'", p.display()))?;
        if ds.truncated + ds.dropped > 0 {
            eprintln!(
                "ondo: {}: {} sequences cut to {ctx} tokens, {} dropped (nothing left to learn)",
                p.display(),
                ds.truncated,
                ds.dropped
            );
        }
        Ok(ds)
    };
    let mut train = Dataset::default();
    for p in &a.data {
        train.examples.extend(read(p)?.examples);
    }
    if train.examples.is_empty() {
        bail!("the training data has no examples");
    }
    let val = a.val.as_deref().map(read).transpose()?;
    let model = model_from_llama(&l.model, ctx)?;
    let n = train.examples.len() as u64;
    let per_epoch = n.div_ceil(a.grad_accum as u64);
    let total = a.max_steps.unwrap_or(per_epoch * a.epochs).max(1);
    let mut state = match &a.resume {
        Some(p) => {
            let c = checkpoint::load(p)
                .with_context(|| format!("cannot resume from '{}'", p.display()))?;
            c.check_model(&model.config)?;
            c.state
        }
        None => {
            let config = TrainConfig {
                adamw: AdamWConfig {
                    weight_decay: a.weight_decay,
                    ..AdamWConfig::default()
                },
                schedule: Schedule {
                    peak_lr: a.lr,
                    min_lr: a.lr / 10.0,
                    warmup: a.warmup.min(total),
                    total,
                },
                grad_accum: a.grad_accum,
                max_grad_norm: Some(1.0),
                seed: a.seed,
            };
            let lora = ModelLora::new(&model.config, &targets, a.lora_rank, a.lora_alpha, a.seed);
            TrainState::new(config, lora)?
        }
    };
    let trained: usize = train
        .examples
        .iter()
        .map(|e| e.mask.iter().filter(|&&m| m).count())
        .sum();
    eprintln!(
        "ondo: {} examples ({trained} trained tokens), {} steps of {} sequences, LoRA rank {} on {} of {} layers",
        n,
        total,
        a.grad_accum,
        a.lora_rank,
        a.targets,
        model.config.n_layers
    );
    if let Some(v) = &val {
        eprintln!(
            "ondo: held-out loss before training: {:.4}",
            val_loss(&model, &state, v)?
        );
    }
    let tty = std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let (mut tokens, mut ema) = (0usize, None::<f64>);
    let start = state.opt.step;
    let mut epoch = state.pos.epoch;
    while state.opt.step < total {
        let s = state.step(&model, &train.examples)?;
        tokens += s.tokens;
        let e = ema.map_or(s.loss, |e| 0.9 * e + 0.1 * s.loss);
        ema = Some(e);
        let done = state.opt.step;
        let secs = t0.elapsed().as_secs_f64();
        let rate = tokens as f64 / secs.max(1e-9);
        let eta = secs / (done - start) as f64 * (total - done) as f64;
        let line = format!(
            "step {done}/{total}  loss {e:.4}  lr {:.2e}  {rate:.0} tok/s  elapsed {}  eta {}",
            s.lr,
            hms(secs),
            hms(eta)
        );
        if tty {
            eprint!("\r{line}   ");
        } else if done % 10 == 0 || done == total {
            eprintln!("{line}");
        }
        if let (Some(p), true) = (&a.checkpoint, done % a.save_every.max(1) == 0) {
            checkpoint::save(p, &state, &serde_json::json!({}))?;
        }
        if state.pos.epoch != epoch {
            epoch = state.pos.epoch;
            if let Some(v) = &val {
                let vl = val_loss(&model, &state, v)?;
                eprintln!(
                    "{}ondo: epoch {epoch} done, held-out loss {vl:.4}",
                    if tty { "\n" } else { "" }
                );
            }
        }
    }
    if tty {
        eprintln!();
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(p) = &a.checkpoint {
        checkpoint::save(p, &state, &serde_json::json!({}))?;
    }
    if let Some(v) = &val {
        eprintln!(
            "ondo: held-out loss after training: {:.4}",
            val_loss(&model, &state, v)?
        );
    }
    let deltas = lora_deltas(&state.lora);
    if a.output.extension().is_some_and(|e| e == "gguf") {
        let w = ondo_model::lora::gguf_adapter_writer(&deltas, &arch)?;
        load::write_gguf(&w, &a.output)?;
    } else {
        let heads = (l.model.config.n_heads, l.model.config.n_kv_heads);
        let name = l
            .file
            .metadata()
            .get_str("general.name")?
            .unwrap_or("")
            .to_string();
        ondo_model::lora_peft::write_peft_adapter(&a.output, &deltas, heads, &name)?;
    }
    eprintln!(
        "ondo: trained {} steps, {tokens} tokens in {} ({:.1} tok/s), peak memory {}; wrote {}",
        state.opt.step - start,
        hms(secs),
        tokens as f64 / secs.max(1e-9),
        peak_rss().map_or("?".into(), |kb| format!("{:.0} MB", kb as f64 / 1024.0)),
        a.output.display()
    );
    Ok(())
}

fn parse_targets(spec: &str) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .with_context(|| format!("--targets: '{name}' is not one of q,k,v,o,gate,up,down"))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        bail!("--targets names no projection");
    }
    Ok(out)
}

/// Mean loss over the held-out examples.
fn val_loss(model: &Model<f32>, state: &TrainState, v: &Dataset) -> Result<f64> {
    if v.examples.is_empty() {
        return Ok(f64::NAN);
    }
    let mut sum = 0.0;
    for e in &v.examples {
        sum += f64::from(model.loss(&state.lora, &e.tokens, &e.targets, &e.mask)?);
    }
    Ok(sum / v.examples.len() as f64)
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Peak resident memory of this process (VmHWM, KiB), Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
