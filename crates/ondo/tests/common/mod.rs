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

/// The default model in the cache (see `ondo_formats::testdata::cached_default_model`).
pub fn model_path() -> Option<PathBuf> {
    ondo_formats::testdata::cached_default_model()
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

/// A JSON array of token ids.
pub fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}
