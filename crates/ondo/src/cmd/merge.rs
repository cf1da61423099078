//! `ondo merge`: bakes LoRA adapters into a new GGUF. Each adapted matrix is dequantized to
//! f32, gets `scale · B A` of every adapter in order, and is quantized again (to its own type,
//! or the one `--type` names) with llama.cpp's reference quantizers; everything else is copied
//! byte for byte from the base's memory map.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use ondo_formats::GgufWriter;
use ondo_kernels::DType;
use ondo_model::lora::{read_adapter, LoraDelta};

use crate::cli::MergeArgs;
use crate::{load, store};

pub fn merge(a: MergeArgs) -> Result<()> {
    load::check_output(&a.output, a.force)?;
    let target = match a.dtype.to_ascii_lowercase().as_str() {
        "keep" => None,
        name => Some(load::writable_type(name).context("--type: or keep")?),
    };
    let path = store::resolve_model(a.model.model.as_deref())?;
    let file = load::open_file(&path)?;
    let arch = file
        .metadata()
        .get_str("general.architecture")?
        .context("the base has no general.architecture")?
        .to_string();
    let shape_of = |name: &str| {
        let t = file.tensor(name)?;
        match t.dims.as_slice() {
            [c, r] => Some((*r as usize, *c as usize)),
            _ => None,
        }
    };
    let head_count = |key: &str| -> Result<usize> {
        Ok(file
            .metadata()
            .get_u32(&format!("{arch}.{key}"))?
            .unwrap_or(0) as usize)
    };
    let n_heads = head_count("attention.head_count")?;
    let n_kv = match head_count("attention.head_count_kv")? {
        0 => n_heads,
        k => k,
    };
    let mut deltas: BTreeMap<String, Vec<LoraDelta>> = BTreeMap::new();
    for spec in &a.lora {
        let (p, scale) = load::lora_spec(spec)?;
        let path = std::path::Path::new(p);
        for (name, d) in read_adapter(path, &arch, (n_heads, n_kv), scale, shape_of)
            .with_context(|| format!("cannot apply the adapter '{p}'"))?
        {
            deltas.entry(name).or_default().push(d);
        }
    }

    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        w.add_kv(key, value.clone());
    }
    for t in file.tensors() {
        let Some(ds) = deltas.get(&t.name) else {
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, file.tensor_data(t));
            continue;
        };
        let src = DType::from_ggml_id(t.ggml_type.0)
            .with_context(|| format!("'{}' has a type ondo cannot read", t.name))?;
        let dst = target.unwrap_or(src);
        if !load::can_quantize(dst) {
            bail!(
                "'{}' is {} and ondo cannot quantize that type yet: pass --type q8_0 (or f16)",
                t.name,
                dst.name()
            );
        }
        let (rows, cols) = shape_of(&t.name).context("adapted tensors are matrices")?;
        let mut dense = vec![0.0f32; rows * cols];
        let src_rb = src.row_bytes(cols).context("row size")?;
        for (row, bytes) in dense
            .chunks_exact_mut(cols)
            .zip(file.tensor_data(t).chunks_exact(src_rb))
        {
            ondo_kernels::dequantize_row(src, bytes, row);
        }
        for d in ds {
            d.add_to(&mut dense, cols);
        }
        let (ggml, out) = load::encode_rows(dst, cols, &dense)
            .with_context(|| format!("cannot quantize '{}'", t.name))?;
        w.add_tensor(t.name.clone(), &t.dims, ggml, out);
    }
    load::write_gguf(&w, &a.output)?;
    eprintln!(
        "ondo: wrote {} ({} matrices merged from {} adapter(s))",
        a.output.display(),
        deltas.len(),
        a.lora.len()
    );
    Ok(())
}
