//! `ondo info`: what a model file is, without running it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::cli::InfoArgs;
use crate::{load, store};

pub fn info(a: InfoArgs) -> Result<()> {
    let path = store::resolve_model(Some(&a.model))?;
    let l = load::load(&path)?;
    let meta = l.file.metadata();
    let c = &l.model.config;
    let name = meta.get_str("general.name")?.unwrap_or("(unnamed)");
    println!(
        "file:          {} ({:.1} MB, GGUF v{})",
        path.display(),
        l.file.file_size() as f64 / 1e6,
        l.file.version()
    );
    println!("name:          {name}");
    println!("architecture:  {}", c.arch);
    let params: u64 = l.file.tensors().iter().map(|t| t.n_elems).sum();
    println!("parameters:    {:.1} M", params as f64 / 1e6);
    println!(
        "shape:         {} layers, dim {}, ffn {}, heads {} (kv {}), head dim {}, vocab {}",
        c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim, c.n_vocab
    );
    println!(
        "rope:          base {}, dims {}{}",
        c.rope_base,
        c.rope_dim,
        match &c.rope_scaling {
            Some(s) => format!(", scaling {s:?}")
                .chars()
                .take(80)
                .collect::<String>(),
            None => String::new(),
        }
    );
    println!("context:       {} tokens (trained)", c.context_length);
    let mut types: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in l.file.tensors() {
        let e = types
            .entry(t.ggml_type.name().unwrap_or("?").to_string())
            .or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let types: Vec<String> = types
        .iter()
        .map(|(k, (n, b))| format!("{k} x{n} ({:.1} MB)", *b as f64 / 1e6))
        .collect();
    println!(
        "tensors:       {} — {}",
        l.file.tensors().len(),
        types.join(", ")
    );
    let tok = &l.tokenizer;
    let kind = meta
        .get_str("tokenizer.ggml.model")?
        .context("no tokenizer")?;
    let pre = meta.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let show = |id: Option<u32>| match id {
        Some(i) => format!("{i} {:?}", tok.token_text(i).unwrap_or("")),
        None => "none".into(),
    };
    println!(
        "tokenizer:     {kind} (pre {pre}), {} tokens, bos {}, eos {}, add_bos {}",
        tok.n_vocab(),
        show(tok.bos_id()),
        show(tok.eos_id()),
        tok.add_bos()
    );
    let eog: Vec<String> = tok.eog_ids().into_iter().map(|i| show(Some(i))).collect();
    println!("end of turn:   {}", eog.join(", "));
    match meta.get_str("tokenizer.chat_template")? {
        Some(t) => println!(
            "chat template: {} chars, starts {:?}",
            t.len(),
            t.chars().take(60).collect::<String>()
        ),
        None => println!("chat template: none (ChatML is used)"),
    }
    Ok(())
}
