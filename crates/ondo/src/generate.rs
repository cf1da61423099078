//! The generation loop shared by `run` and `chat`: prefill the new prompt tokens in chunks,
//! then sample, stream and feed one token at a time until an end-of-generation token, the
//! token limit or a full context.

use std::time::Instant;

use anyhow::Result;
use ondo_model::{KvCache, LlamaModel, Logits};
use ondo_sample::{JsonSampling, Sampler};
use ondo_text::{Detokenizer, Tokenizer};

/// Prompt tokens evaluated per forward call.
const PREFILL_CHUNK: usize = 256;

#[derive(Debug, Default)]
pub struct GenStats {
    pub prompt_tokens: usize,
    pub prompt_secs: f64,
    pub gen_tokens: usize,
    pub gen_secs: f64,
    pub stop: StopReason,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum StopReason {
    #[default]
    EndOfGeneration,
    MaxTokens,
    ContextFull,
}

impl GenStats {
    pub fn report(&self) {
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        eprintln!(
            "\nondo: prompt {} tokens, {:.1} tok/s | generated {} tokens, {:.1} tok/s | stop: {:?}",
            self.prompt_tokens,
            rate(self.prompt_tokens, self.prompt_secs),
            self.gen_tokens,
            rate(self.gen_tokens, self.gen_secs),
            self.stop
        );
    }
}

/// Feeds `new_tokens` after what `kv` already holds, then generates up to `max_new` tokens,
/// calling `emit` with each complete piece of UTF-8 text. Returns the generated ids. With
/// `json`, only tokens that keep the reply one JSON object are drawn, and it ends when the
/// object closes.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &LlamaModel,
    tok: &Tokenizer,
    kv: &mut KvCache,
    sampler: &mut Sampler,
    new_tokens: &[u32],
    max_new: usize,
    mut json: Option<JsonSampling>,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<(Vec<u32>, GenStats)> {
    let mut stats = GenStats {
        prompt_tokens: new_tokens.len(),
        ..GenStats::default()
    };
    for &t in new_tokens {
        sampler.accept(t);
    }
    let t0 = Instant::now();
    let mut logits = Vec::new();
    for chunk in new_tokens.chunks(PREFILL_CHUNK) {
        logits = model.forward(chunk, kv, Logits::Last)?;
    }
    stats.prompt_secs = t0.elapsed().as_secs_f64();
    if logits.is_empty() {
        anyhow::bail!("the prompt is empty: nothing to continue from");
    }

    let t1 = Instant::now();
    let mut detok = Detokenizer::new(true);
    let mut out = Vec::new();
    stats.stop = StopReason::MaxTokens;
    for i in 0..max_new {
        let id = match &mut json {
            None => sampler.sample(&mut logits),
            Some(j) => j.sample(sampler, &mut logits)?,
        };
        if tok.is_eog(id) {
            stats.stop = StopReason::EndOfGeneration;
            break;
        }
        out.push(id);
        sampler.accept(id);
        let text = detok.push(tok, id);
        if !text.is_empty() {
            emit(&text)?;
        }
        if json.as_ref().is_some_and(JsonSampling::is_complete) {
            stats.stop = StopReason::EndOfGeneration;
            break;
        }
        if i + 1 == max_new {
            break;
        }
        if kv.len() >= kv.capacity() {
            stats.stop = StopReason::ContextFull;
            break;
        }
        model.forward_into(&[id], kv, Logits::Last, &mut logits)?;
    }
    let rest = detok.flush();
    if !rest.is_empty() {
        emit(&rest)?;
    }
    stats.gen_tokens = out.len();
    stats.gen_secs = t1.elapsed().as_secs_f64();
    Ok((out, stats))
}
