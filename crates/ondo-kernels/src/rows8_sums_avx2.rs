//! AVX2 kernels of [`crate::rows8_sums`]: eight rows (lane = row) against one token while
//! decoding; against tiles of up to eight tokens for batches, broadcasting the activations in
//! the loop (the direct pass: prompts, and Q8_0 always) or, for Q4_1 decoding batches, reading
//! them already laid out broadcast ([`crate::q8_broadcast`]).
//!
//! Per (row group, token, block) every path runs the same instructions on the same values:
//! the block's integer sum (i16 pair sums added as i16 for Q4_1, widened to i32 per chunk for
//! Q8_0), converted once, `acc = fma(d_w * d_x, sum, acc)`, then Q4_1's `acc = fma(m_w, s_x,
//! acc)`, blocks in order. So a token's result does not depend on the path or the batch.
//!
//! The Q4_1 broadcast pass keeps a block's unpacked weights in registers for the tile's tokens
//! and reads the activations as memory operands (no broadcast per row group). Its
//! accumulators live in a small array: a strip of blocks (the tile's activations for it stay in
//! L1) is applied to the row groups of a super-group before the next strip, which is the order
//! of Q4_1's layout ([`crate::rows8`]), so the weights stream in address order.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::q8::BlockQ8;
use crate::q8_broadcast::{BroadcastPair, BroadcastRows, PAIRS, TILE};
use crate::rows8::{Layout, SUPER_GROUPS};
use crate::rows8_sums::{gbb, Q4_1, Q8_0};
use crate::DType;

/// `out[t * out_stride + 8 * (g - groups.start) + lane]` for the row groups `groups` of the
/// matrix at `packed` (laid out as `lay`) and `ntok` tokens of `xq`.
///
/// # Safety
/// AVX2/FMA/F16C; `packed` holds the whole matrix `lay` describes, `groups` lies in it, `xq`
/// holds `ntok * lay.blocks()` blocks, and `out` every element written, which no one else
/// accesses meanwhile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xq: &[BlockQ8],
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let q41 = lay.dtype() == DType::Q4_1;
    if ntok == 1 && lay.in_strips() {
        // in the layout's order: decoding streams the weights once
        for sg in Layout::super_groups(groups.clone()) {
            let mut acc = [_mm256_setzero_ps(); SUPER_GROUPS];
            for k in 0..lay.strips() {
                for (a, g) in acc.iter_mut().zip(sg.clone()) {
                    let (ws, js) = (packed.add(lay.strip(g, k)), lay.strip_blocks(k));
                    *a = if q41 {
                        one_token::<Q4_1>(ws, js, xq, *a)
                    } else {
                        one_token::<Q8_0>(ws, js, xq, *a)
                    };
                }
            }
            for (a, g) in acc.iter().zip(sg.clone()) {
                _mm256_storeu_ps(out.add(8 * (g - groups.start)), *a);
            }
        }
        return;
    }
    let all = 0..lay.blocks();
    for g in groups.clone() {
        let o = out.add(8 * (g - groups.start));
        match (q41, ntok) {
            (true, 1) => {
                let a = one_token::<Q4_1>(packed.add(lay.block(g, 0)), all.clone(), xq, zero());
                _mm256_storeu_ps(o, a);
            }
            (false, 1) => {
                let a = one_token::<Q8_0>(packed.add(lay.block(g, 0)), all.clone(), xq, zero());
                _mm256_storeu_ps(o, a);
            }
            (true, _) => direct::<Q4_1>(packed, lay, g, xq, ntok, o, out_stride),
            (false, _) => direct::<Q8_0>(packed, lay, g, xq, ntok, o, out_stride),
        }
    }
}

/// [`gemm`] with the activations already in broadcast layout.
///
/// Only Q4_1 reads them: Q8_0's pass spends its time on the sign operations and runs faster
/// broadcasting from `xq` in the loop (measured).
///
/// # Safety
/// As [`gemm`], with `xb` a valid handle to `ntok` rows of `lay.blocks()` blocks filled from
/// `xq`, which no one writes meanwhile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm_prepared(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xq: &[BlockQ8],
    xb: BroadcastRows,
    out: *mut f32,
    out_stride: usize,
) {
    let ntok = xb.ntok();
    if lay.dtype() != DType::Q4_1 {
        gemm(packed, lay, groups, xq, ntok, out, out_stride);
        return;
    }
    for tile in 0..ntok.div_ceil(TILE) {
        let t0 = tile * TILE;
        let n = (ntok - t0).min(TILE);
        let e = xb.tile(tile);
        let o = out.add(t0 * out_stride);
        tile_pass(packed, lay, groups.clone(), e, n, o, out_stride);
    }
}

