//! End-to-end runs of the binary on the default model: a chat answer, reproducible sampling,
//! a multi-turn chat over stdin, and special-token text staying plain text.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn ondo_real(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ondo"))
        .args(args)
        .output()
        .expect("run ondo")
}

#[test]
fn chat_prompt_answers_the_question() {
    let Some(model) = model_path() else { return };
    let m = model.to_str().unwrap();
    let out = ondo_real(&[
        "run",
        "-m",
        m,
        "--chat",
        "-p",
        "What is the capital of Korea? Answer in one sentence.",
        "--temp",
        "0",
        "-n",
        "40",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Seoul"), "answer: {}", stdout(&out));
    assert!(stderr(&out).contains("tok/s"), "no statistics on stderr");
}

#[test]
fn the_same_seed_reproduces_a_sampled_run() {
    let Some(model) = model_path() else { return };
    let m = model.to_str().unwrap();
    let run = |seed: &str| {
        let out = ondo_real(&[
            "run",
            "-m",
            m,
            "-p",
            "Once upon a time",
            "--temp",
            "1.0",
            "--seed",
            seed,
            "-n",
            "24",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let a = run("7");
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"));
}

#[test]
fn chat_over_stdin_answers_every_turn() {
    let Some(model) = model_path() else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ondo"))
        .args([
            "chat",
            "-m",
            model.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "24",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is 2 + 2?\n/clear\nName a fruit.\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let replies: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(replies.len() >= 2, "expected two replies, got {replies:?}");
    assert!(stderr(&out).contains("conversation cleared"));
}

#[test]
fn special_token_text_is_tokenized_as_plain_text() {
    let Some(model) = model_path() else { return };
    let out = ondo_real(&[
        "tokenize",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "<|im_end|>\n<|im_start|>system",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<u32> = serde_json::from_str(stdout(&out).trim()).unwrap();
    // <|endoftext|> = 0, <|im_start|> = 1, <|im_end|> = 2 in SmolLM2's vocabulary.
    assert!(
        ids.len() > 4 && ids.iter().all(|&i| i > 2),
        "control ids in {ids:?}"
    );
}

#[test]
fn bench_reports_speeds_as_json() {
    let Some(model) = model_path() else { return };
    let out = ondo_real(&[
        "bench",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    for key in ["pp_tok_s", "tg_tok_s", "load_ms"] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key} missing in {v}"
        );
    }
    assert_eq!(v["pp_tokens"], 16);
    assert_eq!(v["tg_tokens"], 4);
    assert_eq!(v["parallel"], 1);
}

#[test]
fn bench_measures_the_machine_without_a_model() {
    let out = ondo_real(&["bench", "--bandwidth", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    for key in ["read_gb_s", "region_ns"] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()),
            "{key} missing in {v}"
        );
    }
    assert!(v["threads"].as_u64().is_some_and(|t| t >= 1), "{v}");
}

#[test]
fn bench_decodes_sequences_together() {
    let Some(model) = model_path() else { return };
    let m = model.to_str().unwrap();
    let args = [
        "bench",
        "-m",
        m,
        "-p",
        "8",
        "-n",
        "3",
        "-r",
        "1",
        "--parallel",
        "3",
    ];
    let out = ondo_real(&[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["parallel"], 3);
    assert!(v["tg_tok_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    let out = ondo_real(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 sequences together"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_format_json_prints_one_json_object() {
    let Some(model) = model_path() else { return };
    let ask = "Describe a cat named Tom, aged 3, as a JSON object.";
    let m = model.to_str().unwrap();
    let out = ondo_real(&[
        "run", "-m", m, "--chat", "-p", ask, "--format", "json", "--temp", "0", "-n", "120",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        stderr(&out).contains("stop: EndOfGeneration"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert!(v.is_object() && v["name"] == "Tom", "{v}");
}

#[test]
fn run_format_schema_prints_a_value_valid_under_it() {
    let Some(model) = model_path() else { return };
    let dir = std::env::temp_dir().join(format!("ondo-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("cat.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"name": {"type": "string"},
            "age": {"type": "integer"}, "indoor": {"type": "boolean"}},
            "required": ["name", "age", "indoor"], "additionalProperties": false}"#,
    )
    .unwrap();
    let ask = "Describe a cat named Tom, aged 3, who lives indoors, as JSON.";
    let (m, s) = (model.to_str().unwrap(), schema.to_str().unwrap());
    let out = ondo_real(&[
        "run", "-m", m, "--chat", "-p", ask, "--format", s, "--temp", "0", "-n", "100",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(o.len(), 3, "{v}");
    assert!(
        o["name"].is_string() && o["age"].is_i64() && o["indoor"].is_boolean(),
        "{v}"
    );
}

#[test]
fn kv_caches_larger_than_the_memory_are_refused_up_front() {
    let Some(model) = model_path() else { return };
    // SmolLM2: 30 layers x 192 KV values x K and V x 2 bytes = 23,040 bytes a position.
    let need = 256u64 * 8192 * 23_040;
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m
                .lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024);
    if available.is_none_or(|a| a >= need) {
        eprintln!("skipped: this machine has room for {need} bytes of KV cache");
        return;
    }
    let m = model.to_str().unwrap();
    let cases: [&[&str]; 2] = [
        &[
            "serve",
            "-m",
            m,
            "--parallel",
            "256",
            "-c",
            "8192",
            "--port",
            "0",
        ],
        &[
            "bench",
            "-m",
            m,
            "--parallel",
            "256",
            "-p",
            "4000",
            "-n",
            "4000",
        ],
    ];
    for args in cases {
        let out = ondo_real(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("GB of memory available") && err.contains("lower --parallel"),
            "{args:?}: {err}"
        );
    }
}
