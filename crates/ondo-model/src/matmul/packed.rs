//! The products of one batch through matrices repacked eight rows at a time, in one parallel
//! region of the pool ([`matmul_packed`]): the plumbing that hands each thread its tokens to
//! prepare and its range of row chunks, with raw views of the input, the quantized input and
//! the outputs.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ondo_kernels::q8_broadcast::Q8Broadcast;
use ondo_kernels::rows8_sums::reads_broadcast;
use ondo_kernels::{BlockQ8, DType};

use super::{
    broadcasts, quantize_rows_into, rows8_product, MakeRows, OutPtr, MAX_GROUP, ROW_CHUNK, SCRATCH,
};
use crate::{Numerics, QWeight};

thread_local! {
    /// This thread's copy of a decoding batch's activations in broadcast layout, and the
    /// [`matmul_packed`] call it was laid out for.
    static BROADCAST: RefCell<(u64, Q8Broadcast)> = RefCell::new((0, Q8Broadcast::default()));
}

/// Numbers the [`matmul_packed`] calls, so that a thread knows whether its broadcast copy is
/// the current call's.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Products of one input ([n][cols]) through matrices repacked eight rows at a time (Q4_0:
/// `q4_0x8`; Q4_1/Q8_0: `rows8`, exactly `dot_q8` per pair, the fidelity path, or under
/// `Numerics::BlockSums` `rows8_sums`): the input is quantized once and every matrix's row
/// chunks are shared among the threads in one region, each chunk writing its rows of every
/// token's output row in place.
///
/// A decoding batch under `BlockSums` is also laid out broadcast (`q8_broadcast`) for the
/// kernels that read it (`rows8_sums::reads_broadcast`); the first items of the region make and quantize one token each, and the
/// product chunks, claimed after them, wait until those are done (the other thread works
/// while the caller prepares instead of waiting for it); a thread's first chunk lays the
/// batch out in its own copy ([`own_broadcast`]).
pub(super) fn matmul_packed(
    ws: &[&QWeight],
    x: RowsPtr,
    make: MakeRows<'_>,
    n: usize,
    outs: &mut [&mut [f32]],
    numerics: Numerics,
) {
    // The quantized input is kept per thread, so a decoding batch allocates nothing.
    let (mut xq, mut plan) = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        (
            std::mem::take(&mut s.xq_batch),
            std::mem::take(&mut s.chunks),
        )
    });
    let (cols, blocks) = (ws[0].cols, ws[0].cols / 32);
    // A decoding batch's input is read by every row chunk: its rows are made and quantized
    // once, one token per item of the region, and (for the kernels that read it) laid out
    // broadcast by each thread for itself. A prompt's go through the direct pass, which
    // broadcasts in its loop.
    let broadcast = broadcasts(ws, n, numerics);
    assert!(x.len >= n * cols, "input rows too short");
    let (prep, laid_out) = if broadcast {
        // Every block is written by the preparation items: only a new length initializes.
        xq.resize(n * blocks, BlockQ8::default());
        (n, ws.iter().any(|w| reads_broadcast(w.dtype)))
    } else {
        // SAFETY: `x` covers n rows (asserted), written by no one else during the call.
        let rows = unsafe { x.rows(0, n, cols, make) };
        quantize_rows_into(rows, n, cols, &mut xq);
        (0, false)
    };
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    assert!(
        ws.len() <= MAX_GROUP,
        "at most {MAX_GROUP} products per group"
    );
    let mut out_ptrs = [OutPtr(std::ptr::null_mut()); MAX_GROUP];
    let mut rows = [0usize; MAX_GROUP];
    for (i, (o, w)) in outs.iter_mut().zip(ws).enumerate() {
        assert!(o.len() >= n * w.rows, "output too short");
        out_ptrs[i] = OutPtr(o.as_mut_ptr());
        rows[i] = w.rows;
    }
    plan_chunks(&rows[..ws.len()], n, &mut plan);
    let count = plan.len();
    let xq_ptr = BlocksPtr(xq.as_mut_ptr());
    let prepared = AtomicUsize::new(0);
    let prep_failed = AtomicBool::new(false);
    // Items 0..prep lay out token i; item prep + i is chunk i, rows r0..r1 of one matrix (the
    // matrices' chunks one after the other). The layout items are claimed first, in order,
    // then each thread streams its own range of chunks; on one thread they simply run in order.
    ondo_kernels::pool::for_each_claimed_ranges(prep, prep + count, |item| {
        if item < prep {
            // Counted as done even if it panics (the pool re-raises the panic on the caller
            // when the region ends), with the failure flagged so that no chunk waits forever
            // or computes from its row.
            let _done = PrepDone(&prepared, &prep_failed);
            // SAFETY: item (a token) is claimed once, so this thread alone writes its input
            // row and its blocks of `xq`; `x` covers n rows (asserted) and `xq` holds n *
            // blocks blocks (resized above).
            unsafe {
                let row = x.rows(item, 1, cols, make);
                let xq_t = std::slice::from_raw_parts_mut(xq_ptr.get().add(item * blocks), blocks);
                ondo_kernels::quantize_q8_into(row, xq_t);
            }
            return;
        }
        let mut spins = 0u32;
        while prepared.load(Ordering::Acquire) < prep {
            spins = spins.wrapping_add(1);
            // As the pool's own wait: a preparing thread that takes this long was probably
            // descheduled, so give it this core.
            if spins.is_multiple_of(4096) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if prep_failed.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: every layout item is done (the acquire above sees their writes) and no one
        // writes `xq` again during the region.
        let xq_ref = unsafe { std::slice::from_raw_parts(xq_ptr.get(), n * blocks) };
        let Chunk { m, r0, r1 } = plan[item - prep];
        let w = ws[m];
        let (Some(packed), Some(lay)) = (w.packed(), w.packed_layout()) else {
            return;
        };
        // SAFETY: out `m` holds n rows of `w.rows` (asserted above); this chunk alone writes
        // columns r0..r1 of each (chunks are claimed once), and `outs` stays borrowed until
        // the region ends. This thread's broadcast copy is its own, filled from `xq` for
        // this call.
        unsafe {
            let out = out_ptrs[m].get().add(r0);
            if w.dtype == DType::Q4_0 {
                let gb = w.cols / 32 * 8 * w.dtype.block_bytes();
                let p = &packed[r0 / 8 * gb..r1 / 8 * gb];
                ondo_kernels::q4_0x8::gemm_q4_0x8_raw(p, r1 - r0, xq_ref, n, out, w.rows);
            } else if numerics == Numerics::BlockSums && laid_out && reads_broadcast(w.dtype) {
                let xbr = own_broadcast(call, xq_ref, n, blocks);
                let f = ondo_kernels::rows8_sums::gemm_rows8_sums_prepared_raw;
                f(lay, packed, r0..r1, xq_ref, xbr, out, w.rows);
            } else {
                let f = rows8_product(numerics);
                f(lay, packed, r0..r1, xq_ref, n, out, w.rows);
            }
        }
    });
    // Keep decode-sized buffers; a prompt's may be large.
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if xq.capacity() <= KEEP_XQ_BLOCKS {
            s.xq_batch = xq;
        }
        s.chunks = plan;
    });
}

