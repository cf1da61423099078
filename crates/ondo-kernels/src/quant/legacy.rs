//! Scalar reference kernels for the legacy 32-element block quants Q4_0, Q4_1, Q5_0, Q5_1
//! and Q8_0.
//!
//! Follows llama.cpp `ggml/src/ggml-quants.c`: `dequantize_row_q4_0` .. `dequantize_row_q8_0`
//! and the reference quantizers `quantize_row_q4_0_ref` .. `quantize_row_q8_0_ref`.
//! Layouts (`ggml-common.h`, little-endian, f16 scales):
//! * `block_q4_0 { f16 d; u8 qs[16] }`: `y[j] = d * (lo(qs[j]) - 8)`, `y[j+16] = d * (hi(qs[j]) - 8)`
//! * `block_q4_1 { f16 d, m; u8 qs[16] }`: `y = d * q + m`
//! * `block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }`: bit `j` of the u32 `qh` is the 5th bit of
//!   element `j` (elements 0..16 from low nibbles, 16..32 from high nibbles); `y = d * (q - 16)`
//! * `block_q5_1 { f16 d, m; u8 qh[4]; u8 qs[16] }`: `y = d * q + m`
//! * `block_q8_0 { f16 d; i8 qs[32] }`: `y = d * q`

use super::float::{f32_to_f16, read_f16};

pub(crate) const QK: usize = 32;

pub(crate) fn dequant_block_q4_0(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

pub(crate) fn dequant_block_q4_1(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let m = read_f16(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as f32;
        let x1 = (qs[j] >> 4) as f32;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

pub(crate) fn dequant_block_q5_0(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = ((qh >> j) & 1) << 4;
        let h1 = ((qh >> (j + 16)) & 1) << 4;
        let x0 = ((qs[j] & 0x0f) as u32 | h0) as i32 - 16;
        let x1 = ((qs[j] >> 4) as u32 | h1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

pub(crate) fn dequant_block_q5_1(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let m = read_f16(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = ((qh >> j) & 1) << 4;
        let h1 = ((qh >> (j + 16)) & 1) << 4;
        let x0 = (qs[j] & 0x0f) as u32 | h0;
        let x1 = (qs[j] >> 4) as u32 | h1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

pub(crate) fn dequant_block_q8_0(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[2..34]) {
        *yj = (q as i8) as f32 * d;
    }
}

/// The value with the largest magnitude (first one on ties), as in the ggml quantizers.
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    (min, max)
}

fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// `quantize_row_q4_0_ref` for one block of 32 values.
pub(crate) fn quantize_block_q4_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = inv(d);
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for j in 0..16 {
        // `as u8` saturates like C's (int8_t) cast does for these in-range values.
        let x0 = ((x[j] * id + 8.5) as u8).min(15);
        let x1 = ((x[j + 16] * id + 8.5) as u8).min(15);
        b[2 + j] = x0 | (x1 << 4);
    }
}

/// `quantize_row_q4_1_ref` for one block of 32 values.
pub(crate) fn quantize_block_q4_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    b[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
    for j in 0..16 {
        let x0 = (((x[j] - min) * id + 0.5) as u8).min(15);
        let x1 = (((x[j + 16] - min) * id + 0.5) as u8).min(15);
        b[4 + j] = x0 | (x1 << 4);
    }
}

/// `quantize_row_q5_0_ref` for one block of 32 values.
pub(crate) fn quantize_block_q5_0(x: &[f32], b: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = inv(d);
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = ((x[j] * id + 16.5) as u8).min(31);
        let x1 = ((x[j + 16] * id + 16.5) as u8).min(31);
        b[6 + j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
        qh |= ((x0 as u32 & 0x10) >> 4) << j;
        qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
    }
    b[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// `quantize_row_q5_1_ref` for one block of 32 values.
pub(crate) fn quantize_block_q5_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    b[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = (((x[j] - min) * id + 0.5) as u8).min(31);
        let x1 = (((x[j + 16] - min) * id + 0.5) as u8).min(31);
        b[8 + j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
        qh |= ((x0 as u32 & 0x10) >> 4) << j;
        qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
    }
    b[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// `quantize_row_q8_0_ref` for one block of 32 values (`roundf`: halves away from zero).
pub(crate) fn quantize_block_q8_0(x: &[f32], b: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inv(d);
    b[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for (q, &v) in b[2..34].iter_mut().zip(x) {
        *q = ((v * id).round() as i8) as u8;
    }
}
