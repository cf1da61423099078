//! Integer dot products on 8-bit quantized activations, as llama.cpp's CPU backend computes
//! them: `x` is quantized once per product into 32-element blocks (ggml's `block_q8_0` /
//! `block_q8_1`: an f16 scale `d`, 32 `i8`s, and for Q8_1 the f16 block sum `s = d * sum(q)`),
//! then each weight row is dotted block by block in integers:
//!
//! - Q4_0 × Q8_0: `d_w d_x Σ (q_w - 8) q_x`
//! - Q4_1 × Q8_1: `d_w d_x Σ q_w q_x + m_w s_x`
//! - Q8_0 × Q8_0: `d_w d_x Σ q_w q_x`
//!
//! (ggml-quants.c `quantize_row_q8_0/1`, ggml-cpu `ggml_vec_dot_q4_0_q8_0` etc.) The values
//! quantized are exactly those [`crate::round_activations`] produces, so this path equals
//! "round, dequantize, dot in f32" up to float summation order and the f16 rounding of `s`.
//! [`dot_q8_reference`] is the scalar twin; [`dot_q8`] picks AVX2 at run time.

use crate::quant::{f16_to_f32, f32_to_f16};
use crate::DType;

/// One quantized block of 32 activations. Scales are kept as the f32 values of their f16s.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    /// `d * sum(qs)` rounded to f16 (used by Q4_1 weights only).
    pub s: f32,
    pub qs: [i8; 32],
}

/// True if weights of type `w` have an integer path here.
pub fn has_q8_path(w: DType) -> bool {
    matches!(w, DType::Q4_0 | DType::Q4_1 | DType::Q8_0)
}

/// Quantizes `x` (a multiple of 32 long) into `out` (cleared first).
pub fn quantize_q8(x: &[f32], out: &mut Vec<BlockQ8>) {
    assert_eq!(
        x.len() % 32,
        0,
        "activation length must be a multiple of 32"
    );
    out.clear();
    out.extend(x.chunks_exact(32).map(|xb| {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; 32];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(xb) {
            // Round half to even without a libm call: adding 1.5 * 2^23 rounds to an integer.
            *q = ((v * id + 12_582_912.0) - 12_582_912.0) as i8;
            sum += *q as i32;
        }
        BlockQ8 {
            d: f16_to_f32(f32_to_f16(d)),
            s: f16_to_f32(f32_to_f16(sum as f32 * d)),
            qs,
        }
    }));
}

/// Plain scalar dot of one weight row with quantized activations.
pub fn dot_q8_reference(w: DType, row: &[u8], xq: &[BlockQ8]) -> f32 {
    let bb = w.block_bytes();
    assert_eq!(
        row.len(),
        xq.len() * bb,
        "row and activations differ in length"
    );
    let f16 = |b: &[u8], at: usize| f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]));
    let mut sum = 0.0f32;
    for (b, x) in row.chunks_exact(bb).zip(xq) {
        let block = match w {
            DType::Q4_0 => {
                let mut isum = 0i32;
                for j in 0..16 {
                    let (lo, hi) = ((b[2 + j] & 0x0F) as i32 - 8, (b[2 + j] >> 4) as i32 - 8);
                    isum += lo * x.qs[j] as i32 + hi * x.qs[j + 16] as i32;
                }
                f16(b, 0) * x.d * isum as f32
            }
            DType::Q4_1 => {
                let mut isum = 0i32;
                for j in 0..16 {
                    let (lo, hi) = ((b[4 + j] & 0x0F) as i32, (b[4 + j] >> 4) as i32);
                    isum += lo * x.qs[j] as i32 + hi * x.qs[j + 16] as i32;
                }
                f16(b, 0) * x.d * isum as f32 + f16(b, 2) * x.s
            }
            DType::Q8_0 => {
                let isum: i32 = (0..32)
                    .map(|j| b[2 + j] as i8 as i32 * x.qs[j] as i32)
                    .sum();
                f16(b, 0) * x.d * isum as f32
            }
            other => panic!("no Q8 integer path for {other}"),
        };
        sum += block;
    }
    sum
}

/// The fast dot (AVX2 where the CPU has it).
pub fn dot_q8(w: DType, row: &[u8], xq: &[BlockQ8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            assert_eq!(
                row.len(),
                xq.len() * w.block_bytes(),
                "row and activations differ in length"
            );
            // SAFETY: AVX2/FMA/F16C were detected; the kernel reads block by block within
            // `row` and `xq`, whose lengths were just checked to match.
            return unsafe { super::q8_avx2::dot(w, row, xq) };
        }
    }
    dot_q8_reference(w, row, xq)
}

/// Dots of one weight row with four activation rows at once (the row is unpacked once per
/// block); equal to four [`dot_q8`] calls.
pub fn dot_q8_x4(w: DType, row: &[u8], xq: [&[BlockQ8]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            for x in &xq {
                assert_eq!(
                    row.len(),
                    x.len() * w.block_bytes(),
                    "row and activations differ in length"
                );
            }
            // SAFETY: AVX2/FMA/F16C were detected; all four lengths were just checked.
            return unsafe { super::q8_avx2::dot4(w, row, xq) };
        }
    }
    xq.map(|x| dot_q8_reference(w, row, x))
}
