//! `gemm_q8` / `gemm_q8_rows` against one `dot_q8` per (row, token): bit-identical on every
//! shape of a sweep of small odd sizes (all tile tails) and on a larger case.

mod common;

use common::Rng;
use ondo_kernels::{dot_q8, gemm_q8, gemm_q8_rows, quantize_q8, quantize_row, BlockQ8, DType};

const TYPES: [DType; 3] = [DType::Q4_0, DType::Q4_1, DType::Q8_0];

/// `rows` random weight rows of `nb` blocks: quantized random values, with every fifth row
/// raw random bytes (any nibble / i8 pattern, finite scales) instead.
fn weights(rng: &mut Rng, w: DType, rows: usize, nb: usize) -> Vec<u8> {
    let n = nb * 32;
    let mut out = Vec::new();
    for r in 0..rows {
        if r % 5 == 4 {
            out.extend(common::random_row(rng, w, n));
        } else {
            let scale = if r % 3 == 0 { 50.0 } else { 1.0 };
            let v = rng.vec(n, -scale, scale);
            let mut row = vec![0u8; w.row_bytes(n).unwrap()];
            quantize_row(w, &v, &mut row).unwrap();
            out.extend(row);
        }
    }
    out
}

/// `ntok` quantized activation rows of `nb` blocks, some blocks all zero.
fn activations(rng: &mut Rng, ntok: usize, nb: usize) -> Vec<BlockQ8> {
    let mut xq = Vec::new();
    let mut tmp = Vec::new();
    for t in 0..ntok {
        let mut x = rng.vec(nb * 32, -3.0, 3.0);
        if t % 4 == 1 {
            x[..32].fill(0.0);
        }
        quantize_q8(&x, &mut tmp);
        xq.extend_from_slice(&tmp);
    }
    xq
}

/// Checks both layouts (with padded strides) against per-pair `dot_q8`, bit for bit.
fn check(rng: &mut Rng, w: DType, rows: usize, ntok: usize, nb: usize) {
    let wb = weights(rng, w, rows, nb);
    let xq = activations(rng, ntok, nb);
    let rb = nb * w.block_bytes();
    let want = |r: usize, t: usize| dot_q8(w, &wb[r * rb..(r + 1) * rb], &xq[t * nb..(t + 1) * nb]);
    const PAD: f32 = -12345.0;

    let stride = rows + 2;
    let mut out = vec![PAD; ntok * stride];
    gemm_q8(w, &wb, rows, &xq, ntok, &mut out, stride);
    for t in 0..ntok {
        for r in 0..stride {
            let got = out[t * stride + r];
            if r < rows {
                let e = want(r, t);
                assert_eq!(
                    got.to_bits(),
                    e.to_bits(),
                    "{w} {rows}x{ntok}x{nb}: ({r},{t}) {got} vs {e}"
                );
            } else {
                assert_eq!(got, PAD, "{w}: padding overwritten");
            }
        }
    }

    let stride = ntok + 1;
    let mut out = vec![PAD; rows * stride];
    gemm_q8_rows(w, &wb, rows, &xq, ntok, &mut out, stride);
    for r in 0..rows {
        for t in 0..stride {
            let got = out[r * stride + t];
            if t < ntok {
                let e = want(r, t);
                assert_eq!(
                    got.to_bits(),
                    e.to_bits(),
                    "{w} rows layout ({r},{t}) {got} vs {e}"
                );
            } else {
                assert_eq!(got, PAD, "{w}: padding overwritten");
            }
        }
    }
}

#[test]
fn gemm_equals_dot_bit_for_bit_on_small_shapes() {
    let mut rng = Rng::new(0x6e44);
    for w in TYPES {
        for rows in 1..=9 {
            for ntok in 1..=13 {
                for nb in 1..=5 {
                    check(&mut rng, w, rows, ntok, nb);
                }
            }
        }
    }
}

#[test]
fn gemm_equals_dot_bit_for_bit_on_a_larger_case() {
    let mut rng = Rng::new(0xb16);
    for w in TYPES {
        check(&mut rng, w, 37, 29, 70);
    }
}

#[test]
fn gemm_handles_empty_shapes() {
    let mut out = [7.0f32; 4];
    gemm_q8(DType::Q4_0, &[], 0, &[], 3, &mut out, 0);
    gemm_q8(DType::Q4_0, &[], 2, &[], 0, &mut out, 2);
    assert_eq!(out, [7.0; 4]);
    // Zero blocks per row: every dot is an empty sum.
    gemm_q8(DType::Q8_0, &[], 2, &[], 2, &mut out, 2);
    assert_eq!(out, [0.0; 4]);
}

#[test]
#[should_panic]
fn gemm_rejects_mismatched_lengths() {
    let xq = vec![BlockQ8::default(); 4];
    let wb = vec![0u8; 3 * DType::Q4_0.block_bytes()];
    let mut out = [0.0f32; 8];
    gemm_q8(DType::Q4_0, &wb, 2, &xq, 2, &mut out, 2);
}

#[test]
#[should_panic]
fn gemm_rejects_a_short_output() {
    let xq = vec![BlockQ8::default(); 4];
    let wb = vec![0u8; 4 * DType::Q4_0.block_bytes()];
    let mut out = [0.0f32; 3];
    gemm_q8(DType::Q4_0, &wb, 2, &xq, 2, &mut out, 2);
}
