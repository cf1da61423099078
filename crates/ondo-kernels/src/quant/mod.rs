//! Quantized row kernels: dispatch between the run-time selected fast paths and the scalar
//! reference implementations.
//!
//! * [`reference`]: plain scalar code following llama.cpp's `dequantize_row_*` (the trusted
//!   twin every fast path is tested against).
//! * [`dequantize_row`], [`dot_row`], [`matvec`]: fast paths. On x86_64 with AVX2+FMA+F16C
//!   (detected once at run time) the `avx2` module supplies fused dequantize-dot kernels;
//!   elsewhere a portable path (block dequantize + 8-lane f32 dot) is used.
//! * [`quantize_row`]: llama.cpp's reference quantizers (`quantize_row_*_ref`).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod float;
mod kquants;
mod legacy;

use crate::{DType, KernelError};

pub use float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub(crate) use kquants::{q3_k_scales, scale_min_k4};

/// True if the AVX2+FMA+F16C kernels are in use (for [`crate::ops::dot_f32`]).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_available() -> bool {
    avx2::available()
}

/// True if this CPU also has AVX-512 F/BW/VNNI, which the batched block-sum kernels
/// (`crate::rows8_sums`) and the grouped attention kernels (`crate::attn`) use, and
/// `ONDO_NO_AVX512` is unset (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512_vnni_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        avx2::available()
            && std::env::var_os("ONDO_NO_AVX512").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// How far ahead (bytes) a decoding kernel asks for the weights it streams: one token reads
/// every weight once, and a request made this early is in flight while the current blocks
/// are computed (measured: ~8-10% more decode speed on the 1B-shape Q4_0 model).
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 4096;

/// Prefetches the `len` bytes lying `PREFETCH_AHEAD` bytes after `p` (addresses past the end
/// of the weights are harmless: a prefetch never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_ahead(p: *const u8, len: usize) {
    prefetch(p.wrapping_add(PREFETCH_AHEAD), len);
}

/// Prefetches the `len` bytes at `p` (any address: a prefetch never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch(p: *const u8, len: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let mut o = 0;
    while o < len {
        // SAFETY: a prefetch is a hint; it does not access memory architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o) as *const i8) };
        o += 64;
    }
}

/// AVX2 f32 dot product; only call when [`avx2_available`] returned true.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_dot_f32(a: &[f32], b: &[f32]) -> f32 {
    avx2::dot_f32(a, b)
}

/// Largest block, in elements (`QK_K`).
const MAX_BLOCK: usize = kquants::QK_K;

/// Dequantizes one block of `dtype` (`b.len() == block_bytes`, `y.len() == block_elems`).
type BlockFn = fn(&[u8], &mut [f32]);
/// A row kernel: `dot(dequantize(row), x)`; lengths already validated by the caller.
type DotFn = fn(&[u8], &[f32]) -> f32;

fn block_fn(dtype: DType) -> BlockFn {
    match dtype {
        DType::F32 => float::dequantize_f32,
        DType::F16 => float::dequantize_f16,
        DType::BF16 => float::dequantize_bf16,
        DType::Q4_0 => legacy::dequant_block_q4_0,
        DType::Q4_1 => legacy::dequant_block_q4_1,
        DType::Q5_0 => legacy::dequant_block_q5_0,
        DType::Q5_1 => legacy::dequant_block_q5_1,
        DType::Q8_0 => legacy::dequant_block_q8_0,
        DType::Q2_K => kquants::dequant_block_q2_k,
        DType::Q3_K => kquants::dequant_block_q3_k,
        DType::Q4_K => kquants::dequant_block_q4_k,
        DType::Q5_K => kquants::dequant_block_q5_k,
        DType::Q6_K => kquants::dequant_block_q6_k,
    }
}

/// Panics unless `bytes == dtype.row_bytes(n_elems)`.
#[track_caller]
fn check_row(dtype: DType, bytes: usize, n_elems: usize) {
    let want = dtype.row_bytes(n_elems);
    assert!(
        want == Some(bytes),
        "{dtype}: row of {n_elems} elements needs {want:?} bytes, got {bytes}"
    );
}

/// The scalar reference implementations: readable, slow, and the ground truth for tests.
pub mod reference {
    use super::*;

