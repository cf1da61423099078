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
