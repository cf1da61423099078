//! LoRA adapters applied at run time, with llama.cpp's arithmetic: a linear layer `y = W x`
//! with adapters becomes `y = ((W x + (B (A x)) s_1) + (B_2 (A_2 x)) s_2) ...`, where A is
//! [rank][in] and B [out][rank] in f32 and `s = user_scale * alpha / rank` (`user_scale` when
//! the adapter has no alpha), as `llm_build_lora_mm` computes it. Both products use
//! tinyBLAS's dot order (one 8-lane accumulator of fused multiply-adds, then the horizontal
//! sum: [`ondo_kernels::ggml_math::dot_lanes8`]), which llama.cpp uses for f32 weights in a
//! batch, so an adapter whose rank is a multiple of 8 gives llama.cpp's batched logits exactly.
//!
//! [`load_gguf_adapter`] reads llama.cpp's GGUF LoRA format: `general.type = "adapter"`,
//! `adapter.type = "lora"`, `adapter.lora.alpha`, and per adapted tensor `NAME.lora_a` (ggml
//! dims [in, rank]) and `NAME.lora_b` (dims [rank, out]), F32 or F16.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use ondo_formats::{GgmlType, GgufFile, TensorInfo};
use ondo_kernels::ggml_math::dot_lanes8;

use crate::{LlamaModel, ModelError, QWeight};

/// Largest rank accepted from a file.
pub const MAX_RANK: usize = 1024;

/// One adapter of one matrix.
#[derive(Debug, Clone)]
pub struct LoraDelta {
    pub rank: usize,
    /// [rank][in]
    pub a: Vec<f32>,
    /// [out][rank]
    pub b: Vec<f32>,
    pub scale: f32,
    /// `None`: applied to every row; `Some(k)`: only to rows of sequences that select
    /// adapter `k` (a server's per-request choice).
    pub slot: Option<u32>,
}

thread_local! {
    static AX: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Adds every adapter's contribution to `out` ([n][rows]) for the input `x` ([n][cols]);
/// a selectable adapter only to the rows `t` with `adapters[t]` equal to its slot.
pub(crate) fn apply(w: &QWeight, x: &[f32], n: usize, out: &mut [f32], adapters: &[Option<u32>]) {
    if w.lora.is_empty() {
        return;
    }
    let (cols, rows) = (w.cols, w.rows);
    AX.with(|ax| {
        let mut ax = ax.borrow_mut();
        for d in &w.lora {
            ax.resize(d.rank, 0.0);
            for t in 0..n {
                if d.slot.is_some() && adapters.get(t).copied().flatten() != d.slot {
                    continue;
                }
                let xt = &x[t * cols..(t + 1) * cols];
                for (j, v) in ax.iter_mut().enumerate() {
                    *v = dot_lanes8(&d.a[j * cols..(j + 1) * cols], xt);
                }
                let yt = &mut out[t * rows..(t + 1) * rows];
                for (o, y) in yt.iter_mut().enumerate() {
                    let ab = dot_lanes8(&d.b[o * d.rank..(o + 1) * d.rank], &ax[..]);
                    *y += ab * d.scale;
                }
            }
        }
    });
}

/// The adapter file's problems, as one message.
fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::BadAdapter(msg.into())
}

/// Reads an adapter in either format: a PEFT directory or `.safetensors` file
/// ([`crate::lora_peft`]), else llama.cpp's GGUF adapter. `heads` = (n_heads, n_kv_heads) of
/// the base, `shape_of(name)` its matrix's (rows, cols).
pub fn read_adapter(
    path: &Path,
    base_arch: &str,
    heads: (usize, usize),
    user_scale: f32,
    shape_of: impl FnMut(&str) -> Option<(usize, usize)>,
) -> Result<Vec<(String, LoraDelta)>, ModelError> {
    let peft = path.is_dir() || path.extension().is_some_and(|e| e == "safetensors");
    if peft {
        return crate::lora_peft::read_peft_adapter(path, heads, user_scale, shape_of);
    }
    let file = GgufFile::open(path)?;
    read_gguf_adapter(&file, base_arch, user_scale, shape_of)
}

/// Attaches the adapter at `path` (PEFT or GGUF, see [`read_adapter`]) to `model`, for every
/// sequence (`slot` None) or for the sequences that select `slot`. Returns how many matrices
/// it adapts.
pub fn load_adapter(
    model: &mut LlamaModel,
    base_arch: &str,
    path: &Path,
    user_scale: f32,
    slot: Option<u32>,
) -> Result<usize, ModelError> {
    let heads = (model.config.n_heads, model.config.n_kv_heads);
    let deltas = read_adapter(path, base_arch, heads, user_scale, |name| {
        model.weight_mut(name).map(|w| (w.rows, w.cols))
    })?;
    Ok(attach(model, deltas, slot))
}