    /// Dequantizes a row of `dst.len()` elements. Panics if
    /// `src.len() != dtype.row_bytes(dst.len())`.
    #[track_caller]
    pub fn dequantize_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
        check_row(dtype, src.len(), dst.len());
        let f = block_fn(dtype);
        let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
        for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(be)) {
            f(b, y);
        }
    }

    /// `sum(dequantize(row)[i] * x[i])`, accumulated in f64 and rounded once to f32.
    /// Panics if `row.len() != dtype.row_bytes(x.len())`.
    #[track_caller]
    pub fn dot_row(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
        check_row(dtype, row.len(), x.len());
        let f = block_fn(dtype);
        let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
        let mut buf = [0.0f32; MAX_BLOCK];
        let mut acc = 0.0f64;
        for (b, xs) in row.chunks_exact(bb).zip(x.chunks_exact(be)) {
            f(b, &mut buf[..be]);
            for (w, v) in buf[..be].iter().zip(xs) {
                acc += *w as f64 * *v as f64;
            }
        }
        acc as f32
    }
}

/// Name of the SIMD level the fast paths use on this machine (`"avx2+fma+f16c"` or
/// `"portable"`), for logging.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if avx512_vnni_available() {
        return "avx2+fma+f16c, avx512-vnni batches";
    }
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        return "avx2+fma+f16c";
    }
    "portable"
}

/// Dequantizes a row of `dst.len()` elements (fast path).
///
/// Panics if `src.len() != dtype.row_bytes(dst.len())`: callers validate shapes first.
#[track_caller]
pub fn dequantize_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
    check_row(dtype, src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if dtype == DType::F16 && avx2::available() {
        avx2::dequantize_f16(src, dst);
        return;
    }
    // Dequantization is not on the hot path (embedding lookups): the block loop is it.
    let f = block_fn(dtype);
    let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
    if be == 1 {
        f(src, dst);
    } else {
        for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(be)) {
            f(b, y);
        }
    }
}

/// `dot(dequantize(row), x)` (fast path: fused SIMD kernels where available).
///
/// Panics if `row.len() != dtype.row_bytes(x.len())`.
#[track_caller]
pub fn dot_row(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    check_row(dtype, row.len(), x.len());
    row_dot(dtype)(row, x)
}

/// Resolves the row kernel for `dtype` once (matvec does this once per call, not per row).
fn row_dot(dtype: DType) -> impl Fn(&[u8], &[f32]) -> f32 + Sync + Send {
    #[cfg(target_arch = "x86_64")]
    let simd: Option<DotFn> = avx2::dot_kernel(dtype);
    #[cfg(not(target_arch = "x86_64"))]
    let simd: Option<DotFn> = None;
    move |row: &[u8], x: &[f32]| match simd {
        Some(k) => k(row, x),
        None => dot_blocks(dtype, row, x),
    }
}

/// Generic fast-ish path for any type: dequantize one block (or 256 float elements) into a
/// stack buffer with the reference decoder, then dot it with [`crate::dot_f32`].
fn dot_blocks(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    let f = block_fn(dtype);
    let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
    let per = if be == 1 { MAX_BLOCK } else { be };
    let mut buf = [0.0f32; MAX_BLOCK];
    let mut acc = 0.0f32;
    for (b, xs) in row.chunks(per / be * bb).zip(x.chunks(per)) {
        let y = &mut buf[..xs.len()];
        f(b, y);
        acc += crate::ops::dot_f32(y, xs);
    }
    acc
}

/// Rows × cols below which `matvec` stays on the calling thread.
const PAR_MIN_ELEMS: usize = 1 << 15;
/// Minimum elements of work handed to one thread of the pool.
const PAR_TASK_ELEMS: usize = 1 << 13;

/// `out[r] = dot_row(dtype, row r of w, x)` for `rows` rows of `cols` elements each.
///
/// Rows are split across the pool's threads when `rows * cols` is large enough to pay for it.
/// Panics if `x.len() != cols`, `out.len() != rows`, `cols` is not block-aligned or
/// `w.len() != rows * dtype.row_bytes(cols)`.
#[track_caller]
pub fn matvec(dtype: DType, w: &[u8], rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
    matvec_impl(dtype, w, rows, cols, x, out, true)
}

/// [`matvec`] on the calling thread only (for callers that split rows among threads themselves).
#[track_caller]
pub fn matvec_serial(dtype: DType, w: &[u8], rows: usize, cols: usize, x: &[f32], out: &mut [f32]) {
    matvec_impl(dtype, w, rows, cols, x, out, false)
}

