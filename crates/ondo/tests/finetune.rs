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
