//! The key/value cache of one sequence, stored as f16 (llama.cpp's default cache type), laid
//! out per KV head: [layer][kv_head][capacity][head_dim], so attention streams one head's
//! keys (and values) as one contiguous run instead of a 2-cache-line read every `kv_dim`
//! values (which stalls the hardware prefetchers at every 4 KB page at long contexts).
//! Owned by the caller (engine, CLI), lent to the model for each forward call.

use crate::{LlamaConfig, ModelError, Numerics};

/// The bits of an f16 value.
pub type F16 = u16;

pub struct KvCache {
    n_layers: usize,
    n_kv_heads: usize,
    head_dim: usize,
    kv_dim: usize,
    capacity: usize,
    /// Positions filled so far.
    len: usize,
    /// [n_layers][n_kv_heads][capacity][head_dim]
    k: Vec<F16>,
    /// [n_layers][n_kv_heads][capacity][head_dim]
    v: Vec<F16>,
}

impl KvCache {
    /// Bytes of K and V that a cache of `capacity` positions holds once full.
    pub fn bytes_for(cfg: &LlamaConfig, capacity: usize) -> u128 {
        let per_position = cfg.n_layers as u128 * cfg.kv_dim() as u128 * 2;
        per_position * capacity as u128 * std::mem::size_of::<F16>() as u128
    }

    pub fn new(cfg: &LlamaConfig, capacity: usize) -> Result<KvCache, ModelError> {
        let kv_dim = cfg.kv_dim();
        let n = cfg
            .n_layers
            .checked_mul(capacity)
            .and_then(|n| n.checked_mul(kv_dim))
            .filter(|&n| n <= (1usize << 34))
            .ok_or_else(|| {
                ModelError::BadHyperparameter(format!(
                    "a KV cache of {capacity} positions is too large"
                ))
            })?;
        Ok(KvCache {
            n_layers: cfg.n_layers,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
            kv_dim,
            capacity,
            len: 0,
            k: vec![0; n],
            v: vec![0; n],
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets positions from `len` on (keeps the prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn check_room(&self, extra: usize) -> Result<(), ModelError> {
        let needed = self.len.saturating_add(extra);
        if needed > self.capacity {
            return Err(ModelError::ContextFull {
                needed,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity);
        self.len = len;
    }

    fn head_range(&self, layer: usize, kv_head: usize, count: usize) -> std::ops::Range<usize> {
        debug_assert!(layer < self.n_layers && count <= self.capacity);
        let hd = self.head_dim;
        let start = (layer * self.n_kv_heads + kv_head) * self.capacity * hd;
        start..start + count * hd
    }

    /// Keys of positions `0..count` of one KV head in `layer`: [count][head_dim].
    pub(crate) fn head_keys(&self, layer: usize, kv_head: usize, count: usize) -> &[F16] {
        &self.k[self.head_range(layer, kv_head, count)]
    }

    /// Values of positions `0..count` of one KV head in `layer`: [count][head_dim].
    pub(crate) fn head_values(&self, layer: usize, kv_head: usize, count: usize) -> &[F16] {
        &self.v[self.head_range(layer, kv_head, count)]
    }

    /// Raw views of `layer`'s keys and values, for the tasks of a decoding step that each
    /// write one KV head's new row and read that head's rows.
    pub(crate) fn layer_heads(&mut self, layer: usize) -> LayerHeads {
        assert!(layer < self.n_layers, "layer out of the cache");
        let start = layer * self.n_kv_heads * self.capacity * self.head_dim;
        LayerHeads {
            k: self.k[start..].as_mut_ptr(),
            v: self.v[start..].as_mut_ptr(),
            capacity: self.capacity,
            head_dim: self.head_dim,
            n_kv_heads: self.n_kv_heads,
            len: self.len,
        }
    }

    /// Stores `k` and `v` ([n][kv_dim] each) at positions `pos..pos+n` of `layer`, as f16.
    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (hd, kv_dim) = (self.head_dim, self.kv_dim);
        let n = k.len() / kv_dim.max(1);
        debug_assert!(pos + n <= self.capacity);
        for h in 0..self.n_kv_heads {
            let r = self.head_range(layer, h, pos + n);
            let (kd, vd) = (&mut self.k[r.clone()], &mut self.v[r]);
            for i in 0..n {
                let src = (i * kv_dim + h * hd)..(i * kv_dim + (h + 1) * hd);
                let dst = (pos + i) * hd..(pos + i + 1) * hd;
                ondo_kernels::attn::to_f16(&k[src.clone()], &mut kd[dst.clone()]);
                ondo_kernels::attn::to_f16(&v[src], &mut vd[dst]);
            }
        }
    }
}

/// `x` rounded in place to f16 precision under `Numerics::LlamaCpp`.
pub(crate) fn round_f16(x: &mut [f32], numerics: Numerics) {
    if numerics.llama_cpp() {
        ondo_kernels::attn::round_to_f16(x);
    }
}

/// One layer of a [`KvCache`] as the tasks of a decoding step see it
/// ([`KvCache::layer_heads`]): each task owns one KV head, writes that head's row at position
/// `len` and then reads its rows `0..=len`. Valid while the cache is neither moved, resized
/// nor otherwise accessed.
#[derive(Clone, Copy)]
pub(crate) struct LayerHeads {
    /// [n_kv_heads][capacity][head_dim]
    k: *mut F16,
    v: *mut F16,
    capacity: usize,
    head_dim: usize,
    n_kv_heads: usize,
    /// Positions filled before this step: the new row goes to position `len`.
    pub(crate) len: usize,
}

// SAFETY: a view handed to the pool's threads, which touch disjoint KV heads (see `write_row`).
unsafe impl Send for LayerHeads {}
unsafe impl Sync for LayerHeads {}

impl LayerHeads {
    /// Stores one KV head's new key and value (`head_dim` each, as f16) at position `len`,
    /// then returns that head's keys and values of positions `0..=len`.
    ///
    /// # Safety
    /// The cache behind the view is alive and untouched but through this view, and no one
    /// else accesses head `h`'s rows while the returned slices live.
    pub(crate) unsafe fn write_row<'a>(
        self,
        h: usize,
        k: &[f32],
        v: &[f32],
    ) -> (&'a [F16], &'a [F16]) {
        let hd = self.head_dim;
        assert!(
            h < self.n_kv_heads && self.len < self.capacity,
            "row out of the cache"
        );
        assert!(k.len() == hd && v.len() == hd, "one head's key and value");
        let (start, row) = (h * self.capacity * hd, self.len * hd);
        let kd = std::slice::from_raw_parts_mut(self.k.add(start), row + hd);
        let vd = std::slice::from_raw_parts_mut(self.v.add(start), row + hd);
        ondo_kernels::attn::to_f16(k, &mut kd[row..]);
        ondo_kernels::attn::to_f16(v, &mut vd[row..]);
        (kd, vd)
    }
}