#[track_caller]
fn matvec_impl(
    dtype: DType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    parallel: bool,
) {
    let rb = dtype.row_bytes(cols);
    assert!(rb.is_some(), "{dtype}: {cols} columns is not block-aligned");
    let rb = rb.unwrap_or(0);
    assert_eq!(
        x.len(),
        cols,
        "matvec: x has {} elements, cols = {cols}",
        x.len()
    );
    assert_eq!(
        out.len(),
        rows,
        "matvec: out has {} elements, rows = {rows}",
        out.len()
    );
    assert!(
        rows.checked_mul(rb) == Some(w.len()),
        "matvec: {dtype} weight of {rows}x{cols} needs {rows}*{rb} bytes, got {}",
        w.len()
    );
    if cols == 0 {
        out.fill(0.0);
        return;
    }
    let k = row_dot(dtype);
    if parallel && rows > 1 && rows.saturating_mul(cols) >= PAR_MIN_ELEMS {
        let min_rows = (PAR_TASK_ELEMS / cols).max(1);
        crate::pool::for_each_share(out, 1, min_rows, |first, share| {
            let rows = w[first * rb..].chunks_exact(rb);
            for (o, r) in share.iter_mut().zip(rows) {
                *o = k(r, x);
            }
        });
    } else {
        for (o, r) in out.iter_mut().zip(w.chunks_exact(rb)) {
            *o = k(r, x);
        }
    }
}

/// Quantizes `src` into `dst` with llama.cpp's reference quantizers
/// (`quantize_row_q4_0_ref` etc.; F32/F16/BF16 are plain conversions, round-to-nearest-even).
///
/// Errors: [`KernelError::Unsupported`] for the K-quants (not implemented yet),
/// [`KernelError::NotBlockAligned`] if `src.len()` is not a multiple of the block size,
/// [`KernelError::LengthMismatch`] if `dst.len() != dtype.row_bytes(src.len())`.
pub fn quantize_row(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    type QuantFn = fn(&[f32], &mut [u8]);
    let block: QuantFn = match dtype {
        DType::F32 => float::quantize_f32,
        DType::F16 => float::quantize_f16,
        DType::BF16 => float::quantize_bf16,
        DType::Q4_0 => legacy::quantize_block_q4_0,
        DType::Q4_1 => legacy::quantize_block_q4_1,
        DType::Q5_0 => legacy::quantize_block_q5_0,
        DType::Q5_1 => legacy::quantize_block_q5_1,
        DType::Q8_0 => legacy::quantize_block_q8_0,
        DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K => {
            return Err(KernelError::Unsupported(dtype))
        }
    };
    let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
    let Some(want) = dtype.row_bytes(src.len()) else {
        return Err(KernelError::NotBlockAligned {
            dtype,
            n_elems: src.len(),
            block: be,
        });
    };
    if dst.len() != want {
        return Err(KernelError::LengthMismatch {
            expected: want,
            got: dst.len(),
        });
    }
    if be == 1 {
        block(src, dst);
    } else {
        debug_assert_eq!(be, legacy::QK);
        for (x, b) in src.chunks_exact(be).zip(dst.chunks_exact_mut(bb)) {
            block(x, b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generic block path (what non-x86 machines run) agrees with the reference.
    #[test]
    fn generic_dot_blocks_matches_reference() {
        let mut s = 0x1234_5678u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for dtype in DType::ALL {
            for nb in [1usize, 3] {
                let n = nb * dtype.block_elems().max(100);
                let n = n - n % dtype.block_elems();
                let x: Vec<f32> = (0..n)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                let mut src = vec![0.0f32; n];
                for v in &mut src {
                    *v = (next() % 2001) as f32 / 1000.0 - 1.0;
                }
                let mut row = vec![0u8; dtype.row_bytes(n).unwrap()];
                if quantize_row(dtype, &src, &mut row).is_err() {
                    for b in &mut row {
                        *b = next() as u8;
                    }
                    // keep the f16 scales finite: clear the exponent's top bit of every 2nd byte
                    for b in row.iter_mut().skip(1).step_by(2) {
                        *b &= 0x3f;
                    }
                }
                let want = reference::dot_row(dtype, &row, &x);
                let got = dot_blocks(dtype, &row, &x);
                let mut deq = vec![0.0f32; n];
                reference::dequantize_row(dtype, &row, &mut deq);
                let scale: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
                assert!(
                    (want - got).abs() <= 1e-5 * scale + 1e-30,
                    "{dtype} n={n}: {got} vs {want}"
                );
            }
        }
    }
}
