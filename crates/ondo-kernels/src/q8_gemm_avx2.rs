//! AVX2 register-blocked GEMM for [`crate::q8::gemm_q8`]: tiles of [`R`] weight rows × [`T`]
//! tokens whose nine 8-lane accumulators stay in registers over the whole row (the K loop).
//!
//! Every (row, token) accumulator sees exactly the operations of [`super::q8_avx2::dot`]:
//! per block `acc = fma(splat(d_w * d_x), cvt(madd(maddubs(a, y), 1)), acc)` with the same
//! `a`/`y` bytes (so the same i32 lanes), the same f32 product for the scale, blocks in
//! order, then the same `hsum` plus, for Q4_1, `summs` accumulated in block order. Results
//! are therefore bit-identical to `dot` for each pair; only the sharing changes:
//!
//! - weights are unpacked once per row tile (Q4_0: `|q - 8|` and `q - 8`, Q4_1: the
//!   nibbles; Q8_0 is read in place) and reused by every token tile;
//! - each activation block is loaded once per tile and kept in a register for its rows;
//! - the tile's scale products `d_w * d_x` are computed in one vectorized pass before its
//!   K loop (an exact f32 product, the same as the scalar one) and broadcast from memory;
//! - Q4_1's `summs` (`Σ_b m_w s_x`, mul then add per block) run over 8 tokens per vector.
//!
//! The inner loop costs 5 vector ops per (row, token, block) for Q4_0/Q8_0 (sign, maddubs,
//! madd, cvt, fma) and 4 for Q4_1, plus one broadcast load; the per-pair loop it replaces
//! also multiplied and broadcast the scale in registers (and unpacked weights per 4 tokens).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use crate::q8::{BlockQ8, Shape};
use crate::q8_avx2::{hsum, nibbles};
use crate::DType;

/// Weight rows per tile.
const R: usize = 3;
/// Tokens per tile. 3 × 3 accumulators, 3 activation vectors and 4 temporaries fill the 16
/// ymm registers; larger tiles spill.
const T: usize = 3;
/// Scale products per block of a tile (`[R][T]`).
const RT: usize = R * T;

/// How one weight type feeds `maddubs` (mirrors the `match` in `q8_avx2::dot`): the
/// unsigned operand `a` and the signed operand `y` built from the activations.
trait Kind {
    /// Bytes per block.
    const BB: usize;
    /// Q4_1: a per-block min `m` at byte 2, contributing `m_w * s_x` to `summs`.
    const MIN: bool;
    /// Vectors per unpacked weight block; 0: the kernel reads the raw rows.
    const NV: usize;
    /// Unpacks the block at `p` into `NV` vectors at `dst`.
    unsafe fn unpack(p: *const u8, dst: *mut __m256i);
    /// The weight data of row `r`, block `b` of a tile with `rr` rows (unpacked or raw).
    unsafe fn wptr(t: &Tile, rr: usize, r: usize, b: usize) -> *const u8;
    /// The unsigned maddubs operand of a weight block.
    unsafe fn a(w: *const u8) -> __m256i;
    /// The signed maddubs operand: activations `qy` signed by the weights.
    unsafe fn y(qy: __m256i, w: *const u8) -> __m256i;
}

struct Q4_0;
struct Q4_1;
struct Q8_0;

impl Kind for Q4_0 {
    const BB: usize = 18;
    const MIN: bool = false;
    const NV: usize = 2;
    #[inline(always)]
    unsafe fn unpack(p: *const u8, dst: *mut __m256i) {
        let qx = _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8));
        _mm256_storeu_si256(dst, _mm256_sign_epi8(qx, qx));
        _mm256_storeu_si256(dst.add(1), qx);
    }
    #[inline(always)]
    unsafe fn wptr(t: &Tile, rr: usize, r: usize, b: usize) -> *const u8 {
        t.wv.add((b * rr + r) * Self::NV) as *const u8
    }
    #[inline(always)]
    unsafe fn a(w: *const u8) -> __m256i {
        _mm256_loadu_si256(w as *const __m256i)
    }
    #[inline(always)]
    unsafe fn y(qy: __m256i, w: *const u8) -> __m256i {
        _mm256_sign_epi8(qy, _mm256_loadu_si256(w.add(32) as *const __m256i))
    }
}

