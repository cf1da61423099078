//! `ondo chat`: an interactive conversation. Each turn renders the whole conversation with the
//! chat template and evaluates only the tokens after the prefix already in the KV cache.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use ondo_sample::JsonSampling;
use ondo_text::ChatMessage;

use super::{context_size, emit_stdout, json_vocab, output_format, sampler_from};
use crate::cli::ChatArgs;
use crate::generate::generate;
use crate::{load, store};

pub fn chat(a: ChatArgs) -> Result<()> {
    let mut sampler = sampler_from(&a.sample)?;
    let format = output_format(&a.sample)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let mut l = load::load(&path)?;
    load::apply_loras(&mut l, &a.lora.lora)?;
    let ctx = context_size(&a.sample, &l.model.config)?;
    let mut kv = l.model.new_cache(ctx)?;
    let json = json_vocab(&format, &l.tokenizer).zip(format);
    let mut in_cache: Vec<u32> = Vec::new();
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(s) = &a.system {
        messages.push(ChatMessage::new("system", s));
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "ondo: chatting with {} — /clear starts over, /exit or Ctrl-D quits",
            path.display()
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("\n> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                messages.retain(|m| m.role == "system");
                kv.clear();
                in_cache.clear();
                eprintln!("ondo: conversation cleared");
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::new("user", input));
        let ids = l
            .template
            .render_tokens(&l.tokenizer, &messages, true, None)?;
        if ids.len() >= ctx {
            messages.pop();
            eprintln!("ondo: the conversation no longer fits the context of {ctx} tokens; /clear to start over");
            continue;
        }
        let common = in_cache
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count();
        kv.truncate(common);
        let max_new = a.sample.n_predict.min(ctx - ids.len());
        let mut reply = String::new();
        let (generated, stats) = generate(
            &l.model,
            &l.tokenizer,
            &mut kv,
            &mut sampler,
            &ids[common..],
            max_new,
            json.as_ref()
                .map(|(v, f)| JsonSampling::for_format(v.clone(), f)),
            &mut |t| {
                reply.push_str(t);
                emit_stdout(t)
            },
        )?;
        println!();
        if interactive {
            stats.report();
        }
        in_cache = ids;
        in_cache.extend_from_slice(&generated);
        in_cache.truncate(kv.len());
        messages.push(ChatMessage::new("assistant", &reply));
    }
    Ok(())
}
