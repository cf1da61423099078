//! The integer Q8-activation path: AVX2 vs scalar twin, and both vs "round the activations,
//! dequantize the row, dot in f64", on random rows of every supported type.

use ondo_kernels::{
    dequantize_row, dot_q8, dot_q8_reference, dot_q8_x4, has_q8_path, quantize_q8, quantize_row,
    round_activations, DType,
};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

#[test]
fn q8_dot_matches_reference_and_rounded_dequantized_dot() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for w in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        assert!(has_q8_path(w));
        for blocks in [1usize, 3, 7, 18] {
            for trial in 0..20 {
                let n = blocks * 32;
                let scale = if trial % 5 == 0 { 100.0 } else { 1.0 };
                let wv: Vec<f32> = (0..n).map(|_| rng.f() * scale).collect();
                let mut x: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
                if trial % 7 == 0 {
                    x[..32].fill(0.0); // an all-zero activation block
                }
                let mut row = vec![0u8; w.row_bytes(n).unwrap()];
                quantize_row(w, &wv, &mut row).unwrap();
                let mut xq = Vec::new();
                quantize_q8(&x, &mut xq);

                let fast = dot_q8(w, &row, &xq);
                let reference = dot_q8_reference(w, &row, &xq);
                let mut wd = vec![0.0; n];
                dequantize_row(w, &row, &mut wd);
                let mut xr = vec![0.0; n];
                round_activations(w, &x, &mut xr);
                let exact: f64 = wd.iter().zip(&xr).map(|(a, b)| *a as f64 * *b as f64).sum();
                let mag: f64 = wd
                    .iter()
                    .zip(&xr)
                    .map(|(a, b)| (*a as f64 * *b as f64).abs())
                    .sum::<f64>()
                    + 1e-6;
                let tol = 2e-3 * mag; // Q4_1's block sum s is stored at f16 precision
                assert!(
                    ((fast - reference) as f64).abs() <= 1e-5 * mag,
                    "{w} fast {fast} vs reference {reference}"
                );
                assert!(
                    (reference as f64 - exact).abs() <= tol,
                    "{w} reference {reference} vs exact {exact}"
                );
            }
        }
    }
}

#[test]
fn quantized_activations_equal_round_activations() {
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..256).map(|_| rng.f() * 10.0).collect();
    let mut xq = Vec::new();
    quantize_q8(&x, &mut xq);
    let mut xr = vec![0.0; 256];
    round_activations(DType::Q8_0, &x, &mut xr);
    for (i, v) in xr.iter().enumerate() {
        let b = &xq[i / 32];
        assert_eq!(*v, b.qs[i % 32] as f32 * b.d, "element {i}");
    }
}

#[test]
#[should_panic]
fn q8_dot_rejects_mismatched_lengths() {
    let row = vec![0u8; DType::Q8_0.row_bytes(64).unwrap()];
    let mut xq = Vec::new();
    quantize_q8(&[0.0; 32], &mut xq);
    dot_q8(DType::Q8_0, &row, &xq);
}

#[test]
fn four_at_once_equals_one_at_a_time() {
    let mut rng = Rng(99);
    for w in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        let n = 5 * 32;
        let wv: Vec<f32> = (0..n).map(|_| rng.f()).collect();
        let mut row = vec![0u8; w.row_bytes(n).unwrap()];
        quantize_row(w, &wv, &mut row).unwrap();
        let xs: Vec<Vec<_>> = (0..4)
            .map(|_| {
                let x: Vec<f32> = (0..n).map(|_| rng.f() * 2.0).collect();
                let mut xq = Vec::new();
                quantize_q8(&x, &mut xq);
                xq
            })
            .collect();
        let four = dot_q8_x4(w, &row, [&xs[0], &xs[1], &xs[2], &xs[3]]);
        for k in 0..4 {
            let one = dot_q8(w, &row, &xs[k]);
            assert!(
                (four[k] - one).abs() <= 1e-5 * one.abs().max(1.0),
                "{w} {k}: {} vs {one}",
                four[k]
            );
        }
    }
}

