//! Every malformed GGUF in tests/fixtures/malformed and every bad flag gives one line on stderr
//! and exit status 1: no panic, no abort, no allocation beyond a capped address space.

mod common;

use std::process::Command;

use common::*;

/// Runs ondo with the address space capped at 1 GiB, so an allocation sized by a hostile header
/// aborts the process (and fails the test) instead of passing unnoticed.
fn ondo_capped(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 1048576; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ondo"))
        .args(args)
        .env(
            "ONDO_HOME",
            std::env::temp_dir().join("ondo-test-empty-home"),
        );
    cmd.output().expect("run ondo")
}

fn assert_clean_failure(what: &str, out: &std::process::Output) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: status {:?}, stderr: {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one error line, got: {err}"
    );
    assert!(
        lines[0].len() > 12,
        "{what}: error line says too little: {err}"
    );
}

/// Exit 0 with a warning on stderr and no panic: the documented policy for tolerated oddities.
fn accepted_with_warning(out: &std::process::Output) -> bool {
    let err = stderr(out);
    out.status.success() && err.contains("warning") && !err.contains("panicked")
}

#[test]
fn malformed_gguf_files_fail_cleanly_in_info_and_run() {
    let dir = fixture("malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/malformed exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} malformed fixtures", files.len());
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let container_cases: Vec<&str> = manifest
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?;
            (cols.next()? == "container").then_some(file)
        })
        .collect();
    assert!(container_cases.len() >= 30);
    for f in &files {
        let path = f.to_str().unwrap();
        let name = f.file_name().unwrap().to_string_lossy();
        if !container_cases.contains(&name.as_ref())
            && accepted_with_warning(&ondo_capped(&["info", path]))
        {
            // A model-level oddity ondo tolerates, as llama.cpp does (an empty token string).
            continue;
        }
        assert_clean_failure(&format!("info {name}"), &ondo_capped(&["info", path]));
        assert_clean_failure(
            &format!("run {name}"),
            &ondo_capped(&["run", "-m", path, "-p", "hi", "-n", "2"]),
        );
        // `tokenize` reads only the container and the vocabulary, so only container-level
        // damage must stop it.
        if container_cases.contains(&name.as_ref()) {
            assert_clean_failure(
                &format!("tokenize {name}"),
                &ondo_capped(&["tokenize", "-m", path, "-p", "hi"]),
            );
        }
    }
    eprintln!(
        "{} malformed files x 3 commands: all clean errors",
        files.len()
    );
}

#[test]
fn bad_arguments_fail_cleanly() {
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["run"],
        &["run", "-p", "x", "--temp", "abc"],
        &["run", "-p", "x", "--temp", "-1"],
        &["run", "-p", "x", "--top-p", "7"],
        &["run", "-p", "x", "-n", "-5"],
        &["run", "-m", "/nonexistent/model.gguf", "-p", "x"],
        &["run", "-m", "no-such-model", "-p", "x"],
        &["run", "-m", "/", "-p", "x"],
        &["info", "/nonexistent.gguf"],
        &["info", "Cargo.toml"],
        &["tokenize", "-m", "/nonexistent.gguf"],
        &[
            "perplexity",
            "-m",
            "/nonexistent.gguf",
            "-f",
            "/nonexistent.txt",
        ],
        &["-t", "0", "info", "x"],
        &["serve", "--parallel", "0"],
        &["bench", "--parallel", "0"],
        &["run", "-p", "x", "--format", "yaml"],
        &["run", "-p", "x", "--format", "/nonexistent.schema.json"],
        &["run", "-p", "x", "--format", "/proc/self/status"],
        &["chat", "--format", "/"],
        &["bench", "--parallel", "300"],
        &["bench", "--parallel", "2", "--depth", "8"],
        &["serve", "--allow-origin", "https://app.example:443"],
        &[
            "serve",
            "--allow-origin",
            "https://a.example,https://b.example",
        ],
        &["serve", "--allow-origin", "chat.example.com"],
    ];
    for args in cases {
        assert_clean_failure(&args.join(" "), &ondo(args));
    }
}

#[test]
fn help_exits_zero() {
    let out = ondo(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("perplexity"));
    let out = ondo(&["run", "--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("--temp"));
}

/// The unpatched base of the model-level cases is a complete model, so each of them fails on
/// its own defect rather than on something the base lacks.
#[test]
fn the_corpus_base_file_is_a_valid_model() {
    let path = std::env::temp_dir().join(format!("ondo-tiny-base-{}.gguf", std::process::id()));
    std::fs::write(&path, ondo_formats::testdata::tiny_llama_model().to_bytes()).unwrap();
    let out = ondo(&["info", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("architecture:  llama"));
}
