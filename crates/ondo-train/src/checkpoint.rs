//! Checkpoints that resume a run exactly: a [`TrainState`] (adapters, AdamW moments and
//! step, RNG state, data position, configuration), in full fine-tuning the model's weights,
//! plus the caller's own JSON (`extra`: the command line, the base model's name...).
//!
//! File layout (little-endian):
//!
//!   "ONDOCKPT"  u32 version (1)  u64 header_len  header (JSON, header_len bytes)  data
//!
//! The header holds the scalars, the configuration, each adapter's (block, target, rank, n_in,
//! n_out, scale), in full fine-tuning the length of every weight tensor, the weight-decay mask
//! and the FNV-1a 64 hash of the data. The data is f32 values: every adapter's A then B (the
//! order of `ModelLora::tensors_mut`), then the weights (`ModelWeights::tensors_mut`, full
//! fine-tuning only), then the first moments in the same order, then the second moments. It is
//! written and read in pieces, never held twice. Its length follows from the shapes and must
//! equal what
//! the file holds, checked (with overflow-checked arithmetic) before anything is allocated; so
//! a truncated, padded or corrupted file is a [`CheckpointError`], never a panic or a huge
//! allocation. Floats in the header round-trip exactly (serde_json's `float_roundtrip`).
//!
//! A save writes `PATH.partial`, syncs it and renames it over PATH, so a crash mid-save leaves
//! the previous checkpoint intact.

use crate::ops::lora::Lora;
use crate::optim::AdamW;
use crate::trainer::{DataPos, TrainConfig, TrainState};
use crate::{BlockLora, Dense, ModelConfig, ModelLora, ModelWeights, Rng, Target};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ONDOCKPT";
const VERSION: u32 = 1;
/// The longest header a checkpoint may have.
const MAX_HEADER: u64 = 64 << 20;
const PREFIX: u64 = 8 + 4 + 8;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not an ondo checkpoint (bad magic)")]
    NotACheckpoint,
    #[error("checkpoint version {0} (this build reads version {VERSION})")]
    Version(u32),
    #[error("checkpoint size: {0}")]
    Size(String),
    #[error("checkpoint header: {0}")]
    Header(String),
    #[error("checkpoint data is corrupted (hash mismatch)")]
    Checksum,
    #[error("checkpoint does not fit this model: {0}")]
    Mismatch(String),
}

/// One adapter's place and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AdapterInfo {
    block: usize,
    target: String,
    rank: usize,
    n_in: usize,
    n_out: usize,
    scale: f32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Header {
    step: u64,
    rng_state: u64,
    pos: DataPos,
    config: TrainConfig,
    n_layers: usize,
    adapters: Vec<AdapterInfo>,
    /// Full fine-tuning: the length of every weight tensor.
    #[serde(default)]
    weight_lens: Vec<u64>,
    /// Per optimizer tensor, whether weight decay applies (empty: everywhere).
    #[serde(default)]
    decay: Vec<bool>,
    data_fnv1a64: u64,
    extra: serde_json::Value,
}

/// A loaded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub state: TrainState,
    /// Full fine-tuning: the model's weights, in `ModelWeights::tensors_mut` order.
    pub weights: Vec<Vec<f32>>,
    pub extra: serde_json::Value,
}

impl Checkpoint {
    /// Copies the saved weights (full fine-tuning) into `w`, whose tensors must have the same
    /// lengths; nothing to do for a LoRA run.
    pub fn restore_weights(&self, w: &mut ModelWeights<f32>) -> Result<(), CheckpointError> {
        if self.weights.is_empty() {
            return Ok(());
        }
        let mut dst = w.tensors_mut();
        let same = dst.len() == self.weights.len()
            && dst
                .iter()
                .zip(&self.weights)
                .all(|(d, s)| d.len() == s.len());
        if !same {
            return Err(CheckpointError::Mismatch(
                "the saved weights have other shapes than the model's".into(),
            ));
        }
        for (d, s) in dst.iter_mut().zip(&self.weights) {
            d.copy_from_slice(s);
        }
        Ok(())
    }

