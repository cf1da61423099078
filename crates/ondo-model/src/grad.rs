//! The product a training backward pass needs through a frozen weight: `dx += dy · W`, with
//! dy: [n][rows] and W: [rows][cols] any [`QWeight`] (quantized or not, repacked or not: the
//! bytes inference reads). The rows are shared among the threads; each dequantizes a row once
//! and adds `dy[t][r] · W[r]` into its own partial dx for every token, and the partial sums are
//! added in thread order, so the result depends on the thread count but not on timing.
//! Also the forward product of a quantized base in training, inference's own
//! (`quant_forward`), and the dense f32 products full fine-tuning and f32 training need:
//! `dense_forward` (y = x Wᵀ) and `weight_grad` (dW += dyᵀ x).

use ondo_kernels::rows_axpy::{add_scaled_rows8, ROWS};

use crate::QWeight;

/// x: [n][w.cols] → y: [n][w.rows] (overwritten), the product inference runs (llama.cpp's
/// numerics: activations quantized for Q4_0/Q4_1/Q8_0 weights); the matrix's own LoRA
/// adapters are not applied.
pub fn quant_forward(w: &QWeight, x: &[f32], n: usize, y: &mut [f32]) {
    crate::matmul::matmul_base(w, x, n, y, crate::Numerics::LlamaCpp);
}

/// dy: [n][w.rows] → dx: [n][w.cols] (added to).
pub fn matmul_t(w: &QWeight, dy: &[f32], n: usize, dx: &mut [f32]) {
    matmul_t_with(w.rows, w.cols, dy, n, dx, |r, row| w.dequantize_row(r, row));
}

/// [`matmul_t`] for any matrix whose row `r` `row_of(r, out)` writes as f32 (a dense f32
/// matrix: a copy).
pub fn matmul_t_with(
    rows: usize,
    cols: usize,
    dy: &[f32],
    n: usize,
    dx: &mut [f32],
    row_of: impl Fn(usize, &mut [f32]) + Sync,
) {
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
                    row_of(r0 + j, row);
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

/// dW[rows][cols] += dyᵀ x for dy: [n][rows], x: [n][cols] (full fine-tuning's weight
/// gradient); rows shared among the threads, eight tokens per pass.
pub fn weight_grad(rows: usize, cols: usize, x: &[f32], dy: &[f32], n: usize, dw: &mut [f32]) {
    assert_eq!(x.len(), n * cols, "x is [n][cols]");
    assert_eq!(dy.len(), n * rows, "dy is [n][rows]");
    assert_eq!(dw.len(), rows * cols, "dw is [rows][cols]");
    if cols == 0 {
        return;
    }
    ondo_kernels::pool::for_each_share(dw, cols, 4, |first, share| {
        let mut block = vec![0.0f32; ROWS * cols];
        for t0 in (0..n).step_by(ROWS) {
            let k = (n - t0).min(ROWS);
            block[..k * cols].copy_from_slice(&x[t0 * cols..(t0 + k) * cols]);
            block[k * cols..].fill(0.0);
            for (i, out) in share.chunks_exact_mut(cols).enumerate() {
                let o = first + i;
                let g: [f32; ROWS] =
                    std::array::from_fn(|j| if j < k { dy[(t0 + j) * rows + o] } else { 0.0 });
                add_scaled_rows8(out, &block, &g);
            }
        }
    });
}

/// y[n][rows] = x[n][cols] · Wᵀ for a dense f32 W ([rows][cols]), rows in blocks that stay in
/// cache across the tokens, shared among the threads.
pub fn dense_forward(rows: usize, cols: usize, w: &[f32], x: &[f32], n: usize, y: &mut [f32]) {
    assert_eq!(w.len(), rows * cols, "w is [rows][cols]");
    assert_eq!(x.len(), n * cols, "x is [n][cols]");
    assert_eq!(y.len(), n * rows, "y is [n][rows]");
    const BLOCK: usize = 16;
    let blocks = rows.div_ceil(BLOCK);
    // yt: [blocks][n][BLOCK], then scattered into y.
    let mut yt = vec![0.0f32; blocks * n * BLOCK];
    ondo_kernels::pool::for_each_share(&mut yt, n * BLOCK, 1, |first, share| {
        for (i, tile) in share.chunks_exact_mut(n * BLOCK).enumerate() {
            let r0 = (first + i) * BLOCK;
            let r1 = (r0 + BLOCK).min(rows);
            for (t, out) in tile.chunks_exact_mut(BLOCK).enumerate() {
                let xt = &x[t * cols..(t + 1) * cols];
                for (o, v) in out.iter_mut().enumerate().take(r1 - r0) {
                    let r = r0 + o;
                    *v = ondo_kernels::dot_f32(&w[r * cols..(r + 1) * cols], xt);
                }
            }
        }
    });
    for b in 0..blocks {
        let (r0, r1) = (b * BLOCK, ((b + 1) * BLOCK).min(rows));
        for t in 0..n {
            let src = &yt[(b * n + t) * BLOCK..(b * n + t) * BLOCK + (r1 - r0)];
            y[t * rows + r0..t * rows + r1].copy_from_slice(src);
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
    fn dense_products_match_naive_sums() {
        let (rows, cols, n) = (37, 20, 11);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.13).sin()).collect();
        let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.29).cos()).collect();
        let dy: Vec<f32> = (0..n * rows).map(|i| (i as f32 * 0.07).sin()).collect();
        let mut y = vec![0.0f32; n * rows];
        dense_forward(rows, cols, &w, &x, n, &mut y);
        let mut dw = vec![0.5f32; rows * cols];
        weight_grad(rows, cols, &x, &dy, n, &mut dw);
        let mut dx = vec![0.0f32; n * cols];
        matmul_t_with(rows, cols, &dy, n, &mut dx, |r, out| {
            out.copy_from_slice(&w[r * cols..(r + 1) * cols])
        });
        let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-4;
        for t in 0..n {
            for o in 0..rows {
                let want: f64 = (0..cols)
                    .map(|c| w[o * cols + c] as f64 * x[t * cols + c] as f64)
                    .sum();
                assert!(close(y[t * rows + o], want));
            }
            for c in 0..cols {
                let want: f64 = (0..rows)
                    .map(|o| dy[t * rows + o] as f64 * w[o * cols + c] as f64)
                    .sum();
                assert!(close(dx[t * cols + c], want));
            }
        }
        for o in 0..rows {
            for c in 0..cols {
                let want: f64 = 0.5
                    + (0..n)
                        .map(|t| dy[t * rows + o] as f64 * x[t * cols + c] as f64)
                        .sum::<f64>();
                assert!(close(dw[o * cols + c], want));
            }
        }
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
