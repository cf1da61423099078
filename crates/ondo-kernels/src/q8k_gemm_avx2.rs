//! AVX2 GEMM kernels for [`crate::gemm_q8k`]: Q4_K, Q5_K and Q6_K weight rows times Q8_K
//! activations, 8 weight rows by a few tokens at a time.
//!
//! Each super-block of 8 weight rows is unpacked once into a [`Tile`], then streamed against
//! the tokens:
//!
//! * `q[v]` (v in 0..64) holds quants `4v..4v+4` of each of the 8 rows, row `r` in dword
//!   lane `r`, as unsigned bytes (Q4_K: 0..16, Q5_K: 0..32, Q6_K: 0..64, its `-32` removed
//!   later). The rows' packed quant bytes go through an 8x8 dword transpose first, and the
//!   nibble / high-bit extraction (bytewise, so it commutes with the transpose) follows:
//!   4 transposes per Q4_K super-block instead of 8. Scales, mins and `d` of the 8 rows are
//!   unpacked side by side from a 4x8 dword transpose of their 16-byte headers.
//! * A token's activation quad `x[4v..4v+4]` is broadcast to every lane, so
//!   `maddubs(q[v], x)` gives, per row, two i16 sums of two products. `L` consecutive such
//!   results of one scale group are added in i16 (exact: `L · 2 · qmax · 128` stays below
//!   2^15 for L = 8 (Q4_K), 4 (Q5_K), 2 (Q6_K)), then one `madd` with the group scales
//!   (each row's scale as an i16 pair) gives one i32 per row. This saves most of the
//!   per-product `madd`s of the one-row kernels, which apply the scale to every `maddubs`.
//! * Per (row, token) and super-block: the Q4_K/Q5_K mins term `Σ_j m_j (bsums_2j +
//!   bsums_2j+1)` and the Q6_K offset `-32 Σ_g sc_g bsums_g` take a few `madd`s with the
//!   row-interleaved mins / scales; the i32 sums are scaled once in f32 (`d_x · d_w` per lane)
//!   into one f32 accumulator per (8 rows, token) that lives across super-blocks.
//!
//! Tokens go through in groups of [`TT`] (accumulators in registers; 6 measured no faster);
//! the f32 accumulators of up to [`TC`] tokens stay on the stack while a row tile walks its
//! super-blocks, so a super-block is unpacked once per 64 tokens. The kernels are bound by
//! the multiply port (Zen 3: one `vpmaddubsw`/`vpmaddwd` per cycle): per `maddubs`, Q4_K
//! needs 1 + 1/8 multiplies, Q6_K 1 + 1/2 + 1/8 (offset), the one-row kernels 2.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use crate::q8k::BlockQ8K;
use crate::DType;

/// Tokens per register tile.
const TT: usize = 4;
/// Tokens whose f32 accumulators are kept while a row tile walks its super-blocks.
const TC: usize = 64;

/// One unpacked super-block of 8 weight rows (see the module docs).
#[repr(C)]
struct Tile {
    q: [__m256i; 64],
    /// Per scale group (8 for Q4_K/Q5_K, 16 for Q6_K): each row's scale as an i16 pair.
    s: [__m256i; 16],
    /// Q4_K/Q5_K: mins of groups (2p, 2p+1) per row (p < 4); Q6_K: `32 sc` of groups
    /// (2p, 2p+1) per row (p < 8).
    m: [__m256i; 8],
    d: __m256,
    dmin: __m256,
}

/// A K-quant with a tile kernel.
trait Kernel {
    /// Bytes per super-block.
    const BYTES: usize;
    /// Unpacks super-block `p[r]` of each of the 8 rows into `tile`.
    unsafe fn unpack(tile: &mut Tile, p: &[*const u8; 8]);
    /// `acc[t] += d_x d_w · (this super-block of the 8 rows) · x[t]`.
    unsafe fn tokens<const T: usize>(tile: &Tile, x: [&BlockQ8K; T], acc: &mut [__m256; T]);
}

