//! `ondo serve`: loads the model, starts the engine and serves the OpenAI-compatible API
//! until the process is stopped.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ondo_engine::{Engine, EngineConfig};
use ondo_server::{AllowedOrigins, ModelText, ServerConfig};

use crate::cli::ServeArgs;
use crate::{load, store};

pub fn serve(a: ServeArgs) -> Result<()> {
    if a.parallel == 0 || a.parallel > 256 {
        bail!("--parallel must be between 1 and 256, got {}", a.parallel);
    }
    if a.max_body < 1024 {
        bail!("--max-body must be at least 1024 bytes, got {}", a.max_body);
    }
    let api_key = api_key(&a)?;
    let allowed_origins =
        AllowedOrigins::new(&a.allow_origins, &a.host).map_err(anyhow::Error::msg)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let numerics = if a.llamacpp_numerics {
        ondo_model::Numerics::LlamaCpp
    } else {
        ondo_model::Numerics::BlockSums
    };
    let mut l = load::load_for(&path, numerics)?;
    load::apply_loras(&mut l, &a.lora.lora)?;
    let model_ctx = l.model.config.context_length;
    let ctx = a.ctx.unwrap_or(4096.min(model_ctx));
    if ctx < 8 || ctx > model_ctx.max(8) {
        bail!("--ctx must be between 8 and the model's context length {model_ctx}, got {ctx}");
    }
    let lower = "lower --parallel or --ctx";
    super::check_kv_memory(&l.model.config, a.parallel, ctx, lower)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model_id = match a.model.model.as_deref() {
        None => store::DEFAULT_MODEL.to_string(),
        Some(m) if store::KNOWN_MODELS.iter().any(|k| k.name == m) => m.to_string(),
        Some(_) => stem.clone(),
    };
    let adapters = load_named_adapters(&mut l, &a.adapters, &model_id)?;
    let tokenizer = Arc::new(l.tokenizer);
    let engine = Engine::start(
        Arc::new(l.model),
        tokenizer.clone(),
        EngineConfig {
            slots: a.parallel,
            ctx,
            max_queue: a.queue,
            ..EngineConfig::default()
        },
    )?;
    eprintln!(
        "ondo: serving '{model_id}' with {} slots of {ctx} tokens{}",
        a.parallel,
        if api_key.is_some() {
            ", API key required"
        } else {
            ""
        }
    );
    let config = ServerConfig {
        host: a.host,
        port: a.port,
        api_key,
        allowed_origins,
        max_body: a.max_body,
        quiet: a.quiet,
        model_aliases: vec![stem],
        model_id,
        adapters,
    };
    let text = ModelText {
        tokenizer,
        template: l.template,
    };
    ondo_server::serve(config, engine, text)?;
    Ok(())
}

/// Loads `NAME=FILE[:SCALE]` adapters for selection by name; adapter `i` gets slot `i`.
fn load_named_adapters(
    l: &mut load::Loaded,
    specs: &[String],
    model_id: &str,
) -> Result<Vec<String>> {
    let arch = l.arch()?;
    let mut names: Vec<String> = Vec::new();
    for spec in specs {
        let (name, rest) = spec
            .split_once('=')
            .with_context(|| format!("--adapter {spec}: expected NAME=FILE[:SCALE]"))?;
        let name = name.trim();
        if name.is_empty() || name == model_id || names.iter().any(|n| n == name) {
            bail!("--adapter {spec}: the name must be non-empty and unique (not '{model_id}')");
        }
        let (path, scale) = load::lora_spec(rest)?;
        let slot = names.len() as u32;
        let p = std::path::Path::new(path);
        let n = ondo_model::lora::load_adapter(&mut l.model, &arch, p, scale, Some(slot))
            .with_context(|| format!("cannot apply the adapter '{path}'"))?;
        eprintln!("ondo: adapter '{name}' = {path} (scale {scale}) adapts {n} matrices");
        names.push(name.to_string());
    }
    Ok(names)
}

fn api_key(a: &ServeArgs) -> Result<Option<String>> {
    let key = match (&a.api_key, &a.api_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the API key file '{}'", f.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, None) => std::env::var("ONDO_API_KEY").ok(),
    };
    match key.map(|k| k.trim().to_string()) {
        Some(k) if k.is_empty() => bail!("the API key is empty"),
        Some(k) if !k.chars().all(|c| c.is_ascii_graphic()) => {
            bail!("the API key must be printable ASCII without spaces")
        }
        other => Ok(other),
    }
}
