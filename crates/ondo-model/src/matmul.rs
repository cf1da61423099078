//! Batched matrix products against a `QWeight`: `out[b][r] = dot(w[r], x[b])`.
//!
//! Under `Numerics::LlamaCpp` the activations are first brought to llama.cpp's precision for
//! the weight's type: Q4_0/Q4_1/Q8_0 weights get 8-bit quantized activations and integer dots
//! (`ondo_kernels::q8`), other types get `round_activations` and f32 dots. Under
//! `Numerics::Exact` activations stay f32. `Numerics::BlockSums` is `LlamaCpp` but for the
//! repacked Q4_1/Q8_0 matrices, whose products use `ondo_kernels::rows8_sums` at every token
//! count.
//!
//! Several tokens read each weight row once and dot it with every token, so a prompt reads the
//! weights once, not once per token. One token (decoding) goes through [`matmul_group`], which
//! runs several products of the same input (q, k and v; gate and up) in one parallel region
//! and reuses per-thread scratch buffers, so the decode loop does not allocate.

use std::cell::RefCell;
use std::ops::Range;

use ondo_kernels::rows8::{has_rows8, Layout};
use ondo_kernels::rows8_sums;
use ondo_kernels::{act_rounding, ActRounding, BlockQ8, BlockQ8K, DType};

use crate::{Numerics, QWeight};

mod packed;
use packed::{matmul_packed, Chunk, RowsPtr};

/// Below this many weight rows per thread a batched product runs on one thread.
const MIN_ROWS_PER_THREAD: usize = 4;
/// The most products one [`matmul_group`] call takes (q, k, v).
const MAX_GROUP: usize = 4;
/// Below this many weight bytes per thread a decode product runs on one thread.
const MIN_BYTES_PER_THREAD: usize = 16 * 1024;