/// This thread's broadcast copy of the decoding batch `xq` (`n` rows of `blocks`), laid out
/// on its first use in [`matmul_packed`] call number `call`. Each thread reads the copy it
/// wrote itself: one shared copy, half written by the other core, made the Q4_1 pass 10-27%
/// slower (its lines then come from the other core's cache; measured with scratch code).
fn own_broadcast(
    call: u64,
    xq: &[BlockQ8],
    n: usize,
    blocks: usize,
) -> ondo_kernels::q8_broadcast::BroadcastRows {
    BROADCAST.with(|b| {
        let (laid_for, buf) = &mut *b.borrow_mut();
        if *laid_for == call {
            buf.reshape(n, blocks)
        } else {
            *laid_for = call;
            buf.fill(xq, n, blocks)
        }
    })
}

/// Rows `r0..r1` of product `m` of a [`matmul_packed`] region: one item the threads claim.
#[derive(Clone, Copy)]
pub(super) struct Chunk {
    m: usize,
    r0: usize,
    r1: usize,
}

/// The most rows of a decoding batch's chunk: a super-group of Q4_1's layout, whose row
/// groups share each strip of activations the kernel reads into L1 (16 row groups against 6
/// made the 8-sequence step ~4% faster on one thread).
const DECODE_CHUNK_MAX: usize = 8 * ondo_kernels::rows8::SUPER_GROUPS;

