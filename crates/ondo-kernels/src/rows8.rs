//! Q4_1 and Q8_0 weights repacked eight rows at a time ("rows8"), computing exactly what
//! [`crate::dot_q8`] (ggml's AVX2 `vec_dot_q4_1_q8_1` / `vec_dot_q8_0_q8_0`) computes for
//! every row, for eight rows at once, in decoding and in prefill alike.
//!
//! Layout, per group of 8 rows and per 32-element block (a "group block"): the 8 rows' f16 `d`
//! (16 bytes), for Q4_1 the 8 rows' f16 `m` (16 bytes), then chunks of 32 bytes where chunk `c`
//! holds quant bytes `4c..4c+4` of each row, row after row (4 chunks for Q4_0/Q4_1, 8 for
//! Q8_0); the group's bytes per block equal 8 plain blocks. A 32-bit lane of a chunk is one
//! row. Q4_0 shares the layout ([`repack_rows8`], [`unpack_row`]) but has its own kernel
//! ([`crate::q4_0x8`]).
//!
//! Where the group blocks lie ([`Layout`]): group after group, or (Q4_1 and Q8_0, chosen when
//! the matrix is repacked) in super-groups of [`SUPER_GROUPS`] groups (the last may have fewer),
//! each stored strip after strip: strip `k` is blocks `4k..4k+4` ([`STRIP_BLOCKS`]) of each of
//! the super-group's groups, group after group. A strip's blocks always follow one another.
//! Strips are the order in which a decoding batch of `rows8_sums` reads a matrix (a strip
//! of activations stays in L1 while it is applied to the super-group's groups), so the batch
//! streams the weights in address order instead of 16 streams per thread. Measured on this
//! project's 2-core machine (scratch code): two threads multiplying 66 MB of Q4_1 by 8 tokens
//! got ~190 GOP/s group after group and ~270 strip by strip, and SmolLM2's 8-sequence step
//! took 11-17% less time; one token's block sums ran as fast either way, but ggml's row dot
//! (which keeps 9 sums per group between strips) ~10% slower on strips. So models loaded for
//! block sums (the server's) get strips, the others (`ondo run`'s) groups. Q8_0 (SmolLM2's
//! output head) gains the same way: with AVX-512, 8 tokens × 768 rows of 576 columns in L2
//! ran at ~195 GMAC/s group after group (the tile's 50 KB of broadcast activations overflow
//! L1) and ~290 strip by strip; the 30 MB head streamed by two threads at 137-225 and ~255.
//!
//! ggml keeps, per row, an 8-lane f32 accumulator; lane `l` of a block's integer products
//! covers 4 consecutive elements (for Q4_1: low nibbles of quant bytes `4l..4l+4` for l < 4,
//! high nibbles of bytes `4(l-4)..` for l ≥ 4; for Q8_0: bytes `4l..4l+4`). Here accumulator
//! `A_l` holds lane `l` of all 8 rows (lane = row), fed the same exact integer lane sums with
//! the same fused multiply-add, and the final horizontal sum is ggml's (lo + hi, then pairs)
//! done lane-wise across the 8 accumulators, plus Q4_1's `Σ m_w s_x` summed in block order.
//! So results are bit-identical to `dot_q8` (tested), which keeps the fidelity test exact.

use std::ops::Range;

use crate::q8::BlockQ8;
use crate::DType;

/// True if `w` has the rows8 kernel (ggml's exact row dot, eight rows at once).
pub fn has_rows8(w: DType) -> bool {
    matches!(w, DType::Q4_1 | DType::Q8_0)
}

/// True if `w` can be repacked into the eight-row layout: the rows8 types and Q4_0, whose
/// layout is the same (its own kernel is [`crate::q4_0x8`]).
pub fn has_layout(w: DType) -> bool {
    has_rows8(w) || w == DType::Q4_0
}

/// Bytes of one group of 8 rows for one block.
pub fn group_block_bytes(w: DType) -> usize {
    8 * w.block_bytes()
}

/// Row groups per Q4_1 super-group.
pub const SUPER_GROUPS: usize = 16;
/// Blocks per strip.
pub const STRIP_BLOCKS: usize = 4;

/// An eight-row matrix: its type, shape, and where its group blocks lie (see the module
/// header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    w: DType,
    gbb: usize,
    blocks: usize,
    groups: usize,
    strips: bool,
}