#[derive(Default)]
struct Scratch {
    xq: Vec<BlockQ8>,
    /// `matmul_packed`'s quantized input.
    xq_batch: Vec<BlockQ8>,
    /// `matmul_packed`'s chunks.
    chunks: Vec<Chunk>,
    xqk: Vec<BlockQ8K>,
    /// One rounded copy of x per product of a group (only for types without an integer path).
    xr: Vec<Vec<f32>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// x: [n][w.cols], out: [n][w.rows]; the matrix's LoRA adapters included, the selectable
/// ones for the rows whose `adapters[row]` names them.
pub fn matmul(
    w: &QWeight,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    numerics: Numerics,
    adapters: &[Option<u32>],
) {
    matmul_base(w, x, n, out, numerics);
    crate::lora::apply(w, x, n, out, adapters);
}

pub(crate) fn matmul_base(w: &QWeight, x: &[f32], n: usize, out: &mut [f32], numerics: Numerics) {
    if n == 1 {
        return gemv_group(&[w], x, &mut [out], numerics);
    }
    debug_assert_eq!(x.len(), n * w.cols);
    debug_assert_eq!(out.len(), n * w.rows);
    if w.packed().is_some() && numerics.llama_cpp() {
        return matmul_packed(
            &[w],
            RowsPtr::ready(x),
            MakeRows::Ready,
            n,
            &mut [out],
            numerics,
        );
    }
    if uses_q8(w.dtype, numerics) {
        return matmul_q8(w, x, n, out);
    }
    if uses_q8k(w.dtype, numerics) {
        if w.rows.is_multiple_of(8) {
            return matmul_q8k(w, x, n, out);
        }
        return matmul_int::<BlockQ8K>(w, x, n, out);
    }
    let rounded;
    let x = match numerics {
        Numerics::Exact => x,
        Numerics::LlamaCpp | Numerics::BlockSums => {
            let mut xr = vec![0.0f32; x.len()];
            for (r, xs) in xr.chunks_exact_mut(w.cols).zip(x.chunks_exact(w.cols)) {
                ondo_kernels::round_activations(w.dtype, xs, r);
            }
            rounded = xr;
            &rounded[..]
        }
    };
    let cols = w.cols;
    for_each_row_block(w, n, out, |row_bytes, dst, scratch| {
        scratch.resize(cols, 0.0);
        ondo_kernels::dequantize_row(w.dtype, row_bytes, scratch);
        for (b, d) in dst.iter_mut().enumerate() {
            *d = ondo_kernels::dot_f32(scratch, &x[b * cols..(b + 1) * cols]);
        }
    });
}

fn uses_q8(dtype: DType, numerics: Numerics) -> bool {
    numerics.llama_cpp() && ondo_kernels::has_q8_path(dtype)
}

fn uses_q8k(dtype: DType, numerics: Numerics) -> bool {
    numerics.llama_cpp() && ondo_kernels::has_q8k_path(dtype)
}

/// 8-bit quantized activation blocks with integer dots against some weight types.
trait IntBlocks: Copy + Default + Send + Sync {
    const ELEMS: usize;
    fn quantize(x: &[f32], out: &mut Vec<Self>);
    fn dot(w: DType, row: &[u8], xq: &[Self]) -> f32;
    fn dot4(w: DType, row: &[u8], xq: [&[Self]; 4]) -> [f32; 4];
}

impl IntBlocks for BlockQ8 {
    const ELEMS: usize = 32;
    fn quantize(x: &[f32], out: &mut Vec<Self>) {
        ondo_kernels::quantize_q8(x, out)
    }
    fn dot(w: DType, row: &[u8], xq: &[Self]) -> f32 {
        ondo_kernels::dot_q8(w, row, xq)
    }
    fn dot4(w: DType, row: &[u8], xq: [&[Self]; 4]) -> [f32; 4] {
        ondo_kernels::dot_q8_x4(w, row, xq)
    }
}

impl IntBlocks for BlockQ8K {
    const ELEMS: usize = 256;
    fn quantize(x: &[f32], out: &mut Vec<Self>) {
        ondo_kernels::quantize_q8k(x, out)
    }
    fn dot(w: DType, row: &[u8], xq: &[Self]) -> f32 {
        ondo_kernels::dot_q8k(w, row, xq)
    }
    fn dot4(w: DType, row: &[u8], xq: [&[Self]; 4]) -> [f32; 4] {
        ondo_kernels::dot_q8k_x4(w, row, xq)
    }
}

/// Several matrices with the same input: `outs[i] = ws[i] · x` (x: [n][cols]).
pub fn matmul_group(
    ws: &[&QWeight],
    x: &[f32],
    n: usize,
    outs: &mut [&mut [f32]],
    numerics: Numerics,
    adapters: &[Option<u32>],
) {
    let packed = ws
        .iter()
        .all(|w| w.packed().is_some() && w.cols == ws[0].cols);
    if n == 1 {
        gemv_group(ws, x, outs, numerics);
    } else if packed && numerics.llama_cpp() && !ws.is_empty() {
        matmul_packed(ws, RowsPtr::ready(x), MakeRows::Ready, n, outs, numerics);
    } else {
        for (w, out) in ws.iter().zip(outs.iter_mut()) {
            matmul_base(w, x, n, out, numerics);
        }
    }
    for (w, out) in ws.iter().zip(outs.iter_mut()) {
        crate::lora::apply(w, x, n, out, adapters);
    }
}

/// How the rows of a product's input are made from the layer's state: an RMS norm of the
/// residual stream or SwiGLU of the gate and up projections (ggml's, in place in the gate).
#[derive(Clone, Copy)]
pub enum MakeRows<'a> {
    /// The rows are ready.
    Ready,
    /// `rows[t] = rmsnorm(x[t]) * weight`.
    Norm {
        x: &'a [f32],
        weight: &'a [f32],
        eps: f32,
    },
    /// `rows[t] = silu(rows[t]) * up[t]`, as `swiglu_ggml`.
    SwiGlu { up: &'a [f32] },
    /// `x[t] += add[t]`, then `rows[t] = rmsnorm(x[t]) * weight`: the residual sum before a
    /// norm, done per token.
    AddNorm {
        x: ResidualRows<'a>,
        add: &'a [f32],
        weight: &'a [f32],
        eps: f32,
    },
    /// `make(rows[t], t)`: any per-token work that writes the row (a decoding step's
    /// attention), called once per token, for different tokens concurrently.
    With(&'a (dyn Fn(&mut [f32], usize) + Sync)),
}

/// The residual stream ([n][cols]) lent mutably to a [`MakeRows::AddNorm`], whose rows are
/// each updated by the one call that makes that token's row.
#[derive(Clone, Copy)]
pub struct ResidualRows<'a> {
    ptr: *mut f32,
    len: usize,
    _lent: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> ResidualRows<'a> {
    /// # Safety
    /// The `MakeRows::AddNorm` holding these rows goes to one product call (which makes each
    /// token's row once): a copy made twice would add twice, or race.
    pub unsafe fn new(x: &'a mut [f32]) -> Self {
        ResidualRows {
            ptr: x.as_mut_ptr(),
            len: x.len(),
            _lent: std::marker::PhantomData,
        }
    }

    /// Row `t` (`cols` wide).
    ///
    /// # Safety
    /// No one else accesses row `t` while the returned slice lives.
    unsafe fn row(self, t: usize, cols: usize) -> &'a mut [f32] {
        assert!((t + 1) * cols <= self.len, "row out of the residual stream");
        std::slice::from_raw_parts_mut(self.ptr.add(t * cols), cols)
    }
}
// SAFETY: hands disjoint token rows to the pool's threads (one make_row call per token).
unsafe impl Send for ResidualRows<'_> {}
unsafe impl Sync for ResidualRows<'_> {}

