//! The official `openai` Python client against a real `ondo serve`: runs
//! tests/serve/openai_client.py (chat and completions, streamed and not, stop strings, seeds,
//! logprobs, errors, concurrency) with the interpreter of `.venv-test`, which scripts/test.sh
//! creates from tests/serve/requirements.txt. Without that virtualenv the test is skipped,
//! unless ONDO_REQUIRE_MODEL=1 (CI), where it fails.

mod common;

use std::process::Command;

#[test]
fn the_openai_python_client_works_unchanged() {
    let Some(model) = common::model_path() else {
        eprintln!("skipped: the default model is not cached");
        return;
    };
    let root = common::repo_root();
    let python = std::env::var_os("ONDO_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-test/bin/python"));
    if !python.exists() {
        let msg = format!(
            "{} is missing: run scripts/test.sh, which installs tests/serve/requirements.txt",
            python.display()
        );
        if std::env::var("ONDO_REQUIRE_MODEL").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    }
    let out = Command::new(&python)
        .arg(root.join("tests/serve/openai_client.py"))
        .arg("--ondo")
        .arg(env!("CARGO_BIN_EXE_ondo"))
        .arg("--model")
        .arg(&model)
        .env_remove("ONDO_API_KEY")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "openai_client.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
}
