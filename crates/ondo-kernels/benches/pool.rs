//! Criterion bench of the thread pool: the cost of entering and leaving one parallel region
//! (`pool::run` with an empty job), and of `for_each_share` over a tiny buffer, with all cores.
//! Decoding runs a few hundred regions per token, so this must stay at a few microseconds.
//!
//! Run: `cargo bench -p ondo-kernels --bench pool`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ondo_kernels::pool;

fn regions(c: &mut Criterion) {
    eprintln!("pool threads: {}", pool::threads());
    let mut group = c.benchmark_group("pool");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.bench_function("empty region", |b| {
        b.iter(|| {
            pool::run(&|t| {
                black_box(t);
            })
        })
    });
    let mut buf = vec![0.0f32; 64];
    group.bench_function("for_each_share 64 floats", |b| {
        b.iter(|| {
            pool::for_each_share(&mut buf, 1, 1, |first, share| {
                share.fill(first as f32);
            });
            black_box(&buf);
        })
    });
    group.finish();
}

criterion_group!(benches, regions);
criterion_main!(benches);
