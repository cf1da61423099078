//! Scalar reference kernels for the K-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K
//! (256-element super-blocks, `QK_K = 256`).
//!
//! Follows llama.cpp `ggml/src/ggml-quants.c`: `dequantize_row_q2_K` .. `dequantize_row_q6_K`
//! (including `get_scale_min_k4` and the Q3_K `kmask1`/`kmask2` scale unpacking).
//! Layouts (`ggml-common.h`, little-endian, f16 super-block scales):
//! * `block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }`
//! * `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }`
//! * `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }`
//! * `block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }`
//! * `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }`

use super::float::read_f16;

pub(crate) const QK_K: usize = 256;

/// Q2_K: 16 sub-blocks of 16, each with a 4-bit scale (low nibble) and 4-bit min (high nibble).
///
/// ggml walks two halves of 128 elements; in each, four 2-bit planes (shift 0, 2, 4, 6) of the
/// half's 32 `qs` bytes, 16 bytes per sub-block. Sub-block `g` therefore reads plane
/// `(g % 8) / 2` of bytes `32 * (g / 8) + 16 * (g % 2)..+16`.
pub(crate) fn dequant_block_q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = read_f16(b, 80);
    let dmin = read_f16(b, 82);
    for (g, yg) in y[..QK_K].chunks_exact_mut(16).enumerate() {
        let shift = 2 * ((g % 8) / 2);
        let q = &qs[32 * (g / 8) + 16 * (g % 2)..][..16];
        let dl = d * (scales[g] & 0x0f) as f32;
        let ml = dmin * (scales[g] >> 4) as f32;
        for (yv, &qv) in yg.iter_mut().zip(q) {
            *yv = dl * ((qv >> shift) & 3) as f32 - ml;
        }
    }
}

/// Unpacks the 16 6-bit Q3_K scales (stored biased by 32) from their 12-byte packing.
pub(crate) fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let w = |i: usize| u32::from_le_bytes([packed[i], packed[i + 1], packed[i + 2], packed[i + 3]]);
    let (a0, a1, tmp) = (w(0), w(4), w(8));
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, v) in aux.iter().enumerate() {
        for (k, byte) in v.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = *byte as i8 - 32;
        }
    }
    out
}

/// Q3_K: 16 sub-blocks of 16; 2 low bits in `qs` (same plane walk as Q2_K), the 3rd bit in
/// `hmask` (bit `4 * half + plane` of `hmask[16 * (g % 2)..]`; set means "no -4 offset"),
/// and a signed 6-bit scale per sub-block.
pub(crate) fn dequant_block_q3_k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let scales = q3_k_scales(&b[96..108]);
    let d = read_f16(b, 108);
    for (g, yg) in y[..QK_K].chunks_exact_mut(16).enumerate() {
        let plane = (g % 8) / 2;
        let shift = 2 * plane;
        let m = 1u8 << (4 * (g / 8) + plane);
        let q = &qs[32 * (g / 8) + 16 * (g % 2)..][..16];
        let hm = &hmask[16 * (g % 2)..][..16];
        let dl = d * scales[g] as f32;
        for ((yv, &qv), &h) in yg.iter_mut().zip(q).zip(hm) {
            let low = ((qv >> shift) & 3) as i32;
            let off = if h & m != 0 { 0 } else { 4 };
            *yv = dl * (low - off) as f32;
        }
    }
}

/// `get_scale_min_k4`: the 6-bit (scale, min) pair `j` (0..8) of Q4_K/Q5_K.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; `y = d*sc*q - dmin*m`.
pub(crate) fn dequant_block_q4_k(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let dmin = read_f16(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for p in 0..4 {
        let q = &qs[32 * p..32 * p + 32];
        let (sc1, m1) = scale_min_k4(2 * p, scales);
        let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let y = &mut y[64 * p..64 * p + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: as Q4_K plus a 5th bit per element from `qh` (bit `2p` / `2p+1` for pair `p`).
pub(crate) fn dequant_block_q5_k(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 0);
    let dmin = read_f16(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for p in 0..4 {
        let q = &qs[32 * p..32 * p + 32];
        let (u1, u2) = (1u8 << (2 * p), 2u8 << (2 * p));
        let (sc1, m1) = scale_min_k4(2 * p, scales);
        let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let y = &mut y[64 * p..64 * p + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((q[l] & 0x0f) + h1) as f32 - m1;
            y[l + 32] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; 4 low bits in `ql`, 2 high bits in
/// `qh`; `y = d * sc * (q - 32)`.
pub(crate) fn dequant_block_q6_k(b: &[u8], y: &mut [f32]) {
    let d = read_f16(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}
