//! `ondo convert-lora`: a LoRA adapter from one format to the other, PEFT (Hugging Face:
//! `adapter_config.json` + `adapter_model.safetensors`) ⇄ llama.cpp's GGUF adapter, checked
//! against the base model it belongs to (shapes, and the head counts that permute q and k).

use anyhow::{Context, Result};

use crate::cli::ConvertLoraArgs;
use crate::{load, store};

pub fn convert_lora(a: ConvertLoraArgs) -> Result<()> {
    load::check_output(&a.output, a.force)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let l = load::load(&path)?;
    let arch = l.arch()?;
    let cfg = &l.model.config;
    let heads = (cfg.n_heads, cfg.n_kv_heads);
    let mut model = l.model;
    let deltas = ondo_model::lora::read_adapter(&a.input, &arch, heads, 1.0, |name| {
        model.weight_mut(name).map(|w| (w.rows, w.cols))
    })
    .with_context(|| format!("cannot read the adapter '{}'", a.input.display()))?;
    let to_gguf = a.output.extension().is_some_and(|e| e == "gguf");
    if to_gguf {
        let w = ondo_model::lora::gguf_adapter_writer(&deltas, &arch)?;
        load::write_gguf(&w, &a.output)?;
    } else {
        let base = l
            .file
            .metadata()
            .get_str("general.name")?
            .unwrap_or("")
            .to_string();
        ondo_model::lora_peft::write_peft_adapter(&a.output, &deltas, heads, &base)?;
    }
    eprintln!(
        "ondo: wrote {} ({} adapted matrices, {})",
        a.output.display(),
        deltas.len(),
        if to_gguf { "GGUF adapter" } else { "PEFT" }
    );
    Ok(())
}