fn attach(model: &mut LlamaModel, deltas: Vec<(String, LoraDelta)>, slot: Option<u32>) -> usize {
    let n = deltas.len();
    for (name, mut d) in deltas {
        d.slot = slot;
        if let Some(w) = model.weight_mut(&name) {
            w.lora.push(Arc::new(d));
        }
    }
    n
}

/// Attaches the LoRA adapters of a GGUF adapter file to `model` (whose file declared
/// `base_arch`), each scaled by `user_scale`, for every sequence (`slot` None) or for the
/// sequences that select `slot`. Returns how many matrices it adapts; an adapter that matches
/// none is an error, as is any tensor that does not fit its matrix.
pub fn load_gguf_adapter(
    model: &mut LlamaModel,
    base_arch: &str,
    file: &GgufFile,
    user_scale: f32,
    slot: Option<u32>,
) -> Result<usize, ModelError> {
    let deltas = read_gguf_adapter(file, base_arch, user_scale, |name| {
        model.weight_mut(name).map(|w| (w.rows, w.cols))
    })?;
    Ok(attach(model, deltas, slot))
}

/// Reads and checks a GGUF LoRA adapter: (base tensor name, delta) per adapted matrix.
/// `shape_of(name)` gives the base matrix's (rows, cols), `None` when there is none to adapt.
pub fn read_gguf_adapter(
    file: &GgufFile,
    base_arch: &str,
    user_scale: f32,
    mut shape_of: impl FnMut(&str) -> Option<(usize, usize)>,
) -> Result<Vec<(String, LoraDelta)>, ModelError> {
    let meta = file.metadata();
    match meta.get_str("general.type")? {
        Some("adapter") | None => {}
        Some(other) => return Err(bad(format!("general.type is '{other}', not 'adapter'"))),
    }
    match meta.get_str("adapter.type")? {
        Some("lora") => {}
        Some(other) => {
            return Err(bad(format!(
                "adapter.type '{other}' is not supported (lora)"
            )))
        }
        None => return Err(bad("adapter.type is missing: not a LoRA adapter")),
    }
    let arch = meta.get_str("general.architecture")?.unwrap_or("");
    if arch != base_arch {
        return Err(bad(format!(
            "the adapter is for architecture '{arch}', the model is '{base_arch}'"
        )));
    }
    let alpha = meta.get_f32("adapter.lora.alpha")?.unwrap_or(0.0);
    if !user_scale.is_finite() || !alpha.is_finite() {
        return Err(bad("the adapter's alpha and the scale must be finite"));
    }
    let mut out = Vec::new();
    for ta in file.tensors() {
        let Some(base) = ta.name.strip_suffix(".lora_a") else {
            if !ta.name.ends_with(".lora_b") {
                return Err(bad(format!("tensor '{}' is not a LoRA tensor", ta.name)));
            }
            continue;
        };
        let tb = file
            .tensor(&format!("{base}.lora_b"))
            .ok_or_else(|| bad(format!("'{base}.lora_a' has no '{base}.lora_b'")))?;
        let shape = shape_of(base)
            .ok_or_else(|| bad(format!("the model has no matrix '{base}' to adapt")))?;
        out.push((
            base.to_string(),
            read_pair(file, ta, tb, shape, base, alpha, user_scale)?,
        ));
    }
    if out.is_empty() {
        return Err(bad("the adapter has no LoRA tensors"));
    }
    Ok(out)
}

