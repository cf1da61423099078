//! Q8 activations laid out for the batched eight-row kernels (`crate::rows8_sums`): every
//! four-byte chunk of a block repeated across a 32-byte vector, and the block's `d` and `s`
//! across eight lanes, so that a kernel multiplies them straight from memory instead of
//! broadcasting them again for every group of eight weight rows.
//!
//! Tokens come in tiles of [`TILE`], and a tile's tokens in pairs, whose vectors lie side by
//! side (token `2p` in the low 32 bytes of a 64-byte line, token `2p + 1` in the high ones): an
//! AVX2 kernel reads one token's half, an AVX-512 kernel both tokens at once. Entry
//! `(tile * blocks + j) * PAIRS + p` is block `j` of the tile's pair `p` (halves past the last
//! token are left as they were). An entry is 704 bytes; a decoding batch of 8 tokens through a
//! 1536-wide matrix takes 135 KB.

use crate::q8::BlockQ8;

/// Tokens per tile.
pub const TILE: usize = 8;
/// Token pairs per tile.
pub const PAIRS: usize = TILE / 2;

/// One block of two tokens (`h = 0, 1`), broadcast: lanes `8h..8h + 8` of every field are
/// token `h`'s.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct BroadcastPair {
    /// `y[c]`: bytes `4c..4c + 4` of the block's quants, eight times over.
    pub y: [[i32; 16]; 8],
    /// The block's `d`, eight times.
    pub d: [f32; 16],
    /// The block's `s` (`d * sum(qs)`, Q4_1's min term), eight times.
    pub s: [f32; 16],
    /// `-128 * sum(qs)`, eight times: the starting sum of a kernel that multiplies the
    /// quants by weights offset to unsigned bytes (`w + 128`, AVX-512 VNNI Q8_0).
    pub z: [i32; 16],
}

/// A batch of Q8 activation rows in broadcast layout (see the module header).
#[derive(Debug, Default)]
pub struct Q8Broadcast {
    entries: Vec<BroadcastPair>,
}

impl Q8Broadcast {
    /// Lays out `ntok` rows of `blocks` blocks from `xq`, reusing this buffer's memory.
    pub fn fill(&mut self, xq: &[BlockQ8], ntok: usize, blocks: usize) -> BroadcastRows {
        assert!(xq.len() >= ntok * blocks, "activations too short");
        let rows = self.reshape(ntok, blocks);
        for t in 0..ntok {
            // SAFETY: `rows` was just made from this buffer, borrowed mutably here.
            unsafe { rows.fill_row(t, &xq[t * blocks..(t + 1) * blocks]) };
        }
        rows
    }

    /// Sizes the buffer for `ntok` rows of `blocks` blocks (reusing its memory) and returns
    /// the handle through which the rows are written ([`BroadcastRows::fill_row`], from any
    /// threads) and read. The handle is valid until this buffer is next used or dropped.
    pub fn reshape(&mut self, ntok: usize, blocks: usize) -> BroadcastRows {
        let len = ntok.div_ceil(TILE) * blocks * PAIRS;
        if self.entries.len() < len {
            self.entries.resize(len, BroadcastPair::default());
        }
        BroadcastRows {
            entries: self.entries.as_mut_ptr(),
            ntok,
            blocks,
        }
    }
}

/// Where a [`Q8Broadcast`] holds `ntok` rows of `blocks` blocks: a raw handle, copied to the
/// threads that fill rows and to the kernels that read them.
#[derive(Clone, Copy, Debug)]
pub struct BroadcastRows {
    entries: *mut BroadcastPair,
    ntok: usize,
    blocks: usize,
}

// SAFETY: a handle is an address and a shape; who writes or reads which row is the contract of
// the unsafe functions using it.
unsafe impl Send for BroadcastRows {}
unsafe impl Sync for BroadcastRows {}

impl BroadcastRows {
    /// Rows held.
    pub fn ntok(&self) -> usize {
        self.ntok
    }

    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Entry of block `j` of token `t`, and the token's half of it.
    pub fn index(blocks: usize, t: usize, j: usize) -> (usize, usize) {
        ((t / TILE * blocks + j) * PAIRS + t % TILE / 2, t % 2)
    }