impl MakeRows<'_> {
    /// Makes row `t` (`cols` wide) in place.
    fn make_row(self, row: &mut [f32], t: usize) {
        let cols = row.len();
        match self {
            MakeRows::Ready => {}
            MakeRows::Norm { x, weight, eps } => {
                ondo_kernels::rmsnorm(row, &x[t * cols..(t + 1) * cols], weight, eps)
            }
            MakeRows::SwiGlu { up } => {
                ondo_kernels::ggml_math::swiglu_ggml(row, &up[t * cols..(t + 1) * cols])
            }
            MakeRows::AddNorm {
                x,
                add,
                weight,
                eps,
            } => {
                // SAFETY: a product makes each token's row once, by one thread, so row t of
                // x is touched by this call alone.
                let xt = unsafe { x.row(t, cols) };
                for (a, b) in xt.iter_mut().zip(&add[t * cols..(t + 1) * cols]) {
                    *a += b;
                }
                ondo_kernels::rmsnorm(row, xt, weight, eps)
            }
            MakeRows::With(make) => make(row, t),
        }
    }
}

/// [`matmul_group`] of an input that `make` first writes into `rows` ([n][cols]). A decoding
/// batch under `BlockSums` makes each token's row in the product's parallel region (the
/// caller would otherwise make them alone while the other threads wait); `rows` holds the
/// made input afterwards either way (LoRA adapters read it).
pub fn matmul_group_made(
    ws: &[&QWeight],
    rows: &mut [f32],
    make: MakeRows<'_>,
    n: usize,
    outs: &mut [&mut [f32]],
    numerics: Numerics,
    adapters: &[Option<u32>],
) {
    let cols = ws[0].cols;
    assert!(rows.len() >= n * cols, "input rows too short");
    if makes_rows_in_region(ws, n, numerics) {
        matmul_packed(ws, RowsPtr::made(rows), make, n, outs, numerics);
        for (w, out) in ws.iter().zip(outs.iter_mut()) {
            crate::lora::apply(w, rows, n, out, adapters);
        }
        return;
    }
    for (t, row) in rows.chunks_exact_mut(cols).take(n).enumerate() {
        make.make_row(row, t);
    }
    matmul_group(ws, rows, n, outs, numerics, adapters);
}

/// True if [`matmul_group_made`] makes the `n` input rows of a product with `ws` inside its
/// parallel region, one token per item (otherwise the caller makes them one after the other).
pub(crate) fn makes_rows_in_region(ws: &[&QWeight], n: usize, numerics: Numerics) -> bool {
    let cols = ws[0].cols;
    ws.iter().all(|w| w.packed().is_some() && w.cols == cols) && broadcasts(ws, n, numerics)
}

/// True if [`matmul_packed`] lays a batch of `n` tokens out broadcast (and makes its rows in
/// the region): a batch under `BlockSums` through a Q4_1/Q8_0 matrix, of up to 16 tokens (a
/// decoding batch), or up to [`rows8_sums::broadcast_tokens_max`] where the kernels have
/// AVX-512 (a server's batch of prompts, too).
fn broadcasts(ws: &[&QWeight], n: usize, numerics: Numerics) -> bool {
    numerics == Numerics::BlockSums
        && (2..=rows8_sums::broadcast_tokens_max().max(16)).contains(&n)
        && ws.iter().any(|w| has_rows8(w.dtype))
}

