//! The malformed corpus: every container case fails with a one-line error naming the problem,
//! every model case opens, and the committed fixtures match the generator.

use std::path::PathBuf;

use ondo_formats::testdata::{cases, Layer};
use ondo_formats::GgufFile;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/malformed")
}

#[test]
fn corpus_size() {
    let all = cases();
    let container = all.iter().filter(|c| c.layer == Layer::Container).count();
    assert!(container >= 30, "only {container} container cases");
    assert!(all.len() >= 35);
    for c in &all {
        // Model-level cases carry a complete tiny model (tiny_llama_model), so they are larger.
        let limit = if c.layer == Layer::Container {
            2048
        } else {
            8192
        };
        assert!(
            c.bytes.len() < limit,
            "{} is {} bytes",
            c.file,
            c.bytes.len()
        );
        assert!(!c.what.contains('\t') && !c.what.contains('\n'));
    }
}

#[test]
fn every_case_in_memory() {
    for c in cases() {
        let r = GgufFile::from_bytes(c.bytes.clone());
        match c.layer {
            Layer::Container => {
                let e = r.expect_err(&c.file).to_string();
                assert!(!e.contains('\n'), "{}: multi-line error {e:?}", c.file);
                assert!(
                    e.contains(c.expect),
                    "{}: error {e:?} lacks {:?}",
                    c.file,
                    c.expect
                );
                println!("{}: {e}", c.file);
            }
            Layer::Model => {
                if let Err(e) = r {
                    panic!("{}: model-layer case must open: {e}", c.file);
                }
            }
        }
    }
}

#[test]
fn committed_fixtures_match_manifest_and_generator() {
    let dir = fixture_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect(
        "tests/fixtures/malformed/MANIFEST.tsv missing: run \
         `cargo run -p ondo-formats --example gen_malformed -- tests/fixtures/malformed`",
    );
    let all = cases();
    let rows: Vec<&str> = manifest.lines().collect();
    assert_eq!(
        rows.len(),
        all.len(),
        "manifest is stale: rerun the generator"
    );
    for (row, c) in rows.iter().zip(&all) {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(
            cols,
            [c.file.as_str(), c.layer.as_str(), c.what],
            "stale manifest row"
        );
        let path = dir.join(&c.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes, c.bytes, "{} differs from the generator", c.file);
        // Through the mmap path too.
        let r = GgufFile::open(&path);
        match c.layer {
            Layer::Container => {
                let e = r.expect_err(&c.file).to_string();
                assert!(!e.contains('\n') && e.contains(c.expect), "{}: {e}", c.file);
            }
            Layer::Model => assert!(r.is_ok(), "{}", c.file),
        }
    }
    let gguf_files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.extension().is_some_and(|x| x == "gguf")
        })
        .count();
    assert_eq!(
        gguf_files,
        all.len(),
        "files in the folder that the manifest does not list"
    );
}