#[test]
fn gemv_q8_agrees_with_dot_q8_and_its_rows_are_independent() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for w in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        for blocks in [1usize, 2, 5, 18] {
            for rows in [1usize, 3, 7, 8, 9, 17] {
                let n = blocks * 32;
                let rb = w.row_bytes(n).unwrap();
                let mut bytes = vec![0u8; rows * rb];
                for r in 0..rows {
                    let wv: Vec<f32> = (0..n).map(|_| rng.f()).collect();
                    quantize_row(w, &wv, &mut bytes[r * rb..(r + 1) * rb]).unwrap();
                }
                let x: Vec<f32> = (0..n).map(|_| rng.f() * 2.0).collect();
                let mut xq = Vec::new();
                quantize_q8(&x, &mut xq);
                let mut out = vec![0.0f32; rows];
                ondo_kernels::gemv_q8(w, &bytes, &xq, &mut out);
                for (r, o) in out.iter().enumerate() {
                    let row = &bytes[r * rb..(r + 1) * rb];
                    let d = dot_q8_reference(w, row, &xq);
                    let mut wd = vec![0.0; n];
                    dequantize_row(w, row, &mut wd);
                    let mut xr = vec![0.0; n];
                    round_activations(w, &x, &mut xr);
                    let mag: f32 = wd.iter().zip(&xr).map(|(a, b)| (a * b).abs()).sum();
                    assert!(
                        (o - d).abs() <= 1e-5 * mag + 1e-6,
                        "{w} rows {rows} blocks {blocks} row {r}: {o} vs {d}"
                    );
                    // A row's result does not depend on where it sits among its neighbours.
                    let mut alone = [0.0f32];
                    ondo_kernels::gemv_q8(w, row, &xq, &mut alone);
                    assert_eq!(
                        alone[0].to_bits(),
                        o.to_bits(),
                        "{w} row {r} alone vs in a group"
                    );
                }
            }
        }
    }
}

#[test]
fn q4_0x8_repacked_products_equal_their_twin_and_the_plain_rows() {
    use ondo_kernels::q4_0x8::{gemm_q4_0x8, gemv_q4_0x8, q4_0x8_reference, repack_q4_0x8};
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    for (rows, blocks, ntok) in [
        (8usize, 1usize, 1usize),
        (16, 3, 5),
        (24, 18, 7),
        (8, 64, 4),
        (40, 5, 13),
    ] {
        let n = blocks * 32;
        let rb = DType::Q4_0.row_bytes(n).unwrap();
        let mut plain = vec![0u8; rows * rb];
        for r in 0..rows {
            let wv: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            quantize_row(DType::Q4_0, &wv, &mut plain[r * rb..(r + 1) * rb]).unwrap();
        }
        let packed = repack_q4_0x8(&plain, rows, n);
        let mut xq = Vec::new();
        for _ in 0..ntok {
            let x: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
            let mut b = Vec::new();
            quantize_q8(&x, &mut b);
            xq.extend(b);
        }
        let stride = rows + 3;
        let mut fast = vec![7.0f32; ntok * stride];
        let mut twin = vec![7.0f32; ntok * stride];
        gemm_q4_0x8(&packed, rows, &xq, ntok, &mut fast, stride);
        q4_0x8_reference(&packed, rows, &xq, ntok, &mut twin, stride);
        for t in 0..ntok {
            let x = &xq[t * blocks..(t + 1) * blocks];
            let mut one = vec![0.0f32; rows];
            gemv_q4_0x8(&packed, x, &mut one);
            for r in 0..rows {
                let (f, w) = (fast[t * stride + r], twin[t * stride + r]);
                assert_eq!(
                    f.to_bits(),
                    w.to_bits(),
                    "rows {rows} blocks {blocks} t {t} r {r}"
                );
                assert_eq!(one[r].to_bits(), f.to_bits(), "gemv vs gemm, t {t} r {r}");
                let d = dot_q8_reference(DType::Q4_0, &plain[r * rb..(r + 1) * rb], x);
                assert!(
                    (f - d).abs() <= 1e-4 * (1.0 + d.abs()),
                    "t {t} r {r}: {f} vs {d}"
                );
            }
            for gap in rows..stride {
                assert_eq!(fast[t * stride + gap], 7.0, "gap written");
            }
        }
    }
}

