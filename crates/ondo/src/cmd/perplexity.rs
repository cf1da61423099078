//! `ondo perplexity`: split the tokenized file into non-overlapping chunks of CTX tokens,
//! evaluate each from an empty cache, score positions 1..CTX-1 of every chunk, and print
//! exp(mean negative log-likelihood).

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use ondo_model::Logits;

use crate::cli::PerplexityArgs;
use crate::{load, store};

pub fn perplexity(a: PerplexityArgs) -> Result<()> {
    let path = store::resolve_model(a.model.model.as_deref())?;
    let mut l = load::load(&path)?;
    load::apply_loras(&mut l, &a.lora.lora)?;
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read '{}'", a.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("'{}' is not UTF-8 text", a.file.display()))?;
    let ctx = a.ctx;
    if ctx < 2 || ctx > l.model.config.context_length {
        anyhow::bail!(
            "--ctx must be between 2 and the model's context length {}, got {ctx}",
            l.model.config.context_length
        );
    }
    let tokens = l.tokenizer.encode(&text, true);
    let n_chunks = tokens.len() / ctx;
    if n_chunks == 0 {
        anyhow::bail!(
            "the file has {} tokens, fewer than one chunk of {ctx}; lower --ctx",
            tokens.len()
        );
    }
    eprintln!("ondo: {} tokens, {n_chunks} chunks of {ctx}", tokens.len());
    let mut kv = l.model.new_cache(ctx)?;
    let n_vocab = l.model.config.n_vocab;
    let (mut nll_sum, mut scored) = (0.0f64, 0usize);
    let t0 = Instant::now();
    for (c, chunk) in tokens.chunks_exact(ctx).enumerate() {
        kv.clear();
        let logits = l.model.forward(chunk, &mut kv, Logits::All)?;
        for p in 0..ctx - 1 {
            nll_sum += nll(&logits[p * n_vocab..(p + 1) * n_vocab], chunk[p + 1]);
            scored += 1;
        }
        if !a.json {
            eprint!(
                "\r[{}/{n_chunks}] ppl {:.4}",
                c + 1,
                (nll_sum / scored as f64).exp()
            );
            std::io::stderr().flush().ok();
        }
    }
    let ppl = (nll_sum / scored as f64).exp();
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "ppl": ppl, "tokens_scored": scored })
        );
    } else {
        eprintln!(" ({:.1} s)", t0.elapsed().as_secs_f64());
        println!("perplexity: {ppl:.4} over {scored} tokens");
    }
    Ok(())
}

/// -log softmax(logits)[target], computed in f64.
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}
