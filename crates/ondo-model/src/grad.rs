//! The product a training backward pass needs through a frozen weight: `dx += dy · W`, with
//! dy: [n][rows] and W: [rows][cols] any [`QWeight`] (quantized or not, repacked or not: the
//! bytes inference reads). The rows are shared among the threads; each dequantizes a row once
//! and adds `dy[t][r] · W[r]` into its own partial dx for every token, and the partial sums are
//! added in thread order, so the result depends on the thread count but not on timing.

use ondo_kernels::rows_axpy::{add_scaled_rows8, ROWS};

use crate::QWeight;

/// dy: [n][w.rows] → dx: [n][w.cols] (added to).
pub fn matmul_t(w: &QWeight, dy: &[f32], n: usize, dx: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(dy.len(), n * rows, "dy is [n][rows]");
    assert_eq!(dx.len(), n * cols, "dx is [n][cols]");
    if n == 0 || rows == 0 {
        return;
    }
    let threads = ondo_kernels::pool::threads().min(rows).max(1);
    let per = rows.div_ceil(threads);
    let mut partials: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0; n * cols]).collect();
    ondo_kernels::pool::for_each_share(&mut partials, 1, 1, |first, share| {
        // Eight rows at a time: each dx element is loaded and stored once per eight rows.
        let mut block = vec![0.0f32; ROWS * cols];
        for (i, part) in share.iter_mut().enumerate() {
            let t0 = (first + i) * per;
            let t1 = (t0 + per).min(rows);
            for r0 in (t0..t1).step_by(ROWS) {
                let k = (t1 - r0).min(ROWS);
                for (j, row) in block.chunks_exact_mut(cols).take(k).enumerate() {
                    w.dequantize_row(r0 + j, row);
                }
                block[k * cols..].fill(0.0);
                for (t, out) in part.chunks_exact_mut(cols).enumerate() {
                    let mut g = [0.0f32; ROWS];
                    g[..k].copy_from_slice(&dy[t * rows + r0..t * rows + r0 + k]);
                    add_scaled_rows8(out, &block, &g);
                }
            }
        }
    });
    for part in &partials {
        for (d, p) in dx.iter_mut().zip(part) {
            *d += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ondo_kernels::DType;

    /// A matrix of `dtype` from a smooth pattern, quantized by the kernels' quantizer.
    fn matrix(dtype: DType, rows: usize, cols: usize) -> QWeight {
        let vals: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        let rb = dtype.row_bytes(cols).unwrap();
        let mut bytes = vec![0u8; rows * rb];
        for (src, dst) in vals.chunks_exact(cols).zip(bytes.chunks_exact_mut(rb)) {
            ondo_kernels::quantize_row(dtype, src, dst).unwrap();
        }
        QWeight::from_bytes(dtype, rows, cols, bytes).unwrap()
    }

    #[test]
    fn transposed_product_matches_the_dense_one() {
        for dtype in [
            DType::F32,
            DType::F16,
            DType::Q8_0,
            DType::Q4_1,
            DType::Q4_0,
        ] {
            let (rows, cols, n) = (24, 64, 3);
            let w = matrix(dtype, rows, cols);
            let dense = w.to_f32();
            let dy: Vec<f32> = (0..n * rows).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut dx = vec![1.0f32; n * cols];
            matmul_t(&w, &dy, n, &mut dx);
            for t in 0..n {
                for c in 0..cols {
                    let want: f64 = 1.0
                        + (0..rows)
                            .map(|r| dy[t * rows + r] as f64 * dense[r * cols + c] as f64)
                            .sum::<f64>();
                    let got = dx[t * cols + c] as f64;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{dtype:?} t{t} c{c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
