//! Parity with llama.cpp on the golden fixtures made by `scripts/gen_fixtures.py`
//! (`tests/fixtures/reference/tokenizer_*.json`): for every corpus line, the ids of
//! `tokenize(add_bos=false/true, special=false)` and `tokenize(special=true)`, and
//! `llama_detokenize` of the plain ids. A vocab is skipped (with a note) only when its
//! GGUF is absent; a missing SmolLM2 fixture while the model is present is an error.

mod common;

use ondo_text::{Tokenizer, TokenizerKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn detok_expected(case: &Value, text: &str) -> Vec<u8> {
    match case.get("detok") {
        None => text.as_bytes().to_vec(),
        Some(d) => match (d.get("text"), d.get("hex")) {
            (Some(t), _) => t.as_str().unwrap().as_bytes().to_vec(),
            (_, Some(h)) => {
                let h = h.as_str().unwrap();
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                    .collect()
            }
            _ => panic!("bad detok field"),
        },
    }
}

/// Returns (identical cases, total) for the ids of plain `encode`.
fn check_fixture(path: &Path, gguf: &Path) -> (usize, usize) {
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let meta = &fx["meta"];
    let name = meta["vocab"].as_str().unwrap().to_string();
    let (cfg, _) = common::load_vocab(gguf);
    let tok = Tokenizer::new(cfg).unwrap();
    assert_eq!(
        tok.n_vocab() as u64,
        meta["n_vocab"].as_u64().unwrap(),
        "{name}: n_vocab"
    );
    let eff = &meta["llama_cpp_effective"];
    assert_eq!(
        tok.add_bos(),
        eff["add_bos"].as_bool().unwrap(),
        "{name}: add_bos"
    );
    assert_eq!(
        tok.add_eos(),
        eff["add_eos"].as_bool().unwrap(),
        "{name}: add_eos"
    );
    if tok.add_bos() {
        assert_eq!(
            tok.bos_id().map(i64::from),
            meta["token_bos"].as_i64(),
            "{name}: bos"
        );
    }
    let prefix = ids(&meta["add_special_prefix"]);
    let suffix = ids(&meta["add_special_suffix"]);
    let corpus = common::corpus();
    assert_eq!(
        corpus.len() as u64,
        meta["n_cases"].as_u64().unwrap(),
        "{name}: corpus changed?"
    );
    // llama.cpp's detokenizer also applies `clean_spaces` to most BPE vocabs; decode()
    // is byte-exact instead, so detokenization is compared where llama.cpp does not clean.
    let compare_detok = tok.kind() == TokenizerKind::Spm || name == "smollm2";

    let mut failures = Vec::new();
    let mut identical = 0;
    let cases = fx["cases"].as_array().unwrap();
    for case in cases {
        let i = case["i"].as_u64().unwrap() as usize;
        let text = &corpus[i];
        let expected = ids(&case["ids"]);
        let got = tok.encode(text, false);
        if got == expected {
            identical += 1;
        } else {
            failures.push(format!(
                "[{i}] {text:?} plain: expected {expected:?}, got {got:?}"
            ));
        }
        let exp_add = match case.get("ids_add_special") {
            Some(v) => ids(v),
            None => [prefix.clone(), expected.clone(), suffix.clone()].concat(),
        };
        let got_add = tok.encode(text, true);
        if got_add != exp_add {
            failures.push(format!(
                "[{i}] {text:?} add_special: expected {exp_add:?}, got {got_add:?}"
            ));
        }
        let exp_sp = case
            .get("ids_parse_special")
            .map_or_else(|| expected.clone(), ids);
        let got_sp = tok.encode_with_special(text, false);
        if got_sp != exp_sp {
            failures.push(format!(
                "[{i}] {text:?} parse_special: expected {exp_sp:?}, got {got_sp:?}"
            ));
        }
        if compare_detok {
            let exp = String::from_utf8_lossy(&detok_expected(case, text)).into_owned();
            let got = tok.decode(&expected, false);
            if got != exp {
                failures.push(format!(
                    "[{i}] {text:?} detok: expected {exp:?}, got {got:?}"
                ));
            }
        }
    }
    println!(
        "{name}: {identical}/{} lines identical (plain ids)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (identical, cases.len())
}

#[test]
fn smollm2_matches_llama_cpp() {
    let Some(model) = common::smollm2_path() else {
        println!("note: SmolLM2 model not found, skipping");
        return;
    };
    let fx = common::fixture("reference/tokenizer_smollm2.json");
    assert!(
        fx.is_file(),
        "{} missing (run scripts/gen_fixtures.py --only tokenizer)",
        fx.display()
    );
    let (ok, total) = check_fixture(&fx, &model);
    assert_eq!(ok, total);
}

#[test]
fn vocab_fixtures_match_llama_cpp() {
    let dir = common::fixture("reference");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("note: {} not found", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("tokenizer_") && n.ends_with(".json") && n != "tokenizer_smollm2.json"
        })
        .collect();
    files.sort();
    for f in files {
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = fx["meta"]["vocab"].as_str().unwrap().to_string();
        let Some(gguf) = common::vocab_gguf(&name) else {
            println!(
                "note: vocab-{name}.gguf not found, skipping {}",
                f.display()
            );
            continue;
        };
        let model = common::gguf_model(&gguf);
        if TokenizerKind::from_gguf_model(&model).is_err() {
            println!("note: {name}: tokenizer model {model:?} is not supported, skipping");
            continue;
        }
        check_fixture(&f, &gguf);
    }
}

/// The acceptance check for a SentencePiece vocabulary: both files are committed, so this
/// never skips.
#[test]
fn llama_spm_matches_llama_cpp() {
    let fx = common::fixture("reference/tokenizer_llama_spm.json");
    let gguf = common::fixture("reference/vocab-llama-spm.gguf");
    assert!(
        fx.is_file() && gguf.is_file(),
        "SentencePiece fixtures missing"
    );
    let (ok, total) = check_fixture(&fx, &gguf);
    assert!(total >= 200, "only {total} corpus lines");
    assert_eq!(ok, total);
}