    /// Checks that the adapters fit a model of this shape (layer count, each projection's
    /// in/out sizes).
    pub fn check_model(&self, c: &ModelConfig) -> Result<(), CheckpointError> {
        let blocks = &self.state.lora.blocks;
        if blocks.len() != c.n_layers {
            let m = format!("{} layers, the model has {}", blocks.len(), c.n_layers);
            return Err(CheckpointError::Mismatch(m));
        }
        for (l, b) in blocks.iter().enumerate() {
            for t in Target::ALL {
                let Some(a) = b.get(t) else { continue };
                let (o, i) = c.block.proj_shape(t);
                if a.a.cols != i || a.b.rows != o {
                    let m = format!(
                        "block {l} {}: adapter {}→{}, model {i}→{o}",
                        t.name(),
                        a.a.cols,
                        a.b.rows
                    );
                    return Err(CheckpointError::Mismatch(m));
                }
            }
        }
        Ok(())
    }
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Feeds the little-endian bytes of every value of `tensors` to `f`, a piece at a time.
fn each_piece<E>(tensors: &[&[f32]], mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let mut buf = Vec::with_capacity(1 << 16);
    for t in tensors {
        for chunk in t.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            f(&buf)?;
        }
    }
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `PATH.partial`, the file a save writes before renaming.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Writes `state`, in full fine-tuning `weights` (the model's), and `extra` to `path`
/// (through `PATH.partial` and a rename).
pub fn save(
    path: &Path,
    state: &TrainState,
    weights: &ModelWeights<f32>,
    extra: &serde_json::Value,
) -> Result<(), CheckpointError> {
    let mut adapters = Vec::new();
    let mut tensors: Vec<&[f32]> = Vec::new();
    for (l, b) in state.lora.blocks.iter().enumerate() {
        for t in Target::ALL {
            if let Some(a) = b.get(t) {
                adapters.push(AdapterInfo {
                    block: l,
                    target: t.name().to_string(),
                    rank: a.rank(),
                    n_in: a.a.cols,
                    n_out: a.b.rows,
                    scale: a.scale,
                });
                tensors.extend([&a.a.w[..], &a.b.w[..]]);
            }
        }
    }
    let mut weight_lens = Vec::new();
    if state.config.full {
        let w = weights.tensors();
        weight_lens = w.iter().map(|t| t.len() as u64).collect();
        tensors.extend(w);
    }
    tensors.extend(state.opt.m.iter().chain(&state.opt.v).map(|t| &t[..]));
    let mut hash = FNV_START;
    each_piece::<()>(&tensors, |b| {
        hash = fnv1a64(hash, b);
        Ok(())
    })
    .ok();
    let header = Header {
        step: state.opt.step,
        rng_state: state.rng.state(),
        pos: state.pos,
        config: state.config.clone(),
        n_layers: state.lora.blocks.len(),
        adapters,
        weight_lens,
        decay: state.opt.decay.clone(),
        data_fnv1a64: hash,
        extra: extra.clone(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| CheckpointError::Header(e.to_string()))?;

    let tmp = partial_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&VERSION.to_le_bytes())?;
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.write_all(&json)?;
        each_piece(&tensors, |b| f.write_all(b))?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The number of f32 values the adapters' A and B, the weights and their m and v hold, None
/// on overflow.
fn value_count(adapters: &[AdapterInfo], weight_lens: &[u64]) -> Option<u64> {
    let mut n = 0u64;
    for a in adapters {
        let (r, i, o) = (a.rank as u64, a.n_in as u64, a.n_out as u64);
        n = n.checked_add(r.checked_mul(i)?.checked_add(o.checked_mul(r)?)?)?;
    }
    for &w in weight_lens {
        n = n.checked_add(w)?;
    }
    n.checked_mul(3)
}

/// Reads and validates a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    if file_len < PREFIX {
        return Err(CheckpointError::Size(format!(
            "{file_len} bytes, shorter than the prefix"
        )));
    }
    let mut prefix = [0u8; PREFIX as usize];
    f.read_exact(&mut prefix).map_err(io_err(path))?;
    if &prefix[..8] != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if version != VERSION {
        return Err(CheckpointError::Version(version));
    }
    let mut hl = [0u8; 8];
    hl.copy_from_slice(&prefix[12..20]);
    let header_len = u64::from_le_bytes(hl);
    if header_len > MAX_HEADER || header_len > file_len - PREFIX {
        let m = format!("header of {header_len} bytes in a file of {file_len}");
        return Err(CheckpointError::Size(m));
    }
    let mut json = vec![0u8; header_len as usize];
    f.read_exact(&mut json).map_err(io_err(path))?;
    let h: Header =
        serde_json::from_slice(&json).map_err(|e| CheckpointError::Header(e.to_string()))?;
    let data_len = file_len - PREFIX - header_len;
    let want = value_count(&h.adapters, &h.weight_lens).and_then(|n| n.checked_mul(4));
    if want != Some(data_len) {
        let m = format!("the shapes need {want:?} data bytes, the file holds {data_len}");
        return Err(CheckpointError::Size(m));
    }
    if h.config.full == h.weight_lens.is_empty() {
        return Err(CheckpointError::Header(
            "full fine-tuning and saved weights go together".into(),
        ));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 16, f);
    let (mut hash, mut read_err) = (FNV_START, None);
    // n values from the file (the sizes above guarantee they are there)
    let mut take = |n: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; 1 << 16];
        while out.len() < n && read_err.is_none() {
            let k = (n - out.len()).min(buf.len() / 4);
            match reader.read_exact(&mut buf[..k * 4]) {
                Ok(()) => {
                    hash = fnv1a64(hash, &buf[..k * 4]);
                    out.extend(
                        buf[..k * 4]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                }
                Err(e) => read_err = Some(e),
            }
        }
        out.resize(n, 0.0); // only after a read error, which is returned below
        out
    };

