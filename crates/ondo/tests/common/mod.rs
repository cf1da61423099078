//! Shared helpers of the binary's integration tests: where the model and fixtures are, and how
//! to run the built `ondo` binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// The default model in the cache. Absent: the test is skipped with a note, unless
/// ONDO_REQUIRE_MODEL=1 (set by scripts/test.sh and so by CI), where absence fails it.
pub fn model_path() -> Option<PathBuf> {
    let home = match std::env::var_os("ONDO_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
            Some(x) => PathBuf::from(x).join("ondo"),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ondo"),
        },
    };
    let p = home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("ONDO_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!("{} is missing (run `ondo pull`)", p.display());
    }
    eprintln!(
        "note: {} is missing; skipping (run `ondo pull`)",
        p.display()
    );
    None
}

pub fn ondo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ondo"))
        .args(args)
        .env(
            "ONDO_HOME",
            std::env::temp_dir().join("ondo-test-empty-home"),
        )
        .output()
        .expect("run ondo")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
