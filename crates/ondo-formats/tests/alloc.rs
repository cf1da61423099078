//! Peak heap use while parsing each malformed fixture stays within its file size plus a small
//! constant (a counting global allocator; this binary holds a single test so no other thread
//! allocates concurrently).

#[path = "common/counting.rs"]
mod counting;

use ondo_formats::testdata::{cases, tiny_llama_bytes};
use ondo_formats::GgufFile;

const SLACK: usize = 64 * 1024;

/// Peak bytes allocated above the starting level while parsing `bytes`.
fn peak_parse(bytes: Vec<u8>) -> (usize, bool) {
    let (ok, peak) = counting::peak_above_start(|| GgufFile::from_bytes(bytes).is_ok());
    (peak, ok)
}

#[test]
fn parsing_allocates_at_most_file_size_plus_slack() {
    let mut all: Vec<(String, Vec<u8>)> = cases().into_iter().map(|c| (c.file, c.bytes)).collect();
    all.push(("valid".into(), tiny_llama_bytes()));
    let mut worst = 0;
    for (name, bytes) in all {
        let len = bytes.len();
        let (peak, _) = peak_parse(bytes);
        assert!(
            peak <= len + SLACK,
            "{name}: peak {peak} bytes for a {len}-byte file"
        );
        worst = worst.max(peak.saturating_sub(len));
    }
    println!("worst peak above file size: {worst} bytes");
}