    let bad = |m: String| Err(CheckpointError::Header(m));
    if h.adapters.len() > h.n_layers.saturating_mul(7) {
        return bad(format!(
            "{} adapters for {} layers",
            h.adapters.len(),
            h.n_layers
        ));
    }
    let mut lora = ModelLora {
        blocks: (0..h.n_layers).map(|_| BlockLora::none()).collect(),
    };
    let mut prev: Option<(usize, usize)> = None;
    for a in &h.adapters {
        let Some(t) = Target::ALL.into_iter().find(|t| t.name() == a.target) else {
            return bad(format!("unknown target {:?}", a.target));
        };
        // in the order `save` writes, which is the order `tensors_mut` walks
        let key = (a.block, t as usize);
        if a.block >= h.n_layers || prev.is_some_and(|p| p >= key) || a.rank == 0 {
            return bad(format!(
                "adapter {} {} out of order, out of range or rank 0",
                a.block, a.target
            ));
        }
        prev = Some(key);
        lora.blocks[a.block].adapters[t as usize] = Some(Lora {
            a: Dense::new(a.rank, a.n_in, take(a.rank * a.n_in)),
            b: Dense::new(a.n_out, a.rank, take(a.n_out * a.rank)),
            scale: a.scale,
        });
    }
    let mut lens: Vec<usize> = lora.tensors_mut().iter().map(|t| t.len()).collect();
    let weights: Vec<Vec<f32>> = h.weight_lens.iter().map(|&n| take(n as usize)).collect();
    lens.extend(weights.iter().map(|w| w.len()));
    let m = lens.iter().map(|&n| take(n)).collect();
    let v = lens.iter().map(|&n| take(n)).collect();
    if let Some(e) = read_err {
        return Err(io_err(path)(e));
    }
    if hash != h.data_fnv1a64 {
        return Err(CheckpointError::Checksum);
    }
    let decay = match h.decay.len() {
        0 => vec![true; lens.len()],
        n if n == lens.len() => h.decay,
        n => return bad(format!("a decay mask of {n} for {} tensors", lens.len())),
    };
    let opt = AdamW {
        config: h.config.adamw,
        step: h.step,
        m,
        v,
        decay,
    };
    h.config
        .schedule
        .validate()
        .map_err(|e| CheckpointError::Header(e.to_string()))?;
    if h.config.grad_accum == 0 || h.config.batch == 0 {
        return bad("grad_accum or batch 0".into());
    }
    let state = TrainState {
        config: h.config,
        lora,
        opt,
        rng: Rng::new(h.rng_state),
        pos: h.pos,
        scratch: Default::default(),
    };
    Ok(Checkpoint {
        state,
        weights,
        extra: h.extra,
    })
}
