//! AVX-512 VNNI kernels of [`crate::rows8_sums`] for batches: `vpdpbusd` adds four
//! unsigned × signed byte products into each i32 lane in one instruction (AVX2 needs
//! `vpmaddubsw`, an i16 add and a final `vpmaddwd`).
//!
//! - Q4_1 ([`gemm_xq`]): a 64-byte vector holds 16 rows (two row groups) for one token, and
//!   each 4-byte chunk of activations is broadcast from the quantized rows themselves, so the
//!   batch needs no other layout. Its nibbles (unsigned) multiply the activations (signed).
//! - Q8_0 ([`gemm_prepared`], the output head) reads activations laid out broadcast
//!   ([`crate::q8_broadcast`]): a vector holds the eight rows of a group (lane = row) for the
//!   two tokens of a pair. Its signed weights are offset to unsigned bytes (`w + 128`, a flip
//!   of the sign bit) and each sum starts from the pair's `z = -128 Σ q_x`, which leaves
//!   exactly `Σ w q_x`.
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
use crate::rows8_sums::{gbb, Q4_1, Q8_0};
use crate::DType;

/// How far ahead (bytes) the passes ask for the weights they stream. Twice decoding's
/// distance: a block takes longer here. Scratch microbenchmark, 8 tokens, two threads each
/// streaming its range: Q4_1 438-460 GMAC/s at 4 KB, 483-508 at 8 KB, 460-498 at 16 KB; the
/// Q8_0 head 221-231, 277-281 and 276-277.
const PREFETCH_AHEAD: usize = 8192;

/// Prefetches the `len` bytes lying [`PREFETCH_AHEAD`] bytes after `p`, non-temporal: a batch
/// reads each weight once per step, and lines fetched so pollute the outer caches less (`ondo
/// bench -p 12 -n 128 --parallel 8`, alternating with `prefetcht0`, means of 8 to 12 runs:
/// with the vCPUs on one CCX 2163 against 2079 and 2205 against 2112 tok/s, on two CCDs 1731
/// against 1704).
#[inline(always)]
fn prefetch_ahead(p: *const u8, len: usize) {
    let p = p.wrapping_add(PREFETCH_AHEAD);
    let mut o = 0;
    while o < len {
        // SAFETY: a prefetch is a hint; it does not access memory architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_NTA>(p.wrapping_add(o) as *const i8) };
        o += 64;
    }
}

/// `out[t * out_stride + 8 * (g - groups.start) + lane]` for the row groups `groups` of the
/// Q8_0 matrix at `packed` (laid out as `lay`) and the `xb.ntok()` tokens of `xb`.
///
/// # Safety
/// AVX-512 F/BW/VNNI and AVX2/FMA/F16C ([`crate::quant::avx512_vnni_available`]); `packed`
/// holds the whole matrix `lay` describes, `groups` lies in it, `xb` is a valid handle to
/// filled rows of `lay.blocks()` blocks that no one writes meanwhile, and `out` holds every
/// element written, which no one else accesses meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn gemm_prepared(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xb: BroadcastRows,
    out: *mut f32,
    out_stride: usize,
) {
    debug_assert_eq!(lay.dtype(), DType::Q8_0, "Q4_1 takes gemm_xq");
    let ntok = xb.ntok();
    for tile in 0..ntok.div_ceil(TILE) {
        let t0 = tile * TILE;
        let n = (ntok - t0).min(TILE);
        let (e, o) = (xb.tile(tile), out.add(t0 * out_stride));
        strips_pass(packed, lay, groups.clone(), e, n, o, out_stride)
    }
}