impl Kind for Q4_1 {
    const BB: usize = 20;
    const MIN: bool = true;
    const NV: usize = 1;
    #[inline(always)]
    unsafe fn unpack(p: *const u8, dst: *mut __m256i) {
        _mm256_storeu_si256(dst, nibbles(p.add(4)));
    }
    #[inline(always)]
    unsafe fn wptr(t: &Tile, rr: usize, r: usize, b: usize) -> *const u8 {
        t.wv.add((b * rr + r) * Self::NV) as *const u8
    }
    #[inline(always)]
    unsafe fn a(w: *const u8) -> __m256i {
        _mm256_loadu_si256(w as *const __m256i)
    }
    #[inline(always)]
    unsafe fn y(qy: __m256i, _w: *const u8) -> __m256i {
        qy
    }
}

impl Kind for Q8_0 {
    const BB: usize = 34;
    const MIN: bool = false;
    const NV: usize = 0;
    #[inline(always)]
    unsafe fn unpack(_p: *const u8, _dst: *mut __m256i) {}
    #[inline(always)]
    unsafe fn wptr(t: &Tile, _rr: usize, r: usize, b: usize) -> *const u8 {
        t.w.add(r * t.rb + b * Self::BB + 2)
    }
    #[inline(always)]
    unsafe fn a(w: *const u8) -> __m256i {
        // |q|, with -128 → 0x80: the same bytes as `_mm256_sign_epi8(q, q)`.
        _mm256_abs_epi8(_mm256_loadu_si256(w as *const __m256i))
    }
    #[inline(always)]
    unsafe fn y(qy: __m256i, w: *const u8) -> __m256i {
        _mm256_sign_epi8(qy, _mm256_loadu_si256(w as *const __m256i))
    }
}

/// Where a tile reads and writes (raw pointers into the caller's slices and scratch).
#[derive(Clone, Copy)]
struct Tile {
    /// Raw weight rows (`rb` bytes apart) and the unpacked ones, `[nb][rr][K::NV]` vectors.
    w: *const u8,
    rb: usize,
    wv: *const __m256i,
    /// Token 0 of the tile; tokens are `nb` blocks apart.
    x: *const BlockQ8,
    nb: usize,
    /// Scale products `d_w * d_x` of (r, t) at block b: `sc[b * RT + r * T + t]`.
    sc: *const f32,
    /// Q4_1: `summs` of (r, t) at `summs[r * ss + t]`.
    summs: *const f32,
    ss: usize,
    /// Output (r, t) at `out[r * rs + t * ts]`.
    out: *mut f32,
    rs: usize,
    ts: usize,
}

/// One `RR` × `TT` tile over all `nb` blocks.
///
/// # Safety
/// AVX2/FMA/F16C available; every pointer of `t` covers what its comment says for rows
/// `0..RR`, tokens `0..TT` and blocks `0..nb`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<K: Kind, const RR: usize, const TT: usize>(t: Tile) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); TT]; RR];
    for b in 0..t.nb {
        let mut qy = [_mm256_setzero_si256(); TT];
        for (k, q) in qy.iter_mut().enumerate() {
            *q = _mm256_loadu_si256((*t.x.add(k * t.nb + b)).qs.as_ptr() as *const __m256i);
        }
        let sc = t.sc.add(b * RT);
        for (r, accr) in acc.iter_mut().enumerate() {
            let w = K::wptr(&t, RR, r, b);
            let a = K::a(w);
            for (k, acc) in accr.iter_mut().enumerate() {
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(a, K::y(qy[k], w)), ones);
                let d = _mm256_broadcast_ss(&*sc.add(r * T + k));
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *acc);
            }
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        for (k, &a) in accr.iter().enumerate() {
            let summs = if K::MIN {
                *t.summs.add(r * t.ss + k)
            } else {
                0.0
            };
            *t.out.add(r * t.rs + k * t.ts) = hsum(a) + summs;
        }
    }
}