/// Splits the products' `rows` into the chunks of a region, in row order (the order in which
/// the threads' ranges take them, see [`ondo_kernels::pool::for_each_claimed_ranges`]).
///
/// A prompt's chunks have `ROW_CHUNK` rows; a decoding batch's are super-groups of Q4_1's
/// layout ([`DECODE_CHUNK_MAX`] rows, the last of a matrix may have fewer).
fn plan_chunks(rows: &[usize], n: usize, plan: &mut Vec<Chunk>) {
    plan.clear();
    let size = if n <= 16 { DECODE_CHUNK_MAX } else { ROW_CHUNK };
    for (m, &r) in rows.iter().enumerate() {
        plan.extend((0..r).step_by(size).map(|r0| Chunk {
            m,
            r0,
            r1: (r0 + size).min(r),
        }));
    }
}

/// Marks one preparation item of [`matmul_packed`] done when dropped, and failed if it is
/// dropped by a panic.
struct PrepDone<'a>(&'a AtomicUsize, &'a AtomicBool);

impl Drop for PrepDone<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.1.store(true, Ordering::Release);
        }
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// The input rows of [`matmul_packed`]: made (written) by one thread per token when a
/// [`MakeRows`] other than `Ready` comes with them, only read otherwise.
#[derive(Clone, Copy)]
pub(super) struct RowsPtr {
    ptr: *mut f32,
    len: usize,
    /// False for rows that came as a shared slice: they may only be read.
    writable: bool,
}

impl RowsPtr {
    /// Rows that are only read (`MakeRows::Ready`): never written through this pointer.
    pub(super) fn ready(x: &[f32]) -> Self {
        RowsPtr {
            ptr: x.as_ptr() as *mut f32,
            len: x.len(),
            writable: false,
        }
    }

    pub(super) fn made(x: &mut [f32]) -> Self {
        RowsPtr {
            ptr: x.as_mut_ptr(),
            len: x.len(),
            writable: true,
        }
    }

    /// Rows `first..first + count` of `cols`-wide rows, made by `make` first unless it is
    /// `Ready`.
    ///
    /// # Safety
    /// They lie in the buffer, and no one else accesses them while they are made (nor writes
    /// them while the returned slice lives).
    unsafe fn rows<'a>(
        self,
        first: usize,
        count: usize,
        cols: usize,
        make: MakeRows<'_>,
    ) -> &'a [f32] {
        assert!((first + count) * cols <= self.len, "rows out of the input");
        let p = self.ptr.add(first * cols);
        if matches!(make, MakeRows::Ready) {
            return std::slice::from_raw_parts(p, count * cols);
        }
        assert!(self.writable, "rows lent as a shared slice cannot be made");
        let rows = std::slice::from_raw_parts_mut(p, count * cols);
        for (t, row) in rows.chunks_exact_mut(cols).enumerate() {
            make.make_row(row, first + t);
        }
        rows
    }
}
// SAFETY: hands disjoint token rows of the input to the pool's threads.
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}

/// The quantized input of [`matmul_packed`], written by one thread per token.
#[derive(Clone, Copy)]
struct BlocksPtr(*mut BlockQ8);

impl BlocksPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut BlockQ8 {
        self.0
    }
}
// SAFETY: hands disjoint token rows of the quantized input to the pool's threads.
unsafe impl Send for BlocksPtr {}
unsafe impl Sync for BlocksPtr {}

/// The largest quantized input (in blocks, ~2.3 MB) `matmul_packed` keeps between calls.
const KEEP_XQ_BLOCKS: usize = 1 << 16;
