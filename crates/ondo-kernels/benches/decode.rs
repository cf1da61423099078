//! Criterion benches of the decode-time kernels, single thread:
//!
//! * `matvec/<type>`: a 2048x2048 weight matrix times one token's activations, routed as the
//!   model routes it: Q4_0/Q4_1/Q8_0 through `quantize_q8` + `gemv_q8`, the K-quants through
//!   `quantize_q8k` + `dot_q8k` per row, the float types through `round_activations` +
//!   `matvec_serial`. Throughput in weight bytes.
//! * `attention/<positions>`: one head (dim 64) against an f16 cache of 512 / 2048 / 8192
//!   positions: scores, softmax, f16-rounded probabilities, weighted sum of values.
//!
//! Run: `cargo bench -p ondo-kernels --bench decode`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ondo_kernels::attn::{scores_lanes8, weighted_sum_seq};
use ondo_kernels::ggml_math::softmax_ggml;
use ondo_kernels::{
    f16_to_f32, f32_to_f16, gemv_q8, gemv_q8k, has_q8_path, has_q8k_path, matvec_serial,
    quantize_q8, quantize_q8k, round_activations, DType,
};

const ROWS: usize = 2048;
const COLS: usize = 2048;

fn matvec(c: &mut Criterion) {
    let mut rng = common::Rng::new(11);
    let x = rng.vec(COLS, -1.0, 1.0);
    let mut group = c.benchmark_group("matvec");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for w in DType::ALL {
        let mat = common::random_row(&mut rng, w, ROWS * COLS);
        group.throughput(Throughput::Bytes(mat.len() as u64));
        let mut out = vec![0.0f32; ROWS];
        let (mut xq, mut xqk, mut xr) = (Vec::new(), Vec::new(), vec![0.0f32; COLS]);
        group.bench_function(w.name(), |b| {
            b.iter(|| {
                if has_q8_path(w) {
                    quantize_q8(black_box(&x), &mut xq);
                    gemv_q8(w, &mat, &xq, &mut out);
                } else if has_q8k_path(w) {
                    quantize_q8k(black_box(&x), &mut xqk);
                    gemv_q8k(w, &mat, &xqk, &mut out);
                } else {
                    round_activations(w, black_box(&x), &mut xr);
                    matvec_serial(w, &mat, ROWS, COLS, &xr, &mut out);
                }
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    let hd = 64;
    let mut rng = common::Rng::new(12);
    let q: Vec<f32> = rng
        .vec(hd, -1.0, 1.0)
        .iter()
        .map(|&v| f16_to_f32(f32_to_f16(v)))
        .collect();
    let mut group = c.benchmark_group("attention");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for len in [512usize, 2048, 8192] {
        let keys: Vec<u16> = rng
            .vec(len * hd, -1.0, 1.0)
            .into_iter()
            .map(f32_to_f16)
            .collect();
        let vals: Vec<u16> = rng
            .vec(len * hd, -1.0, 1.0)
            .into_iter()
            .map(f32_to_f16)
            .collect();
        let mut scores = vec![0.0f32; len];
        let mut out = vec![0.0f32; hd];
        group.throughput(Throughput::Bytes((2 * len * hd * 2) as u64));
        group.bench_function(format!("{len}"), |b| {
            b.iter(|| {
                scores_lanes8(black_box(&q), &keys, hd, 0.125, &mut scores);
                softmax_ggml(&mut scores);
                for s in scores.iter_mut() {
                    *s = f16_to_f32(f32_to_f16(*s));
                }
                weighted_sum_seq(&mut out, &scores, &vals, hd);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matvec, attention);
criterion_main!(benches);