/// One token through several matrices: all rows of all matrices are shared among the threads
/// in a single parallel region.
fn gemv_group(ws: &[&QWeight], x: &[f32], outs: &mut [&mut [f32]], numerics: Numerics) {
    debug_assert_eq!(ws.len(), outs.len());
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let s = &mut *s;
        if ws.iter().any(|w| uses_q8(w.dtype, numerics)) {
            ondo_kernels::quantize_q8(x, &mut s.xq);
        }
        if ws.iter().any(|w| uses_q8k(w.dtype, numerics)) {
            ondo_kernels::quantize_q8k(x, &mut s.xqk);
        }
        if s.xr.len() < ws.len() {
            s.xr.resize_with(ws.len(), Vec::new);
        }
        for (w, xr) in ws.iter().zip(s.xr.iter_mut()) {
            let rounding = match numerics {
                Numerics::Exact => ActRounding::None,
                Numerics::LlamaCpp | Numerics::BlockSums => act_rounding(w.dtype),
            };
            let integer = uses_q8(w.dtype, numerics) || uses_q8k(w.dtype, numerics);
            if !integer && rounding != ActRounding::None {
                xr.resize(x.len(), 0.0);
                ondo_kernels::round_activations(w.dtype, x, xr);
            }
        }
        let total_rows: usize = ws.iter().map(|w| w.rows).sum();
        let total_bytes: usize = ws.iter().map(|w| w.bytes().len()).sum();
        let threads = if total_bytes < 2 * MIN_BYTES_PER_THREAD {
            1
        } else {
            ondo_kernels::pool::threads()
        };
        assert!(
            ws.len() <= MAX_GROUP,
            "at most {MAX_GROUP} products per group"
        );
        let mut outs_ptr = [OutPtr(std::ptr::null_mut()); MAX_GROUP];
        for (p, o) in outs_ptr.iter_mut().zip(outs.iter_mut()) {
            *p = OutPtr(o.as_mut_ptr());
        }
        let (xq, xqk, xr) = (&s.xq[..], &s.xqk[..], &s.xr);
        let job = |t: usize| {
            // Rows [lo, hi) of the concatenation of all matrices: equal shares of the weight
            // bytes (a group can mix types of different sizes, such as Q4_K q/k with a Q6_K v),
            // cut at multiples of 8 rows of a matrix (the GEMV kernels' row group).
            let row_at = |share: usize| -> usize {
                if share >= threads {
                    return total_rows;
                }
                let mut target = total_bytes / threads * share;
                let mut first = 0;
                for w in ws {
                    let len = w.bytes().len();
                    if target < len {
                        let r = target / w.row_bytes().max(1) / 8 * 8;
                        return first + r.min(w.rows);
                    }
                    target -= len;
                    first += w.rows;
                }
                total_rows
            };
            let (lo, hi) = (row_at(t), row_at(t + 1));
            let mut first = 0;
            for (i, w) in ws.iter().enumerate() {
                let (a, b) = (lo.max(first), hi.min(first + w.rows));
                if a < b {
                    let (r0, r1) = (a - first, b - first);
                    // SAFETY: threads write disjoint row ranges of each output, which stays
                    // mutably borrowed until the region ends.
                    let out =
                        unsafe { std::slice::from_raw_parts_mut(outs_ptr[i].0.add(r0), r1 - r0) };
                    let rb = w.row_bytes();
                    let bytes = &w.bytes()[r0 * rb..r1 * rb];
                    let packed = w.packed().zip(w.packed_layout());
                    let packed = packed.filter(|_| numerics.llama_cpp());
                    if let (Some((p, lay)), true) = (packed, r0 % 8 == 0 && r1 % 8 == 0) {
                        if w.dtype == DType::Q4_0 {
                            let gb = w.cols / 32 * 8 * w.dtype.block_bytes();
                            let p = &p[r0 / 8 * gb..r1 / 8 * gb];
                            ondo_kernels::q4_0x8::gemv_q4_0x8(p, xq, out);
                        } else {
                            // SAFETY: `out` holds rows r0..r1 of the one token and is borrowed
                            // mutably.
                            unsafe {
                                let f = rows8_product(numerics);
                                f(lay, p, r0..r1, xq, 1, out.as_mut_ptr(), 0);
                            }
                        }
                    } else if uses_q8(w.dtype, numerics) {
                        ondo_kernels::gemv_q8(w.dtype, bytes, xq, out);
                    } else if uses_q8k(w.dtype, numerics) {
                        ondo_kernels::gemv_q8k(w.dtype, bytes, xqk, out);
                    } else {
                        let xs = if xr[i].len() == x.len() && numerics.llama_cpp() {
                            &xr[i][..]
                        } else {
                            x
                        };
                        ondo_kernels::matvec_serial(w.dtype, bytes, r1 - r0, w.cols, xs, out);
                    }
                }
                first += w.rows;
            }
        };
        if threads == 1 {
            job(0);
        } else {
            ondo_kernels::pool::run(&job);
        }
    });
}