/// `out[t * stride + r] = row r · token t`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` is Q4_K, Q5_K or Q6_K; `ntok > 0`;
/// `xq.len() == ntok * nsb`, `rows_bytes.len() == rows * nsb * w.block_bytes()` and
/// `out.len() >= (ntok - 1) * stride + rows`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm(
    w: DType,
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    out: &mut [f32],
    stride: usize,
) {
    match w {
        DType::Q4_K => drive::<Q4K>(rows_bytes, rows, xq, ntok, out, stride),
        DType::Q5_K => drive::<Q5K>(rows_bytes, rows, xq, ntok, out, stride),
        DType::Q6_K => drive::<Q6K>(rows_bytes, rows, xq, ntok, out, stride),
        _ => unreachable!("dispatch checks the type"),
    }
}

#[inline(always)]
unsafe fn drive<K: Kernel>(
    rows_bytes: &[u8],
    rows: usize,
    xq: &[BlockQ8K],
    ntok: usize,
    out: &mut [f32],
    stride: usize,
) {
    let nsb = xq.len() / ntok;
    let row_len = nsb * K::BYTES;
    // Stands in for the missing rows of the last tile: all scales and quants zero.
    let zero = [0u8; 256];
    let mut tile = Tile {
        q: [_mm256_setzero_si256(); 64],
        s: [_mm256_setzero_si256(); 16],
        m: [_mm256_setzero_si256(); 8],
        d: _mm256_setzero_ps(),
        dmin: _mm256_setzero_ps(),
    };
    let mut acc = [_mm256_setzero_ps(); TC];
    // Token chunks outside: a chunk's activations (64 tokens: 73 KB per 1024 columns) stay
    // in L2 while all the row tiles stream past them.
    for t0 in (0..ntok).step_by(TC) {
        let nt = (ntok - t0).min(TC);
        for r0 in (0..rows).step_by(8) {
            let nr = (rows - r0).min(8);
            acc[..nt].fill(_mm256_setzero_ps());
            for b in 0..nsb {
                let mut p = [zero.as_ptr(); 8];
                for (r, pr) in p.iter_mut().enumerate().take(nr) {
                    *pr = rows_bytes.as_ptr().add((r0 + r) * row_len + b * K::BYTES);
                }
                K::unpack(&mut tile, &p);
                let x = |t: usize| xq.get_unchecked((t0 + t) * nsb + b);
                let mut t = 0;
                while t + TT <= nt {
                    let a = acc[t..].first_chunk_mut::<TT>().unwrap_unchecked();
                    K::tokens::<TT>(&tile, std::array::from_fn(|k| x(t + k)), a);
                    t += TT;
                }
                let rest = &mut acc[t..nt];
                match rest.len() {
                    0 => {}
                    1 => K::tokens::<1>(&tile, [x(t)], rest.try_into().unwrap_unchecked()),
                    2 => {
                        K::tokens::<2>(&tile, [x(t), x(t + 1)], rest.try_into().unwrap_unchecked())
                    }
                    _ => K::tokens::<3>(
                        &tile,
                        [x(t), x(t + 1), x(t + 2)],
                        rest.try_into().unwrap_unchecked(),
                    ),
                }
            }
            for (t, a) in acc[..nt].iter().enumerate() {
                let o = out.as_mut_ptr().add((t0 + t) * stride + r0);
                if nr == 8 {
                    _mm256_storeu_ps(o, *a);
                } else {
                    let mut v = [0.0f32; 8];
                    _mm256_storeu_ps(v.as_mut_ptr(), *a);
                    std::ptr::copy_nonoverlapping(v.as_ptr(), o, nr);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// The 16 bytes at `p[r] + off` of the 8 blocks as four vectors: `out[k]` lane `r` = dword
/// `k` of row `r`.
#[inline(always)]
unsafe fn gather16(p: &[*const u8; 8], off: usize) -> [__m256i; 4] {
    // Row r in the low half, row r + 4 in the high half, then a 4x4 transpose per half.
    let mut y = [_mm256_setzero_si256(); 4];
    for (r, y) in y.iter_mut().enumerate() {
        *y = _mm256_set_m128i(
            _mm_loadu_si128(p[r + 4].add(off) as *const __m128i),
            _mm_loadu_si128(p[r].add(off) as *const __m128i),
        );
    }
    let t0 = _mm256_unpacklo_epi32(y[0], y[1]);
    let t1 = _mm256_unpackhi_epi32(y[0], y[1]);
    let t2 = _mm256_unpacklo_epi32(y[2], y[3]);
    let t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// `vpshufb` control picking, in each dword lane `i` of a 128-bit half, the bytes
/// `4 i + b[k]` of that lane for `b[k] >= 0` and zero for `b[k] < 0`.
const fn lane_bytes(b: [i8; 4]) -> [i8; 32] {
    let mut c = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        let k = b[i % 4];
        c[i] = if k < 0 {
            -128
        } else {
            (4 * ((i % 16) / 4)) as i8 + k
        };
        i += 1;
    }
    c
}

/// Controls for byte `b` of each dword as the i16 pair `(b, b)`, zero-extended.
const PAIR_U8: [[i8; 32]; 4] = [
    lane_bytes([0, -1, 0, -1]),
    lane_bytes([1, -1, 1, -1]),
    lane_bytes([2, -1, 2, -1]),
    lane_bytes([3, -1, 3, -1]),
];
/// Controls for bytes `2k`, `2k + 1` of each dword as an i16 pair, zero-extended.
const TWO_U8: [[i8; 32]; 2] = [lane_bytes([0, -1, 1, -1]), lane_bytes([2, -1, 3, -1])];
/// As [`PAIR_U8`] / [`TWO_U8`] but into the high byte of each i16 (for signed bytes).
const PAIR_I8: [[i8; 32]; 4] = [
    lane_bytes([-1, 0, -1, 0]),
    lane_bytes([-1, 1, -1, 1]),
    lane_bytes([-1, 2, -1, 2]),
    lane_bytes([-1, 3, -1, 3]),
];
const TWO_I8: [[i8; 32]; 2] = [lane_bytes([-1, 0, -1, 1]), lane_bytes([-1, 2, -1, 3])];

#[inline(always)]
unsafe fn ctl(c: &[i8; 32]) -> __m256i {
    _mm256_loadu_si256(c.as_ptr() as *const __m256i)
}

/// Two f16 per dword lane (row `r`): (the low halves, the high halves) as f32 lanes.
#[inline(always)]
unsafe fn f16_pairs(v: __m256i) -> (__m256, __m256) {
    let lo = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    let hi = _mm256_srli_epi32(v, 16);
    // Per half: rows' low f16s then high f16s (no saturation: both are below 2^16).
    let both = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
    (
        _mm256_cvtph_ps(_mm256_castsi256_si128(both)),
        _mm256_cvtph_ps(_mm256_extracti128_si256(both, 1)),
    )
}

/// The f16 at byte `off` of each of the 8 blocks, as f32 lanes.
#[inline(always)]
unsafe fn f16x8(p: &[*const u8; 8], off: usize) -> __m256 {
    let mut h = [0u16; 8];
    for (h, p) in h.iter_mut().zip(p) {
        *h = u16::from_le_bytes(std::ptr::read_unaligned(p.add(off) as *const [u8; 2]));
    }
    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i))
}

/// The 32 bytes at `p[r] + off` of the 8 blocks, transposed: `out[c]` lane `r` = dword `c`
/// of row `r` (bytes `4c..4c+4`).
#[inline(always)]
unsafe fn gather32(p: &[*const u8; 8], off: usize) -> [__m256i; 8] {
    let mut rows = [_mm256_setzero_si256(); 8];
    for (r, v) in rows.iter_mut().enumerate() {
        *v = load(p[r].add(off));
    }
    transpose8(&rows)
}

/// 8x8 transpose of dwords: `out[c]` lane `r` = `a[r]` lane `c`.
#[inline(always)]
unsafe fn transpose8(a: &[__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(a[0], a[1]);
    let t1 = _mm256_unpackhi_epi32(a[0], a[1]);
    let t2 = _mm256_unpacklo_epi32(a[2], a[3]);
    let t3 = _mm256_unpackhi_epi32(a[2], a[3]);
    let t4 = _mm256_unpacklo_epi32(a[4], a[5]);
    let t5 = _mm256_unpackhi_epi32(a[4], a[5]);
    let t6 = _mm256_unpacklo_epi32(a[6], a[7]);
    let t7 = _mm256_unpackhi_epi32(a[6], a[7]);
    // u0: lanes 0, 4 of rows 0..4 (low and high half); u1: 1, 5; u2: 2, 6; u3: 3, 7.
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256(u0, u4, 0x20),
        _mm256_permute2x128_si256(u1, u5, 0x20),
        _mm256_permute2x128_si256(u2, u6, 0x20),
        _mm256_permute2x128_si256(u3, u7, 0x20),
        _mm256_permute2x128_si256(u0, u4, 0x31),
        _mm256_permute2x128_si256(u1, u5, 0x31),
        _mm256_permute2x128_si256(u2, u6, 0x31),
        _mm256_permute2x128_si256(u3, u7, 0x31),
    ]
}

/// `vpshufb` over dword lanes then a 16-bit arithmetic shift: with `c` picking bytes into
/// the high byte of each i16 ([`PAIR_I8`], [`TWO_I8`]), gives those bytes sign-extended and
/// multiplied by `2^(8 - SHIFT)`.
#[inline(always)]
unsafe fn pick_i8<const SHIFT: i32>(v: __m256i, c: &[i8; 32]) -> __m256i {
    _mm256_srai_epi16(_mm256_shuffle_epi8(v, ctl(c)), SHIFT)
}

/// `acc` of each token: `Σ_g scale_g Σ_{v in g} q[v] · x[4v..4v+4]` per row; `G` quads per
/// scale group, `L` of them summed in i16 before the scale's `madd`.
#[inline(always)]
unsafe fn isums<const T: usize, const G: usize, const L: usize>(
    tile: &Tile,
    x: &[&BlockQ8K; T],
) -> [__m256i; T] {
    let mut acc = [_mm256_setzero_si256(); T];
    for g in 0..64 / G {
        let s = tile.s[g];
        for part in 0..G / L {
            let mut p = [_mm256_setzero_si256(); T];
            for l in 0..L {
                let v = g * G + part * L + l;
                let q = tile.q[v];
                for t in 0..T {
                    let y = std::ptr::read_unaligned(x[t].qs.as_ptr().add(4 * v) as *const i32);
                    let prod = _mm256_maddubs_epi16(q, _mm256_set1_epi32(y));
                    p[t] = if l == 0 {
                        prod
                    } else {
                        _mm256_add_epi16(p[t], prod)
                    };
                }
            }
            for t in 0..T {
                acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p[t], s));
            }
        }
    }
    acc
}

/// Q4_K/Q5_K scales, mins, `d` and `dmin` of the 8 rows into the tile: ggml's kmask
/// unpacking of the 12 bytes at `p[r] + 4`, done on all rows at once (lane `r`).
#[inline(always)]
unsafe fn k4_scales(tile: &mut Tile, p: &[*const u8; 8]) {
    // Lane r holds row r's bytes 0..16: d | dmin << 16, then the 12 packed scale bytes.
    let [dd, u0, u1, u2] = gather16(p, 0);
    let km2 = _mm256_set1_epi32(0x0f0f_0f0f);
    let km3 = _mm256_set1_epi32(0x0303_0303);
    let km1 = _mm256_set1_epi32(0x3f3f_3f3f);
    let sc = [
        _mm256_and_si256(u0, km1),
        _mm256_or_si256(
            _mm256_and_si256(u2, km2),
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), km3), 4),
        ),
    ];
    let mn = [
        _mm256_and_si256(u1, km1),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi32(u2, 4), km2),
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), km3), 4),
        ),
    ];
    for j in 0..8 {
        tile.s[j] = _mm256_shuffle_epi8(sc[j / 4], ctl(&PAIR_U8[j % 4]));
    }
    for (k, m) in tile.m[..4].iter_mut().enumerate() {
        *m = _mm256_shuffle_epi8(mn[k / 2], ctl(&TWO_U8[k % 2]));
    }
    (tile.d, tile.dmin) = f16_pairs(dd);
}

