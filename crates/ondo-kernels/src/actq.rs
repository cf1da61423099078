//! Activation rounding as llama.cpp's CPU backend does it before a matrix product.
//!
//! ggml converts the activations `x` to the weight type's `vec_dot_type` before dotting:
//! Q8_0 for Q4_0/Q5_0/Q8_0 weights, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, f16 for F16,
//! bf16 for BF16, nothing for F32. `round_activations` returns `x` as those quantized values
//! look once dequantized, so a dot with the dequantized weight gives llama.cpp's product up to
//! the order of float additions (Q8_1's stored block sum `s` is not used here: it only
//! rounds `d * sum(q)` to f16). References: ggml-quants.c `quantize_row_q8_0_ref`,
//! `quantize_row_q8_1_ref`, `quantize_row_q8_K_ref`; ggml-cpu type_traits `vec_dot_type`.

use crate::quant::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use crate::DType;

/// How `x` is rounded before a dot with a weight of type `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActRounding {
    None,
    F16,
    BF16,
    /// Blocks of 32, one f16 scale each (Q8_0 and Q8_1 round values identically).
    Q8Blocks32,
    /// Blocks of 256, an f32 scale from the signed extreme value (Q8_K).
    Q8K,
}

pub fn act_rounding(w: DType) -> ActRounding {
    match w {
        DType::F32 => ActRounding::None,
        DType::F16 => ActRounding::F16,
        DType::BF16 => ActRounding::BF16,
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => {
            ActRounding::Q8Blocks32
        }
        DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K => ActRounding::Q8K,
    }
}

/// Writes into `out` the values `x` takes after llama.cpp's conversion for weights of type `w`.
/// `x.len()` must be a multiple of the block size of the rounding (32 or 256) for quantized `w`.
pub fn round_activations(w: DType, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    match act_rounding(w) {
        ActRounding::None => out.copy_from_slice(x),
        ActRounding::F16 => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = f16_to_f32(f32_to_f16(v));
            }
        }
        ActRounding::BF16 => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = bf16_to_f32(f32_to_bf16(v));
            }
        }
        ActRounding::Q8Blocks32 => {
            assert_eq!(
                x.len() % 32,
                0,
                "activation length must be a multiple of 32"
            );
            for (ob, xb) in out.chunks_exact_mut(32).zip(x.chunks_exact(32)) {
                let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                let d16 = f16_to_f32(f32_to_f16(d));
                for (o, &v) in ob.iter_mut().zip(xb) {
                    *o = (v * id).round_ties_even() * d16;
                }
            }
        }
        ActRounding::Q8K => {
            assert_eq!(
                x.len() % 256,
                0,
                "activation length must be a multiple of 256"
            );
            for (ob, xb) in out.chunks_exact_mut(256).zip(x.chunks_exact(256)) {
                let (mut max, mut amax) = (0.0f32, 0.0f32);
                for &v in xb {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                if amax == 0.0 {
                    ob.fill(0.0);
                    continue;
                }
                let iscale = -127.0 / max;
                let d = 1.0 / iscale;
                for (o, &v) in ob.iter_mut().zip(xb) {
                    // ggml's nearest_int rounds half to even.
                    let q = ((iscale * v).round_ties_even() as i32).min(127);
                    *o = q as f32 * d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_blocks_match_quantize_then_dequantize_q8_0() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173)
            .collect();
        let mut q = vec![0u8; DType::Q8_0.row_bytes(96).unwrap()];
        crate::quantize_row(DType::Q8_0, &x, &mut q).unwrap();
        let mut want = vec![0.0; 96];
        crate::dequantize_row(DType::Q8_0, &q, &mut want);
        let mut got = vec![0.0; 96];
        round_activations(DType::Q4_1, &x, &mut got);
        assert_eq!(got, want);
    }

    #[test]
    fn q8k_keeps_the_extreme_and_bounds_the_error() {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.01)
            .collect();
        let mut got = vec![0.0; 256];
        round_activations(DType::Q4_K, &x, &mut got);
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in x.iter().zip(&got) {
            assert!((a - b).abs() <= amax / 127.0 * 0.5 + 1e-6, "{a} vs {b}");
        }
        let zeros = [0.0f32; 256];
        round_activations(DType::Q6_K, &zeros, &mut got);
        assert!(got.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn f32_weights_leave_activations_alone() {
        let x = [0.1f32, -3.3, 1e-9];
        let mut got = [0.0; 3];
        round_activations(DType::F32, &x, &mut got);
        assert_eq!(got, x);
        round_activations(DType::F16, &x, &mut got);
        assert_eq!(got[1], f16_to_f32(f32_to_f16(-3.3)));
    }
}
