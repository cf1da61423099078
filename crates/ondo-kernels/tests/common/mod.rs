//! Shared test helpers: a tiny deterministic PRNG and random-but-valid ggml rows.
#![allow(dead_code)]

use ondo_kernels::{f32_to_f16, quantize_row, DType};

/// xorshift64* (deterministic, no dependencies).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Byte offsets of the f16 scale fields inside one block of `dtype` (ggml-common.h).
pub fn f16_field_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q2_K => &[80, 82],
        DType::Q3_K => &[108],
        DType::Q6_K => &[208],
        DType::F32 | DType::F16 | DType::BF16 => &[],
    }
}

/// A random row of `n` elements: random bytes for quantized types (with finite f16 scales
/// in ±0.1), random values in ±2 for float types.
pub fn random_row(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    let bytes = dtype.row_bytes(n).expect("block-aligned");
    if !dtype.is_quantized() {
        let vals = rng.vec(n, -2.0, 2.0);
        let mut row = vec![0u8; bytes];
        quantize_row(dtype, &vals, &mut row).unwrap();
        return row;
    }
    let mut row = rng.bytes(bytes);
    for block in row.chunks_exact_mut(dtype.block_bytes()) {
        for &off in f16_field_offsets(dtype) {
            let v = f32_to_f16(rng.uniform(-0.1, 0.1));
            block[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    row
}

/// Sum of |a[i] * b[i]| in f64: the natural error scale for a dot product.
pub fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 * *y as f64).abs())
        .sum()
}

/// Exact dot in f64.
pub fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}
