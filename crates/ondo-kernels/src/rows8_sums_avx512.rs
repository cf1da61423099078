//! AVX-512 VNNI kernels of [`crate::rows8_sums`] for batches laid out broadcast
//! ([`crate::q8_broadcast`]): a 64-byte vector holds the eight rows of a group (lane = row) for
//! the two tokens of a pair, and `vpdpbusd` adds four unsigned × signed byte products into each
//! i32 lane in one instruction (AVX2 needs `vpmaddubsw`, an i16 add and a final `vpmaddwd`).
//!
//! Q4_1 multiplies its nibbles (unsigned) by the activations (signed), as AVX2 does. Q8_0 has
//! signed weights: they are offset to unsigned bytes (`w + 128`, a flip of the sign bit) and
//! the sum starts from the pair's `z = -128 Σ q_x`, which leaves exactly `Σ w q_x`.
//!
//! Per (row, token, block) the integer sum is the same exact integer as the AVX2 kernels'
//! ([`crate::rows8_sums_avx2`]), followed by the same f32 operations in the same order, so a
//! token's results do not depend on the kernel or on the batch: decoding one token (AVX2) and
//! eight (here) give it the same bits.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::q8_broadcast::{BroadcastPair, BroadcastRows, PAIRS, TILE};
use crate::rows8::{Layout, SUPER_GROUPS};
use crate::DType;

const Q4_1: u8 = 1;
const Q8_0: u8 = 2;

const fn gbb(k: u8) -> usize {
    if k == Q4_1 {
        160
    } else {
        272
    }
}

/// `out[t * out_stride + 8 * (g - groups.start) + lane]` for the row groups `groups` of the
/// Q4_1 or Q8_0 matrix at `packed` (laid out as `lay`) and the `xb.ntok()` tokens of `xb`.
///
/// # Safety
/// AVX-512 F/BW/VNNI and AVX2/FMA/F16C ([`crate::quant::avx512_vnni_available`]); `packed` holds the whole matrix `lay`
/// describes, `groups` lies in it, `xb` is a valid handle to filled rows of `lay.blocks()`
/// blocks that no one writes meanwhile, and `out` holds every element written, which no one
/// else accesses meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn gemm_prepared(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xb: BroadcastRows,
    out: *mut f32,
    out_stride: usize,
) {
    let ntok = xb.ntok();
    for tile in 0..ntok.div_ceil(TILE) {
        let t0 = tile * TILE;
        let n = (ntok - t0).min(TILE);
        let (e, o) = (xb.tile(tile), out.add(t0 * out_stride));
        match (lay.dtype(), lay.in_strips()) {
            (DType::Q4_1, true) => strips_pass(packed, lay, groups.clone(), e, n, o, out_stride),
            (DType::Q4_1, false) => {
                groups_pass::<Q4_1>(packed, lay, groups.clone(), e, n, o, out_stride)
            }
            _ => groups_pass::<Q8_0>(packed, lay, groups.clone(), e, n, o, out_stride),
        }
    }
}

/// Q4_1 in strips: super-group by super-group, strip by strip (the layout's order, see
/// [`crate::rows8`]), the `n` tokens of one tile `xb`.
#[inline(always)]
unsafe fn strips_pass(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xb: *const BroadcastPair,
    n: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let pairs = n.div_ceil(2);
    // Left uninitialized: zeroing all of it would cost a 4 KB memset per call.
    let mut acc = [[MaybeUninit::<__m512>::uninit(); PAIRS]; SUPER_GROUPS];
    for sg in Layout::super_groups(groups.clone()) {
        let (g0, gn) = (sg.start, sg.len());
        for a in &mut acc[..gn] {
            for v in &mut a[..pairs] {
                v.write(_mm512_setzero_ps());
            }
        }
        for k in 0..lay.strips() {
            for (gi, a) in acc[..gn].iter_mut().enumerate() {
                let ws = packed.add(lay.strip(g0 + gi, k));
                let a = a.as_mut_ptr() as *mut __m512;
                for (jj, j) in lay.strip_blocks(k).enumerate() {
                    let o = ws.add(jj * gbb(Q4_1));
                    crate::quant::prefetch_ahead(o, gbb(Q4_1));
                    block::<Q4_1>(o, xb.add(j * PAIRS), pairs, a);
                }
            }
        }
        for (gi, a) in acc[..gn].iter().enumerate() {
            let o = out.add(8 * (g0 + gi - groups.start));
            let a = a.as_ptr() as *const __m512;
            store(a, n, o, out_stride);
        }
    }
}

