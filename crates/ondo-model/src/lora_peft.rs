//! Hugging Face PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`), read
//! into the same [`LoraDelta`]s as llama.cpp's GGUF adapters. Keys look like
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` ([r][in]) and
//! `...lora_B.weight` ([out][r]); HF module names map to GGUF tensors (q_proj → attn_q, ...,
//! lm_head → output). GGUF Llama files store Q and K with their rows permuted for llama.cpp's
//! RoPE layout (`convert_hf_to_gguf.py`'s `permute`), so B of q_proj and k_proj is permuted
//! the same way, as `convert_lora_to_gguf.py` does. Scale: `lora_alpha / r`, or
//! `lora_alpha / sqrt(r)` with `use_rslora`.

use std::path::Path;

use ondo_formats::safetensors::{Dtype, SafeTensors, TensorInfo};

use crate::lora::{LoraDelta, MAX_RANK};
use crate::ModelError;

/// Largest `adapter_config.json` read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::BadAdapter(msg.into())
}

/// What `adapter_config.json` says that matters here.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftConfig {
    pub r: usize,
    pub alpha: f32,
    pub rslora: bool,
}

impl PeftConfig {
    /// Parses the JSON text of `adapter_config.json`.
    pub fn parse(text: &str) -> Result<PeftConfig, ModelError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| bad(format!("adapter_config.json is not valid JSON: {e}")))?;
        if let Some(t) = v.get("peft_type").and_then(|t| t.as_str()) {
            if t != "LORA" {
                return Err(bad(format!("peft_type '{t}' is not supported (LORA)")));
            }
        }
        let r = v
            .get("r")
            .and_then(|r| r.as_u64())
            .filter(|&r| r > 0 && r as usize <= MAX_RANK)
            .ok_or_else(|| bad(format!("adapter_config.json needs 'r' in 1..={MAX_RANK}")))?;
        let alpha = v
            .get("lora_alpha")
            .and_then(|a| a.as_f64())
            .filter(|a| a.is_finite())
            .ok_or_else(|| bad("adapter_config.json needs a numeric 'lora_alpha'"))?;
        Ok(PeftConfig {
            r: r as usize,
            alpha: alpha as f32,
            rslora: v
                .get("use_rslora")
                .and_then(|b| b.as_bool())
                .unwrap_or(false),
        })
    }

    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha / self.r as f32
        }
    }
}

/// The GGUF tensor an HF LoRA key adapts, and whether the key is A (`true`) or B.
pub fn gguf_target(key: &str) -> Option<(String, bool)> {
    let (module, is_a) = if let Some(m) = key.strip_suffix(".lora_A.weight") {
        (m, true)
    } else {
        (key.strip_suffix(".lora_B.weight")?, false)
    };
    if module.ends_with("lm_head") {
        return Some(("output.weight".into(), is_a));
    }
    let at = module.find("layers.")?;
    let rest = &module[at + "layers.".len()..];
    let (layer, path) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let name = match path.rsplit('.').next()? {
        "q_proj" => "attn_q",
        "k_proj" => "attn_k",
        "v_proj" => "attn_v",
        "o_proj" => "attn_output",
        "gate_proj" => "ffn_gate",
        "up_proj" => "ffn_up",
        "down_proj" => "ffn_down",
        _ => return None,
    };
    Some((format!("blk.{layer}.{name}.weight"), is_a))
}

/// Reads a PEFT adapter (`dir` holding both files, or the safetensors file with the config
/// beside it): (GGUF tensor name, delta) per adapted matrix, checked with `shape_of(name)`
/// = the base matrix's (rows, cols); the head counts permute q_proj's and k_proj's B.
pub fn read_peft_adapter(
    path: &Path,
    (n_heads, n_kv_heads): (usize, usize),
    user_scale: f32,
    mut shape_of: impl FnMut(&str) -> Option<(usize, usize)>,
) -> Result<Vec<(String, LoraDelta)>, ModelError> {
    let (dir, weights) = if path.is_dir() {
        (path.to_path_buf(), path.join("adapter_model.safetensors"))
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    };
    let config_path = dir.join("adapter_config.json");
    let cannot = |e: std::io::Error| bad(format!("cannot read {}: {e}", config_path.display()));
    let size = std::fs::metadata(&config_path).map_err(cannot)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "{} is {size} bytes; a PEFT config is a few hundred",
            config_path.display()
        )));
    }
    let text = std::fs::read_to_string(&config_path).map_err(cannot)?;
    let pc = PeftConfig::parse(&text)?;
    if !user_scale.is_finite() {
        return Err(bad("the scale must be finite"));
    }
    let st = SafeTensors::open(&weights).map_err(|e| bad(format!("{}: {e}", weights.display())))?;
    let mut out = Vec::new();
    for ta in st.tensors() {
        let (target, is_a) = gguf_target(&ta.name).ok_or_else(|| {
            bad(format!(
                "tensor '{}' is not a LoRA weight ondo can apply",
                ta.name
            ))
        })?;
        if !is_a {
            continue;
        }
        let b_name = ta.name.replace(".lora_A.weight", ".lora_B.weight");
        let tb = st
            .tensor(&b_name)
            .ok_or_else(|| bad(format!("'{}' has no '{b_name}'", ta.name)))?;
        let (rows, cols) = shape_of(&target)
            .ok_or_else(|| bad(format!("the model has no matrix '{target}' to adapt")))?;
        let (a_rank, a_in) = matrix_shape(ta)?;
        let (b_out, b_rank) = matrix_shape(tb)?;
        if a_in != cols || b_out != rows || a_rank != b_rank || a_rank != pc.r {
            return Err(bad(format!(
                "'{}': lora_A is [{a_rank}, {a_in}] and lora_B [{b_out}, {b_rank}], but the \
                 matrix takes {cols} inputs to {rows} outputs and r is {}",
                ta.name, pc.r
            )));
        }
        let mut b = values(&st, tb)?;
        if target.ends_with("attn_q.weight") {
            b = permute_rows(&b, a_rank, n_heads);
        } else if target.ends_with("attn_k.weight") {
            b = permute_rows(&b, a_rank, n_kv_heads);
        }
        out.push((
            target,
            LoraDelta {
                rank: a_rank,
                a: values(&st, ta)?,
                b,
                scale: user_scale * pc.scale(),
                slot: None,
            },
        ));
    }
    if out.is_empty() {
        return Err(bad("the adapter has no LoRA weights"));
    }
    Ok(out)
}

fn matrix_shape(t: &TensorInfo) -> Result<(usize, usize), ModelError> {
    match t.shape.as_slice() {
        [r, c] => Ok((*r as usize, *c as usize)),
        s => Err(bad(format!(
            "'{}' has shape {s:?}, expected two dims",
            t.name
        ))),
    }
}

fn values(st: &SafeTensors, t: &TensorInfo) -> Result<Vec<f32>, ModelError> {
    let d = st.data(t);
    let v = match t.dtype {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|b| ondo_kernels::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| ondo_kernels::bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        other => {
            return Err(bad(format!(
                "'{}' is {}; LoRA weights must be F32, F16 or BF16",
                t.name,
                other.name()
            )))
        }
    };
    Ok(v)
}

/// `convert_hf_to_gguf.py`'s `permute` on the rows of a [heads·hd][cols] matrix: within each
/// head, HF's row `a·hd/2 + b` (halves a of the rotary pairs) becomes GGUF's row `2b + a`.
pub fn permute_rows(m: &[f32], cols: usize, heads: usize) -> Vec<f32> {
    move_rows(m, cols, heads, true)
}

/// The inverse of [`permute_rows`]: GGUF's row `2b + a` of a head back to HF's `a·hd/2 + b`.
pub fn unpermute_rows(m: &[f32], cols: usize, heads: usize) -> Vec<f32> {
    move_rows(m, cols, heads, false)
}

fn move_rows(m: &[f32], cols: usize, heads: usize, to_gguf: bool) -> Vec<f32> {
    let rows = m.len() / cols.max(1);
    let hd = rows / heads.max(1);
    let half = hd / 2;
    let mut out = vec![0.0; m.len()];
    for h in 0..heads {
        for a in 0..2 {
            for b in 0..half {
                let (hf, gg) = (h * hd + a * half + b, h * hd + 2 * b + a);
                let (src, dst) = if to_gguf { (hf, gg) } else { (gg, hf) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&m[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The HF module path of a GGUF tensor name (inverse of [`gguf_target`]).
pub fn hf_module(gguf: &str) -> Option<String> {
    if gguf == "output.weight" {
        return Some("base_model.model.lm_head".into());
    }
    let rest = gguf.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (layer, name) = rest.split_once('.')?;
    let module = match name {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("base_model.model.model.layers.{layer}.{module}"))
}

/// Writes deltas as a PEFT adapter directory (`adapter_config.json` with `r` and `lora_alpha`
/// from the first delta, `adapter_model.safetensors` in f32). Every delta must share that
/// rank; a delta whose scale differs has the ratio folded into its B.
pub fn write_peft_adapter(
    dir: &Path,
    deltas: &[(String, LoraDelta)],
    (n_heads, n_kv_heads): (usize, usize),
    base_model: &str,
) -> Result<(), ModelError> {
    use ondo_formats::safetensors::SafeTensorsWriter;
    let Some((_, first)) = deltas.first() else {
        return Err(bad("nothing to write: no adapted matrices"));
    };
    let (r, alpha) = (first.rank, first.scale * first.rank as f32);
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut w = SafeTensorsWriter::new();
    let mut modules = std::collections::BTreeSet::new();
    for (name, d) in deltas {
        if d.rank != r {
            return Err(bad(format!("'{name}' has rank {}, the others {r}", d.rank)));
        }
        let key = hf_module(name).ok_or_else(|| bad(format!("no HF name for '{name}'")))?;
        modules.insert(key.rsplit('.').next().unwrap_or("").to_string());
        let fold = d.scale / first.scale;
        let mut b: Vec<f32> = d.b.iter().map(|v| v * fold).collect();
        if name.ends_with("attn_q.weight") {
            b = unpermute_rows(&b, r, n_heads);
        } else if name.ends_with("attn_k.weight") {
            b = unpermute_rows(&b, r, n_kv_heads);
        }
        let cols = (d.a.len() / r) as u64;
        let rows = (b.len() / r) as u64;
        let err = |e: ondo_formats::safetensors::SafetensorsError| bad(e.to_string());
        w.add_tensor(
            format!("{key}.lora_A.weight"),
            Dtype::F32,
            &[r as u64, cols],
            f32_bytes(&d.a),
        )
        .map_err(err)?;
        w.add_tensor(
            format!("{key}.lora_B.weight"),
            Dtype::F32,
            &[rows, r as u64],
            f32_bytes(&b),
        )
        .map_err(err)?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
    w.write(dir.join("adapter_model.safetensors"))
        .map_err(|e| bad(e.to_string()))?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": modules.into_iter().collect::<Vec<_>>(),
        "base_model_name_or_path": base_model,
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| bad(e.to_string()))?;
    std::fs::write(dir.join("adapter_config.json"), text)
        .map_err(|e| bad(format!("cannot write adapter_config.json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_keys_map_to_gguf_tensors() {
        let k = "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight";
        assert_eq!(gguf_target(k), Some(("blk.7.attn_q.weight".into(), true)));
        let k = "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight";
        assert_eq!(
            gguf_target(k),
            Some(("blk.0.ffn_down.weight".into(), false))
        );
        let k = "base_model.model.lm_head.lora_B.weight";
        assert_eq!(gguf_target(k), Some(("output.weight".into(), false)));
        assert_eq!(
            gguf_target("base_model.model.model.embed_tokens.weight"),
            None
        );
        assert_eq!(
            gguf_target("base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight"),
            None
        );
    }

    #[test]
    fn permutation_interleaves_the_halves_of_each_head() {
        // 2 heads of 4 rows, 1 column: HF rows [0 1 2 3 | 4 5 6 7] → GGUF [0 2 1 3 | 4 6 5 7].
        let m: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_eq!(permute_rows(&m, 1, 2), vec![0., 2., 1., 3., 4., 6., 5., 7.]);
    }

    #[test]
    fn config_scale() {
        let c = PeftConfig::parse(r#"{"r": 8, "lora_alpha": 16, "peft_type": "LORA"}"#).unwrap();
        assert_eq!(c.scale(), 2.0);
        let c = PeftConfig::parse(r#"{"r": 4, "lora_alpha": 8, "use_rslora": true}"#).unwrap();
        assert_eq!(c.scale(), 4.0);
        for bad in [
            "{}",
            r#"{"r": 0, "lora_alpha": 1}"#,
            r#"{"r": 8}"#,
            "[",
            r#"{"r":8,"lora_alpha":1,"peft_type":"IA3"}"#,
        ] {
            assert!(PeftConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