#[inline(always)]
unsafe fn zero() -> __m256 {
    _mm256_setzero_ps()
}

/// 8 rows (lane = row) × one token: the blocks `js` of a row group, which follow one another
/// from `ws` on, added to `acc`; prefetching the weights (decoding streams them once).
#[inline(always)]
unsafe fn one_token<const K: u8>(
    ws: *const u8,
    js: Range<usize>,
    xq: &[BlockQ8],
    mut acc: __m256,
) -> __m256 {
    let ones = _mm256_set1_epi16(1);
    let low = _mm256_set1_epi8(0x0F);
    for (jj, x) in xq[js].iter().enumerate() {
        let o = ws.add(jj * gbb(K));
        crate::quant::prefetch_ahead(o, gbb(K));
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
        let y = x.qs.as_ptr() as *const i32;
        let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
        if K == Q4_1 {
            let mw = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
            // |each maddubs pair| ≤ 2·15·128, eight of them fit in i16
            let mut s = _mm256_setzero_si256();
            for c in 0..8 {
                let wv = _mm256_loadu_si256(o.add(32 + 32 * (c % 4)) as *const __m256i);
                let q = if c < 4 {
                    _mm256_and_si256(wv, low)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(wv, 4), low)
                };
                let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(q, yv));
            }
            let sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, ones));
            acc = _mm256_fmadd_ps(d, sum, acc);
            acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s), acc);
        } else {
            // a maddubs pair reaches 2·128·127: widen each chunk to i32 before adding
            let mut s = _mm256_setzero_si256();
            for c in 0..8 {
                let q = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                let p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yv, q));
                s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
            }
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
        }
    }
    acc
}

/// The row groups `groups` × the `n` (≤ [`TILE`]) tokens of one broadcast tile `xb`, Q4_1:
/// super-group by super-group, strip by strip (the layout's order, see [`crate::rows8`]).
#[inline(always)]
unsafe fn tile_pass(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xb: *const BroadcastPair,
    n: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // Left uninitialized: zeroing all of it would cost a 4 KB memset per call.
    let mut acc = [[MaybeUninit::<__m256>::uninit(); TILE]; SUPER_GROUPS];
    for sg in Layout::super_groups(groups.clone()) {
        let (g0, gn) = (sg.start, sg.len());
        for a in &mut acc[..gn] {
            for v in &mut a[..n] {
                v.write(_mm256_setzero_ps());
            }
        }
        for k in 0..lay.strips() {
            let js = lay.strip_blocks(k);
            for (gi, a) in acc[..gn].iter_mut().enumerate() {
                let ws = packed.add(lay.strip(g0 + gi, k));
                strip(ws, js.clone(), xb, n, a.as_mut_ptr() as *mut __m256);
            }
        }
        for (gi, a) in acc[..gn].iter().enumerate() {
            let o = out.add(8 * (g0 + gi - groups.start));
            for (k, v) in a[..n].iter().enumerate() {
                _mm256_storeu_ps(o.add(k * out_stride), v.assume_init());
            }
        }
    }
}

/// Q4_1 blocks `js` (one strip, at `ws`) of one row group into the accumulators of the
/// tile's `n` tokens (`acc[..n]`, initialized).
#[inline(always)]
unsafe fn strip(
    ws: *const u8,
    js: Range<usize>,
    xb: *const BroadcastPair,
    n: usize,
    acc: *mut __m256,
) {
    let low = _mm256_set1_epi8(0x0F);
    for (jj, j) in js.enumerate() {
        let o = ws.add(jj * gbb(Q4_1));
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
        let mw = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
        let xj = xb.add(j * PAIRS);
        let mut q = [_mm256_setzero_si256(); 8];
        for c in 0..4 {
            let wv = _mm256_loadu_si256(o.add(32 + 32 * c) as *const __m256i);
            q[c] = _mm256_and_si256(wv, low);
            q[4 + c] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
        }
        // a pair of tokens at a time: two independent chains for the scheduler
        let mut k = 0;
        while k + 2 <= n {
            let x = xj.add(k / 2);
            let a0 = q4_1_token(&q, dw, mw, x, 0, *acc.add(k));
            let a1 = q4_1_token(&q, dw, mw, x, 1, *acc.add(k + 1));
            (*acc.add(k), *acc.add(k + 1)) = (a0, a1);
            k += 2;
        }
        if k < n {
            *acc.add(k) = q4_1_token(&q, dw, mw, xj.add(k / 2), 0, *acc.add(k));
        }
    }
}

