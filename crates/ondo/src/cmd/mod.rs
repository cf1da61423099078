//! One module per subcommand; `dispatch` sets up threads and routes.

mod bench;
mod chat;
mod convert_lora;
mod finetune;
mod info;
mod merge;
mod perplexity;
mod run;
mod serve;
mod tokenize;
mod upscale;

use std::sync::Arc;

use anyhow::{Context, Result};
use ondo_model::{KvCache, LlamaConfig};
use ondo_sample::{JsonFormat, JsonSchema, JsonVocab, Sampler, SamplerConfig};
use ondo_text::Tokenizer;

use crate::cli::{Cli, Command, SampleArgs};
use crate::store;

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 || n > 1024 {
            anyhow::bail!("--threads must be between 1 and 1024, got {n}");
        }
        ondo_kernels::pool::set_threads(n);
    }
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Chat(a) => chat::chat(a),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Perplexity(a) => perplexity::perplexity(a),
        Command::Info(a) => info::info(a),
        Command::Bench(a) => bench::bench(a),
        Command::Serve(a) => serve::serve(a),
        Command::Upscale(a) => upscale::upscale(a),
        Command::Merge(a) => merge::merge(a),
        Command::ConvertLora(a) => convert_lora::convert_lora(a),
        Command::Finetune(a) => finetune::finetune(a),
        Command::Pull => {
            let path = store::resolve_model(None)?;
            println!("{}", path.display());
            Ok(())
        }
    }
}

/// The sampler the flags describe.
pub fn sampler_from(a: &SampleArgs) -> Result<Sampler> {
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let cfg = SamplerConfig {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        presence_penalty: a.presence_penalty,
        frequency_penalty: a.frequency_penalty,
        penalty_last_n: a.repeat_last_n,
        seed,
    };
    Sampler::new(cfg).map_err(|e| anyhow::anyhow!("invalid sampling setting: {e}"))
}

/// Context size: the flag, else 4096, never above what the model was trained for, and a
/// cache of it must fit in the memory available.
pub fn context_size(a: &SampleArgs, cfg: &LlamaConfig) -> Result<usize> {
    let model_ctx = cfg.context_length;
    let ctx = a.ctx.unwrap_or(4096.min(model_ctx));
    if ctx < 8 || ctx > model_ctx.max(8) {
        anyhow::bail!(
            "--ctx must be between 8 and the model's context length {model_ctx}, got {ctx}"
        );
    }
    check_kv_memory(cfg, 1, ctx, "lower --ctx")?;
    Ok(ctx)
}

/// Refuses KV caches that would not fit in the memory available now (Linux's MemAvailable):
/// they are filled as sequences grow, until the kernel would kill the process. `lower` says
/// which flags to lower.
pub fn check_kv_memory(cfg: &LlamaConfig, caches: usize, ctx: usize, lower: &str) -> Result<()> {
    let need = KvCache::bytes_for(cfg, ctx) * caches as u128;
    let Some(available) = mem_available_bytes() else {
        return Ok(());
    };
    if need > u128::from(available) {
        let gb = |b: u128| b as f64 / 1e9;
        anyhow::bail!(
            "{caches} KV cache(s) of {ctx} positions need {:.1} GB, more than the {:.1} GB of \
             memory available: {lower}",
            gb(need),
            gb(u128::from(available))
        );
    }
    Ok(())
}

/// MemAvailable from /proc/meminfo (None where there is none).
fn mem_available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Writes a piece of generated text to stdout at once.
pub fn emit_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Largest schema file `--format` reads.
const MAX_SCHEMA_BYTES: u64 = 1 << 20;

/// `--format`: plain text (`None`), `json` (any object) or a JSON Schema file, compiled here
/// so that a bad one is refused before the model loads.
pub fn output_format(a: &SampleArgs) -> Result<Option<JsonFormat>> {
    let path = match a.format.as_str() {
        "text" => return Ok(None),
        "json" => return Ok(Some(JsonFormat::Object)),
        path => path,
    };
    let hint = "--format takes text, json or the path of a JSON Schema file";
    let size = std::fs::metadata(path)
        .with_context(|| format!("{hint}; cannot read {path:?}"))?
        .len();
    if size > MAX_SCHEMA_BYTES {
        anyhow::bail!("{path} is {size} bytes: a schema file holds at most {MAX_SCHEMA_BYTES}");
    }
    let text = std::fs::read(path).with_context(|| format!("{hint}; cannot read {path:?}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{path} is not JSON"))?;
    let schema = JsonSchema::compile(&v).with_context(|| format!("the schema in {path}"))?;
    Ok(Some(JsonFormat::Schema(Arc::new(schema))))
}

/// Under `--format json` or a schema: the vocabulary laid out for JSON mode (made once; each
/// reply starts its own `JsonSampling` from it).
pub fn json_vocab(format: &Option<JsonFormat>, tok: &Tokenizer) -> Option<Arc<JsonVocab>> {
    format
        .as_ref()
        .map(|_| Arc::new(JsonVocab::new(tok.output_pieces())))
}
