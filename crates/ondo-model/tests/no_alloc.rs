//! Decoding a token allocates nothing once the per-thread buffers have grown: a counting global
//! allocator around `forward_into` after a warm-up, on the tiny test model and on the default
//! model when it is cached.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ondo_formats::GgufFile;
use ondo_model::{load_model, LlamaModel, Logits};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn decode_allocations(model: &LlamaModel) -> usize {
    let mut kv = model.new_cache(64).unwrap();
    let mut logits = Vec::new();
    model
        .forward_into(&[1, 2, 3], &mut kv, Logits::Last, &mut logits)
        .unwrap();
    // Warm-up: scratch buffers grow to their decode sizes, the attention's to 8 positions.
    for t in 0..5 {
        model
            .forward_into(&[t], &mut kv, Logits::Last, &mut logits)
            .unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    model
        .forward_into(&[7], &mut kv, Logits::Last, &mut logits)
        .unwrap();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn decoding_a_token_does_not_allocate() {
    let bytes = ondo_formats::testdata::tiny_llama_model().to_bytes();
    let model = load_model(&Arc::new(GgufFile::from_bytes(bytes).unwrap())).unwrap();
    assert_eq!(decode_allocations(&model), 0, "tiny model");
    if let Some(path) = ondo_formats::testdata::cached_default_model() {
        let model = load_model(&Arc::new(GgufFile::open(&path).unwrap())).unwrap();
        assert_eq!(decode_allocations(&model), 0, "default model");
    }
}
