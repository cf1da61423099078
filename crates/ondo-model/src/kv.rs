//! The key/value cache of one sequence: per layer, `capacity` positions of `kv_dim` values
//! stored as f16 (llama.cpp's default cache type). Owned by the caller (engine, CLI), lent to
//! the model for each forward call.

use crate::{LlamaConfig, ModelError, Numerics};

/// The bits of an f16 value.
pub type F16 = u16;

pub struct KvCache {
    n_layers: usize,
    kv_dim: usize,
    capacity: usize,
    /// Positions filled so far.
    len: usize,
    /// [n_layers][capacity][kv_dim]
    k: Vec<F16>,
    /// [n_layers][capacity][kv_dim]
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

    fn range(&self, layer: usize, pos: usize, count: usize) -> std::ops::Range<usize> {
        debug_assert!(layer < self.n_layers && pos + count <= self.capacity);
        let start = (layer * self.capacity + pos) * self.kv_dim;
        start..start + count * self.kv_dim
    }

    /// Keys of positions `pos..pos+count` in `layer`: [count][kv_dim].
    pub(crate) fn keys(&self, layer: usize, pos: usize, count: usize) -> &[F16] {
        &self.k[self.range(layer, pos, count)]
    }

    pub(crate) fn values(&self, layer: usize, pos: usize, count: usize) -> &[F16] {
        &self.v[self.range(layer, pos, count)]
    }

    /// Mutable keys and values of positions `pos..pos+count` in `layer`.
    pub(crate) fn kv_mut(
        &mut self,
        layer: usize,
        pos: usize,
        count: usize,
    ) -> (&mut [F16], &mut [F16]) {
        let r = self.range(layer, pos, count);
        (&mut self.k[r.clone()], &mut self.v[r])
    }
}

/// dst = src converted to f16 (round to nearest even).
pub(crate) fn store(dst: &mut [F16], src: &[f32]) {
    ondo_kernels::attn::to_f16(src, dst);
}

/// `x` rounded in place to f16 precision under `Numerics::LlamaCpp`.
pub(crate) fn round_f16(x: &mut [f32], numerics: Numerics) {
    if numerics == Numerics::LlamaCpp {
        ondo_kernels::attn::round_to_f16(x);
    }
}