impl Layout {
    /// A `rows` × `cols` matrix of type `w` (one with the layout: [`has_layout`]; `rows` a
    /// multiple of 8, `cols` of 32), its group blocks strip by strip if `strips` (Q4_1 and
    /// Q8_0), else group by group. Panics otherwise.
    pub fn new(w: DType, rows: usize, cols: usize, strips: bool) -> Self {
        assert!(has_layout(w), "no eight-row layout for {w}");
        assert!(
            rows.is_multiple_of(8) && cols.is_multiple_of(32),
            "rows8 needs rows % 8 == 0"
        );
        assert!(
            !strips || w == DType::Q4_1 || w == DType::Q8_0,
            "only Q4_1 and Q8_0 are laid out in strips"
        );
        Layout {
            w,
            gbb: group_block_bytes(w),
            blocks: cols / 32,
            groups: rows / 8,
            strips,
        }
    }

    /// The weights' type.
    pub fn dtype(&self) -> DType {
        self.w
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        8 * self.groups
    }

    /// Bytes of the matrix (as many as in the plain layout).
    pub fn bytes(&self) -> usize {
        self.groups * self.blocks * self.gbb
    }

    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Strips per row: the last may have fewer than [`STRIP_BLOCKS`] blocks.
    pub fn strips(&self) -> usize {
        self.blocks.div_ceil(STRIP_BLOCKS)
    }

    /// The blocks of strip `k`.
    pub fn strip_blocks(&self, k: usize) -> Range<usize> {
        k * STRIP_BLOCKS..((k + 1) * STRIP_BLOCKS).min(self.blocks)
    }

    /// True if the group blocks lie strip after strip within super-groups (Q4_1), false if
    /// group after group (a group's blocks then follow one another).
    pub fn in_strips(&self) -> bool {
        self.strips
    }

    /// `groups` cut where super-groups end: the pieces a pass in the layout's order takes one
    /// after the other.
    pub fn super_groups(groups: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        let mut g0 = groups.start;
        std::iter::from_fn(move || {
            (g0 < groups.end).then(|| {
                let g1 = ((g0 / SUPER_GROUPS + 1) * SUPER_GROUPS).min(groups.end);
                let piece = g0..g1;
                g0 = g1;
                piece
            })
        })
    }

    /// Byte offset of strip `k` of group `g`: its first block, the others following it.
    #[inline(always)]
    pub fn strip(&self, g: usize, k: usize) -> usize {
        let j = k * STRIP_BLOCKS;
        if !self.strips {
            return (g * self.blocks + j) * self.gbb;
        }
        let (s, i) = (g / SUPER_GROUPS, g % SUPER_GROUPS);
        let in_super = self
            .groups
            .saturating_sub(s * SUPER_GROUPS)
            .min(SUPER_GROUPS);
        let width = self.blocks.saturating_sub(j).min(STRIP_BLOCKS);
        // whole super-groups before, then whole strips of this one, then its groups before
        (s * SUPER_GROUPS * self.blocks + j * in_super + i * width) * self.gbb
    }

    /// Byte offset of block `j` of group `g`.
    #[inline(always)]
    pub fn block(&self, g: usize, j: usize) -> usize {
        self.strip(g, j / STRIP_BLOCKS) + j % STRIP_BLOCKS * self.gbb
    }

    /// Group `g`'s blocks, for a pass that reads them in order.
    #[inline(always)]
    pub fn group(&self, g: usize) -> GroupBlocks {
        let last = self.strips().saturating_sub(1);
        let first = self.strip(g, 0);
        let next = if last > 0 { self.strip(g, 1) } else { first };
        // The whole strips lie a fixed stride apart, only a last partial one elsewhere
        // (`tail` is where its block 0 would be, so it may wrap below zero: `at` adds back).
        let whole = if self.blocks.is_multiple_of(STRIP_BLOCKS) {
            self.blocks
        } else {
            last * STRIP_BLOCKS
        };
        GroupBlocks {
            first,
            stride: next.wrapping_sub(first),
            whole,
            tail: self.strip(g, last).wrapping_sub(whole * self.gbb),
            gbb: self.gbb,
        }
    }
}

