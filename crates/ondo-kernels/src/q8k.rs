//! Integer dot products of the K-quants (Q2_K..Q6_K) with 8-bit quantized activations, as
//! llama.cpp's CPU backend computes them: `x` is quantized once per product into 256-element
//! super-blocks (ggml's `block_q8_K`: an f32 scale `d`, 256 `i8`s and the sums of each group
//! of 16 quants, `bsums`), then each weight super-block is dotted in integers and scaled once:
//!
//! - Q2_K: `d_x (d Σ_g sc_g Σ q q_x - dmin Σ_g m_g bsums_g)`, 16 groups of 16, 4-bit sc/m
//! - Q3_K: `d_x d Σ_g sc_g Σ (q - 4·!hbit) q_x`, 16 groups of 16, signed 6-bit scales
//! - Q4_K: `d_x (d Σ_j sc_j Σ q q_x - dmin Σ_j m_j (bsums_2j + bsums_2j+1))`, 8 groups of 32
//! - Q5_K: as Q4_K with `q + 16·hbit`
//! - Q6_K: `d_x d Σ_g sc_g Σ (q - 32) q_x`, 16 groups of 16, signed 8-bit scales
//!
//! (ggml-quants.c `quantize_row_q8_K_ref`; ggml-cpu `ggml_vec_dot_q2_K_q8_K` ..
//! `ggml_vec_dot_q6_K_q8_K`.) The quantized values are exactly those
//! [`crate::round_activations`] produces for K-quant weights, so this path equals "round,
//! dequantize, dot" up to float summation order. [`dot_q8k_reference`] is the scalar twin,
//! written as "unpack the super-block to integers, then dot"; [`dot_q8k`] and
//! [`dot_q8k_x4`] pick the AVX2 kernels of `q8k_avx2` at run time.

use crate::quant::{f16_to_f32, q3_k_scales, scale_min_k4};
use crate::DType;

/// Elements per super-block (`QK_K`).
const QK_K: usize = 256;

/// One quantized super-block of 256 activations (ggml's `block_q8_K`, same layout).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    /// Scale: the value of quant 1 (`max / -127`, with `max` the signed extreme of the block).
    pub d: f32,
    pub qs: [i8; QK_K],
    /// `bsums[g]` = sum of `qs[16 g..16 g + 16]`.
    pub bsums: [i16; QK_K / 16],
}

impl Default for BlockQ8K {
    fn default() -> Self {
        BlockQ8K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; QK_K / 16],
        }
    }
}

/// True if weights of type `w` have an integer path here (all five K-quants).
pub fn has_q8k_path(w: DType) -> bool {
    matches!(
        w,
        DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K
    )
}

/// ggml's `nearest_int`: round half to even by adding 1.5 * 2^23 (valid for |v| < 2^22).
#[inline]
fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes `x` (a multiple of 256 long) into `out` (cleared first; no reallocation when its
/// capacity suffices), bit for bit as `quantize_row_q8_K_ref`. An all-zero super-block gets
/// `d = 0` and zero quants and sums.
pub fn quantize_q8k(x: &[f32], out: &mut Vec<BlockQ8K>) {
    assert_eq!(
        x.len() % QK_K,
        0,
        "activation length must be a multiple of 256"
    );
    out.clear();
    out.resize(x.len() / QK_K, BlockQ8K::default());
    for (y, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            continue; // already zeroed
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, g) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        y.d = 1.0 / iscale;
    }
}

#[track_caller]
fn check_lengths(w: DType, row: &[u8], xq: &[BlockQ8K]) {
    assert!(has_q8k_path(w), "no Q8_K integer path for {w}");
    assert_eq!(
        row.len(),
        xq.len() * w.block_bytes(),
        "row and activations differ in length"
    );
}

/// Plain scalar dot of one weight row with quantized activations.
#[track_caller]
pub fn dot_q8k_reference(w: DType, row: &[u8], xq: &[BlockQ8K]) -> f32 {
    check_lengths(w, row, xq);
    let block: fn(&[u8], &BlockQ8K) -> f32 = match w {
        DType::Q2_K => block_q2_k,
        DType::Q3_K => block_q3_k,
        DType::Q4_K => block_q4_k,
        DType::Q5_K => block_q5_k,
        DType::Q6_K => block_q6_k,
        _ => unreachable!("checked by check_lengths"),
    };
    row.chunks_exact(w.block_bytes())
        .zip(xq)
        .map(|(b, x)| block(b, x))
        .sum()
}

/// The fast dot (AVX2 where the CPU has it).
#[track_caller]
pub fn dot_q8k(w: DType, row: &[u8], xq: &[BlockQ8K]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            check_lengths(w, row, xq);
            // SAFETY: AVX2/FMA/F16C were detected; `w` has a kernel and the kernel reads
            // super-block by super-block within `row` and `xq`, whose lengths match.
            return unsafe { super::q8k_avx2::dot(w, row, xq) };
        }
    }
    dot_q8k_reference(w, row, xq)
}