/// The Q4_K/Q5_K super-block end: `acc += d_x (d · isum - dmin · Σ_j m_j bsum pairs_j)`.
#[inline(always)]
unsafe fn k4_finish<const T: usize>(
    tile: &Tile,
    x: &[&BlockQ8K; T],
    isum: [__m256i; T],
    acc: &mut [__m256; T],
) {
    for t in 0..T {
        let bs = _mm256_loadu_si256(x[t].bsums.as_ptr() as *const __m256i);
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        let pairs = _mm256_broadcastsi128_si256(pairs);
        let m = _mm256_add_epi32(
            _mm256_add_epi32(
                _mm256_madd_epi16(tile.m[0], _mm256_shuffle_epi32(pairs, 0x00)),
                _mm256_madd_epi16(tile.m[1], _mm256_shuffle_epi32(pairs, 0x55)),
            ),
            _mm256_add_epi32(
                _mm256_madd_epi16(tile.m[2], _mm256_shuffle_epi32(pairs, 0xaa)),
                _mm256_madd_epi16(tile.m[3], _mm256_shuffle_epi32(pairs, 0xff)),
            ),
        );
        let dx = _mm256_set1_ps(x[t].d);
        let a = _mm256_fmadd_ps(
            _mm256_mul_ps(tile.d, dx),
            _mm256_cvtepi32_ps(isum[t]),
            acc[t],
        );
        acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(tile.dmin, dx), _mm256_cvtepi32_ps(m), a);
    }
}

