//! Decode-batch-shaped products over the rows8 layout, single thread: a 1536 × 576 weight
//! matrix (SmolLM2's MLP) times 8 quantized tokens (eight sequences decoding together), as
//! ggml's exact row dot (`gemm_rows8`) and with per-block integer sums (`gemm_rows8_sums`).
//! Throughput is in operations (2 · rows · cols · tokens) per second.
//!
//! `cargo bench -p ondo-kernels --bench rows8`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ondo_kernels::rows8::{gemm_rows8, repack_rows8, Layout};
use ondo_kernels::rows8_sums::gemm_rows8_sums;
use ondo_kernels::{quantize_q8, quantize_row, DType};

const ROWS: usize = 1536;
const COLS: usize = 576;
const NTOK: usize = 8;

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut xq = Vec::new();
    quantize_q8(&values(1000, NTOK * COLS), &mut xq);
    let wv = values(7, ROWS * COLS);
    let mut out = vec![0.0f32; ROWS * NTOK];
    for w in [DType::Q4_1, DType::Q8_0] {
        let mut wb = vec![0u8; w.row_bytes(ROWS * COLS).unwrap()];
        quantize_row(w, &wv, &mut wb).unwrap();
        let lay = Layout::new(w, ROWS, COLS, w == DType::Q4_1);
        let mut packed = vec![0u8; wb.len()];
        repack_rows8(lay, &wb, &mut packed);
        let mut g = c.benchmark_group(format!("{w} {ROWS}x{COLS}x{NTOK}"));
        g.throughput(Throughput::Elements((2 * ROWS * COLS * NTOK) as u64));
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        g.bench_function("gemm_rows8 (ggml order)", |b| {
            b.iter(|| {
                gemm_rows8(
                    lay,
                    black_box(&packed),
                    black_box(&xq),
                    NTOK,
                    &mut out,
                    ROWS,
                )
            })
        });
        g.bench_function("gemm_rows8_sums", |b| {
            b.iter(|| {
                gemm_rows8_sums(
                    lay,
                    black_box(&packed),
                    black_box(&xq),
                    NTOK,
                    &mut out,
                    ROWS,
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