    /// Lays out row `t` from its blocks `xq_t`.
    ///
    /// # Safety
    /// The handle is valid (its buffer not used or dropped since [`Q8Broadcast::reshape`])
    /// and no one else accesses row `t` meanwhile.
    pub unsafe fn fill_row(self, t: usize, xq_t: &[BlockQ8]) {
        assert!(
            t < self.ntok && xq_t.len() == self.blocks,
            "row {t} out of shape"
        );
        let (i, h) = Self::index(self.blocks, t, 0);
        let first = self.entries.add(i);
        #[cfg(target_arch = "x86_64")]
        if crate::quant::avx2_available() {
            // SAFETY: AVX2 detected; row t's entries lie in the buffer (t < ntok).
            unsafe { avx2::fill_row(xq_t, first, h) };
            return;
        }
        for (j, x) in xq_t.iter().enumerate() {
            let e = &mut *first.add(j * PAIRS);
            let half = 8 * h..8 * h + 8;
            for (c, y) in e.y.iter_mut().enumerate() {
                let q = &x.qs[4 * c..4 * c + 4];
                y[half.clone()].fill(i32::from_le_bytes([
                    q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8,
                ]));
            }
            e.d[half.clone()].fill(x.d);
            e.s[half.clone()].fill(x.s);
            let sum: i32 = x.qs.iter().map(|&v| i32::from(v)).sum();
            e.z[half].fill(-128 * sum);
        }
    }

    /// The entries of tile `tile` (tokens `tile * TILE..`): `blocks * PAIRS` of them.
    ///
    /// # Safety
    /// The handle is valid and its rows filled, with no one writing them meanwhile.
    pub(crate) unsafe fn tile(self, tile: usize) -> *const BroadcastPair {
        self.entries.add(tile * self.blocks * PAIRS)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BroadcastPair, PAIRS};
    use crate::q8::BlockQ8;

    /// # Safety
    /// AVX2; `first` is the entry of block 0 of a row whose `xq_t.len()` blocks lie in the
    /// buffer, [`PAIRS`] entries apart, the row's half of each being `h`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn fill_row(xq_t: &[BlockQ8], first: *mut BroadcastPair, h: usize) {
        for (j, x) in xq_t.iter().enumerate() {
            let e = first.add(j * PAIRS);
            let y = x.qs.as_ptr() as *const i32;
            for c in 0..8 {
                let v = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                let at = (*e).y[c].as_mut_ptr().add(8 * h) as *mut __m256i;
                _mm256_store_si256(at, v);
            }
            _mm256_store_ps((*e).d.as_mut_ptr().add(8 * h), _mm256_set1_ps(x.d));
            _mm256_store_ps((*e).s.as_mut_ptr().add(8 * h), _mm256_set1_ps(x.s));
            // sum(q) = sum(q + 128) - 32 * 128, the unsigned sum by sad against zero
            let q = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let u = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
            let s4 = _mm256_sad_epu8(u, _mm256_setzero_si256());
            let s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
            let total = _mm_cvtsi128_si64(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
            let z = -128 * (total as i32 - 32 * 128);
            let at = (*e).z.as_mut_ptr().add(8 * h) as *mut __m256i;
            _mm256_store_si256(at, _mm256_set1_epi32(z));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_and_scale_lands_in_its_entry() {
        let (ntok, blocks) = (11, 3);
        let xq: Vec<BlockQ8> = (0..ntok * blocks)
            .map(|i| BlockQ8 {
                d: i as f32 + 0.5,
                s: -(i as f32),
                qs: std::array::from_fn(|b| (i * 7 + b * 3) as i8),
            })
            .collect();
        let mut xb = Q8Broadcast::default();
        let rows = xb.fill(&xq, ntok, blocks);
        assert_eq!((rows.ntok(), rows.blocks()), (ntok, blocks));
        for t in 0..ntok {
            for j in 0..blocks {
                let (i, h) = BroadcastRows::index(blocks, t, j);
                let (x, e) = (&xq[t * blocks + j], &xb.entries[i]);
                let half = 8 * h..8 * h + 8;
                assert_eq!(e.d[half.clone()], [x.d; 8]);
                assert_eq!(e.s[half.clone()], [x.s; 8]);
                let sum: i32 = x.qs.iter().map(|&v| i32::from(v)).sum();
                assert_eq!(e.z[half.clone()], [-128 * sum; 8], "token {t} block {j}");
                for c in 0..8 {
                    for &lane in &e.y[c][half.clone()] {
                        let b = lane.to_le_bytes().map(|v| v as i8);
                        assert_eq!(b, x.qs[4 * c..4 * c + 4], "token {t} block {j} chunk {c}");
                    }
                }
            }
        }
    }
}