/// The rows8 product (Q4_1, Q8_0) `numerics` asks for, over a range of a whole matrix's rows.
type Rows8Product = unsafe fn(Layout, &[u8], Range<usize>, &[BlockQ8], usize, *mut f32, usize);

fn rows8_product(numerics: Numerics) -> Rows8Product {
    if numerics == Numerics::BlockSums {
        ondo_kernels::rows8_sums::gemm_rows8_sums_raw
    } else {
        ondo_kernels::rows8::gemm_rows8_raw
    }
}

/// An output buffer's start, handed to the pool's threads, each of which writes its own
/// disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: hands disjoint row ranges of the outputs to the pool's threads.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Integer path: quantize every activation row once, then dot each weight row with each.
fn matmul_int<B: IntBlocks>(w: &QWeight, x: &[f32], n: usize, out: &mut [f32]) {
    let blocks_per_row = w.cols / B::ELEMS;
    let xq = quantize_rows::<B>(x, n, w.cols);
    let dtype = w.dtype;
    let xrow = |b: usize| &xq[b * blocks_per_row..(b + 1) * blocks_per_row];
    for_each_row_block(w, n, out, |row_bytes, dst, _| {
        let mut quads = dst.chunks_exact_mut(4);
        for (q, d4) in (&mut quads).enumerate() {
            let b = 4 * q;
            let r = B::dot4(
                dtype,
                row_bytes,
                [xrow(b), xrow(b + 1), xrow(b + 2), xrow(b + 3)],
            );
            d4.copy_from_slice(&r);
        }
        let done = n - quads.into_remainder().len();
        for (b, d) in dst.iter_mut().enumerate().skip(done) {
            *d = B::dot(dtype, row_bytes, xrow(b));
        }
    });
}

/// Q4_0x8 path: activations quantized once, row chunks shared among threads.
/// Q4_0/Q4_1/Q8_0 path: Q8 activations, the tiled GEMM (bit-identical to `dot_q8` per pair,
/// ggml's order: the fidelity path) over row chunks.
fn matmul_q8(w: &QWeight, x: &[f32], n: usize, out: &mut [f32]) {
    let xq = quantize_rows::<BlockQ8>(x, n, w.cols);
    let (bytes, rb) = (w.bytes(), w.row_bytes());
    by_row_chunks(w.rows, n, out, |r0, r1, tile| {
        let rows = &bytes[r0 * rb..r1 * rb];
        ondo_kernels::gemm_q8(w.dtype, rows, r1 - r0, &xq, n, tile, r1 - r0);
    });
}

/// K-quant path: Q8_K activations, the tiled GEMM over row chunks.
fn matmul_q8k(w: &QWeight, x: &[f32], n: usize, out: &mut [f32]) {
    let xq = quantize_rows::<BlockQ8K>(x, n, w.cols);
    let (bytes, rb) = (w.bytes(), w.row_bytes());
    by_row_chunks(w.rows, n, out, |r0, r1, tile| {
        let rows = &bytes[r0 * rb..r1 * rb];
        ondo_kernels::gemm_q8k(w.dtype, rows, r1 - r0, &xq, n, tile, r1 - r0);
    });
}

/// Rows per task of a batched product: a multiple of 8 (the Q4_0x8 and K-quant row group)
/// and of 3 (the Q8 GEMM's row tile).
const ROW_CHUNK: usize = 48;

/// Shares chunks of `ROW_CHUNK` rows among threads; `f(r0, r1, tile)` fills `tile`
/// ([n][r1 - r0]) for rows r0..r1, which is then copied into `out` ([n][rows]).
/// Callers that need 8-row groups pass `rows` a multiple of 8.
fn by_row_chunks<F>(rows: usize, n: usize, out: &mut [f32], f: F)
where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    let chunks = rows.div_ceil(ROW_CHUNK);
    let mut tiles = vec![0.0f32; rows * n];
    // Chunk c's tile starts at n * ROW_CHUNK * c (the last chunk may be shorter).
    ondo_kernels::pool::for_each_share(&mut tiles, n * ROW_CHUNK, 1, |first, share| {
        for (i, tile) in share.chunks_mut(n * ROW_CHUNK).enumerate() {
            let r0 = (first + i) * ROW_CHUNK;
            let r1 = (r0 + ROW_CHUNK).min(rows);
            f(r0, r1, &mut tile[..n * (r1 - r0)]);
        }
    });
    for c in 0..chunks {
        let (r0, r1) = (c * ROW_CHUNK, (c * ROW_CHUNK + ROW_CHUNK).min(rows));
        let tile = &tiles[n * r0..n * r1];
        for (t, v) in tile.chunks_exact(r1 - r0).enumerate() {
            out[t * rows + r0..t * rows + r1].copy_from_slice(v);
        }
    }
}

