//! Q8 activations laid out for the batched eight-row kernels (`crate::rows8_sums`): every
//! four-byte chunk of a block repeated across a 32-byte vector, and the block's `d` and `s`
//! across eight lanes, so that a kernel multiplies them straight from memory instead of
//! broadcasting them again for every group of eight weight rows.
//!
//! Tokens come in tiles of [`TILE`]: entry `(tile * blocks + j) * TILE + k` is block `j` of
//! token `tile * TILE + k` (entries past the last token are left as they were). An entry is
//! 320 bytes, eight times its [`BlockQ8`]; a decoding batch of 8 tokens through a 1536-wide
//! matrix takes 123 KB.

use crate::q8::BlockQ8;

/// Tokens per tile.
pub const TILE: usize = 8;

/// One block of one token, broadcast.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
pub struct BroadcastBlock {
    /// `y[c]`: bytes `4c..4c + 4` of the block's quants, eight times over.
    pub y: [[i32; 8]; 8],
    /// The block's `d`, eight times.
    pub d: [f32; 8],
    /// The block's `s` (`d * sum(qs)`, Q4_1's min term), eight times.
    pub s: [f32; 8],
}

/// A batch of Q8 activation rows in broadcast layout (see the module header).
#[derive(Debug, Default)]
pub struct Q8Broadcast {
    entries: Vec<BroadcastBlock>,
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
        let len = ntok.div_ceil(TILE) * blocks * TILE;
        if self.entries.len() < len {
            self.entries.resize(len, BroadcastBlock::default());
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
    entries: *mut BroadcastBlock,
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

    /// Entry of block `j` of token `t`.
    pub fn index(blocks: usize, t: usize, j: usize) -> usize {
        (t / TILE * blocks + j) * TILE + t % TILE
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
        let first = self.entries.add(Self::index(self.blocks, t, 0));
        #[cfg(target_arch = "x86_64")]
        if crate::quant::avx2_available() {
            // SAFETY: AVX2 detected; row t's entries lie in the buffer (t < ntok).
            unsafe { avx2::fill_row(xq_t, first) };
            return;
        }
        for (j, x) in xq_t.iter().enumerate() {
            let e = &mut *first.add(j * TILE);
            for (c, y) in e.y.iter_mut().enumerate() {
                let q = &x.qs[4 * c..4 * c + 4];
                *y = [i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]); 8];
            }
            (e.d, e.s) = ([x.d; 8], [x.s; 8]);
        }
    }

    /// The entries of tile `tile` (tokens `tile * TILE..`): `blocks * TILE` of them.
    ///
    /// # Safety
    /// The handle is valid and its rows filled, with no one writing them meanwhile.
    pub(crate) unsafe fn tile(self, tile: usize) -> *const BroadcastBlock {
        self.entries.add(tile * self.blocks * TILE)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BroadcastBlock, TILE};
    use crate::q8::BlockQ8;

    /// # Safety
    /// AVX2; `first` is the entry of block 0 of a row whose `xq_t.len()` blocks lie in the
    /// buffer, [`TILE`] entries apart.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn fill_row(xq_t: &[BlockQ8], first: *mut BroadcastBlock) {
        for (j, x) in xq_t.iter().enumerate() {
            let e = first.add(j * TILE);
            let y = x.qs.as_ptr() as *const i32;
            let ey = (*e).y.as_mut_ptr() as *mut __m256i;
            for c in 0..8 {
                let v = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(c)));
                _mm256_store_si256(ey.add(c), v);
            }
            _mm256_store_ps((*e).d.as_mut_ptr(), _mm256_set1_ps(x.d));
            _mm256_store_ps((*e).s.as_mut_ptr(), _mm256_set1_ps(x.s));
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
                let i = BroadcastRows::index(blocks, t, j);
                let (x, e) = (&xq[t * blocks + j], &xb.entries[i]);
                assert_eq!((e.d, e.s), ([x.d; 8], [x.s; 8]));
                for c in 0..8 {
                    for lane in e.y[c] {
                        let b = lane.to_le_bytes().map(|v| v as i8);
                        assert_eq!(b, x.qs[4 * c..4 * c + 4], "token {t} block {j} chunk {c}");
                    }
                }
            }
        }
    }
}
