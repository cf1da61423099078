//! Writes the malformed GGUF corpus (`ondo_formats::testdata::cases`) and its manifest.
//!
//! Usage, from the repository root:
//! `cargo run -p ondo-formats --example gen_malformed -- tests/fixtures/malformed`
//!
//! Replaces the `*.gguf` files and the manifest in that folder: writes one
//! `NN-short-name.gguf` per case and `MANIFEST.tsv`, one line per case, no header:
//! `file<TAB>layer (container|model)<TAB>what is wrong`. The valid base file is not written
//! (every file in the folder is malformed); get it from `testdata::tiny_llama_bytes()`.

use std::path::PathBuf;

use ondo_formats::testdata::cases;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fixtures/malformed".into()),
    );
    std::fs::create_dir_all(&dir)?;
    // Remove a previous run's fixtures (only *.gguf and the manifest) so renamed cases leave
    // no stale files behind.
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".gguf") || name == "MANIFEST.tsv" {
            std::fs::remove_file(&path)?;
        }
    }
    let mut manifest = String::new();
    let all = cases();
    for c in &all {
        std::fs::write(dir.join(&c.file), &c.bytes)?;
        manifest.push_str(&format!("{}\t{}\t{}\n", c.file, c.layer.as_str(), c.what));
    }
    std::fs::write(dir.join("MANIFEST.tsv"), manifest)?;
    println!("wrote {} cases to {}", all.len(), dir.display());
    Ok(())
}