/// Every token row of `x` ([n][cols]) quantized, rows shared among threads.
fn quantize_rows<B: IntBlocks>(x: &[f32], n: usize, cols: usize) -> Vec<B> {
    let mut xq = Vec::new();
    quantize_rows_into(x, n, cols, &mut xq);
    xq
}

/// [`quantize_rows`] into a reused buffer.
fn quantize_rows_into<B: IntBlocks>(x: &[f32], n: usize, cols: usize, xq: &mut Vec<B>) {
    let blocks = cols / B::ELEMS;
    // Below 16 rows per thread a region costs more than it saves (decoding batches); a block
    // never straddles two rows (cols is a multiple of it), so the rows quantize as one run.
    if n < 2 * 16 || ondo_kernels::pool::threads() == 1 {
        return B::quantize(&x[..n * cols], xq);
    }
    xq.clear();
    xq.resize(n * blocks, B::default());
    ondo_kernels::pool::for_each_share(xq, blocks, 16, |first, share| {
        let mut tmp = Vec::with_capacity(blocks);
        for (i, dst) in share.chunks_exact_mut(blocks).enumerate() {
            let t = first + i;
            B::quantize(&x[t * cols..(t + 1) * cols], &mut tmp);
            dst.copy_from_slice(&tmp);
        }
    });
}

/// Runs `f(row bytes, out_t row [n], scratch)` for every weight row, rows shared among threads,
/// then transposes `out_t` ([rows][n]) into `out` ([n][rows]).
fn for_each_row_block<F>(w: &QWeight, n: usize, out: &mut [f32], f: F)
where
    F: Fn(&[u8], &mut [f32], &mut Vec<f32>) + Sync,
{
    let rows = w.rows;
    let bytes = w.bytes();
    let row_bytes = bytes.len() / rows.max(1);
    let mut out_t = vec![0.0f32; rows * n];
    ondo_kernels::pool::for_each_share(&mut out_t, n, MIN_ROWS_PER_THREAD, |first, share| {
        let mut scratch = Vec::new();
        for (i, dst) in share.chunks_exact_mut(n).enumerate() {
            let r = first + i;
            f(
                &bytes[r * row_bytes..(r + 1) * row_bytes],
                dst,
                &mut scratch,
            );
        }
    });
    for (r, src) in out_t.chunks_exact(n).enumerate() {
        for (b, &v) in src.iter().enumerate() {
            out[b * rows + r] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;

    use super::*;

    /// A row that fails to be made inside the region (here: the last token's `up` row is
    /// missing) panics on the caller, and waits for nothing: the product chunks do not spin
    /// forever on the missing row, and the pool runs the next product.
    #[test]
    fn a_panic_while_making_rows_reaches_the_caller() {
        let Some(path) = ondo_formats::testdata::cached_default_model() else {
            return;
        };
        let file = Arc::new(ondo_formats::GgufFile::open(&path).unwrap());
        let model = crate::load_model(&file).unwrap();
        let w = &model.layers[0].wq;
        assert!(
            w.packed().is_some() && has_rows8(w.dtype),
            "the default model is Q4_1"
        );
        let (n, cols) = (8, w.cols);
        let up: Vec<f32> = (0..n * cols).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut out = vec![0.0f32; n * w.rows];
        let adapters = vec![None; n];
        let mut product = |up: &[f32]| {
            let mut gate = vec![0.5f32; n * cols];
            let outs = &mut [&mut out[..]];
            let (make, numerics) = (MakeRows::SwiGlu { up }, Numerics::BlockSums);
            matmul_group_made(&[w], &mut gate, make, n, outs, numerics, &adapters);
        };
        for _ in 0..20 {
            let short = &up[..(n - 1) * cols];
            assert!(catch_unwind(AssertUnwindSafe(|| product(short))).is_err());
        }
        product(&up);
        assert!(out.iter().all(|v| v.is_finite()) && out.iter().any(|&v| v != 0.0));
    }
}