fn read_pair(
    file: &GgufFile,
    ta: &TensorInfo,
    tb: &TensorInfo,
    (rows, cols): (usize, usize),
    base: &str,
    alpha: f32,
    user_scale: f32,
) -> Result<LoraDelta, ModelError> {
    let dims = |t: &TensorInfo| -> Result<(usize, usize), ModelError> {
        match t.dims.as_slice() {
            [c, r] => Ok((*c as usize, *r as usize)),
            d => Err(bad(format!("'{}' has dims {d:?}, expected two", t.name))),
        }
    };
    let (a_in, rank) = dims(ta)?;
    let (b_rank, b_out) = dims(tb)?;
    if a_in != cols || b_out != rows {
        return Err(bad(format!(
            "'{base}': lora_a is [{a_in}, {rank}] and lora_b [{b_rank}, {b_out}], but the \
             matrix takes {cols} inputs to {rows} outputs"
        )));
    }
    if rank != b_rank || rank == 0 || rank > MAX_RANK {
        return Err(bad(format!(
            "'{base}': lora_a has rank {rank} and lora_b {b_rank} (they must agree, 1 to {MAX_RANK})"
        )));
    }
    let scale = if alpha != 0.0 {
        user_scale * alpha / rank as f32
    } else {
        user_scale
    };
    Ok(LoraDelta {
        rank,
        a: values(file, ta)?,
        b: values(file, tb)?,
        scale,
        slot: None,
    })
}

fn values(file: &GgufFile, t: &TensorInfo) -> Result<Vec<f32>, ModelError> {
    let data = file.tensor_data(t);
    match t.ggml_type {
        GgmlType::F32 => Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        GgmlType::F16 => Ok(data
            .chunks_exact(2)
            .map(|b| ondo_kernels::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect()),
        other => Err(bad(format!(
            "'{}' is {other:?}; LoRA tensors must be F32 or F16",
            t.name
        ))),
    }
}

/// The deltas as llama.cpp's GGUF adapter (`adapter.lora.alpha` from the first delta; a delta
/// whose scale differs has the ratio folded into its B). Tensors stay f32.
pub fn gguf_adapter_writer(
    deltas: &[(String, LoraDelta)],
    arch: &str,
) -> Result<ondo_formats::GgufWriter<'static>, ModelError> {
    use ondo_formats::Value;
    let Some((_, first)) = deltas.first() else {
        return Err(bad("nothing to write: no adapted matrices"));
    };
    let alpha = first.scale * first.rank as f32;
    let mut w = ondo_formats::GgufWriter::new();
    w.add_kv("general.architecture", Value::Str(arch.into()))
        .add_kv("general.type", Value::Str("adapter".into()))
        .add_kv("adapter.type", Value::Str("lora".into()))
        .add_kv("adapter.lora.alpha", Value::F32(alpha));
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    for (name, d) in deltas {
        // The scale llama.cpp will use for this tensor is alpha / rank.
        let b: Vec<f32> = if d.scale * d.rank as f32 == alpha {
            d.b.clone()
        } else {
            let fold = d.scale / (alpha / d.rank as f32);
            d.b.iter().map(|v| v * fold).collect()
        };
        let (cols, rows) = ((d.a.len() / d.rank) as u64, (b.len() / d.rank) as u64);
        w.add_tensor(
            format!("{name}.lora_a"),
            &[cols, d.rank as u64],
            GgmlType::F32,
            f32_bytes(&d.a),
        );
        w.add_tensor(
            format!("{name}.lora_b"),
            &[d.rank as u64, rows],
            GgmlType::F32,
            f32_bytes(&b),
        );
    }
    Ok(w)
}

impl LoraDelta {
    /// Adds `scale · B A` to a dense [rows][cols] matrix (merging the adapter into it).
    pub fn add_to(&self, w: &mut [f32], cols: usize) {
        for (o, row) in w.chunks_exact_mut(cols).enumerate() {
            let b = &self.b[o * self.rank..(o + 1) * self.rank];
            for (j, &bj) in b.iter().enumerate() {
                let a = &self.a[j * cols..(j + 1) * cols];
                let s = bj * self.scale;
                for (v, &aj) in row.iter_mut().zip(a) {
                    *v += s * aj;
                }
            }
        }
    }
}

impl LlamaModel {
    /// The matrix a GGUF tensor name refers to (`blk.N.attn_q.weight`, `output.weight`, ...).
    pub fn weight_mut(&mut self, name: &str) -> Option<&mut QWeight> {
        if name == "output.weight" {
            return Some(&mut self.output);
        }
        let rest = name.strip_prefix("blk.")?;
        let (i, rest) = rest.split_once('.')?;
        let l = self.layers.get_mut(i.parse::<usize>().ok()?)?;
        Some(match rest {
            "attn_q.weight" => &mut l.wq,
            "attn_k.weight" => &mut l.wk,
            "attn_v.weight" => &mut l.wv,
            "attn_output.weight" => &mut l.wo,
            "ffn_gate.weight" => &mut l.w_gate,
            "ffn_up.weight" => &mut l.w_up,
            "ffn_down.weight" => &mut l.w_down,
            _ => return None,
        })
    }
}
