//! `decode(encode(x)) == x` for every line of the tokenizer corpus, for SmolLM2 (BPE)
//! and the Llama SentencePiece vocab, plus the llama.cpp vocab test inputs.

mod common;

use ondo_text::Tokenizer;
use std::path::Path;

fn check(name: &str, tok: &Tokenizer, texts: &[String]) {
    let mut bad = Vec::new();
    for text in texts {
        for add_special in [false, true] {
            let ids = tok.encode(text, add_special);
            let back = tok.decode(&ids, true);
            if &back != text {
                bad.push(format!("{text:?} (add_special={add_special}) -> {back:?}"));
            }
        }
    }
    println!(
        "{name}: {}/{} lines round-trip",
        texts.len() - bad.len() / 2,
        texts.len()
    );
    assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
}

#[test]
fn smollm2_corpus_roundtrip() {
    let Some(path) = common::smollm2_path() else {
        println!("note: SmolLM2 model not found, skipping");
        return;
    };
    let (cfg, _) = common::load_vocab(&path);
    let tok = Tokenizer::new(cfg).unwrap();
    check("smollm2", &tok, &common::corpus());
}

#[test]
fn vocab_roundtrip() {
    for name in ["llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2"] {
        let Some(path) = common::vocab_gguf(name) else {
            println!("note: ggml-vocab-{name}.gguf not found, skipping");
            continue;
        };
        let (cfg, _) = common::load_vocab(&path);
        let tok = Tokenizer::new(cfg).unwrap();
        check(name, &tok, &common::corpus());
    }
}

#[test]
fn corpus_is_present() {
    assert!(Path::new(&common::fixture("text/tokenizer_corpus.jsonl")).is_file());
    assert!(common::corpus().len() > 100);
}
