//! Criterion bench of the K-quant matrix-matrix product (prefill): a 2048x2048 weight matrix
//! times 64 quantized activation rows on one thread, for Q4_K, Q5_K and Q6_K weights.
//!
//! * `x4`: `dot_q8k_x4` per weight row and group of four tokens (the previous prefill path);
//! * `gemm`: `gemm_q8k` over all rows and tokens.
//!
//! Throughput is counted as `2 · rows · cols · ntok` operations, so criterion's
//! "Gelem/s" reads as GOP/s. Run: `cargo bench -p ondo-kernels --bench gemm_q8k`
//! (`-- gemm` or `-- x4` to pick one kind).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ondo_kernels::{dot_q8k_x4, gemm_q8k, quantize_q8k, simd_level, BlockQ8K, DType};

const ROWS: usize = 2048;
const COLS: usize = 2048;
const NTOK: usize = 64;

fn bench(c: &mut Criterion) {
    eprintln!("simd level: {}", simd_level());
    let mut rng = common::Rng::new(5);
    let nsb = COLS / 256;
    let mut xq: Vec<BlockQ8K> = Vec::with_capacity(NTOK * nsb);
    let mut one = Vec::new();
    for _ in 0..NTOK {
        quantize_q8k(&rng.vec(COLS, -1.0, 1.0), &mut one);
        xq.extend_from_slice(&one);
    }
    let x = |t: usize| &xq[t * nsb..(t + 1) * nsb];
    for w in [DType::Q4_K, DType::Q5_K, DType::Q6_K] {
        let rb = w.row_bytes(COLS).unwrap();
        let mat = common::random_row(&mut rng, w, ROWS * COLS);
        let mut group = c.benchmark_group(format!("{w} {ROWS}x{COLS}x{NTOK}"));
        group.throughput(Throughput::Elements((2 * ROWS * COLS * NTOK) as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        let mut out = vec![0.0f32; NTOK * ROWS];
        group.bench_function("x4", |b| {
            b.iter(|| {
                for (r, row) in mat.chunks_exact(rb).enumerate() {
                    for t in (0..NTOK).step_by(4) {
                        let v = dot_q8k_x4(w, row, [x(t), x(t + 1), x(t + 2), x(t + 3)]);
                        for (k, v) in v.into_iter().enumerate() {
                            out[(t + k) * ROWS + r] = v;
                        }
                    }
                }
                black_box(&out);
            })
        });
        group.bench_function("gemm", |b| {
            b.iter(|| {
                gemm_q8k(w, black_box(&mat), ROWS, &xq, NTOK, &mut out, ROWS);
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
