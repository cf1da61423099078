//! A throughput kernel for Q4_1 and Q8_0 weights in the rows8 layout (`crate::rows8`): per
//! 32-element block, the integer products of a row are summed *as integers* (i16 then i32)
//! and scaled once, `acc += d_w d_x · Σ q_w q_x (+ m_w s_x for Q4_1)`, instead of ggml's eight
//! lane accumulators with one f32 rounding each. About half the instructions per block; in a
//! batch the unpacked weights of a block are shared by a tile of up to eight tokens
//! (`crate::rows8_sums_avx2`). A caller that lays a Q4_1 decoding batch out broadcast
//! ([`crate::q8_broadcast`], once for many row chunks) lets the kernel multiply the
//! activations from memory ([`gemm_rows8_sums_prepared_raw`]).
//!
//! Not ggml's rounding order, so results differ from `dot_q8` in the last bits (they are, if
//! anything, more accurate: fewer roundings). Each token's result is computed by the same
//! instruction sequence whatever the other tokens are, so a product with any number of tokens
//! gives every token bit for bit what it gets alone: a server can use this kernel for every
//! batch size and keep its answers independent of the batch.
//!
//! [`gemm_rows8_sums_reference`] is the scalar twin, bit-identical (the integer sums are exact
//! and the f32 operations are the same, in the same order).

use crate::q8::BlockQ8;
use crate::q8_broadcast::BroadcastRows;
use std::ops::Range;

use crate::rows8::{check_out, check_range, scatter, unpack_row, Layout};
#[cfg(target_arch = "x86_64")]
use crate::rows8_sums_avx2 as avx2;
#[cfg(target_arch = "x86_64")]
use crate::rows8_sums_avx512 as avx512;
use crate::DType;

/// The SIMD passes' const-generic names for the weight types.
#[cfg(target_arch = "x86_64")]
pub(crate) const Q4_1: u8 = 1;
#[cfg(target_arch = "x86_64")]
pub(crate) const Q8_0: u8 = 2;

/// Bytes of one group block (8 rows, one 32-element block) of weight type `k`.
#[cfg(target_arch = "x86_64")]
pub(crate) const fn gbb(k: u8) -> usize {
    if k == Q4_1 {
        160
    } else {
        272
    }
}

/// The most tokens worth laying out broadcast for one product: 128 with AVX-512 VNNI (a
/// prompt's tiles then go through its kernels, faster than the AVX2 direct pass), else 0 (the
/// caller's own bound applies).
pub fn broadcast_tokens_max() -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() {
        return 128;
    }
    0
}

/// True if the batched kernel for weights `w` reads activations laid out broadcast, so that
/// [`gemm_rows8_sums_prepared_raw`] is worth a caller's layout: with AVX-512 VNNI Q8_0 (Q4_1
/// then reads the activations straight from `xq`), else Q4_1 (the AVX2 Q8_0 pass broadcasts
/// in its loop, which measured faster).
pub fn reads_broadcast(w: DType) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() {
        return w == DType::Q8_0;
    }
    w == DType::Q4_1
}

/// `out[t * out_stride + r]` = row r · token t for every row of the matrix `packed` (laid out
/// as `lay`) and `ntok` tokens (`xq`: ntok rows of blocks), with per-block integer sums.
pub fn gemm_rows8_sums(
    lay: Layout,
    packed: &[u8],
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    check_out(out, lay.rows(), ntok, out_stride);
    // SAFETY: `out` holds every element written (checked above) and is borrowed mutably.
    let o = out.as_mut_ptr();
    unsafe { gemm_rows8_sums_raw(lay, packed, 0..lay.rows(), xq, ntok, o, out_stride) }
}

