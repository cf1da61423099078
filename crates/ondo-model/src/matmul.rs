//! Batched matrix products against a `QWeight`: `out[b][r] = dot(w[r], x[b])`.
//!
//! The activations are first rounded as llama.cpp's CPU backend rounds them for the weight's type
//! (`ondo_kernels::round_activations`), so products agree with llama.cpp's. One token uses the
//! kernels' matvec. Several tokens dequantize each weight row once and dot it
//! with every token's activations, so a prompt reads the weights once, not once per token.

use rayon::prelude::*;

use crate::{Numerics, QWeight};

/// Rows handed to one rayon task.
const ROWS_PER_TASK: usize = 16;

/// x: [n][w.cols], out: [n][w.rows].
pub fn matmul(w: &QWeight, x: &[f32], n: usize, out: &mut [f32], numerics: Numerics) {
    debug_assert_eq!(x.len(), n * w.cols);
    debug_assert_eq!(out.len(), n * w.rows);
    let rounded;
    let x = match numerics {
        Numerics::Exact => x,
        Numerics::LlamaCpp => {
            let mut xr = vec![0.0f32; x.len()];
            for (r, xs) in xr.chunks_exact_mut(w.cols).zip(x.chunks_exact(w.cols)) {
                ondo_kernels::round_activations(w.dtype, xs, r);
            }
            rounded = xr;
            &rounded[..]
        }
    };
    if n == 1 {
        ondo_kernels::matvec(w.dtype, w.bytes(), w.rows, w.cols, x, out);
        return;
    }
    let (rows, cols) = (w.rows, w.cols);
    let bytes = w.bytes();
    let row_bytes = bytes.len() / rows.max(1);
    // out_t: [rows][n], filled in parallel by row blocks, then transposed into out.
    let mut out_t = vec![0.0f32; rows * n];
    out_t
        .par_chunks_mut(ROWS_PER_TASK * n)
        .enumerate()
        .for_each(|(block, chunk)| {
            let mut row = vec![0.0f32; cols];
            for (i, dst) in chunk.chunks_exact_mut(n).enumerate() {
                let r = block * ROWS_PER_TASK + i;
                ondo_kernels::dequantize_row(
                    w.dtype,
                    &bytes[r * row_bytes..(r + 1) * row_bytes],
                    &mut row,
                );
                for (b, d) in dst.iter_mut().enumerate() {
                    *d = ondo_kernels::dot_f32(&row, &x[b * cols..(b + 1) * cols]);
                }
            }
        });
    for (r, src) in out_t.chunks_exact(n).enumerate() {
        for (b, &v) in src.iter().enumerate() {
            out[b * rows + r] = v;
        }
    }
}
