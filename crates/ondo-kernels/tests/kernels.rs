//! Fast paths vs the scalar reference on random data: dot_row, dequantize_row, matvec,
//! quantize_row round trips and argument validation.

mod common;

use common::{abs_dot, dot64, random_row, Rng};
use ondo_kernels::{
    dequantize_row, dot_row, matvec, quantize_row, reference, simd_level, DType, KernelError,
};

/// Row lengths to test for `dtype`: 1, 3 and 7 blocks (plus ragged lengths for float types,
/// which exercise the SIMD tails).
fn lengths(dtype: DType) -> Vec<usize> {
    let be = dtype.block_elems();
    if be == 1 {
        vec![0, 1, 7, 8, 31, 32, 33, 100, 257, 7 * 256 + 3]
    } else {
        vec![be, 3 * be, 7 * be]
    }
}

/// For every type and length: fast dot_row, reference::dot_row and an f64 dot of the
/// reference dequantization agree to 1e-5 of sum(|w_i x_i|).
#[test]
fn dot_row_fast_vs_reference_vs_dequantized_dot() {
    eprintln!("simd level: {}", simd_level());
    let mut rng = Rng::new(1);
    for dtype in DType::ALL {
        for n in lengths(dtype) {
            for trial in 0..3 {
                let row = random_row(&mut rng, dtype, n);
                let x = rng.vec(n, -1.5, 1.5);
                let mut w = vec![0.0f32; n];
                reference::dequantize_row(dtype, &row, &mut w);
                let exact = dot64(&w, &x);
                let tol = 1e-5 * abs_dot(&w, &x) + 1e-30;
                let fast = dot_row(dtype, &row, &x) as f64;
                let refr = reference::dot_row(dtype, &row, &x) as f64;
                let msg = format!("{dtype} n={n} trial={trial}");
                assert!(
                    (fast - exact).abs() <= tol,
                    "{msg}: fast {fast} vs {exact} (tol {tol})"
                );
                assert!(
                    (refr - exact).abs() <= tol,
                    "{msg}: reference {refr} vs {exact}"
                );
                assert!(
                    (fast - refr).abs() <= tol,
                    "{msg}: fast {fast} vs reference {refr}"
                );
            }
        }
    }
}

/// A single non-zero activation picks out exactly one dequantized weight, so every position
/// of every block is checked individually (catches permuted nibbles / scales that a random
/// dot could hide in the tolerance).
#[test]
fn dot_row_with_one_hot_x_reads_each_weight() {
    let mut rng = Rng::new(2);
    for dtype in DType::ALL {
        let n = 2 * dtype.block_elems().max(16);
        let row = random_row(&mut rng, dtype, n);
        let mut w = vec![0.0f32; n];
        reference::dequantize_row(dtype, &row, &mut w);
        let mut x = vec![0.0f32; n];
        for i in 0..n {
            x[i] = 1.0;
            let got = dot_row(dtype, &row, &x);
            let tol = 1e-6 * w[i].abs() + 1e-6 * abs_max_scale(&w);
            assert!(
                (got - w[i]).abs() <= tol,
                "{dtype} position {i}: {got} vs {}",
                w[i]
            );
            x[i] = 0.0;
        }
    }
}

fn abs_max_scale(w: &[f32]) -> f32 {
    w.iter().fold(0.0f32, |a, v| a.max(v.abs()))
}

/// The fast dequantize_row equals the reference bit for bit on random data.
#[test]
fn dequantize_row_fast_equals_reference() {
    let mut rng = Rng::new(3);
    for dtype in DType::ALL {
        for n in lengths(dtype) {
            let row = random_row(&mut rng, dtype, n);
            let (mut a, mut b) = (vec![0.0f32; n], vec![1.0f32; n]);
            reference::dequantize_row(dtype, &row, &mut a);
            dequantize_row(dtype, &row, &mut b);
            let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{dtype} n={n}");
        }
    }
}

/// matvec (serial and parallel sizes, odd row counts) equals per-row reference dots.
#[test]
fn matvec_matches_per_row_reference() {
    let mut rng = Rng::new(4);
    for dtype in DType::ALL {
        let be = dtype.block_elems().max(32);
        for (rows, cols) in [(1, be), (3, be), (7, 3 * be), (129, 2 * be), (301, 4 * be)] {
            let w = random_row(&mut rng, dtype, rows * cols);
            let x = rng.vec(cols, -1.0, 1.0);
            let mut out = vec![f32::NAN; rows];
            matvec(dtype, &w, rows, cols, &x, &mut out);
            let rb = dtype.row_bytes(cols).unwrap();
            for (r, o) in out.iter().enumerate() {
                let row = &w[r * rb..(r + 1) * rb];
                let mut wr = vec![0.0f32; cols];
                reference::dequantize_row(dtype, row, &mut wr);
                let want = reference::dot_row(dtype, row, &x);
                let tol = 1e-5 * abs_dot(&wr, &x) as f32 + 1e-30;
                assert!(
                    (o - want).abs() <= tol,
                    "{dtype} {rows}x{cols} row {r}: {o} vs {want}"
                );
                assert_eq!(
                    o.to_bits(),
                    dot_row(dtype, row, &x).to_bits(),
                    "{dtype} row {r}"
                );
            }
        }
    }
}

