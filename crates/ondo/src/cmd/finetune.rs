//! `ondo finetune`: training on the CPU (`ondo_train::from_llama`). LoRA adapters train on
//! the frozen base, kept quantized and multiplied by the inference kernels (QLoRA-style;
//! `--f32-base` dequantizes it), or with `--full` every weight trains in f32, with AdamW (warm-up, cosine decay, clipping at norm 1, gradient
//! accumulation), one sequence per micro-batch. Progress goes to stderr (loss, learning rate,
//! tokens/s, ETA), the held-out loss after every epoch; the adapter is written as llama.cpp's
//! GGUF adapter or as PEFT, ready for `--lora`, a fully trained model as a GGUF with the base's
//! metadata (tokenizer, template) and the trained tensors.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ondo_formats::{GgufFile, GgufWriter, Value};
use ondo_kernels::DType;
use ondo_train::checkpoint;
use ondo_train::data::{Dataset, Encoder};
use ondo_train::from_llama::{lora_deltas, model_from_llama, named_weights, BaseWeights};
use ondo_train::optim::{AdamWConfig, Schedule};
use ondo_train::{Model, ModelLora, ModelWeights, Target, TrainConfig, TrainState};

use crate::cli::FinetuneArgs;
use crate::{load, store};

pub fn finetune(a: FinetuneArgs) -> Result<()> {
    load::check_output(&a.output, a.force)?;
    let is_gguf = a.output.extension().is_some_and(|e| e == "gguf");
    let full_type = if a.full {
        if !is_gguf {
            bail!("--full writes a whole model: -o must name a .gguf file");
        }
        Some(load::writable_type(&a.dtype).context("--type")?)
    } else {
        None
    };
    if a.lora_rank == 0 || a.lora_rank > 256 || a.grad_accum == 0 || a.batch == 0 || a.ctx < 2 {
        bail!("--lora-rank must be 1..=256, --batch and --grad-accum at least 1, --ctx at least 2");
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
    let base = if a.full || a.f32_base {
        BaseWeights::F32
    } else {
        BaseWeights::Quantized
    };
    let mut model = model_from_llama(&l.model, ctx, base)?;
    let n = train.examples.len() as u64;
    let per_epoch = n.div_ceil(a.grad_accum as u64 * a.batch as u64);
    let total = a.max_steps.unwrap_or(per_epoch * a.epochs).max(1);
    let mut state = match &a.resume {
        Some(p) => {
            let c = checkpoint::load(p)
                .with_context(|| format!("cannot resume from '{}'", p.display()))?;
            c.check_model(&model.config)?;
            if c.state.config.full != a.full {
                bail!(
                    "'{}' is a {} checkpoint: resume it {} --full",
                    p.display(),
                    if a.full { "LoRA" } else { "full fine-tuning" },
                    if a.full { "without" } else { "with" }
                );
            }
            c.restore_weights(&mut model.weights)?;
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
                batch: a.batch,
                max_grad_norm: Some(1.0),
                seed: a.seed,
                full: a.full,
            };
            let lora = if a.full {
                ModelLora::none(&model.config)
            } else {
                ModelLora::new(&model.config, &targets, a.lora_rank, a.lora_alpha, a.seed)
            };
            TrainState::new(config, lora, &model.weights)?
        }
    };
    let trained: usize = train
        .examples
        .iter()
        .map(|e| e.mask.iter().filter(|&&m| m).count())
        .sum();
    let what = if a.full {
        let n: usize = model.weights.tensors().iter().map(|t| t.len()).sum();
        format!("all {:.1}M weights", n as f64 / 1e6)
    } else {
        format!("LoRA rank {} on {}", a.lora_rank, a.targets)
    };
    eprintln!(
        "ondo: {n} examples ({trained} trained tokens), {total} steps of {} sequences, {what} of {} layers",
        state.config.grad_accum * state.config.batch,
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
        let s = state.step(&mut model, &train.examples)?;
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
            checkpoint::save(p, &state, &model.weights, &serde_json::json!({}))?;
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
        checkpoint::save(p, &state, &model.weights, &serde_json::json!({}))?;
    }
    if let Some(v) = &val {
        eprintln!(
            "ondo: held-out loss after training: {:.4}",
            val_loss(&model, &state, v)?
        );
    }
    let deltas = lora_deltas(&state.lora);
    if let Some(dst) = full_type {
        write_model(&l.file, &model.weights, dst, &a.output)?;
    } else if is_gguf {
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

/// The base's GGUF with every trained weight replaced (matrices in `dst`, norms in f32) and
/// everything else (metadata, tokenizer, other tensors) as it was.
fn write_model(
    base: &GgufFile,
    w: &ModelWeights<f32>,
    dst: DType,
    out: &std::path::Path,
) -> Result<()> {
    let trained: HashMap<String, &[f32]> = named_weights(w).into_iter().collect();
    let mut g = GgufWriter::new();
    for (key, value) in base.metadata().iter() {
        g.add_kv(key, value.clone());
    }
    if let Some(ft) = file_type(dst) {
        g.set_kv("general.file_type", Value::U32(ft));
    }
    for t in base.tensors() {
        // a file with an output matrix equal to the embedding trains it tied
        let data = trained
            .get(&t.name)
            .copied()
            .or_else(|| (t.name == "output.weight" && w.output.is_none()).then_some(&w.embd.w[..]));
        let Some(data) = data else {
            g.add_tensor(t.name.clone(), &t.dims, t.ggml_type, base.tensor_data(t));
            continue;
        };
        let cols = t.dims.first().copied().unwrap_or(1) as usize;
        let ty = if t.dims.len() == 1 { DType::F32 } else { dst };
        let (ggml, bytes) = load::encode_rows(ty, cols, data)
            .with_context(|| format!("cannot write '{}'", t.name))?;
        g.add_tensor(t.name.clone(), &t.dims, ggml, bytes);
    }
    load::write_gguf(&g, out)
}

/// `general.file_type` (llama.cpp's LLAMA_FTYPE) of a model whose matrices are `d`.
fn file_type(d: DType) -> Option<u32> {
    Some(match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::BF16 => 32,
        _ => return None,
    })
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
