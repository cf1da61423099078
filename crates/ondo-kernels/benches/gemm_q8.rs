//! Prefill-shaped integer products, single thread: a 2048 × 2048 weight matrix (Q4_0, Q4_1,
//! Q8_0) times 64 quantized tokens, as the old per-row `dot_q8_x4` loop and as `gemm_q8`.
//! Throughput is in operations (2 · rows · cols · tokens) per second.
//!
//! `cargo bench -p ondo-kernels --bench gemm_q8`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ondo_kernels::{dot_q8_x4, gemm_q8, quantize_q8, quantize_row, BlockQ8, DType};

const ROWS: usize = 2048;
const COLS: usize = 2048;
const NTOK: usize = 64;

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

/// The loop `ondo-model` ran before `gemm_q8`: per row, tokens four at a time
/// (`out` is [rows][NTOK]).
fn x4_loop(w: DType, wb: &[u8], xq: &[BlockQ8], out: &mut [f32]) {
    let nb = COLS / 32;
    let rb = wb.len() / ROWS;
    let x = |t: usize| &xq[t * nb..(t + 1) * nb];
    for (row, dst) in wb.chunks_exact(rb).zip(out.chunks_exact_mut(NTOK)) {
        for (q, d4) in dst.chunks_exact_mut(4).enumerate() {
            let t = 4 * q;
            d4.copy_from_slice(&dot_q8_x4(w, row, [x(t), x(t + 1), x(t + 2), x(t + 3)]));
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut xq = Vec::with_capacity(NTOK * COLS / 32);
    let mut tmp = Vec::new();
    for t in 0..NTOK {
        quantize_q8(&values(1000 + t as u64, COLS), &mut tmp);
        xq.extend_from_slice(&tmp);
    }
    let wv = values(7, ROWS * COLS);
    let mut out = vec![0.0f32; ROWS * NTOK];
    for w in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        let mut wb = vec![0u8; w.row_bytes(ROWS * COLS).unwrap()];
        quantize_row(w, &wv, &mut wb).unwrap();
        let mut g = c.benchmark_group(format!("{w} {ROWS}x{COLS}x{NTOK}"));
        g.throughput(Throughput::Elements((2 * ROWS * COLS * NTOK) as u64));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("dot_q8_x4 loop", |b| {
            b.iter(|| x4_loop(w, black_box(&wb), black_box(&xq), &mut out))
        });
        g.bench_function("gemm_q8", |b| {
            b.iter(|| {
                gemm_q8(
                    w,
                    black_box(&wb),
                    ROWS,
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
