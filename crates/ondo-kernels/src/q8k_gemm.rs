//! Matrix-matrix products of K-quant weight rows with Q8_K quantized activations (prompt
//! processing): `out[t * out_stride + r] = w_r · x_t` for a range of weight rows and a batch
//! of activation rows, each `w_r · x_t` being what [`crate::dot_q8k`] computes.
//!
//! * Q4_K, Q5_K, Q6_K on AVX2: the register-blocked kernels of `q8k_gemm_avx2` (8 weight rows
//!   unpacked once per super-block, then streamed against the tokens), which agree with
//!   `dot_q8k` up to f32 rounding (the integer sums are exact; only the order of the f32
//!   scaling and summation differs).
//! * Q2_K, Q3_K on AVX2, and any K-quant with a single token: [`crate::dot_q8k_x4`] per weight
//!   row and group of four tokens, then [`crate::dot_q8k`] for the last tokens (bit for bit
//!   equal to `dot_q8k`).
//! * Without AVX2: [`gemm_q8k_reference`], the scalar `dot_q8k_reference` per (row, token).

use crate::q8k::{dot_q8k, dot_q8k_reference, dot_q8k_x4, has_q8k_path, BlockQ8K};
use crate::DType;

/// Checks the shapes and returns the number of super-blocks per row.
#[track_caller]
fn check_shapes(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    out: &[f32],
    out_stride: usize,
) -> usize {
    assert!(has_q8k_path(w), "no Q8_K integer path for {w}");
    assert!(ntok > 0 || xq.is_empty(), "activations without tokens");
    let nsb = xq.len().checked_div(ntok).unwrap_or(0);
    assert_eq!(
        xq.len(),
        ntok * nsb,
        "activations are not ntok rows of equal length"
    );
    assert_eq!(
        rows_bytes.len(),
        rows * nsb * w.block_bytes(),
        "weight rows and activations differ in length"
    );
    if ntok > 0 && rows > 0 {
        assert!(
            ntok == 1 || out_stride >= rows,
            "out_stride {out_stride} < rows {rows}"
        );
        assert!(
            out.len() >= (ntok - 1) * out_stride + rows,
            "output too short"
        );
    }
    nsb
}

/// `out[t * out_stride + r] = Σ over the row of w_r · x_t` for `r in 0..rows`,
/// `t in 0..ntok`: `rows_bytes` holds `rows` consecutive weight rows of type `w` (a K-quant),
/// `xq` holds `ntok` activation rows of `cols / 256` blocks each (token-major). Other
/// elements of `out` (the gaps when `out_stride > rows`) are left untouched.
///
/// Each output equals [`dot_q8k`] of its (row, token) pair within f32 rounding (about
/// `1e-6 · Σ|w_i x_i|`); bit for bit for Q2_K and Q3_K, and for any type when `ntok == 1`.
#[track_caller]
pub fn gemm_q8k(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let nsb = check_shapes(w, rows_bytes, rows, xq, ntok, out, out_stride);
    if rows == 0 || ntok == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            // One token: the tile unpacking would not pay off (it costs about one token).
            if ntok > 1 && matches!(w, DType::Q4_K | DType::Q5_K | DType::Q6_K) {
                // SAFETY: AVX2/FMA/F16C were detected; the shapes were checked above:
                // `rows_bytes` holds `rows` rows of `nsb` blocks, `xq` `ntok` rows of `nsb`
                // blocks, and `out` reaches `(ntok - 1) * out_stride + rows`.
                unsafe {
                    super::q8k_gemm_avx2::gemm(w, rows_bytes, rows, xq, ntok, out, out_stride)
                };
            } else {
                gemm_rowwise(w, rows_bytes, rows, xq, ntok, nsb, out, out_stride);
            }
            return;
        }
    }
    gemm_q8k_reference(w, rows_bytes, rows, xq, ntok, out, out_stride);
}

/// The portable twin of [`gemm_q8k`]: [`dot_q8k_reference`] per (row, token) pair.
#[track_caller]
pub fn gemm_q8k_reference(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let nsb = check_shapes(w, rows_bytes, rows, xq, ntok, out, out_stride);
    let row_len = nsb * w.block_bytes();
    for t in 0..ntok {
        let x = &xq[t * nsb..(t + 1) * nsb];
        for r in 0..rows {
            out[t * out_stride + r] =
                dot_q8k_reference(w, &rows_bytes[r * row_len..(r + 1) * row_len], x);
        }
    }
}

/// [`dot_q8k_x4`] per weight row and group of four tokens, [`dot_q8k`] for the rest.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn gemm_rowwise(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    nsb: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let row_len = nsb * w.block_bytes();
    let x = |t: usize| &xq[t * nsb..(t + 1) * nsb];
    for r in 0..rows {
        let row = &rows_bytes[r * row_len..(r + 1) * row_len];
        let mut t = 0;
        while t + 4 <= ntok {
            let four = dot_q8k_x4(w, row, [x(t), x(t + 1), x(t + 2), x(t + 3)]);
            for (k, v) in four.into_iter().enumerate() {
                out[(t + k) * out_stride + r] = v;
            }
            t += 4;
        }
        for t in t..ntok {
            out[t * out_stride + r] = dot_q8k(w, row, x(t));
        }
    }
}
