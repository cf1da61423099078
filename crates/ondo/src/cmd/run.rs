//! `ondo run`: one prompt in, the continuation streamed out.

use anyhow::Result;
use ondo_text::ChatMessage;

use ondo_sample::JsonSampling;

use super::{context_size, emit_stdout, json_vocab, output_format, sampler_from};
use crate::cli::RunArgs;
use crate::generate::generate;
use crate::{load, store};

pub fn run(a: RunArgs) -> Result<()> {
    let mut sampler = sampler_from(&a.sample)?;
    let format = output_format(&a.sample)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let mut l = load::load(&path)?;
    load::apply_loras(&mut l, &a.lora.lora)?;
    let ids = if a.chat {
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(ChatMessage::new("system", s));
        }
        messages.push(ChatMessage::new("user", &a.prompt));
        l.template
            .render_tokens(&l.tokenizer, &messages, true, None)?
    } else {
        l.tokenizer.encode(&a.prompt, true)
    };
    let ctx = context_size(&a.sample, &l.model.config)?;
    if ids.len() >= ctx {
        anyhow::bail!(
            "the prompt has {} tokens, more than the context of {ctx} (raise --ctx)",
            ids.len()
        );
    }
    let mut kv = l.model.new_cache(ctx)?;
    let max_new = a.sample.n_predict.min(ctx - ids.len());
    let json = json_vocab(&format, &l.tokenizer)
        .zip(format.as_ref())
        .map(|(v, f)| JsonSampling::for_format(v, f));
    let (_, stats) = generate(
        &l.model,
        &l.tokenizer,
        &mut kv,
        &mut sampler,
        &ids,
        max_new,
        json,
        &mut emit_stdout,
    )?;
    println!();
    stats.report();
    Ok(())
}