/// Super-group by super-group, strip by strip (the order of a layout in strips, see
/// [`crate::rows8`]; the server loads the head so, and a layout group by group is read in the
/// same order), the `n` tokens of one tile `xb`.
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
        let a = acc.as_mut_ptr() as *mut __m512;
        for k in 0..lay.strips() {
            // two row groups at a time: each activation vector loaded feeds both
            let mut gi = 0;
            while gi < gn {
                let pair = gi + 1 < gn;
                let second = g0 + if pair { gi + 1 } else { gi };
                let ws = [
                    packed.add(lay.strip(g0 + gi, k)),
                    packed.add(lay.strip(second, k)),
                ];
                let acc_of = |g: usize| a.add((gi + g) * PAIRS);
                for (jj, j) in lay.strip_blocks(k).enumerate() {
                    let o = ws.map(|w| w.add(jj * gbb(Q8_0)));
                    prefetch_ahead(o[0], gbb(Q8_0));
                    let x = xb.add(j * PAIRS);
                    if pair {
                        prefetch_ahead(o[1], gbb(Q8_0));
                        block::<2>(o, x, pairs, [acc_of(0), acc_of(1)]);
                    } else {
                        block::<1>([o[0]], x, pairs, [acc_of(0)]);
                    }
                }
                gi += 2;
            }
        }
        for (gi, a) in acc[..gn].iter().enumerate() {
            let o = out.add(8 * (g0 + gi - groups.start));
            let a = a.as_ptr() as *const __m512;
            store(a, n, o, out_stride);
        }
    }
}

