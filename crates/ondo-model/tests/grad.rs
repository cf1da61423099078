//! `grad::matmul_t` through the default model's repacked (rows8) matrices equals the dense
//! product of the same matrices, and how fast it runs (printed, not asserted).

use std::sync::Arc;
use std::time::Instant;

use ondo_formats::GgufFile;
use ondo_model::grad::matmul_t;
use ondo_model::load_model;

#[test]
fn transposed_product_through_repacked_weights() {
    let Some(path) = ondo_formats::testdata::cached_default_model() else {
        return;
    };
    let m = load_model(&Arc::new(GgufFile::open(&path).unwrap())).unwrap();
    let w = &m.layers[0].w_down;
    let (rows, cols, n) = (w.rows, w.cols, 128);
    let dense: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let mut row = vec![0.0; cols];
            w.dequantize_row(r, &mut row);
            row
        })
        .collect();
    let dy: Vec<f32> = (0..n * rows).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut dx = vec![0.0f32; n * cols];
    matmul_t(w, &dy, n, &mut dx);
    let mut secs = f64::MAX;
    for _ in 0..10 {
        let mut scratch = vec![0.0f32; n * cols];
        let t0 = Instant::now();
        matmul_t(w, &dy, n, &mut scratch);
        secs = secs.min(t0.elapsed().as_secs_f64());
    }
    eprintln!(
        "matmul_t {rows}x{cols} {:?}, {n} tokens: {:.2} ms ({:.1} GMAC/s)",
        w.dtype,
        secs * 1e3,
        (rows * cols * n) as f64 / secs / 1e9
    );
    for t in 0..n {
        for c in (0..cols).step_by(7) {
            let want: f64 = (0..rows)
                .map(|r| dy[t * rows + r] as f64 * dense[r * cols + c] as f64)
                .sum();
            let got = dx[t * cols + c] as f64;
            assert!((got - want).abs() < 1e-3, "t{t} c{c}: {got} vs {want}");
        }
    }
}
