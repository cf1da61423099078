//! f32 ops (rmsnorm, softmax, silu, dot_f32, axpy) against naive f64 loops.

mod common;

use common::Rng;
use ondo_kernels::{axpy, dot_f32, rmsnorm, silu, softmax_inplace};

const LENGTHS: [usize; 12] = [0, 1, 2, 7, 8, 9, 15, 16, 31, 33, 64, 1027];

#[test]
fn dot_f32_matches_naive_for_odd_lengths() {
    let mut rng = Rng::new(11);
    for n in LENGTHS {
        let a = rng.vec(n, -2.0, 2.0);
        let b = rng.vec(n, -2.0, 2.0);
        let want = common::dot64(&a, &b);
        let tol = 1e-6 * common::abs_dot(&a, &b) + 1e-30;
        let got = dot_f32(&a, &b) as f64;
        assert!((got - want).abs() <= tol, "n={n}: {got} vs {want}");
    }
    // slices at unaligned offsets
    let a = rng.vec(100, -1.0, 1.0);
    let b = rng.vec(100, -1.0, 1.0);
    let got = dot_f32(&a[3..70], &b[1..68]) as f64;
    let want = common::dot64(&a[3..70], &b[1..68]);
    assert!((got - want).abs() <= 1e-6 * common::abs_dot(&a[3..70], &b[1..68]));
}

#[test]
#[should_panic]
fn dot_f32_rejects_length_mismatch() {
    dot_f32(&[1.0, 2.0], &[1.0]);
}

#[test]
fn rmsnorm_matches_naive() {
    let mut rng = Rng::new(12);
    for n in LENGTHS {
        let x = rng.vec(n, -3.0, 3.0);
        let w = rng.vec(n, 0.5, 1.5);
        let eps = 1e-5f32;
        let mut out = vec![f32::NAN; n];
        rmsnorm(&mut out, &x, &w, eps);
        let ms = x.iter().map(|v| *v as f64 * *v as f64).sum::<f64>() / n.max(1) as f64;
        let scale = 1.0 / (ms + eps as f64).sqrt();
        for i in 0..n {
            let want = x[i] as f64 * scale * w[i] as f64;
            assert!(
                (out[i] as f64 - want).abs() <= 1e-5 * want.abs() + 1e-7,
                "n={n} i={i}"
            );
        }
    }
    // all-zero input stays zero (eps keeps it finite)
    let mut out = [1.0f32; 4];
    rmsnorm(&mut out, &[0.0; 4], &[1.0; 4], 1e-6);
    assert_eq!(out, [0.0; 4]);
}

#[test]
fn softmax_matches_naive_and_sums_to_one() {
    let mut rng = Rng::new(13);
    for n in LENGTHS {
        let x = rng.vec(n, -30.0, 30.0);
        let mut y = x.clone();
        softmax_inplace(&mut y);
        if n == 0 {
            continue;
        }
        let max = x.iter().fold(f64::NEG_INFINITY, |a, v| a.max(*v as f64));
        let sum: f64 = x.iter().map(|v| (*v as f64 - max).exp()).sum();
        for i in 0..n {
            let want = (x[i] as f64 - max).exp() / sum;
            assert!(
                (y[i] as f64 - want).abs() <= 1e-6 * want + 1e-12,
                "n={n} i={i}"
            );
        }
        let total: f64 = y.iter().map(|v| *v as f64).sum();
        assert!((total - 1.0).abs() < 1e-5, "n={n}: sum {total}");
    }
    // huge logits do not overflow; masked (-inf) entries get exactly 0
    let mut y = [1000.0f32, 999.0, f32::NEG_INFINITY];
    softmax_inplace(&mut y);
    assert!((y[0] - 0.731_058_6).abs() < 1e-6 && y[2] == 0.0, "{y:?}");
}

#[test]
fn silu_matches_naive() {
    for i in -200..=200 {
        let x = i as f32 * 0.1;
        let want = x as f64 / (1.0 + (-(x as f64)).exp());
        assert!(
            (silu(x) as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3),
            "x={x}"
        );
    }
}

#[test]
fn axpy_matches_naive() {
    let mut rng = Rng::new(14);
    for n in LENGTHS {
        let x = rng.vec(n, -1.0, 1.0);
        let y0 = rng.vec(n, -1.0, 1.0);
        let mut y = y0.clone();
        axpy(&mut y, 0.37, &x);
        for i in 0..n {
            assert_eq!(y[i], y0[i] + 0.37 * x[i], "n={n} i={i}");
        }
    }
}

#[test]
fn f16_rounding_kernels_equal_the_scalar_conversion() {
    let mut vals: Vec<f32> = (0..1000)
        .map(|i| ((i as f32) * 0.37).sin() * 10f32.powi(i % 9 - 4))
        .collect();
    vals.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e-8,
        -3.0e-5,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ]);
    for len in [0usize, 1, 7, 8, 9, 31, vals.len()] {
        let src = &vals[..len];
        let mut rounded = src.to_vec();
        ondo_kernels::attn::round_to_f16(&mut rounded);
        let mut bits = vec![0u16; len];
        ondo_kernels::attn::to_f16(src, &mut bits);
        for i in 0..len {
            let want = ondo_kernels::f32_to_f16(src[i]);
            assert_eq!(bits[i], want, "to_f16({})", src[i]);
            assert_eq!(
                rounded[i].to_bits(),
                ondo_kernels::f16_to_f32(want).to_bits(),
                "round({})",
                src[i]
            );
        }
    }
}

#[test]
fn grouped_attention_kernels_equal_the_per_head_ones_bit_for_bit() {
    use ondo_kernels::attn::{scores_group, scores_lanes8, weighted_sum_group, weighted_sum_seq};
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut f = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    for (g, hd, len) in [
        (1usize, 64usize, 1usize),
        (3, 64, 37),
        (4, 64, 130),
        (2, 128, 9),
        (4, 32, 5),
        (3, 64, 2),
        (3, 32, 11),
        (2, 64, 7),
        (1, 128, 6),
        (5, 64, 7),
        (6, 64, 3),
        (7, 64, 4),
        (8, 64, 9),
        (4, 256, 3),
        (3, 24, 5),
    ] {
        let q: Vec<f32> = (0..g * hd).map(|_| f()).collect();
        let keys: Vec<u16> = (0..len * hd)
            .map(|_| ondo_kernels::f32_to_f16(f()))
            .collect();
        let vals: Vec<u16> = (0..len * hd)
            .map(|_| ondo_kernels::f32_to_f16(f()))
            .collect();
        let mut grouped = vec![0.0f32; g * len];
        scores_group(&q, hd, &keys, &keys, hd, 0.125, &mut grouped);
        let probs: Vec<f32> = (0..g * len).map(|_| f().abs()).collect();
        let mut out = vec![0.0f32; g * hd];
        weighted_sum_group(&mut out, hd, &probs, &vals, hd);
        for h in 0..g {
            let mut one = vec![0.0f32; len];
            scores_lanes8(&q[h * hd..(h + 1) * hd], &keys, hd, 0.125, &mut one);
            for p in 0..len {
                assert_eq!(
                    grouped[h * len + p].to_bits(),
                    one[p].to_bits(),
                    "scores g{g} h{h} p{p}"
                );
            }
            let mut o = vec![0.0f32; hd];
            weighted_sum_seq(&mut o, &probs[h * len..(h + 1) * len], &vals, hd);
            for d in 0..hd {
                assert_eq!(
                    out[h * hd + d].to_bits(),
                    o[d].to_bits(),
                    "values g{g} h{h} d{d}"
                );
            }
        }
    }
}