/// Where one row group's blocks lie ([`Layout::group`]).
#[derive(Clone, Copy, Debug)]
pub struct GroupBlocks {
    first: usize,
    stride: usize,
    whole: usize,
    tail: usize,
    gbb: usize,
}

impl GroupBlocks {
    /// Byte offset of block `j`.
    #[inline(always)]
    pub fn at(&self, j: usize) -> usize {
        if j < self.whole {
            self.first + j / STRIP_BLOCKS * self.stride + j % STRIP_BLOCKS * self.gbb
        } else {
            self.tail.wrapping_add(j * self.gbb)
        }
    }
}

/// Scale bytes at the start of a group block (d, and m for Q4_1).
fn scale_bytes(w: DType) -> usize {
    if w == DType::Q4_1 {
        32
    } else {
        16
    }
}

/// Quant bytes per block of one row.
fn quant_bytes(w: DType) -> usize {
    if w == DType::Q8_0 {
        32
    } else {
        16
    }
}

/// Repacks the plain rows `src` of the matrix `lay` describes into `out` (as many bytes).
pub fn repack_rows8(lay: Layout, src: &[u8], out: &mut [u8]) {
    let (w, rows, blocks) = (lay.w, lay.rows(), lay.blocks);
    let bb = w.block_bytes();
    let row_len = blocks * bb;
    assert_eq!(src.len(), rows * row_len, "{w} matrix size");
    assert_eq!(out.len(), src.len(), "rows8 output size");
    let group_len = blocks * lay.gbb;
    let fill = |first: usize, groups: usize, base: *mut u8, at: &dyn Fn(usize, usize) -> usize| {
        for g in first..first + groups {
            for j in 0..blocks {
                // SAFETY: group g's 8 source rows lie in `src` (asserted above and below),
                // block j < blocks lies in each row, and `at(g, j)` is a group block inside the
                // destination `base` points into; unaligned reads and writes.
                unsafe {
                    let row = |r: usize| src.as_ptr().add((8 * g + r) * row_len + j * bb);
                    write_group_block(w, row, base.add(at(g, j)));
                }
            }
        }
    };
    if lay.strips {
        // A group's blocks are spread over its super-group: one thread writes them all.
        fill(0, rows / 8, out.as_mut_ptr(), &|g, j| lay.block(g, j));
        return;
    }
    crate::pool::for_each_share(out, group_len, 8, |first, share| {
        let groups = share.len() / group_len;
        assert!(
            src.len() >= (first + groups) * 8 * row_len,
            "source too short"
        );
        let at = |g: usize, j: usize| (g - first) * group_len + j * lay.gbb;
        fill(first, groups, share.as_mut_ptr(), &at);
    });
}

/// Writes the group block of the 8 plain blocks at `row(0..8)` to `o`.
///
/// # Safety
/// Each `row(r)` is readable for one block of `w`, `o` writable for a group block.
#[inline(always)]
unsafe fn write_group_block(w: DType, row: impl Fn(usize) -> *const u8, o: *mut u8) {
    let (bb, sb, qb) = (w.block_bytes(), scale_bytes(w), quant_bytes(w));
    for r in 0..8 {
        std::ptr::copy_nonoverlapping(row(r), o.add(2 * r), 2);
        if w == DType::Q4_1 {
            std::ptr::copy_nonoverlapping(row(r).add(2), o.add(16 + 2 * r), 2);
        }
    }
    // Quant bytes in 16-byte halves: each is a 4x4 transpose of u32 words per 4 rows (chunk c
    // gets word c of every row).
    for half in 0..qb / 16 {
        let q: [*const u8; 8] = std::array::from_fn(|r| row(r).add(bb - qb + 16 * half));
        transpose_words(q, o.add(sb + 128 * half));
    }
}