/// Group by group, each group's blocks in order (they follow one another in a group-major
/// layout, streamed with prefetches as in decoding), the `n` tokens of one tile `xb`.
#[inline(always)]
unsafe fn groups_pass<const K: u8>(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xb: *const BroadcastPair,
    n: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let pairs = n.div_ceil(2);
    for g in groups.clone() {
        let mut acc = [_mm512_setzero_ps(); PAIRS];
        let gb = lay.group(g);
        for j in 0..lay.blocks() {
            let o = packed.add(gb.at(j));
            crate::quant::prefetch_ahead(o, gbb(K));
            block::<K>(o, xb.add(j * PAIRS), pairs, acc.as_mut_ptr());
        }
        store(acc.as_ptr(), n, out.add(8 * (g - groups.start)), out_stride);
    }
}

/// One group block at `o` × block `j` of the tile's `pairs` pairs (`x`, their entries for
/// that block), added to the pairs' accumulators `acc[..pairs]`.
#[inline(always)]
unsafe fn block<const K: u8>(
    o: *const u8,
    x: *const BroadcastPair,
    pairs: usize,
    acc: *mut __m512,
) {
    let halves = |at: *const u8| {
        _mm512_cvtph_ps(_mm256_broadcastsi128_si256(_mm_loadu_si128(
            at as *const __m128i,
        )))
    };
    let both = |at: *const u8| _mm512_broadcast_i64x4(_mm256_loadu_si256(at as *const __m256i));
    let dw = halves(o);
    let mut q = [_mm512_setzero_si512(); 8];
    let mut mw = _mm512_setzero_ps();
    if K == Q4_1 {
        mw = halves(o.add(16));
        let low = _mm512_set1_epi8(0x0F);
        for c in 0..4 {
            let wv = both(o.add(32 + 32 * c));
            q[c] = _mm512_and_si512(wv, low);
            q[4 + c] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low);
        }
    } else {
        let flip = _mm512_set1_epi8(-128);
        for (c, qc) in q.iter_mut().enumerate() {
            *qc = _mm512_xor_si512(both(o.add(16 + 32 * c)), flip);
        }
    }
    for p in 0..pairs {
        let e = x.add(p);
        let y = |c: usize| _mm512_load_si512((*e).y[c].as_ptr() as *const __m512i);
        // two chains of four: the integer sum is exact in any order
        let (mut s0, mut s1) = if K == Q4_1 {
            (_mm512_setzero_si512(), _mm512_setzero_si512())
        } else {
            (
                _mm512_load_si512((*e).z.as_ptr() as *const __m512i),
                _mm512_setzero_si512(),
            )
        };
        for c in (0..8).step_by(2) {
            s0 = _mm512_dpbusd_epi32(s0, q[c], y(c));
            s1 = _mm512_dpbusd_epi32(s1, q[c + 1], y(c + 1));
        }
        let sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
        let d = _mm512_mul_ps(dw, _mm512_load_ps((*e).d.as_ptr()));
        let mut a = _mm512_fmadd_ps(d, sum, *acc.add(p));
        if K == Q4_1 {
            a = _mm512_fmadd_ps(mw, _mm512_load_ps((*e).s.as_ptr()), a);
        }
        *acc.add(p) = a;
    }
}

/// The accumulators of the `n` tokens (pairs `acc[..n.div_ceil(2)]`, token `2p + h` in half
/// `h` of pair `p`) to `out[t * out_stride..][..8]`.
#[inline(always)]
unsafe fn store(acc: *const __m512, n: usize, out: *mut f32, out_stride: usize) {
    for t in 0..n {
        let a = *acc.add(t / 2);
        let half = if t % 2 == 0 {
            _mm512_castps512_ps256(a)
        } else {
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))
        };
        _mm256_storeu_ps(out.add(t * out_stride), half);
    }
}
