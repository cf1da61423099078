//! Batched matrix products against a `QWeight`: `out[b][r] = dot(w[r], x[b])`.
//!
//! Under `Numerics::LlamaCpp` the activations are first brought to llama.cpp's precision for
//! the weight's type: Q4_0/Q4_1/Q8_0 weights get 8-bit quantized activations and integer dots
//! (`ondo_kernels::q8`), other types get `round_activations` and f32 dots. Under
//! `Numerics::Exact` activations stay f32.
//!
//! Several tokens read each weight row once and dot it with every token, so a prompt reads the
//! weights once, not once per token.

use ondo_kernels::BlockQ8;

use crate::{Numerics, QWeight};

/// Below this many weight rows per thread a batched product runs on one thread.
const MIN_ROWS_PER_THREAD: usize = 4;

/// x: [n][w.cols], out: [n][w.rows].
pub fn matmul(w: &QWeight, x: &[f32], n: usize, out: &mut [f32], numerics: Numerics) {
    debug_assert_eq!(x.len(), n * w.cols);
    debug_assert_eq!(out.len(), n * w.rows);
    if numerics == Numerics::LlamaCpp && ondo_kernels::has_q8_path(w.dtype) {
        return matmul_q8(w, x, n, out);
    }
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
    let cols = w.cols;
    for_each_row_block(w, n, out, |row_bytes, dst, scratch| {
        scratch.resize(cols, 0.0);
        ondo_kernels::dequantize_row(w.dtype, row_bytes, scratch);
        for (b, d) in dst.iter_mut().enumerate() {
            *d = ondo_kernels::dot_f32(scratch, &x[b * cols..(b + 1) * cols]);
        }
    });
}

/// Integer path: quantize every activation row once, then dot each weight row with each.
fn matmul_q8(w: &QWeight, x: &[f32], n: usize, out: &mut [f32]) {
    let blocks_per_row = w.cols / 32;
    let mut xq: Vec<BlockQ8> = Vec::with_capacity(n * blocks_per_row);
    let mut tmp = Vec::with_capacity(blocks_per_row);
    for xs in x.chunks_exact(w.cols) {
        ondo_kernels::quantize_q8(xs, &mut tmp);
        xq.extend_from_slice(&tmp);
    }
    let dtype = w.dtype;
    if n == 1 {
        let bytes = w.bytes();
        let rb = bytes.len() / w.rows.max(1);
        let min_rows = (4096 / w.cols.max(1)).max(1);
        ondo_kernels::pool::for_each_share(out, 1, min_rows, |first, share| {
            for (o, row) in share.iter_mut().zip(bytes[first * rb..].chunks_exact(rb)) {
                *o = ondo_kernels::dot_q8(dtype, row, &xq);
            }
        });
        return;
    }
    let xrow = |b: usize| &xq[b * blocks_per_row..(b + 1) * blocks_per_row];
    for_each_row_block(w, n, out, |row_bytes, dst, _| {
        let mut quads = dst.chunks_exact_mut(4);
        for (q, d4) in (&mut quads).enumerate() {
            let b = 4 * q;
            let r = ondo_kernels::dot_q8_x4(
                dtype,
                row_bytes,
                [xrow(b), xrow(b + 1), xrow(b + 2), xrow(b + 3)],
            );
            d4.copy_from_slice(&r);
        }
        let done = n - quads.into_remainder().len();
        for (b, d) in dst.iter_mut().enumerate().skip(done) {
            *d = ondo_kernels::dot_q8(dtype, row_bytes, xrow(b));
        }
    });
}

/// Runs `f(row bytes, out_t row [n], scratch)` for every weight row, rows shared among threads,
/// then transposes `out_t` ([rows][n]) into `out` ([n][rows]).
fn for_each_row_block<F>(w: &QWeight, n: usize, out: &mut [f32], f: F)
where
    F: Fn(&[u8], &mut [f32], &mut Vec<f32>) + Sync,
{
    let rows = w.rows;
    let bytes = w.bytes();
    let row_bytes = bytes.len() / rows.max(1);
    let mut out_t = vec![0.0f32; rows * n];
    ondo_kernels::pool::for_each_share(&mut out_t, n, MIN_ROWS_PER_THREAD, |first, share| {
        let mut scratch = Vec::new();
        for (i, dst) in share.chunks_exact_mut(n).enumerate() {
            let r = first + i;
            f(
                &bytes[r * row_bytes..(r + 1) * row_bytes],
                dst,
                &mut scratch,
            );
        }
    });
    for (r, src) in out_t.chunks_exact(n).enumerate() {
        for (b, &v) in src.iter().enumerate() {
            out[b * rows + r] = v;
        }
    }
}
