//! Peak heap use while parsing each malformed fixture stays within its file size plus a small
//! constant (a counting global allocator; this binary holds a single test so no other thread
//! allocates concurrently).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ondo_formats::testdata::{cases, tiny_llama_bytes};
use ondo_formats::GgufFile;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SLACK: usize = 64 * 1024;

/// Peak bytes allocated above the starting level while parsing `bytes`.
fn peak_parse(bytes: Vec<u8>) -> (usize, bool) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let ok = {
        let r = GgufFile::from_bytes(bytes);
        r.is_ok()
    };
    (PEAK.load(Ordering::SeqCst) - base, ok)
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
