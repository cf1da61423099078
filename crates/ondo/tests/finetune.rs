//! `ondo finetune` end to end on the default model with a few steps (seconds): the held-out
//! loss falls, the adapter it writes loads with `--lora`, a checkpoint resumes, and malformed
//! data is a one-line error naming the line. (The full run, the date-normalization task, is in
//! train/README.md.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn ondo_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ondo"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ondo")
}

/// The number after `label` in the text.
fn number_after(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    text[at..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

#[test]
fn finetune_lowers_the_held_out_loss_and_writes_a_usable_adapter() {
    let Some(model) = model_path() else { return };
    let model = model.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("ondo-finetune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let task = repo_root().join("train/tasks/dates/train.jsonl");
    let lines: String = std::fs::read_to_string(task)
        .unwrap()
        .lines()
        .take(6)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("d.jsonl"), &lines).unwrap();
    let common_args = [
        "finetune",
        "-m",
        model,
        "--data",
        "d.jsonl",
        "--val",
        "d.jsonl",
        "--ctx",
        "96",
        "--grad-accum",
        "1",
        "--lr",
        "2e-3",
        "--warmup",
        "1",
        "--seed",
        "3",
    ];
    let mut args = common_args.to_vec();
    args.extend([
        "-o",
        "a.gguf",
        "--max-steps",
        "6",
        "--checkpoint",
        "run.ckpt",
    ]);
    let o = ondo_in(&dir, &args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let before = number_after(&err, "held-out loss before training:");
    let after = number_after(&err, "held-out loss after training:");
    assert!(
        after < before * 0.9,
        "held-out loss {before} -> {after}\n{err}"
    );
    assert!(
        err.contains("tok/s") && err.contains("peak memory"),
        "{err}"
    );

    let o = ondo_in(
        &dir,
        &["run", "-m", model, "--lora", "a.gguf", "-p", "a", "-n", "2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("adapts"), "{}", stderr(&o));

    // Resuming the finished run for 1 more step continues from step 6.
    let mut args = common_args.to_vec();
    args.extend(["-o", "b", "--max-steps", "7", "--resume", "run.ckpt"]);
    let o = ondo_in(&dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("trained 1 steps"), "{}", stderr(&o));
    assert!(dir.join("b/adapter_config.json").exists());

    // Malformed data names its line.
    std::fs::write(
        dir.join("bad.jsonl"),
        "{\"text\": \"a b c\"}\n{\"txet\": 1}\n",
    )
    .unwrap();
    let o = ondo_in(
        &dir,
        &[
            "finetune",
            "-m",
            model,
            "--data",
            "bad.jsonl",
            "-o",
            "c.gguf",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(errors.len() == 1 && errors[0].contains("line 2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn full_finetune_of_an_upscaled_model_lowers_its_loss_and_writes_a_model_that_runs() {
    let Some(model) = model_path() else { return };
    let model = model.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("ondo-finetune-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A small deep model (8 layers from two overlapping slices) keeps this to seconds.
    let o = ondo_in(
        &dir,
        &[
            "upscale",
            "-m",
            model,
            "-o",
            "deep.gguf",
            "--layers",
            "0..5,2..5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let replay = repo_root().join("train/tasks/dates/replay.jsonl");
    let text = std::fs::read_to_string(replay).unwrap();
    let lines: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(dir.join("t.jsonl"), lines.join("\n")).unwrap();
    let plain: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("t.txt"), plain.join("\n\n")).unwrap();
    let common_args = [
        "finetune",
        "-m",
        "deep.gguf",
        "--full",
        "--data",
        "t.jsonl",
        "--val",
        "t.jsonl",
        "--ctx",
        "64",
        "--grad-accum",
        "1",
        "--batch",
        "2",
        "--lr",
        "3e-4",
        "--warmup",
        "1",
        "--seed",
        "1",
    ];
    let mut args = common_args.to_vec();
    args.extend([
        "-o",
        "ft.gguf",
        "--max-steps",
        "4",
        "--checkpoint",
        "full.ckpt",
    ]);
    let o = ondo_in(&dir, &args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("all ") && err.contains("M weights of 8 layers"),
        "{err}"
    );
    let before = number_after(&err, "held-out loss before training:");
    let after = number_after(&err, "held-out loss after training:");
    assert!(
        after < before * 0.9,
        "held-out loss {before} -> {after}\n{err}"
    );

    // The written model runs in ondo, and on the text it was taught it is better than the
    // model it started from (a wrongly mapped tensor would make it far worse).
    let ppl = |m: &str| {
        let o = ondo_in(&dir, &["perplexity", "-m", m, "-f", "t.txt", "-c", "64"]);
        assert!(o.status.success(), "{}", stderr(&o));
        number_after(&stdout(&o), "perplexity:")
    };
    let (p0, p1) = (ppl("deep.gguf"), ppl("ft.gguf"));
    assert!(p1 < p0 * 0.9, "perplexity {p0} -> {p1}");

    // Resuming continues from step 4; a LoRA resume of a full checkpoint is refused.
    let mut args = common_args.to_vec();
    args.extend([
        "-o",
        "ft2.gguf",
        "--type",
        "q8_0",
        "--max-steps",
        "5",
        "--resume",
        "full.ckpt",
    ]);
    let o = ondo_in(&dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("trained 1 steps"), "{}", stderr(&o));
    let o = ondo_in(&dir, &["info", "ft2.gguf"]);
    assert!(
        o.status.success() && stdout(&o).contains("Q8_0"),
        "{}",
        stdout(&o)
    );
    let args: Vec<&str> = common_args
        .iter()
        .filter(|a| **a != "--full")
        .copied()
        .collect();
    let mut args = args;
    args.extend(["-o", "x.gguf", "--resume", "full.ckpt"]);
    let o = ondo_in(&dir, &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("resume it with --full"),
        "{}",
        stderr(&o)
    );
    // --full writes a model: a directory output is refused before any work.
    let mut args = common_args.to_vec();
    args.extend(["-o", "outdir"]);
    let o = ondo_in(&dir, &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(".gguf"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
