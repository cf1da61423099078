//! Rough throughput check (ignored by default):
//! `cargo test -p ondo-kernels --release --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use ondo_kernels::{dot_row, matvec, reference, simd_level, DType};

#[test]
#[ignore]
fn bench_matvec_4096() {
    let (rows, cols) = (4096usize, 4096usize);
    let mut rng = common::Rng::new(99);
    let x = rng.vec(cols, -1.0, 1.0);
    println!(
        "simd level: {}, pool threads: {}",
        simd_level(),
        ondo_kernels::pool::threads()
    );
    for dtype in DType::ALL {
        let w = common::random_row(&mut rng, dtype, rows * cols);
        let mut out = vec![0.0f32; rows];
        matvec(dtype, &w, rows, cols, &x, &mut out); // warm up
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            matvec(dtype, &w, rows, cols, &x, &mut out);
        }
        let mt = t.elapsed().as_secs_f64() / reps as f64;
        let rb = dtype.row_bytes(cols).unwrap();
        let t = Instant::now();
        let mut s = 0.0f32;
        for r in 0..256 {
            s += dot_row(dtype, &w[r * rb..(r + 1) * rb], &x);
        }
        let fast = t.elapsed().as_secs_f64() / 256.0;
        let t = Instant::now();
        for r in 0..256 {
            s += reference::dot_row(dtype, &w[r * rb..(r + 1) * rb], &x);
        }
        let refr = t.elapsed().as_secs_f64() / 256.0;
        println!(
            "{:>5}: matvec {:7.2} ms ({:6.1} GB/s weights) | dot_row {:6.2} us, reference {:6.2} us (x{:.1}) {}",
            dtype.name(),
            mt * 1e3,
            w.len() as f64 / mt / 1e9,
            fast * 1e6,
            refr * 1e6,
            refr / fast,
            if s.is_nan() { "nan" } else { "" }
        );
    }
}