#[test]
fn rows8_products_equal_dot_q8_bit_for_bit() {
    use ondo_kernels::rows8::{gemm_rows8, repack_rows8, unpack_row, Layout};
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (w, strips) in [
        (DType::Q4_1, true),
        (DType::Q4_1, false),
        (DType::Q8_0, true),
        (DType::Q8_0, false),
    ] {
        for (rows, blocks, ntok) in [
            (8usize, 1usize, 1usize),
            (16, 3, 5),
            (24, 18, 3),
            (8, 48, 4),
            (40, 5, 13),
            // Q4_1's super-groups of 16 groups, the last one partial, and a partial strip
            (136, 18, 3),
            (264, 5, 2),
        ] {
            let n = blocks * 32;
            let rb = w.row_bytes(n).unwrap();
            let mut plain = vec![0u8; rows * rb];
            for r in 0..rows {
                let wv: Vec<f32> = (0..n)
                    .map(|_| rng.f() * if r % 5 == 0 { 50.0 } else { 1.0 })
                    .collect();
                quantize_row(w, &wv, &mut plain[r * rb..(r + 1) * rb]).unwrap();
            }
            let lay = Layout::new(w, rows, n, strips);
            let mut packed = vec![0u8; plain.len()];
            repack_rows8(lay, &plain, &mut packed);
            let mut back = vec![0u8; rb];
            for r in 0..rows {
                unpack_row(lay, &packed, r, &mut back);
                assert_eq!(back, plain[r * rb..(r + 1) * rb], "{w} unpack row {r}");
            }
            let mut xq = Vec::new();
            for t in 0..ntok {
                let mut x: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
                if t == 1 {
                    x[..32].fill(0.0);
                }
                let mut b = Vec::new();
                quantize_q8(&x, &mut b);
                xq.extend(b);
            }
            let stride = rows + 5;
            let mut out = vec![-1.0f32; ntok * stride];
            gemm_rows8(lay, &packed, &xq, ntok, &mut out, stride);
            for t in 0..ntok {
                let x = &xq[t * blocks..(t + 1) * blocks];
                for r in 0..rows {
                    let d = dot_q8(w, &plain[r * rb..(r + 1) * rb], x);
                    let f = out[t * stride + r];
                    assert_eq!(
                        f.to_bits(),
                        d.to_bits(),
                        "{w} rows {rows} blocks {blocks} t {t} r {r}: {f} vs {d}"
                    );
                }
                for gap in rows..stride {
                    assert_eq!(out[t * stride + gap], -1.0);
                }
            }
        }
    }
}

#[test]
fn q4_0_shares_the_eight_row_layout_and_unpacks_back() {
    use ondo_kernels::rows8::{repack_rows8, unpack_row, Layout};
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (rows, n) = (16usize, 96usize);
    let rb = DType::Q4_0.row_bytes(n).unwrap();
    let mut plain = vec![0u8; rows * rb];
    for r in 0..rows {
        let wv: Vec<f32> = (0..n).map(|_| rng.f()).collect();
        quantize_row(DType::Q4_0, &wv, &mut plain[r * rb..(r + 1) * rb]).unwrap();
    }
    let lay = Layout::new(DType::Q4_0, rows, n, false);
    let mut packed = vec![0u8; plain.len()];
    repack_rows8(lay, &plain, &mut packed);
    assert_eq!(packed, ondo_kernels::q4_0x8::repack_q4_0x8(&plain, rows, n));
    let mut back = vec![0u8; rb];
    for r in 0..rows {
        unpack_row(lay, &packed, r, &mut back);
        assert_eq!(back, plain[r * rb..(r + 1) * rb], "row {r}");
    }
}