/// [`gemm_rows8_sums`] for the rows `rows` (multiples of 8) of the matrix, through a raw output
/// pointer (see [`crate::rows8::gemm_rows8_raw`]).
///
/// # Safety
/// `out.add(t * out_stride + r - rows.start)` for `t < ntok`, `r` in `rows` must be valid for
/// writes, and no one else may access those elements during the call.
pub unsafe fn gemm_rows8_sums_raw(
    lay: Layout,
    packed: &[u8],
    rows: Range<usize>,
    xq: &[BlockQ8],
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    if !check_range(lay, packed, &rows, xq, ntok) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if ntok > 1 && lay.dtype() == DType::Q4_1 && crate::quant::avx512_vnni_available() {
        let groups = rows.start / 8..rows.end / 8;
        // SAFETY: AVX-512 VNNI and AVX2/FMA/F16C detected; packed, the range and xq checked
        // above, out by the caller.
        unsafe {
            avx512::gemm_xq(
                packed.as_ptr(),
                lay,
                groups,
                xq.as_ptr(),
                ntok,
                out,
                out_stride,
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        let groups = rows.start / 8..rows.end / 8;
        // SAFETY: AVX2/FMA/F16C detected; packed, the range and xq checked above, out by the
        // caller.
        unsafe { avx2::gemm(packed.as_ptr(), lay, groups, xq, ntok, out, out_stride) };
        return;
    }
    let mut tile = vec![0.0f32; ntok * rows.len()];
    reference_rows(lay, packed, rows.clone(), xq, ntok, &mut tile, rows.len());
    scatter(&tile, rows.len(), out, out_stride);
}

/// [`gemm_rows8_sums_raw`] for activations `xq` that the caller also laid out in broadcast
/// form (`xb`, filled from `xq`, see [`crate::q8_broadcast`]): a batch shared by many row
/// chunks lays them out once. The same values, bit for bit.
///
/// # Safety
/// As [`gemm_rows8_sums_raw`] with `ntok = xb.ntok()`; `xb` is a valid handle whose rows
/// were filled from `xq` and are not written during the call.
pub unsafe fn gemm_rows8_sums_prepared_raw(
    lay: Layout,
    packed: &[u8],
    rows: Range<usize>,
    xq: &[BlockQ8],
    xb: BroadcastRows,
    out: *mut f32,
    out_stride: usize,
) {
    let ntok = xb.ntok();
    if !check_range(lay, packed, &rows, xq, ntok) {
        return;
    }
    assert_eq!(
        xb.blocks(),
        lay.blocks(),
        "broadcast activations of another width"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() && lay.dtype() == DType::Q4_1 {
        // SAFETY: as below; Q4_1 reads xq directly, whatever the broadcast layout holds.
        unsafe { gemm_rows8_sums_raw(lay, packed, rows, xq, ntok, out, out_stride) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx512_vnni_available() {
        let groups = rows.start / 8..rows.end / 8;
        // SAFETY: AVX-512 VNNI and AVX2/FMA/F16C detected; packed and the range checked
        // above, xb's shape asserted, out by the caller.
        unsafe { avx512::gemm_prepared(packed.as_ptr(), lay, groups, xb, out, out_stride) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        let groups = rows.start / 8..rows.end / 8;
        // SAFETY: AVX2/FMA/F16C detected; packed and the range checked above, xb's shape
        // asserted, out by the caller.
        unsafe { avx2::gemm_prepared(packed.as_ptr(), lay, groups, xq, xb, out, out_stride) };
        return;
    }
    // SAFETY: as this function's.
    unsafe { gemm_rows8_sums_raw(lay, packed, rows, xq, ntok, out, out_stride) }
}

/// The scalar twin of [`gemm_rows8_sums`]: the same values, bit for bit.
pub fn gemm_rows8_sums_reference(
    lay: Layout,
    packed: &[u8],
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    check_out(out, lay.rows(), ntok, out_stride);
    if check_range(lay, packed, &(0..lay.rows()), xq, ntok) {
        reference_rows(lay, packed, 0..lay.rows(), xq, ntok, out, out_stride);
    }
}

/// The scalar products of rows `rows` (checked) into `out[t * out_stride + r - rows.start]`.
fn reference_rows(
    lay: Layout,
    packed: &[u8],
    rows: Range<usize>,
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let (w, blocks) = (lay.dtype(), lay.blocks());
    let bb = w.block_bytes();
    let mut row = vec![0u8; blocks * bb];
    for r in rows.clone() {
        unpack_row(lay, packed, r, &mut row);
        for t in 0..ntok {
            let mut acc = 0.0f32;
            for (j, b) in row.chunks_exact(bb).enumerate() {
                let x = &xq[t * blocks + j];
                let dw = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                let sum: i32 = if w == DType::Q4_1 {
                    let qs = &b[4..20];
                    (0..16)
                        .map(|i| {
                            i32::from(qs[i] & 0x0F) * i32::from(x.qs[i])
                                + i32::from(qs[i] >> 4) * i32::from(x.qs[16 + i])
                        })
                        .sum()
                } else {
                    let qs = &b[2..34];
                    (0..32)
                        .map(|i| i32::from(qs[i] as i8) * i32::from(x.qs[i]))
                        .sum()
                };
                acc = (dw * x.d).mul_add(sum as f32, acc);
                if w == DType::Q4_1 {
                    let mw = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
                    acc = mw.mul_add(x.s, acc);
                }
            }
            out[t * out_stride + r - rows.start] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows8::repack_rows8;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }

    /// The whole matrix by every prepared kernel this CPU has, whichever the dispatch picks.
    #[cfg(target_arch = "x86_64")]
    fn each_prepared_kernel(
        lay: Layout,
        packed: &[u8],
        xb: BroadcastRows,
        xq: &[BlockQ8],
    ) -> Vec<(&'static str, Vec<f32>)> {
        let (rows, ntok) = (lay.rows(), xb.ntok());
        let mut got = Vec::new();
        let groups = 0..rows / 8;
        if crate::quant::avx2_available() {
            let mut out = vec![f32::NAN; ntok * rows];
            // SAFETY: AVX2 detected; the matrix, xb (filled from xq) and out hold every
            // element the pass reads or writes.
            unsafe {
                let p = packed.as_ptr();
                let g = groups.clone();
                avx2::gemm_prepared(p, lay, g, xq, xb, out.as_mut_ptr(), rows);
            }
            got.push(("avx2", out));
        }
        if crate::quant::avx512_vnni_available() {
            let mut out = vec![f32::NAN; ntok * rows];
            let (p, o) = (packed.as_ptr(), out.as_mut_ptr());
            // SAFETY: AVX-512 VNNI detected; as above (xq holds ntok rows of the width).
            unsafe {
                if lay.dtype() == DType::Q4_1 {
                    avx512::gemm_xq(p, lay, groups, xq.as_ptr(), ntok, o, rows)
                } else {
                    avx512::gemm_prepared(p, lay, groups, xb, o, rows)
                }
            };
            got.push(("avx512", out));
        }
        got
    }

    #[test]
    fn a_matrix_without_columns_gives_zero_products() {
        for (w, strips) in [
            (DType::Q4_1, true),
            (DType::Q8_0, true),
            (DType::Q8_0, false),
        ] {
            let lay = Layout::new(w, 24, 0, strips);
            for ntok in [1, 3] {
                let mut fast = vec![f32::NAN; ntok * 24];
                let mut slow = vec![f32::NAN; ntok * 24];
                gemm_rows8_sums(lay, &[], &[], ntok, &mut fast, 24);
                gemm_rows8_sums_reference(lay, &[], &[], ntok, &mut slow, 24);
                assert!(fast.iter().chain(&slow).all(|&v| v == 0.0), "{w} x{ntok}");
            }
        }
    }

    #[test]
    fn simd_equals_the_scalar_twin_and_each_token_is_batch_independent() {
        for (w, strips) in [
            (DType::Q4_1, true),
            (DType::Q4_1, false),
            (DType::Q8_0, true),
            (DType::Q8_0, false),
        ] {
            for (rows, cols, ntok) in [
                (8, 32, 1),
                (16, 96, 5),
                (24, 576, 9),
                (8, 64, 4),
                (136, 160, 2),
                (264, 64, 17),
                (8, 1536, 8),
            ] {
                let mut seed = (rows * 31 + cols + ntok) as u64;
                let vals: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed) * 3.0).collect();
                let rb = w.row_bytes(cols).unwrap();
                let mut plain = vec![0u8; rows * rb];
                for (s, d) in vals.chunks_exact(cols).zip(plain.chunks_exact_mut(rb)) {
                    crate::quantize_row(w, s, d).unwrap();
                }
                if w == DType::Q8_0 {
                    // -128, which no quantizer writes but a file may hold
                    for b in plain.chunks_exact_mut(34) {
                        b[2 + (b[3] as usize % 32)] = 0x80;
                    }
                }
                let lay = Layout::new(w, rows, cols, strips);
                let mut packed = vec![0u8; plain.len()];
                repack_rows8(lay, &plain, &mut packed);
                let x: Vec<f32> = (0..ntok * cols).map(|_| lcg(&mut seed) * 10.0).collect();
                let mut xq = Vec::new();
                crate::quantize_q8(&x, &mut xq);
                let mut fast = vec![0.0f32; ntok * rows];
                let mut slow = vec![0.0f32; ntok * rows];
                gemm_rows8_sums(lay, &packed, &xq, ntok, &mut fast, rows);
                gemm_rows8_sums_reference(lay, &packed, &xq, ntok, &mut slow, rows);
                assert_eq!(fast, slow, "{w} {rows}x{cols} x{ntok}");
                // laid out once for many calls: the same values
                let mut xb = crate::q8_broadcast::Q8Broadcast::default();
                let xbr = xb.fill(&xq, ntok, cols / 32);
                let mut prepared = vec![f32::NAN; ntok * rows];
                // SAFETY: `prepared` holds ntok rows of `rows` and is borrowed mutably; `xbr`
                // was just filled from `xq`.
                unsafe {
                    let o = prepared.as_mut_ptr();
                    gemm_rows8_sums_prepared_raw(lay, &packed, 0..rows, &xq, xbr, o, rows);
                }
                assert_eq!(prepared, slow, "{w} {rows}x{cols} x{ntok} prepared");
                #[cfg(target_arch = "x86_64")]
                for (kernel, got) in each_prepared_kernel(lay, &packed, xbr, &xq) {
                    assert_eq!(got, slow, "{w} {rows}x{cols} x{ntok} {kernel}");
                }
                // any range of whole groups, across super-groups too, gives its rows' values
                for range in [8..rows, 0..rows - 8, 120..136, 128..rows, 8..16] {
                    if range.end > rows || range.is_empty() {
                        continue;
                    }
                    let len = range.len();
                    let mut part = vec![f32::NAN; ntok * len];
                    let mut part_prepared = vec![f32::NAN; ntok * len];
                    // SAFETY: both buffers hold ntok rows of `len` and are borrowed mutably.
                    unsafe {
                        let (o, op) = (part.as_mut_ptr(), part_prepared.as_mut_ptr());
                        gemm_rows8_sums_raw(lay, &packed, range.clone(), &xq, ntok, o, len);
                        let r = range.clone();
                        gemm_rows8_sums_prepared_raw(lay, &packed, r, &xq, xbr, op, len);
                    }
                    for t in 0..ntok {
                        let want = &slow[t * rows + range.start..t * rows + range.end];
                        assert_eq!(&part[t * len..(t + 1) * len], want, "{w} {range:?} t {t}");
                        let got = &part_prepared[t * len..(t + 1) * len];
                        assert_eq!(got, want, "{w} {range:?} t {t} prepared");
                    }
                }
                // every token alone gives what it gets in the batch
                let blocks = cols / 32;
                for t in 0..ntok {
                    let mut one = vec![0.0f32; rows];
                    let xt = &xq[t * blocks..(t + 1) * blocks];
                    gemm_rows8_sums(lay, &packed, xt, 1, &mut one, rows);
                    assert_eq!(one, fast[t * rows..(t + 1) * rows], "{w} token {t}");
                }
                // and it is ggml's dot up to rounding
                for t in 0..ntok {
                    for r in 0..rows {
                        let g = crate::dot_q8(
                            w,
                            &plain[r * rb..(r + 1) * rb],
                            &xq[t * blocks..(t + 1) * blocks],
                        );
                        let f = fast[t * rows + r];
                        assert!((f - g).abs() <= 1e-4 * g.abs().max(1.0), "{f} vs {g}");
                    }
                }
            }
        }
    }
}
