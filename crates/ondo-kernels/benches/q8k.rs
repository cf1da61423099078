//! Criterion bench of the K-quant integer path: a 2048x2048 matrix times one activation
//! vector, row by row on one thread, for Q4_K and Q6_K weights.
//!
//! * `int`: `quantize_q8k` once, then `dot_q8k` per row (the new path);
//! * `f32`: `round_activations` once, then `dot_row` per row (the old path);
//! * `int_x4` / `int_1x4`: four activation vectors (a prefill batch), `dot_q8k_x4` per row vs
//!   four `dot_q8k` per row.
//!
//! Throughput is counted in weight bytes read per product (once per row for the x4 cases).
//! Run: `cargo bench -p ondo-kernels --bench q8k`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ondo_kernels::{
    dot_q8k, dot_q8k_x4, dot_row, quantize_q8k, round_activations, simd_level, BlockQ8K, DType,
};

const ROWS: usize = 2048;
const COLS: usize = 2048;

fn bench(c: &mut Criterion) {
    eprintln!("simd level: {}", simd_level());
    let mut rng = common::Rng::new(5);
    let xs: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(COLS, -1.0, 1.0)).collect();
    for w in [DType::Q4_K, DType::Q6_K] {
        let rb = w.row_bytes(COLS).unwrap();
        let mat = common::random_row(&mut rng, w, ROWS * COLS);
        let mut group = c.benchmark_group(format!("{w} {ROWS}x{COLS}"));
        group.throughput(Throughput::Bytes(mat.len() as u64));
        group.measurement_time(Duration::from_secs(3));
        let mut out = vec![0.0f32; ROWS];
        let mut xq: Vec<BlockQ8K> = Vec::new();
        group.bench_function("int", |b| {
            b.iter(|| {
                quantize_q8k(black_box(&xs[0]), &mut xq);
                for (o, r) in out.iter_mut().zip(mat.chunks_exact(rb)) {
                    *o = dot_q8k(w, r, &xq);
                }
                black_box(&out);
            })
        });
        let mut xr = vec![0.0f32; COLS];
        group.bench_function("f32", |b| {
            b.iter(|| {
                round_activations(w, black_box(&xs[0]), &mut xr);
                for (o, r) in out.iter_mut().zip(mat.chunks_exact(rb)) {
                    *o = dot_row(w, r, &xr);
                }
                black_box(&out);
            })
        });
        let xq4: Vec<Vec<BlockQ8K>> = xs
            .iter()
            .map(|x| {
                let mut q = Vec::new();
                quantize_q8k(x, &mut q);
                q
            })
            .collect();
        let mut out4 = vec![[0.0f32; 4]; ROWS];
        group.bench_function("int_x4", |b| {
            b.iter(|| {
                let x = [&xq4[0][..], &xq4[1], &xq4[2], &xq4[3]];
                for (o, r) in out4.iter_mut().zip(mat.chunks_exact(rb)) {
                    *o = dot_q8k_x4(w, r, x);
                }
                black_box(&out4);
            })
        });
        group.bench_function("int_1x4", |b| {
            b.iter(|| {
                for (o, r) in out4.iter_mut().zip(mat.chunks_exact(rb)) {
                    *o = std::array::from_fn(|k| dot_q8k(w, r, &xq4[k]));
                }
                black_box(&out4);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