/// Q4_K: `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }`; quant `64 i + l` is the
/// low nibble of `qs[32 i + l]`, `64 i + 32 + l` its high nibble; groups of 32.
struct Q4K;

impl Kernel for Q4K {
    const BYTES: usize = 144;

    #[inline(always)]
    unsafe fn unpack(tile: &mut Tile, p: &[*const u8; 8]) {
        let m4 = _mm256_set1_epi8(0x0f);
        for i in 0..4 {
            // Nibble extraction commutes with the transpose: transpose the packed bytes.
            let v = gather32(p, 16 + 32 * i);
            for (c, v) in v.into_iter().enumerate() {
                tile.q[8 * (2 * i) + c] = _mm256_and_si256(v, m4);
                tile.q[8 * (2 * i + 1) + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
        }
        k4_scales(tile, p);
    }

    #[inline(always)]
    unsafe fn tokens<const T: usize>(tile: &Tile, x: [&BlockQ8K; T], acc: &mut [__m256; T]) {
        let isum = isums::<T, 8, 8>(tile, &x);
        k4_finish(tile, &x, isum, acc);
    }
}

/// Q5_K: `block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }`; as Q4_K
/// plus 16 if bit `i / 32` of `qh[i % 32]` is set.
struct Q5K;

impl Kernel for Q5K {
    const BYTES: usize = 176;

    #[inline(always)]
    unsafe fn unpack(tile: &mut Tile, p: &[*const u8; 8]) {
        let m4 = _mm256_set1_epi8(0x0f);
        let m16 = _mm256_set1_epi8(0x10);
        let qh = gather32(p, 16);
        for i in 0..4 {
            let v = gather32(p, 48 + 32 * i);
            for c in 0..8 {
                // Bit 2i of qh (even chunk) / 2i + 1 (odd chunk) moved to bit 4 (16-bit
                // shifts: bits crossing between the bytes of a word never reach bit 4).
                let h = qh[c];
                let (even, odd) = match i {
                    0 => (_mm256_slli_epi16(h, 4), _mm256_slli_epi16(h, 3)),
                    1 => (_mm256_slli_epi16(h, 2), _mm256_slli_epi16(h, 1)),
                    2 => (h, _mm256_srli_epi16(h, 1)),
                    _ => (_mm256_srli_epi16(h, 2), _mm256_srli_epi16(h, 3)),
                };
                tile.q[8 * (2 * i) + c] =
                    _mm256_or_si256(_mm256_and_si256(v[c], m4), _mm256_and_si256(even, m16));
                tile.q[8 * (2 * i + 1) + c] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(v[c], 4), m4),
                    _mm256_and_si256(odd, m16),
                );
            }
        }
        k4_scales(tile, p);
    }

