//! llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf.inp/.out`, copied
//! into `tests/fixtures/llama-vocab/`): every case must give exactly the expected ids.
//! Vocab GGUFs are looked up as described in `common::vocab_gguf`; absent ones are
//! skipped with a note.

mod common;

use ondo_text::Tokenizer;

const VOCABS: &[&str] = &[
    "llama-spm",
    "phi-3",
    "gpt-2",
    "llama-bpe",
    "qwen2",
    "qwen35",
    "starcoder",
    "refact",
    "command-r",
    "falcon",
    "mpt",
    "deepseek-coder",
    "deepseek-llm",
];

fn cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-vocab");
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert!(
        ids.len() >= texts.len() - 1,
        "{name}: .out shorter than .inp"
    );
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), ids.get(i).cloned().unwrap_or_default()))
        .collect()
}

#[test]
fn llama_cpp_vocab_vectors() {
    let mut checked = 0;
    for &name in VOCABS {
        let Some(path) = common::vocab_gguf(name) else {
            println!("note: ggml-vocab-{name}.gguf not found, skipping");
            continue;
        };
        let (cfg, _) = common::load_vocab(&path);
        let tok = Tokenizer::new(cfg).unwrap();
        assert!(tok.warnings().is_empty(), "{name}: {:?}", tok.warnings());
        let cases = cases(name);
        let mut failures = Vec::new();
        for (text, expected) in &cases {
            let got = tok.encode(text, false);
            if &got != expected {
                failures.push(format!("{text:?}: expected {expected:?}, got {got:?}"));
            }
        }
        println!(
            "{name}: {}/{} identical",
            cases.len() - failures.len(),
            cases.len()
        );
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
        checked += 1;
    }
    println!("{checked} vocabularies checked");
}
