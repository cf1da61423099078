//! Shared helpers for ondo-text integration tests: building a [`VocabConfig`] from a
//! GGUF file's `tokenizer.*` metadata, and locating models and fixtures.
#![allow(dead_code)]

use ondo_formats::GgufFile;
use ondo_text::{TokenizerKind, VocabConfig};
use std::path::{Path, PathBuf};

/// Workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SmolLM2 model in ondo's cache (see `ondo_formats::testdata::cached_default_model`).
pub fn smollm2_path() -> Option<PathBuf> {
    ondo_formats::testdata::cached_default_model()
}

/// A llama.cpp vocab-only GGUF (`ggml-vocab-NAME.gguf`), looked up in
/// `tests/fixtures/reference/vocab-NAME.gguf`, `$ONDO_VOCAB_DIR` and the llama.cpp
/// model folder that `scripts/setup_reference_env.sh` extracts under
/// `~/.cache/ondo/reference/llama.cpp-models-*`.
pub fn vocab_gguf(name: &str) -> Option<PathBuf> {
    let mut candidates =
        vec![workspace().join(format!("tests/fixtures/reference/vocab-{name}.gguf"))];
    if let Ok(dir) = std::env::var("ONDO_VOCAB_DIR") {
        candidates.push(Path::new(&dir).join(format!("ggml-vocab-{name}.gguf")));
    }
    if let Ok(home) = std::env::var("HOME") {
        let refdir = Path::new(&home).join(".cache/ondo/reference");
        if let Ok(entries) = std::fs::read_dir(&refdir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with("llama.cpp-models-")
                {
                    candidates.push(e.path().join(format!("ggml-vocab-{name}.gguf")));
                }
            }
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Path under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// The tokenizer corpus: one JSON string per line.
pub fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(fixture("text/tokenizer_corpus.jsonl")).expect("corpus");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<String>(l).expect("corpus line is a JSON string"))
        .collect()
}

/// `tokenizer.ggml.model` of a GGUF file.
pub fn gguf_model(path: &Path) -> String {
    let f = GgufFile::open(path).expect("open gguf");
    let m = f.metadata().get_str("tokenizer.ggml.model").unwrap();
    m.unwrap_or_default().to_string()
}

/// Read the vocabulary metadata of a GGUF file; also returns its chat template.
pub fn load_vocab(path: &Path) -> (VocabConfig, Option<String>) {
    let f = GgufFile::open(path).expect("open gguf");
    let md = f.metadata();
    let model = md
        .get_str("tokenizer.ggml.model")
        .unwrap()
        .expect("tokenizer.ggml.model");
    let kind = TokenizerKind::from_gguf_model(model).expect("supported tokenizer");
    let tokens = md
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .expect("tokens")
        .to_vec();
    let mut cfg = VocabConfig::new(kind, tokens);
    cfg.pre = md.get_str("tokenizer.ggml.pre").unwrap().map(String::from);
    cfg.scores = md
        .get_f32_array("tokenizer.ggml.scores")
        .unwrap()
        .map(<[f32]>::to_vec);
    cfg.token_types = md
        .get_i32_array("tokenizer.ggml.token_type")
        .unwrap()
        .map(<[i32]>::to_vec);
    cfg.merges = md
        .get_str_array("tokenizer.ggml.merges")
        .unwrap()
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    let id = |k: &str| md.get_u32(&format!("tokenizer.ggml.{k}")).unwrap();
    cfg.bos_id = id("bos_token_id");
    cfg.eos_id = id("eos_token_id");
    cfg.eot_id = id("eot_token_id");
    cfg.eom_id = id("eom_token_id");
    cfg.unk_id = id("unknown_token_id");
    cfg.pad_id = id("padding_token_id");
    let flag = |k: &str| md.get_bool(&format!("tokenizer.ggml.{k}")).unwrap();
    cfg.add_bos = flag("add_bos_token");
    cfg.add_eos = flag("add_eos_token");
    cfg.add_space_prefix = flag("add_space_prefix");
    let template = md
        .get_str("tokenizer.chat_template")
        .unwrap()
        .map(String::from);
    (cfg, template)
}

/// GPT-2's byte → printable-character mapping (for building synthetic vocabularies).
pub fn byte_char(b: u8) -> char {
    let printable = |u: u32| {
        (0x21..=0x7E).contains(&u) || (0xA1..=0xAC).contains(&u) || (0xAE..=0xFF).contains(&u)
    };
    if printable(b as u32) {
        return char::from(b);
    }
    let n = (0..b as u32).filter(|&u| !printable(u)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

/// A tiny byte-level BPE vocabulary: ids 0..=255 are the single bytes, followed by
/// `extra` tokens `(text, token_type)`; merges as given. Pre-tokenizer "gpt-2".
pub fn tiny_bpe(extra: &[(&str, i32)], merges: &[&str]) -> VocabConfig {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![1; 256];
    for &(t, ty) in extra {
        tokens.push(t.to_string());
        types.push(ty);
    }
    let mut cfg = VocabConfig::new(TokenizerKind::Bpe, tokens);
    cfg.pre = Some("gpt-2".into());
    cfg.token_types = Some(types);
    cfg.merges = merges.iter().map(|s| s.to_string()).collect();
    cfg
}