    #[inline(always)]
    unsafe fn tokens<const T: usize>(tile: &Tile, x: [&BlockQ8K; T], acc: &mut [__m256; T]) {
        let isum = isums::<T, 8, 4>(tile, &x);
        k4_finish(tile, &x, isum, acc);
    }
}

/// Q6_K: `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }`; quant
/// `128 h + 32 k + l` has the low nibble `k / 2` of `ql[64 h + 32 (k % 2) + l]` and the high
/// bits `2k..2k+2` of `qh[32 h + l]`, minus 32; groups of 16.
struct Q6K;

impl Kernel for Q6K {
    const BYTES: usize = 210;

    #[inline(always)]
    unsafe fn unpack(tile: &mut Tile, p: &[*const u8; 8]) {
        let m4 = _mm256_set1_epi8(0x0f);
        let m30 = _mm256_set1_epi8(0x30);
        for h in 0..2 {
            let a = gather32(p, 64 * h);
            let b = gather32(p, 64 * h + 32);
            let hb = gather32(p, 128 + 32 * h);
            for c in 0..8 {
                // Plane k: low nibble of a/b (k = 0, 1) or high nibble (k = 2, 3); high bits
                // 2k..2k+2 of hb moved to bits 4..6.
                let planes = [
                    (a[c], _mm256_slli_epi16(hb[c], 4)),
                    (b[c], _mm256_slli_epi16(hb[c], 2)),
                    (_mm256_srli_epi16(a[c], 4), hb[c]),
                    (_mm256_srli_epi16(b[c], 4), _mm256_srli_epi16(hb[c], 2)),
                ];
                for (k, (low, high)) in planes.into_iter().enumerate() {
                    tile.q[8 * (4 * h + k) + c] =
                        _mm256_or_si256(_mm256_and_si256(low, m4), _mm256_and_si256(high, m30));
                }
            }
        }
        // Scales: byte g of row r to the i16 pair (s, s) of group g; offsets: the pair
        // (32 s_2p, 32 s_2p+1).
        let sc = gather16(p, 192);
        for g in 0..16 {
            tile.s[g] = pick_i8::<8>(sc[g / 4], &PAIR_I8[g % 4]);
        }
        for (k, m) in tile.m.iter_mut().enumerate() {
            *m = pick_i8::<3>(sc[k / 2], &TWO_I8[k % 2]);
        }
        tile.d = f16x8(p, 208);
    }

    #[inline(always)]
    unsafe fn tokens<const T: usize>(tile: &Tile, x: [&BlockQ8K; T], acc: &mut [__m256; T]) {
        let mut isum = isums::<T, 4, 2>(tile, &x);
        for t in 0..T {
            let bs = x[t].bsums.as_ptr() as *const i32;
            for (pair, m) in tile.m.iter().enumerate() {
                let b = _mm256_set1_epi32(std::ptr::read_unaligned(bs.add(pair)));
                isum[t] = _mm256_sub_epi32(isum[t], _mm256_madd_epi16(*m, b));
            }
            let dx = _mm256_set1_ps(x[t].d);
            acc[t] = _mm256_fmadd_ps(
                _mm256_mul_ps(tile.d, dx),
                _mm256_cvtepi32_ps(isum[t]),
                acc[t],
            );
        }
    }
}
