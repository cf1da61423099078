//! `gemm_q8k` (K-quant weight rows times a batch of Q8_K activation rows) against `dot_q8k`
//! per (row, token) pair, and the portable `gemm_q8k_reference` against `dot_q8k_reference`.
//!
//! Tolerance: the integer sums inside a super-block are exact in both, so they differ only
//! by the f32 rounding of the per-super-block scaling and of the summation order: within
//! `1e-5 · Σ|w_i x_i|` (dequantized operands) + 1e-30 for all-zero products. Q2_K and Q3_K,
//! and single tokens of any type, go through `dot_q8k_x4` / `dot_q8k` and must match bit for
//! bit.

mod common;

use common::{abs_dot, random_row, Rng};
use ondo_kernels::{
    dot_q8k, dot_q8k_reference, gemm_q8k, gemm_q8k_reference, quantize_q8k, reference, simd_level,
    BlockQ8K, DType,
};

const KQUANTS: [DType; 5] = [
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

/// Sentinel for output elements that must stay untouched.
const UNTOUCHED: f32 = -12345.5;

struct Case {
    w: DType,
    rows: usize,
    ntok: usize,
    nsb: usize,
    weights: Vec<u8>,
    xq: Vec<BlockQ8K>,
}

impl Case {
    fn random(rng: &mut Rng, w: DType, rows: usize, ntok: usize, nsb: usize) -> Case {
        let cols = 256 * nsb;
        let weights = random_row(rng, w, rows * cols);
        let mut xq = Vec::with_capacity(ntok * nsb);
        let mut one = Vec::new();
        for t in 0..ntok {
            let scale = [1.0f32, 1e-3, 40.0][t % 3];
            let mut x = rng.vec(cols, -scale, scale);
            if t % 5 == 4 {
                x[..256].fill(0.0); // an all-zero activation super-block
            }
            quantize_q8k(&x, &mut one);
            xq.extend_from_slice(&one);
        }
        Case {
            w,
            rows,
            ntok,
            nsb,
            weights,
            xq,
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        let len = self.nsb * self.w.block_bytes();
        &self.weights[r * len..(r + 1) * len]
    }

    fn x(&self, t: usize) -> &[BlockQ8K] {
        &self.xq[t * self.nsb..(t + 1) * self.nsb]
    }

    /// Runs `gemm` into a buffer with row stride `stride` (pre-filled with the sentinel).
    fn run(&self, gemm: GemmFn, stride: usize) -> Vec<f32> {
        let mut out = vec![UNTOUCHED; self.ntok * stride + 3];
        gemm(
            self.w,
            &self.weights,
            self.rows,
            &self.xq,
            self.ntok,
            &mut out,
            stride,
        );
        out
    }

    /// `1e-5 Σ|w_i x_i|` of the dequantized operands of pair (r, t), + 1e-30.
    fn tolerance(&self, r: usize, t: usize) -> f64 {
        let mut wd = vec![0.0f32; 256 * self.nsb];
        reference::dequantize_row(self.w, self.row(r), &mut wd);
        let xd: Vec<f32> = self
            .x(t)
            .iter()
            .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
            .collect();
        1e-5 * abs_dot(&wd, &xd) + 1e-30
    }

    /// Every output against `dot` of its pair, and every gap element untouched.
    fn check(&self, out: &[f32], stride: usize, dot: DotFn, exact: bool, what: &str) {
        let (w, rows, ntok, nsb) = (self.w, self.rows, self.ntok, self.nsb);
        for (i, &v) in out.iter().enumerate() {
            let (t, r) = (i / stride, i % stride);
            if t >= ntok || r >= rows {
                assert_eq!(
                    v.to_bits(),
                    UNTOUCHED.to_bits(),
                    "{w} {what}: gap element {i} written (rows {rows} ntok {ntok} stride {stride})"
                );
                continue;
            }
            let want = dot(w, self.row(r), self.x(t));
            if exact {
                assert_eq!(
                    v.to_bits(),
                    want.to_bits(),
                    "{w} {what}: rows {rows} ntok {ntok} nsb {nsb} pair ({r}, {t}): {v} vs {want}"
                );
            } else {
                let tol = self.tolerance(r, t);
                assert!(
                    (v as f64 - want as f64).abs() <= tol,
                    "{w} {what}: rows {rows} ntok {ntok} nsb {nsb} pair ({r}, {t}): {v} vs \
                     {want} (tol {tol})"
                );
            }
        }
    }
}

type GemmFn = fn(DType, &[u8], usize, &[BlockQ8K], usize, &mut [f32], usize);
type DotFn = fn(DType, &[u8], &[BlockQ8K]) -> f32;

fn check_fast(c: &Case, stride: usize, what: &str) {
    let out = c.run(gemm_q8k, stride);
    let exact = matches!(c.w, DType::Q2_K | DType::Q3_K) || c.ntok == 1;
    c.check(&out, stride, dot_q8k, exact, what);
}

#[test]
fn gemm_matches_dot_on_odd_shapes() {
    eprintln!("simd level: {}", simd_level());
    let mut rng = Rng::new(21);
    for w in KQUANTS {
        for nsb in 1..=3 {
            for rows in (1..=9).chain([15, 16, 17]) {
                for ntok in 1..=11 {
                    let c = Case::random(&mut rng, w, rows, ntok, nsb);
                    check_fast(&c, rows, "dense");
                }
            }
        }
    }
}

#[test]
fn gemm_matches_dot_on_a_larger_case() {
    let mut rng = Rng::new(22);
    for w in KQUANTS {
        let c = Case::random(&mut rng, w, 33, 37, 8);
        check_fast(&c, 33, "33x37x8");
    }
}

/// More tokens than the kernel keeps accumulators for at once (64), with a ragged end.
#[test]
fn gemm_matches_dot_past_the_token_chunk() {
    let mut rng = Rng::new(23);
    for w in [DType::Q4_K, DType::Q5_K, DType::Q6_K] {
        let c = Case::random(&mut rng, w, 11, 133, 2);
        check_fast(&c, 11, "11x133x2");
    }
}

#[test]
fn gemm_leaves_gaps_of_a_wider_stride_untouched() {
    let mut rng = Rng::new(24);
    for w in KQUANTS {
        for (rows, ntok, stride) in [(5, 7, 9), (8, 3, 13), (17, 6, 20), (1, 1, 4), (3, 1, 3)] {
            let c = Case::random(&mut rng, w, rows, ntok, 2);
            check_fast(&c, stride, &format!("stride {stride}"));
        }
    }
}

/// A single token may use any stride (nothing follows its row).
#[test]
fn gemm_single_token_ignores_stride() {
    let mut rng = Rng::new(25);
    let c = Case::random(&mut rng, DType::Q4_K, 9, 1, 1);
    let mut out = vec![UNTOUCHED; 9];
    gemm_q8k(c.w, &c.weights, 9, &c.xq, 1, &mut out, 0);
    c.check(&out, 9, dot_q8k, true, "stride 0");
}

/// Extreme quants (all bits set / clear / alternating) against ±127 and -128 activations:
/// the i16 partial sums of the tile kernels must not saturate.
#[test]
fn gemm_extreme_quants_do_not_saturate() {
    let mut rng = Rng::new(26);
    for w in KQUANTS {
        for fill in [0x00u8, 0xff, 0xaa, 0x55] {
            let mut c = Case::random(&mut rng, w, 9, 5, 2);
            let f16s = common::f16_field_offsets(w);
            for block in c.weights.chunks_exact_mut(w.block_bytes()) {
                let keep: Vec<(usize, [u8; 2])> = f16s
                    .iter()
                    .map(|&o| (o, [block[o], block[o + 1]]))
                    .collect();
                block.fill(fill);
                for (o, v) in keep {
                    block[o..o + 2].copy_from_slice(&v);
                }
            }
            for (i, b) in c.xq.iter_mut().enumerate() {
                let q: i8 = match i % 4 {
                    0 => 127,
                    1 => -127,
                    2 => -128,
                    _ => 0,
                };
                for (k, v) in b.qs.iter_mut().enumerate() {
                    *v = if i % 8 >= 4 && k % 2 == 1 { 0 } else { q };
                }
                for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
                    *s = g.iter().map(|&q| q as i16).sum();
                }
                b.d = 0.01;
            }
            check_fast(&c, 9, &format!("fill {fill:#x}"));
        }
    }
}

/// The portable path: `gemm_q8k_reference` is `dot_q8k_reference` per pair, bit for bit, and
/// agrees with the fast path within the tolerance.
#[test]
fn reference_gemm_is_the_scalar_dot_per_pair() {
    let mut rng = Rng::new(27);
    for w in KQUANTS {
        for (rows, ntok, nsb, stride) in [(1, 1, 1, 1), (7, 5, 2, 7), (10, 9, 3, 12)] {
            let c = Case::random(&mut rng, w, rows, ntok, nsb);
            let out = c.run(gemm_q8k_reference, stride);
            c.check(&out, stride, dot_q8k_reference, true, "reference");
            c.check(&out, stride, dot_q8k, false, "reference vs fast dot");
        }
    }
}

#[test]
fn empty_products_write_nothing() {
    let mut out = vec![UNTOUCHED; 4];
    gemm_q8k(
        DType::Q4_K,
        &[],
        0,
        &[BlockQ8K::default(); 3],
        3,
        &mut out,
        0,
    );
    gemm_q8k(DType::Q6_K, &[], 5, &[], 0, &mut out, 5);
    assert!(out.iter().all(|v| v.to_bits() == UNTOUCHED.to_bits()));
}

#[test]
#[should_panic]
fn gemm_rejects_a_short_output() {
    let c = Case::random(&mut Rng::new(28), DType::Q4_K, 4, 3, 1);
    let mut out = vec![0.0f32; 2 * 4 + 3];
    gemm_q8k(c.w, &c.weights, 4, &c.xq, 3, &mut out, 4);
}

#[test]
#[should_panic]
fn gemm_rejects_overlapping_token_rows() {
    let c = Case::random(&mut Rng::new(29), DType::Q4_K, 4, 3, 1);
    let mut out = vec![0.0f32; 64];
    gemm_q8k(c.w, &c.weights, 4, &c.xq, 3, &mut out, 3);
}

#[test]
#[should_panic]
fn gemm_rejects_mismatched_weights() {
    let c = Case::random(&mut Rng::new(30), DType::Q4_K, 4, 3, 2);
    let mut out = vec![0.0f32; 64];
    gemm_q8k(
        c.w,
        &c.weights[..c.weights.len() - 144],
        4,
        &c.xq,
        3,
        &mut out,
        4,
    );
}

#[test]
#[should_panic]
fn gemm_rejects_legacy_weights() {
    let row = vec![0u8; DType::Q8_0.row_bytes(256).unwrap()];
    let mut out = [0.0f32; 1];
    gemm_q8k(DType::Q8_0, &row, 1, &[BlockQ8K::default()], 1, &mut out, 1);
}
