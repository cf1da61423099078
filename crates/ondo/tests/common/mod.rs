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

/// Checks logits ([positions][nv]) against a fixture's `top` list (per position the reference's
/// top token ids, best first, and their logits): the same ids in the same order at every
/// position. Returns the largest difference of those logits, and calls `each(pos, id, logit)`
/// for every compared entry.
pub fn check_top(
    logits: &[f32],
    nv: usize,
    top: &serde_json::Value,
    mut each: impl FnMut(usize, usize, f32),
) -> f32 {
    let mut worst = 0.0f32;
    for (pos, want) in top.as_array().expect("top is a list").iter().enumerate() {
        let row = &logits[pos * nv..(pos + 1) * nv];
        let want_ids: Vec<usize> = ids_of(&want["ids"]).iter().map(|&i| i as usize).collect();
        let mut order: Vec<usize> = (0..nv).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        assert_eq!(
            &order[..want_ids.len()],
            &want_ids[..],
            "top ids at position {pos}"
        );
        for (&id, v) in want_ids
            .iter()
            .zip(want["logits"].as_array().expect("logits"))
        {
            worst = worst.max((row[id] - v.as_f64().expect("a logit") as f32).abs());
            each(pos, id, row[id]);
        }
    }
    worst
}