/// The group blocks at `o` (of `G` row groups) × block `j` of the tile's `pairs` pairs (`x`,
/// their entries for that block), added to the groups' pair accumulators `acc[g][..pairs]`.
#[inline(always)]
unsafe fn block<const G: usize>(
    o: [*const u8; G],
    x: *const BroadcastPair,
    pairs: usize,
    acc: [*mut __m512; G],
) {
    let halves = |at: *const u8| {
        _mm512_cvtph_ps(_mm256_broadcastsi128_si256(_mm_loadu_si128(
            at as *const __m128i,
        )))
    };
    let both = |at: *const u8| _mm512_broadcast_i64x4(_mm256_loadu_si256(at as *const __m256i));
    let dw = o.map(halves);
    let mut q = [[_mm512_setzero_si512(); 8]; G];
    let flip = _mm512_set1_epi8(-128);
    for g in 0..G {
        for (c, qc) in q[g].iter_mut().enumerate() {
            *qc = _mm512_xor_si512(both(o[g].add(16 + 32 * c)), flip);
        }
    }
    for p in 0..pairs {
        let e = x.add(p);
        let start = _mm512_load_si512((*e).z.as_ptr() as *const __m512i);
        let mut s = [start; G];
        for (c, yc) in (*e).y.iter().enumerate() {
            let y = _mm512_load_si512(yc.as_ptr() as *const __m512i);
            for g in 0..G {
                s[g] = _mm512_dpbusd_epi32(s[g], q[g][c], y);
            }
        }
        let dx = _mm512_load_ps((*e).d.as_ptr());
        for g in 0..G {
            let sum = _mm512_cvtepi32_ps(s[g]);
            let d = _mm512_mul_ps(dw[g], dx);
            *acc[g].add(p) = _mm512_fmadd_ps(d, sum, *acc[g].add(p));
        }
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

/// Q4_1 products with the activations read straight from `xq` (`ntok` rows of `lay.blocks()`
/// blocks): a vector holds 16 rows (lanes 0-7 one row group, 8-15 the next) for one token,
/// each 4-byte activation chunk broadcast from memory into `vpdpbusd`, so no broadcast layout
/// is made. Writes `out[t * out_stride + 8 * (g - groups.start) + lane]`; the same bits as
/// [`gemm_prepared`].
///
/// # Safety
/// As [`gemm_prepared`], with `xq` valid for `ntok * lay.blocks()` blocks that no one writes
/// meanwhile, and `lay` a Q4_1 layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn gemm_xq(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    xq: *const crate::q8::BlockQ8,
    ntok: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let blocks = lay.blocks();
    for t0 in (0..ntok).step_by(TILE) {
        let n = (ntok - t0).min(TILE);
        let (x, o) = (xq.add(t0 * blocks), out.add(t0 * out_stride));
        xq_pass(packed, lay, groups.clone(), x, n, o, out_stride);
    }
}

/// Super-group by super-group, strip by strip (the order of a layout in strips; a layout
/// group by group is read in the same order), 16 rows at a time, the `n` tokens at `x`.
#[inline(always)]
unsafe fn xq_pass(
    packed: *const u8,
    lay: Layout,
    groups: Range<usize>,
    x: *const crate::q8::BlockQ8,
    n: usize,
    out: *mut f32,
    out_stride: usize,
) {
    const UNITS: usize = SUPER_GROUPS / 2;
    let blocks = lay.blocks();
    let mut acc = [[MaybeUninit::<__m512>::uninit(); TILE]; UNITS];
    for sg in Layout::super_groups(groups.clone()) {
        let (g0, units) = (sg.start, sg.len().div_ceil(2));
        for a in &mut acc[..units] {
            for v in &mut a[..n] {
                v.write(_mm512_setzero_ps());
            }
        }
        for k in 0..lay.strips() {
            for (u, acc_u) in acc[..units].iter_mut().enumerate() {
                let ga = g0 + 2 * u;
                // an odd last group is read twice, its second half not stored
                let gb = (ga + 1).min(sg.end - 1);
                let (wa, wb) = (packed.add(lay.strip(ga, k)), packed.add(lay.strip(gb, k)));
                let a = acc_u.as_mut_ptr() as *mut __m512;
                for (jj, j) in lay.strip_blocks(k).enumerate() {
                    let (oa, ob) = (wa.add(jj * gbb(Q4_1)), wb.add(jj * gbb(Q4_1)));
                    prefetch_ahead(oa, gbb(Q4_1));
                    prefetch_ahead(ob, gbb(Q4_1));
                    xq_block(oa, ob, x.add(j), blocks, n, a);
                }
            }
        }
        for (u, a) in acc[..units].iter().enumerate() {
            let g = g0 + 2 * u;
            let o = out.add(8 * (g - groups.start));
            for (t, v) in a[..n].iter().enumerate() {
                let v = v.assume_init();
                if g + 1 < sg.end {
                    _mm512_storeu_ps(o.add(t * out_stride), v);
                } else {
                    _mm256_storeu_ps(o.add(t * out_stride), _mm512_castps512_ps256(v));
                }
            }
        }
    }
}

/// One Q4_1 block of two row groups (at `oa`, `ob`) × block `x` of each of `n` tokens (token
/// `t`'s at `x + t * blocks`), added to the tokens' accumulators `acc[..n]`.
#[inline(always)]
unsafe fn xq_block(
    oa: *const u8,
    ob: *const u8,
    x: *const crate::q8::BlockQ8,
    blocks: usize,
    n: usize,
    acc: *mut __m512,
) {
    let scales = |off: usize| {
        let lo = _mm_loadu_si128(oa.add(off) as *const __m128i);
        let hi = _mm_loadu_si128(ob.add(off) as *const __m128i);
        _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1))
    };
    let (dw, mw) = (scales(0), scales(16));
    let low = _mm512_set1_epi8(0x0F);
    let mut q = [_mm512_setzero_si512(); 8];
    for c in 0..4 {
        let lo = _mm256_loadu_si256(oa.add(32 + 32 * c) as *const __m256i);
        let hi = _mm256_loadu_si256(ob.add(32 + 32 * c) as *const __m256i);
        let wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        q[c] = _mm512_and_si512(wv, low);
        q[4 + c] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low);
    }
    for t in 0..n {
        let b = &*x.add(t * blocks);
        let y = b.qs.as_ptr() as *const i32;
        let mut s = _mm512_setzero_si512();
        for (c, qc) in q.iter().enumerate() {
            s = _mm512_dpbusd_epi32(
                s,
                *qc,
                _mm512_set1_epi32(std::ptr::read_unaligned(y.add(c))),
            );
        }
        let d = _mm512_mul_ps(dw, _mm512_set1_ps(b.d));
        let mut a = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), *acc.add(t));
        a = _mm512_fmadd_ps(mw, _mm512_set1_ps(b.s), a);
        *acc.add(t) = a;
    }
}