/// Runs the monomorphized tile for an `rr` × `tt` (≤ `R` × `T`) tile.
///
/// # Safety
/// As [`tile`], with `RR = rr`, `TT = tt`.
unsafe fn tile_dyn<K: Kind>(rr: usize, tt: usize, t: Tile) {
    unsafe fn toks<K: Kind, const RR: usize>(tt: usize, t: Tile) {
        match tt {
            1 => tile::<K, RR, 1>(t),
            2 => tile::<K, RR, 2>(t),
            3 => tile::<K, RR, 3>(t),
            _ => unreachable!("tile width {tt}"),
        }
    }
    match rr {
        1 => toks::<K, 1>(tt, t),
        2 => toks::<K, 2>(tt, t),
        3 => toks::<K, 3>(tt, t),
        _ => unreachable!("tile height {rr}"),
    }
}

/// Converts the f16 at byte `off` of every `bb`-byte block of `src` into `dst`.
///
/// # Safety
/// F16C available; `src` holds `dst.len()` blocks of `bb >= off + 2` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_f16s(src: *const u8, bb: usize, off: usize, dst: &mut [f32]) {
    let bits = |i: usize| {
        let p = src.add(i * bb + off);
        u16::from_le_bytes([*p, *p.add(1)])
    };
    let mut chunks = dst.chunks_exact_mut(8);
    let mut i = 0;
    for c in &mut chunks {
        let h: [u16; 8] = std::array::from_fn(|j| bits(i + j));
        let v = _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i));
        _mm256_storeu_ps(c.as_mut_ptr(), v);
        i += 8;
    }
    for (j, d) in chunks.into_remainder().iter_mut().enumerate() {
        *d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(bits(i + j) as i16)));
    }
}

/// Q4_1: `summs[t] = Σ_b m[b] * xs[b][t]` for `ntok8` (a multiple of 8) tokens, in block
/// order with a separate multiply and add, as the one-row dot accumulates it.
///
/// # Safety
/// AVX2 available; `xs.len() == m.len() * ntok8`, `summs.len() == ntok8`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_summs(m: &[f32], xs: &[f32], ntok8: usize, summs: &mut [f32]) {
    for c in (0..ntok8).step_by(8) {
        let mut s = _mm256_setzero_ps();
        for (b, &mb) in m.iter().enumerate() {
            let x = _mm256_loadu_ps(xs.as_ptr().add(b * ntok8 + c));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(mb), x));
        }
        _mm256_storeu_ps(summs.as_mut_ptr().add(c), s);
    }
}