#[test]
fn matvec_empty_shapes() {
    let mut out = [5.0f32; 3];
    matvec(DType::F32, &[], 3, 0, &[], &mut out);
    assert_eq!(out, [0.0; 3]);
    let mut none: [f32; 0] = [];
    matvec(DType::Q4_0, &[], 0, 64, &[0.0; 64], &mut none);
}

#[test]
#[should_panic]
fn matvec_rejects_wrong_weight_size() {
    let mut out = [0.0f32; 2];
    matvec(DType::Q8_0, &[0u8; 34 * 2 - 1], 2, 32, &[0.0; 32], &mut out);
}

#[test]
#[should_panic]
fn dot_row_rejects_length_mismatch() {
    dot_row(DType::Q4_K, &[0u8; 144], &[0.0; 255]);
}

#[test]
#[should_panic]
fn dequantize_row_rejects_length_mismatch() {
    let mut out = [0.0f32; 32];
    dequantize_row(DType::Q4_1, &[0u8; 19], &mut out);
}

/// Quantize then dequantize: the error of each element is bounded by the quantization step.
#[test]
fn quantize_round_trip_error_is_bounded() {
    let mut rng = Rng::new(5);
    // (type, levels between min and max used by the step bound)
    let cases = [
        (DType::Q4_0, 8.0f32),
        (DType::Q4_1, 15.0),
        (DType::Q5_0, 16.0),
        (DType::Q5_1, 31.0),
        (DType::Q8_0, 127.0),
    ];
    for (dtype, levels) in cases {
        let src = rng.vec(32 * 9, -3.0, 3.0);
        let mut q = vec![0u8; dtype.row_bytes(src.len()).unwrap()];
        quantize_row(dtype, &src, &mut q).unwrap();
        let mut back = vec![0.0f32; src.len()];
        dequantize_row(dtype, &q, &mut back);
        for (blk, (s, b)) in src.chunks(32).zip(back.chunks(32)).enumerate() {
            let amax = s.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let (mn, mx) = s
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            let step = match dtype {
                DType::Q4_1 | DType::Q5_1 => (mx - mn) / levels,
                _ => amax / levels,
            };
            // Half a step of rounding; Q4_0/Q5_0 map the signed absmax to -8/-16, so values of
            // the opposite sign are clipped at +7/+15 and may be off by a whole step.
            let steps = match dtype {
                DType::Q4_0 | DType::Q5_0 => 1.0,
                _ => 0.5,
            };
            for (i, (x, y)) in s.iter().zip(b).enumerate() {
                // plus slack for the f16 rounding of the scale / offset
                let bound = steps * step + 2e-3 * amax;
                assert!(
                    (x - y).abs() <= bound,
                    "{dtype} block {blk} elem {i}: {x} -> {y}"
                );
            }
        }
    }
    // Float types round-trip to within their precision.
    for (dtype, rel) in [
        (DType::F32, 0.0f32),
        (DType::F16, 1e-3),
        (DType::BF16, 8e-3),
    ] {
        let src = rng.vec(77, -100.0, 100.0);
        let mut q = vec![0u8; dtype.row_bytes(77).unwrap()];
        quantize_row(dtype, &src, &mut q).unwrap();
        let mut back = vec![0.0f32; 77];
        dequantize_row(dtype, &q, &mut back);
        for (x, y) in src.iter().zip(&back) {
            assert!((x - y).abs() <= rel * x.abs(), "{dtype}: {x} -> {y}");
        }
    }
}

#[test]
fn quantize_row_errors() {
    let src = [0.5f32; 256];
    for dtype in [
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ] {
        let mut dst = vec![0u8; dtype.block_bytes()];
        assert_eq!(
            quantize_row(dtype, &src, &mut dst),
            Err(KernelError::Unsupported(dtype))
        );
    }
    let mut dst = [0u8; 18];
    assert!(matches!(
        quantize_row(DType::Q4_0, &src[..31], &mut dst),
        Err(KernelError::NotBlockAligned { .. })
    ));
    assert_eq!(
        quantize_row(DType::Q4_0, &src[..32], &mut dst[..17]),
        Err(KernelError::LengthMismatch {
            expected: 18,
            got: 17
        })
    );
    assert_eq!(quantize_row(DType::Q4_0, &src[..32], &mut dst), Ok(()));
}

/// Extreme but finite values: fast paths must not overflow differently from the reference
/// (large activations, max-magnitude f16 scales).
#[test]
fn dot_row_large_values() {
    let mut rng = Rng::new(6);
    for dtype in DType::ALL {
        let n = 3 * dtype.block_elems().max(64);
        let mut row = random_row(&mut rng, dtype, n);
        for block in row.chunks_exact_mut(dtype.block_bytes()) {
            for &off in common::f16_field_offsets(dtype) {
                block[off..off + 2].copy_from_slice(&0x7bffu16.to_le_bytes()); // 65504
            }
        }
        let x = rng.vec(n, -1e3, 1e3);
        let mut w = vec![0.0f32; n];
        reference::dequantize_row(dtype, &row, &mut w);
        let exact = dot64(&w, &x);
        let got = dot_row(dtype, &row, &x) as f64;
        assert!(got.is_finite(), "{dtype}");
        assert!(
            (got - exact).abs() <= 1e-5 * abs_dot(&w, &x),
            "{dtype}: {got} vs {exact}"
        );
    }
}
