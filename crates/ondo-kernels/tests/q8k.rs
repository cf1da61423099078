//! The integer Q8_K-activation path of the K-quants: quantization vs `round_activations`,
//! AVX2 (`dot_q8k`, `dot_q8k_x4`) vs the scalar twin (`dot_q8k_reference`), and both vs an
//! f64 dot of the dequantized row with the dequantized activations.
//!
//! Tolerance: the integer sums are exact, so fast and reference differ from the f64 dot only
//! by f32 rounding of the per-super-block scaling and of the final sum: within
//! `1e-5 · Σ|w_i x_i|` (+1e-30 for all-zero products).

mod common;

use common::{abs_dot, dot64, random_row, Rng};
use ondo_kernels::{
    dot_q8k, dot_q8k_reference, dot_q8k_x4, has_q8k_path, quantize_q8k, reference,
    round_activations, simd_level, BlockQ8K, DType,
};

const KQUANTS: [DType; 5] = [
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

fn quantize(x: &[f32]) -> Vec<BlockQ8K> {
    let mut xq = Vec::new();
    quantize_q8k(x, &mut xq);
    xq
}

/// The activations as the integer path sees them: `d * q`.
fn dequantize(xq: &[BlockQ8K]) -> Vec<f32> {
    xq.iter()
        .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
        .collect()
}

fn dequantize_weights(w: DType, row: &[u8]) -> Vec<f32> {
    let mut wd = vec![0.0f32; row.len() / w.block_bytes() * 256];
    reference::dequantize_row(w, row, &mut wd);
    wd
}

/// fast == reference == f64 dot of the dequantized operands, within the stated tolerance.
fn check_dot(w: DType, row: &[u8], x: &[f32], what: &str) {
    let xq = quantize(x);
    let wd = dequantize_weights(w, row);
    let xd = dequantize(&xq);
    let exact = dot64(&wd, &xd);
    let tol = 1e-5 * abs_dot(&wd, &xd) + 1e-30;
    let fast = dot_q8k(w, row, &xq) as f64;
    let refr = dot_q8k_reference(w, row, &xq) as f64;
    assert!(
        (fast - refr).abs() <= tol,
        "{w} {what}: fast {fast} vs reference {refr} (tol {tol})"
    );
    assert!(
        (refr - exact).abs() <= tol,
        "{w} {what}: reference {refr} vs exact {exact} (tol {tol})"
    );
    assert!(
        (fast - exact).abs() <= tol,
        "{w} {what}: fast {fast} vs exact {exact} (tol {tol})"
    );
}

#[test]
fn quantized_activations_equal_round_activations() {
    let mut rng = Rng::new(7);
    for scale in [1e-3f32, 1.0, 37.0, 1e4] {
        let mut x = rng.vec(5 * 256, -scale, scale);
        x[256..512].fill(0.0); // an all-zero super-block
        x[600] = -2.0 * scale; // a negative extreme (d > 0)
        let xq = quantize(&x);
        assert_eq!(xq.len(), 5);
        let mut want = vec![0.0; x.len()];
        round_activations(DType::Q4_K, &x, &mut want);
        for w in KQUANTS {
            let mut other = vec![0.0; x.len()];
            round_activations(w, &x, &mut other);
            assert_eq!(other, want, "{w} rounds like Q4_K");
        }
        assert_eq!(dequantize(&xq), want, "scale {scale}");
        for b in &xq {
            assert!(b.d.is_finite());
            for (g, s) in b.bsums.iter().enumerate() {
                let sum: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
                assert_eq!(*s as i32, sum);
            }
            assert!(b.qs.iter().all(|&q| q >= -127));
        }
        assert_eq!(xq[1], BlockQ8K::default(), "all-zero block");
        assert!(xq[2].d > 0.0 && xq[2].qs[600 - 512] == -127);
    }
}

/// ggml's `nearest_int` rounds half to even: with `max = -127` the scale is exactly 1, so
/// `x.5` values land on ties.
#[test]
fn quantization_rounds_ties_to_even_like_ggml() {
    let mut x = vec![0.0f32; 256];
    x[0] = -127.0;
    let ties = [
        (2.5f32, 2i8),
        (3.5, 4),
        (-0.5, 0),
        (-1.5, -2),
        (126.5, 126),
        (0.49, 0),
    ];
    for (k, (v, _)) in ties.iter().enumerate() {
        x[1 + k] = *v;
    }
    let xq = quantize(&x);
    assert_eq!(xq[0].d, 1.0);
    assert_eq!(xq[0].qs[0], -127);
    for (k, (v, q)) in ties.iter().enumerate() {
        assert_eq!(xq[0].qs[1 + k], *q, "{v}");
    }
    let mut rounded = vec![0.0; 256];
    round_activations(DType::Q6_K, &x, &mut rounded);
    assert_eq!(dequantize(&xq), rounded);
}

#[test]
fn quantize_reuses_the_buffer() {
    let x = Rng::new(3).vec(1024, -1.0, 1.0);
    let mut xq = Vec::with_capacity(8);
    xq.push(BlockQ8K::default());
    let ptr = xq.as_ptr();
    quantize_q8k(&x, &mut xq);
    assert_eq!(xq.len(), 4);
    assert_eq!(xq.as_ptr(), ptr);
    quantize_q8k(&x[..256], &mut xq);
    assert_eq!(xq.len(), 1);
}

#[test]
fn q8k_dot_matches_reference_and_exact_dot() {
    eprintln!("simd level: {}", simd_level());
    let mut rng = Rng::new(11);
    for w in KQUANTS {
        assert!(has_q8k_path(w));
        for blocks in [1usize, 3, 7] {
            let n = blocks * 256;
            for trial in 0..12 {
                let row = random_row(&mut rng, w, n);
                let scale = [1.0f32, 1e-3, 50.0][trial % 3];
                let mut x = rng.vec(n, -scale, scale);
                if trial % 4 == 3 {
                    x[..256].fill(0.0); // an all-zero activation super-block
                }
                if trial % 5 == 4 {
                    for v in &mut x {
                        *v = v.abs(); // one-signed activations: no cancellation in the sums
                    }
                }
                check_dot(w, &row, &x, &format!("n={n} trial={trial}"));
            }
        }
    }
}

/// Activations non-zero in a single 16-element group: a swapped scale, min, nibble or plane
/// would change the result by far more than the tolerance.
#[test]
fn q8k_dot_reads_each_group_with_its_own_scale() {
    let mut rng = Rng::new(12);
    for w in KQUANTS {
        let n = 2 * 256;
        let row = random_row(&mut rng, w, n);
        for g in 0..n / 16 {
            let mut x = vec![0.0f32; n];
            for v in &mut x[16 * g..16 * g + 16] {
                *v = rng.uniform(-1.0, 1.0);
            }
            check_dot(w, &row, &x, &format!("group {g}"));
        }
    }
}

/// One non-zero activation picks out one dequantized weight (times its rounded activation).
#[test]
fn q8k_dot_with_one_hot_x_reads_each_weight() {
    let mut rng = Rng::new(13);
    for w in KQUANTS {
        let n = 2 * 256;
        let row = random_row(&mut rng, w, n);
        let wd = dequantize_weights(w, &row);
        let wmax = wd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let mut x = vec![0.0f32; n];
        for i in 0..n {
            x[i] = if i % 2 == 0 { 1.0 } else { -0.75 };
            let xq = quantize(&x);
            let want = wd[i] as f64 * dequantize(&xq)[i] as f64;
            // The result is d_x (d_w sc q - dmin m): f32 rounding of the two scaled terms.
            let tol = 1e-6 * wmax as f64 + 1e-30;
            let fast = dot_q8k(w, &row, &xq) as f64;
            let refr = dot_q8k_reference(w, &row, &xq) as f64;
            assert!(
                (fast - want).abs() <= tol,
                "{w} @{i}: fast {fast} vs {want}"
            );
            assert!((refr - want).abs() <= tol, "{w} @{i}: ref {refr} vs {want}");
            x[i] = 0.0;
        }
    }
}

/// Extreme quants (all bits set / all clear) against ±127 activations: no i16 saturation in
/// the byte products.
#[test]
fn q8k_dot_extreme_quants_do_not_saturate() {
    let mut rng = Rng::new(14);
    for w in KQUANTS {
        for fill in [0x00u8, 0xff, 0xaa] {
            let mut row = random_row(&mut rng, w, 512);
            let f16s = common::f16_field_offsets(w);
            for block in row.chunks_exact_mut(w.block_bytes()) {
                let keep: Vec<(usize, [u8; 2])> = f16s
                    .iter()
                    .map(|&o| (o, [block[o], block[o + 1]]))
                    .collect();
                block.fill(fill);
                for (o, v) in keep {
                    block[o..o + 2].copy_from_slice(&v);
                }
            }
            for x in [vec![1.0f32; 512], vec![-1.0f32; 512]] {
                check_dot(w, &row, &x, &format!("fill {fill:#x}"));
                let mut alt = x.clone();
                for v in alt.iter_mut().step_by(2) {
                    *v = -*v;
                }
                check_dot(w, &row, &alt, &format!("fill {fill:#x} alternating"));
            }
        }
    }
}

#[test]
fn four_at_once_equals_one_at_a_time_bit_for_bit() {
    let mut rng = Rng::new(15);
    for w in KQUANTS {
        for blocks in [1usize, 3, 7] {
            let n = blocks * 256;
            let row = random_row(&mut rng, w, n);
            let xs: Vec<Vec<BlockQ8K>> = (0..4)
                .map(|k| quantize(&rng.vec(n, -1.0, 1.0 + k as f32)))
                .collect();
            let four = dot_q8k_x4(w, &row, [&xs[0], &xs[1], &xs[2], &xs[3]]);
            for k in 0..4 {
                let one = dot_q8k(w, &row, &xs[k]);
                assert_eq!(four[k].to_bits(), one.to_bits(), "{w} n={n} row {k}");
            }
        }
    }
}

#[test]
fn no_q8k_path_for_other_types() {
    for w in DType::ALL {
        assert_eq!(has_q8k_path(w), KQUANTS.contains(&w), "{w}");
    }
}

#[test]
#[should_panic]
fn q8k_dot_rejects_mismatched_lengths() {
    let row = vec![0u8; DType::Q4_K.row_bytes(512).unwrap()];
    dot_q8k(DType::Q4_K, &row, &quantize(&[0.0; 256]));
}

#[test]
#[should_panic]
fn q8k_dot_rejects_legacy_weights() {
    let row = vec![0u8; DType::Q8_0.row_bytes(256).unwrap()];
    dot_q8k(DType::Q8_0, &row, &quantize(&[0.0; 256]));
}

#[test]
#[should_panic]
fn quantize_rejects_ragged_length() {
    quantize(&[1.0; 300]);
}

#[test]
fn gemv_q8k_equals_dot_q8k_per_row() {
    let mut rng = common::Rng::new(77);
    for w in [
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ] {
        for (rows, sb) in [(1usize, 1usize), (5, 2), (16, 3)] {
            let n = sb * 256;
            let bytes = common::random_row(&mut rng, w, rows * n);
            let x = rng.vec(n, -2.0, 2.0);
            let mut xq = Vec::new();
            ondo_kernels::quantize_q8k(&x, &mut xq);
            let mut out = vec![0.0f32; rows];
            ondo_kernels::gemv_q8k(w, &bytes, &xq, &mut out);
            let rb = bytes.len() / rows;
            for (r, o) in out.iter().enumerate() {
                let d = ondo_kernels::dot_q8k(w, &bytes[r * rb..(r + 1) * rb], &xq);
                assert_eq!(o.to_bits(), d.to_bits(), "{w} rows {rows} row {r}");
            }
        }
    }
}