/// # Safety
/// AVX2/FMA/F16C available; `w` has [`Kind`] `K`; `rows_bytes` holds `rows` rows of `nb`
/// blocks, `xq` holds `ntok * nb` blocks and `out[r * rs + t * ts]` is in bounds for all
/// r < rows, t < ntok.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_kind<K: Kind>(
    rows_bytes: &[u8],
    xq: &[BlockQ8],
    Shape { rows, ntok, nb }: Shape,
    out: &mut [f32],
    (rs, ts): (usize, usize),
) {
    if nb == 0 {
        // Every dot is an empty sum: hsum(0) + 0.
        for r in 0..rows {
            for t in 0..ntok {
                out[r * rs + t * ts] = 0.0;
            }
        }
        return;
    }
    let rb = nb * K::BB;
    // Activation scales spread as `[token tile][b][R][T]` and weight scales (per row tile)
    // as `[b][R][T]`, so a tile's scale products are one elementwise product.
    let mut xd = vec![0.0f32; ntok.div_ceil(T) * nb * RT];
    for (t, xt) in xq.chunks_exact(nb).enumerate() {
        for (b, x) in xt.iter().enumerate() {
            let at = ((t / T) * nb + b) * RT + t % T;
            for r in 0..R {
                xd[at + r * T] = x.d;
            }
        }
    }
    // Q4_1: activation block sums as `[nb][ntok8]` (zero-padded) for `q4_1_summs`.
    let ntok8 = if K::MIN { ntok.div_ceil(8) * 8 } else { 0 };
    let mut xs = vec![0.0f32; nb * ntok8];
    if K::MIN {
        for (t, xt) in xq.chunks_exact(nb).enumerate() {
            for (b, x) in xt.iter().enumerate() {
                xs[b * ntok8 + t] = x.s;
            }
        }
    }
    let mut wv = vec![_mm256_setzero_si256(); nb * R * K::NV];
    let mut wd = vec![0.0f32; nb * RT];
    let mut sc = vec![0.0f32; nb * RT];
    let mut f16s = vec![0.0f32; nb];
    let mut summs = vec![0.0f32; R * ntok8];
    for r0 in (0..rows).step_by(R) {
        let rr = R.min(rows - r0);
        let w = rows_bytes.as_ptr().add(r0 * rb);
        for r in 0..rr {
            let row = w.add(r * rb);
            for b in 0..nb {
                K::unpack(
                    row.add(b * K::BB),
                    wv.as_mut_ptr().add((b * rr + r) * K::NV),
                );
            }
            block_f16s(row, K::BB, 0, &mut f16s);
            for (b, &d) in f16s.iter().enumerate() {
                wd[b * RT + r * T..][..T].fill(d);
            }
            if K::MIN {
                block_f16s(row, K::BB, 2, &mut f16s);
                q4_1_summs(&f16s, &xs, ntok8, &mut summs[r * ntok8..(r + 1) * ntok8]);
            }
        }
        for t0 in (0..ntok).step_by(T) {
            let tt = T.min(ntok - t0);
            let xdt = &xd[(t0 / T) * nb * RT..][..nb * RT];
            for ((s, &a), &b) in sc.iter_mut().zip(&wd).zip(xdt) {
                *s = a * b;
            }
            let tile = Tile {
                w,
                rb,
                wv: wv.as_ptr(),
                x: xq.as_ptr().add(t0 * nb),
                nb,
                sc: sc.as_ptr(),
                summs: summs.as_ptr().add(t0.min(summs.len())),
                ss: ntok8,
                out: out.as_mut_ptr().add(r0 * rs + t0 * ts),
                rs,
                ts,
            };
            tile_dyn::<K>(rr, tt, tile);
        }
    }
}

/// `out[r * rs + t * ts] = dot(w, row r, token t)` for every pair.
///
/// # Safety
/// AVX2/FMA/F16C available; `w` is Q4_0, Q4_1 or Q8_0; `rows_bytes` holds `shape.rows`
/// rows of `shape.nb` blocks, `xq` holds `shape.ntok * shape.nb` blocks, and
/// `out[r * rs + t * ts]` is in bounds for every pair (all checked by the caller).
pub(crate) unsafe fn gemm(
    w: DType,
    rows_bytes: &[u8],
    xq: &[BlockQ8],
    shape: Shape,
    out: &mut [f32],
    strides: (usize, usize),
) {
    match w {
        DType::Q4_0 => gemm_kind::<Q4_0>(rows_bytes, xq, shape, out, strides),
        DType::Q4_1 => gemm_kind::<Q4_1>(rows_bytes, xq, shape, out, strides),
        DType::Q8_0 => gemm_kind::<Q8_0>(rows_bytes, xq, shape, out, strides),
        _ => unreachable!("dispatch checks has_q8_path"),
    }
}