/// Writes word `c` (4 bytes) of each of the 8 rows' 16 bytes at `q[r]` to
/// `out + 32 c + 4 r`, for c in 0..4.
///
/// # Safety
/// `q[r]..q[r]+16` readable, `out..out+128` writable.
#[inline(always)]
unsafe fn transpose_words(q: [*const u8; 8], out: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SSE2 is part of x86_64.
        for quad in 0..2 {
            let l = |r: usize| _mm_loadu_si128(q[4 * quad + r] as *const __m128i);
            let (a, b, c, d) = (l(0), l(1), l(2), l(3));
            let ab_lo = _mm_unpacklo_epi32(a, b);
            let ab_hi = _mm_unpackhi_epi32(a, b);
            let cd_lo = _mm_unpacklo_epi32(c, d);
            let cd_hi = _mm_unpackhi_epi32(c, d);
            let words = [
                _mm_unpacklo_epi64(ab_lo, cd_lo),
                _mm_unpackhi_epi64(ab_lo, cd_lo),
                _mm_unpacklo_epi64(ab_hi, cd_hi),
                _mm_unpackhi_epi64(ab_hi, cd_hi),
            ];
            for (k, v) in words.iter().enumerate() {
                _mm_storeu_si128(out.add(32 * k + 16 * quad) as *mut __m128i, *v);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (r, p) in q.iter().enumerate() {
        for c in 0..4 {
            let v = std::ptr::read_unaligned(p.add(4 * c) as *const u32);
            std::ptr::write_unaligned(out.add(32 * c + 4 * r) as *mut u32, v);
        }
    }
}

/// Row `r` of the rows8 matrix `packed` (laid out as `lay`) back in the plain block layout
/// (`out`: one row's bytes).
pub fn unpack_row(lay: Layout, packed: &[u8], r: usize, out: &mut [u8]) {
    let w = lay.w;
    let (bb, gbb, sb, qb) = (w.block_bytes(), lay.gbb, scale_bytes(w), quant_bytes(w));
    assert_eq!(packed.len(), lay.bytes(), "{w} eight-row matrix size");
    assert!(r < lay.rows(), "row {r} of {}", lay.rows());
    let (g, ri) = (r / 8, r % 8);
    for (j, b) in out.chunks_exact_mut(bb).enumerate().take(lay.blocks) {
        let o = &packed[lay.block(g, j)..][..gbb];
        b[..2].copy_from_slice(&o[2 * ri..2 * ri + 2]);
        if w == DType::Q4_1 {
            b[2..4].copy_from_slice(&o[16 + 2 * ri..18 + 2 * ri]);
        }
        for c in 0..qb / 4 {
            b[bb - qb + 4 * c..bb - qb + 4 * c + 4]
                .copy_from_slice(&o[sb + 32 * c + 4 * ri..sb + 32 * c + 4 * ri + 4]);
        }
    }
}

/// The shape checks of a product over an eight-row matrix (`rows8` or `q4_0x8`): `None` when
/// there is nothing to compute, else the blocks per row. Panics on inconsistent shapes.
pub(crate) fn check_product(
    w: DType,
    packed: &[u8],
    rows: usize,
    xq: &[BlockQ8],
    ntok: usize,
) -> Option<usize> {
    if ntok == 0 || rows == 0 {
        return None;
    }
    let blocks = xq.len() / ntok;
    assert_eq!(xq.len(), ntok * blocks, "activations are ntok whole rows");
    assert_eq!(rows % 8, 0, "eight-row matrices have rows in groups of 8");
    assert_eq!(
        packed.len(),
        rows * blocks * w.block_bytes(),
        "{w} eight-row matrix and activations differ in length"
    );
    Some(blocks)
}

/// The shape checks of a product over the rows `rows` of the whole rows8 matrix `packed`
/// (laid out as `lay`): false when there is nothing to compute (a matrix without columns
/// still writes its zero products). Panics on inconsistent shapes.
pub(crate) fn check_range(
    lay: Layout,
    packed: &[u8],
    rows: &Range<usize>,
    xq: &[BlockQ8],
    ntok: usize,
) -> bool {
    assert!(has_rows8(lay.w), "no rows8 kernel for {}", lay.w);
    assert_eq!(packed.len(), lay.bytes(), "{} eight-row matrix size", lay.w);
    assert!(
        rows.start.is_multiple_of(8) && rows.end.is_multiple_of(8) && rows.end <= lay.rows(),
        "rows {rows:?} of a {}-row eight-row matrix",
        lay.rows()
    );
    assert_eq!(
        xq.len(),
        ntok * lay.blocks,
        "activations are ntok rows as wide as the matrix"
    );
    ntok > 0 && !rows.is_empty()
}

/// Panics unless `out` holds `out[t * out_stride + r]` for every token and row.
pub(crate) fn check_out(out: &[f32], rows: usize, ntok: usize, out_stride: usize) {
    if ntok > 0 && rows > 0 {
        assert!(
            out.len() >= (ntok - 1) * out_stride + rows,
            "output too short"
        );
    }
}

/// Writes `tile` ([ntok][rows]) to `out[t * out_stride + r]`.
///
/// # Safety
/// As for [`gemm_rows8_raw`]'s `out`.
pub(crate) unsafe fn scatter(tile: &[f32], rows: usize, out: *mut f32, out_stride: usize) {
    for (t, v) in tile.chunks_exact(rows).enumerate() {
        std::ptr::copy_nonoverlapping(v.as_ptr(), out.add(t * out_stride), rows);
    }
}

/// `out[t * out_stride + r] = dot_q8(w, row r, token t)` for every row of the matrix `packed`
/// (laid out as `lay`) and `ntok` tokens (`xq`: ntok rows of blocks).
pub fn gemm_rows8(
    lay: Layout,
    packed: &[u8],
    xq: &[BlockQ8],
    ntok: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    check_out(out, lay.rows(), ntok, out_stride);
    // SAFETY: `out` holds every element written (checked above) and is borrowed mutably.
    unsafe {
        gemm_rows8_raw(
            lay,
            packed,
            0..lay.rows(),
            xq,
            ntok,
            out.as_mut_ptr(),
            out_stride,
        )
    }
}

/// [`gemm_rows8`] for the rows `rows` (multiples of 8) of the matrix, through a raw output
/// pointer, for callers whose threads write interleaved parts of one output (row ranges of
/// every token's row).
///
/// # Safety
/// `out.add(t * out_stride + r - rows.start)` for `t < ntok`, `r` in `rows` must be valid for
/// writes, and no one else may access those elements during the call.
pub unsafe fn gemm_rows8_raw(
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
    if crate::quant::avx2_available() {
        let groups = rows.start / 8..rows.end / 8;
        // SAFETY: AVX2/FMA/F16C detected; packed, the range and xq checked above, out by the
        // caller.
        unsafe { avx2::gemm(packed.as_ptr(), lay, groups, xq, ntok, out, out_stride) };
        return;
    }
    let (w, blocks) = (lay.w, lay.blocks);
    let mut row = vec![0u8; blocks * w.block_bytes()];
    let mut tile = vec![0.0f32; ntok * rows.len()];
    for (i, r) in rows.clone().enumerate() {
        unpack_row(lay, packed, r, &mut row);
        for t in 0..ntok {
            tile[t * rows.len() + i] = crate::dot_q8(w, &row, &xq[t * blocks..(t + 1) * blocks]);
        }
    }
    scatter(&tile, rows.len(), out, out_stride);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use std::ops::Range;

    use crate::q8::BlockQ8;
    use crate::rows8::{Layout, SUPER_GROUPS};
    use crate::DType;

    const Q4_1: u8 = 1;
    const Q8_0: u8 = 2;

    /// # Safety
    /// AVX2/FMA/F16C; lengths as checked by `gemm_rows8`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gemm(
        packed: *const u8,
        lay: Layout,
        groups: Range<usize>,
        xq: &[BlockQ8],
        ntok: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        match lay.dtype() {
            DType::Q4_1 => run::<Q4_1>(packed, lay, groups, xq, ntok, out, out_stride),
            _ => run::<Q8_0>(packed, lay, groups, xq, ntok, out, out_stride),
        }
    }

    const fn gbb(k: u8) -> usize {
        if k == Q4_1 {
            160
        } else {
            272
        }
    }

    #[inline(always)]
    unsafe fn run<const K: u8>(
        packed: *const u8,
        lay: Layout,
        groups: Range<usize>,
        xq: &[BlockQ8],
        ntok: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let blocks = lay.blocks();
        if ntok == 1 && lay.in_strips() {
            // Decoding streams the weights once: read them in the layout's order, a
            // super-group's groups strip by strip, their sums kept between strips.
            for sg in Layout::super_groups(groups.clone()) {
                let mut st = [State::default(); SUPER_GROUPS];
                for k in 0..lay.strips() {
                    let js = lay.strip_blocks(k);
                    for (s, g) in st.iter_mut().zip(sg.clone()) {
                        let ws = packed.add(lay.strip(g, k));
                        let at = |j: usize| ws.add((j - js.start) * gbb(K));
                        blocks_into::<K, true>(at, js.clone(), xq, s);
                    }
                }
                for (s, g) in st.iter().zip(sg.clone()) {
                    _mm256_storeu_ps(out.add(8 * (g - groups.start)), s.finish::<K>());
                }
            }
            return;
        }
        // One token per pass over the group's weights (which stay in L1 across tokens): with
        // two, the 16 accumulators spill, which measured slower at 8 and at 128 tokens.
        for g in groups.clone() {
            let o = out.add(8 * (g - groups.start));
            if lay.in_strips() {
                let gb = lay.group(g);
                group_pass::<K>(|j| packed.add(gb.at(j)), xq, ntok, blocks, o, out_stride);
            } else {
                let wg = packed.add(lay.block(g, 0));
                group_pass::<K>(|j| wg.add(j * gbb(K)), xq, ntok, blocks, o, out_stride);
            }
        }
    }

    /// One row group (block `j` at `at(j)`) × `ntok` tokens of `xq`, into `out[t * out_stride]`.
    #[inline(always)]
    unsafe fn group_pass<const K: u8>(
        at: impl Fn(usize) -> *const u8 + Copy,
        xq: &[BlockQ8],
        ntok: usize,
        blocks: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        for t in 0..ntok {
            let (mut st, xt) = (State::default(), &xq[t * blocks..(t + 1) * blocks]);
            // decoding streams the weights once: prefetch them
            if ntok == 1 {
                blocks_into::<K, true>(at, 0..blocks, xt, &mut st);
            } else {
                blocks_into::<K, false>(at, 0..blocks, xt, &mut st);
            }
            _mm256_storeu_ps(out.add(t * out_stride), st.finish::<K>());
        }
    }

    /// One row group's running sums for one token: ggml's 8 lane accumulators (lane = row in
    /// each) and, for Q4_1, the sum of `m_w s_x`.
    #[derive(Clone, Copy)]
    struct State {
        acc: [__m256; 8],
        summs: __m256,
    }

    impl Default for State {
        fn default() -> Self {
            // SAFETY: all-zero bits are a valid __m256 (and 0.0 in every lane).
            unsafe { std::mem::zeroed() }
        }
    }

    impl State {
        /// ggml's horizontal sum lane-wise: (lane i + lane i+4), then (0+2, 1+3), then 0 + 1;
        /// then Q4_1's `Σ m_w s_x`.
        #[inline(always)]
        unsafe fn finish<const K: u8>(&self) -> __m256 {
            let a = &self.acc;
            let s: [__m256; 4] = std::array::from_fn(|i| _mm256_add_ps(a[i], a[i + 4]));
            let r = _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3]));
            if K == Q4_1 {
                _mm256_add_ps(r, self.summs)
            } else {
                r
            }
        }
    }

    /// The blocks `js` of one row group (8 rows, lane = row; block `j` at `at(j)`) × one
    /// token's blocks `xt`, into `st`.
    #[inline(always)]
    unsafe fn blocks_into<const K: u8, const PF: bool>(
        at: impl Fn(usize) -> *const u8,
        js: Range<usize>,
        xt: &[BlockQ8],
        st: &mut State,
    ) {
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let a = &mut st.acc;
        for j in js {
            let o = at(j);
            if PF {
                crate::quant::prefetch_ahead(o, gbb(K));
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
            let x = &xt[j];
            let y = x.qs.as_ptr() as *const i32;
            let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
            if K == Q4_1 {
                for c in 0..4 {
                    let wv = _mm256_loadu_si256(o.add(32 + 32 * c) as *const __m256i);
                    let lo = _mm256_and_si256(wv, low);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
                    let ylo = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                    let yhi = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(4 + c)));
                    let l = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), ones);
                    let h = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), ones);
                    a[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(l), a[c]);
                    a[4 + c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(h), a[4 + c]);
                }
                let m = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
                st.summs = _mm256_add_ps(st.summs, _mm256_mul_ps(m, _mm256_set1_ps(x.s)));
            } else {
                for (c, ac) in a.iter_mut().enumerate() {
                    let wv = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                    let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                    let p =
                        _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(yv, wv));
                    let l = _mm256_madd_epi16(p, ones);
                    *ac = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(l), *ac);
                }
            }
        }
    }
}