/// `out[r] = dot_q8k(w, row r, xq)` for the `out.len()` consecutive rows in `rows`, with one
/// dispatch for all of them (the decode product).
#[track_caller]
pub fn gemv_q8k(w: DType, rows: &[u8], xq: &[BlockQ8K], out: &mut [f32]) {
    let row_len = xq.len() * w.block_bytes();
    assert_eq!(
        rows.len(),
        out.len() * row_len,
        "rows and activations differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() && !out.is_empty() {
            check_lengths(w, &rows[..row_len], xq);
            // SAFETY: AVX2/FMA/F16C were detected; `w` has a kernel (checked) and every row is
            // `row_len` bytes matching `xq` (checked above).
            unsafe { super::q8k_avx2::gemv(w, rows, row_len, xq, out) };
            return;
        }
    }
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(row_len.max(1))) {
        *o = dot_q8k_reference(w, row, xq);
    }
}

/// Dots of one weight row with four activation rows at once (each weight super-block is
/// unpacked once); bit for bit equal to four [`dot_q8k`] calls.
#[track_caller]
pub fn dot_q8k_x4(w: DType, row: &[u8], xq: [&[BlockQ8K]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::avx2_available() {
            for x in &xq {
                check_lengths(w, row, x);
            }
            // SAFETY: AVX2/FMA/F16C were detected; all four lengths were just checked.
            return unsafe { super::q8k_avx2::dot4(w, row, xq) };
        }
    }
    xq.map(|x| dot_q8k_reference(w, row, x))
}

fn f16(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// `Σ_g scale(g) Σ_{i in group g} q(i) x.qs[i]` over groups of `len` elements.
fn scaled_isum(
    x: &BlockQ8K,
    len: usize,
    scale: impl Fn(usize) -> i32,
    q: impl Fn(usize) -> i32,
) -> i32 {
    (0..QK_K / len)
        .map(|g| {
            let s: i32 = (g * len..(g + 1) * len)
                .map(|i| q(i) * x.qs[i] as i32)
                .sum();
            scale(g) * s
        })
        .sum()
}

/// Q2_K: element `i = 128 h + 32 k + l` is bits `2k..2k+2` of `qs[32 h + l]`, group `i / 16`.
fn block_q2_k(b: &[u8], x: &BlockQ8K) -> f32 {
    let (sc, qs) = (&b[0..16], &b[16..80]);
    let q = |i: usize| ((qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3) as i32;
    let isum = scaled_isum(x, 16, |g| (sc[g] & 0x0f) as i32, q);
    let msum: i32 = (0..16)
        .map(|g| (sc[g] >> 4) as i32 * x.bsums[g] as i32)
        .sum();
    x.d * f16(b, 80) * isum as f32 - x.d * f16(b, 82) * msum as f32
}

/// Q3_K: as Q2_K for the low 2 bits, minus 4 unless bit `4 h + k` of `hmask[l]` is set.
fn block_q3_k(b: &[u8], x: &BlockQ8K) -> f32 {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let sc = q3_k_scales(&b[96..108]);
    let q = |i: usize| {
        let (h, k, l) = (i / 128, (i / 32) % 4, i % 32);
        let low = ((qs[32 * h + l] >> (2 * k)) & 3) as i32;
        low - if hmask[l] & (1 << (4 * h + k)) != 0 {
            0
        } else {
            4
        }
    };
    let isum = scaled_isum(x, 16, |g| sc[g] as i32, q);
    x.d * f16(b, 108) * isum as f32
}

/// Q4_K: element `i = 64 p + 32 s + l` is nibble `s` of `qs[32 p + l]`, group `i / 32`.
fn block_q4_k(b: &[u8], x: &BlockQ8K) -> f32 {
    let (scales, qs) = (&b[4..16], &b[16..144]);
    let q = |i: usize| ((qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0x0f) as i32;
    let isum = scaled_isum(x, 32, |j| scale_min_k4(j, scales).0 as i32, q);
    let msum: i32 = (0..8)
        .map(|j| {
            let m = scale_min_k4(j, scales).1 as i32;
            m * (x.bsums[2 * j] as i32 + x.bsums[2 * j + 1] as i32)
        })
        .sum();
    x.d * f16(b, 0) * isum as f32 - x.d * f16(b, 2) * msum as f32
}

/// Q5_K: as Q4_K plus 16 if bit `i / 32` of `qh[i % 32]` is set.
fn block_q5_k(b: &[u8], x: &BlockQ8K) -> f32 {
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    let q = |i: usize| {
        let low = ((qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0x0f) as i32;
        low + 16 * ((qh[i % 32] >> (i / 32)) & 1) as i32
    };
    let isum = scaled_isum(x, 32, |j| scale_min_k4(j, scales).0 as i32, q);
    let msum: i32 = (0..8)
        .map(|j| {
            let m = scale_min_k4(j, scales).1 as i32;
            m * (x.bsums[2 * j] as i32 + x.bsums[2 * j + 1] as i32)
        })
        .sum();
    x.d * f16(b, 0) * isum as f32 - x.d * f16(b, 2) * msum as f32
}

/// Q6_K: element `i = 128 h + 32 k + l` has low nibble `k / 2` of `ql[64 h + 32 (k % 2) + l]`
/// and high bits `2k..2k+2` of `qh[32 h + l]`, minus 32; group `i / 16`.
fn block_q6_k(b: &[u8], x: &BlockQ8K) -> f32 {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let q = |i: usize| {
        let (h, k, l) = (i / 128, (i / 32) % 4, i % 32);
        let low = (ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
        let high = (qh[32 * h + l] >> (2 * k)) & 3;
        (low | (high << 4)) as i32 - 32
    };
    let isum = scaled_isum(x, 16, |g| sc[g] as i8 as i32, q);
    x.d * f16(b, 208) * isum as f32
}