/// One row group (`g`, lane = row) × `ntok` tokens of `xq`, broadcasting the activations in
/// the loop: a block's weights are unpacked once per tile of [`TILE`] tokens, whose
/// accumulators live in a small array. Writes `out[t * out_stride + lane]`.
#[inline(always)]
unsafe fn direct<const K: u8>(
    p: *const u8,
    lay: Layout,
    g: usize,
    xq: &[BlockQ8],
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let ones = _mm256_set1_epi16(1);
    let low = _mm256_set1_epi8(0x0F);
    let blocks = lay.blocks();
    let mut t0 = 0;
    while t0 < ntok {
        let n = (ntok - t0).min(TILE);
        let mut acc = [_mm256_setzero_ps(); TILE];
        let x0 = xq[t0 * blocks..(t0 + n) * blocks].as_ptr();
        let gb = lay.group(g);
        for j in 0..blocks {
            let o = if lay.in_strips() {
                p.add(gb.at(j))
            } else {
                p.add(lay.block(g, 0) + j * gbb(K))
            };
            crate::quant::prefetch_ahead(o, gbb(K));
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(o as *const __m128i));
            if K == Q4_1 {
                let mw = _mm256_cvtph_ps(_mm_loadu_si128(o.add(16) as *const __m128i));
                let mut q = [_mm256_setzero_si256(); 8];
                for c in 0..4 {
                    let wv = _mm256_loadu_si256(o.add(32 + 32 * c) as *const __m256i);
                    q[c] = _mm256_and_si256(wv, low);
                    q[4 + c] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low);
                }
                for (k, a) in acc[..n].iter_mut().enumerate() {
                    let x = &*x0.add(k * blocks + j);
                    let y = x.qs.as_ptr() as *const i32;
                    // |each maddubs pair| ≤ 2·15·128, eight of them fit in i16
                    let mut s = _mm256_setzero_si256();
                    for (c, qc) in q.iter().enumerate() {
                        let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*qc, yv));
                    }
                    let sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, ones));
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                    *a = _mm256_fmadd_ps(d, sum, *a);
                    *a = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s), *a);
                }
            } else {
                let mut qa = [_mm256_setzero_si256(); 8];
                for (c, a) in qa.iter_mut().enumerate() {
                    let q = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                    *a = _mm256_sign_epi8(q, q);
                }
                for (k, a) in acc[..n].iter_mut().enumerate() {
                    let x = &*x0.add(k * blocks + j);
                    let y = x.qs.as_ptr() as *const i32;
                    // a maddubs pair reaches 2·128·127: widen each chunk to i32 before adding
                    let mut s = _mm256_setzero_si256();
                    for (c, qc) in qa.iter().enumerate() {
                        let q = _mm256_loadu_si256(o.add(16 + 32 * c) as *const __m256i);
                        let yv = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                        let p = _mm256_maddubs_epi16(*qc, _mm256_sign_epi8(yv, q));
                        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                    }
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d));
                    *a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *a);
                }
            }
        }
        for (k, a) in acc[..n].iter().enumerate() {
            _mm256_storeu_ps(out.add((t0 + k) * out_stride), *a);
        }
        t0 += n;
    }
}

/// Chunk `c` of token `h`'s half of a broadcast pair.
#[inline(always)]
unsafe fn chunk(x: *const BroadcastPair, h: usize, c: usize) -> *const __m256i {
    (*x).y[c].as_ptr().add(8 * h) as *const __m256i
}

/// One Q4_1 block (unpacked nibbles `q`, scales `dw`, mins `mw`) × the broadcast block of
/// token `h` of the pair `x`, added to the token's accumulator `a`.
#[inline(always)]
unsafe fn q4_1_token(
    q: &[__m256i; 8],
    dw: __m256,
    mw: __m256,
    x: *const BroadcastPair,
    h: usize,
    a: __m256,
) -> __m256 {
    // |each maddubs pair| ≤ 2·15·128, eight of them fit in i16
    let mut s = _mm256_maddubs_epi16(q[0], _mm256_load_si256(chunk(x, h, 0)));
    for (c, qc) in q.iter().enumerate().skip(1) {
        s = _mm256_add_epi16(
            s,
            _mm256_maddubs_epi16(*qc, _mm256_load_si256(chunk(x, h, c))),
        );
    }
    let sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1)));
    let d = _mm256_mul_ps(dw, _mm256_load_ps((*x).d.as_ptr().add(8 * h)));
    let a = _mm256_fmadd_ps(d, sum, a);
    _mm256_fmadd_ps(mw, _mm256_load_ps((*x).s.as_ptr().add(8 * h)), a)
}
