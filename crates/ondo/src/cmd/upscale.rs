//! `ondo upscale`: depth up-scaling as in the SOLAR 10.7B paper (Kim et al., 2023): the
//! layers of the base are laid out again from slices of it (two overlapping copies with
//! `--drop`, any slices with `--layers`, as mergekit's passthrough merge), renumbered, and
//! written with everything else unchanged. Tensor data is copied byte for byte from the
//! base's memory map (no requantization), so the new layers compute exactly what the old
//! ones did.

use std::ops::Range;

use anyhow::{bail, Context, Result};
use ondo_formats::{Array, GgufWriter, Value};

use crate::cli::UpscaleArgs;
use crate::{load, store};

/// Most layers an up-scaled model may have, as a multiple of the base's.
const MAX_GROWTH: usize = 8;

pub fn upscale(a: UpscaleArgs) -> Result<()> {
    load::check_output(&a.output, a.force)?;
    let path = store::resolve_model(a.model.model.as_deref())?;
    let file = load::open_file(&path)?;
    let meta = file.metadata();
    let arch = meta
        .get_str("general.architecture")?
        .context("the file has no general.architecture")?
        .to_string();
    let count_key = format!("{arch}.block_count");
    let n = meta
        .get_u32(&count_key)?
        .with_context(|| format!("the file has no {count_key}"))? as usize;
    let plan = match (&a.layers, a.drop) {
        (Some(spec), _) => parse_slices(spec, n)?,
        (None, Some(m)) => solar_slices(n, m)?,
        (None, None) => bail!("pass --drop M or --layers SLICES"),
    };
    let order: Vec<usize> = plan.iter().flat_map(|r| r.clone()).collect();
    if order.len() > n * MAX_GROWTH {
        bail!(
            "{} layers is more than {MAX_GROWTH} times the base's {n}",
            order.len()
        );
    }

    let mut w = GgufWriter::new();
    for (key, value) in meta.iter() {
        let value = if key == count_key {
            Value::U32(order.len() as u32)
        } else if key == "general.name" {
            match value {
                Value::Str(s) => Value::Str(format!("{s} (up-scaled to {} layers)", order.len())),
                v => v.clone(),
            }
        } else {
            per_layer(&arch, key, value, n, &order).unwrap_or_else(|| value.clone())
        };
        w.add_kv(key, value);
    }
    // Tensors outside the blocks first, in file order; then each new layer from its source.
    let mut by_layer: Vec<Vec<(&str, &ondo_formats::TensorInfo)>> = vec![Vec::new(); n];
    for t in file.tensors() {
        match block_of(&t.name) {
            Some((l, rest)) if l < n => by_layer[l].push((rest, t)),
            Some((l, _)) => bail!("tensor '{}' names layer {l} of {n}", t.name),
            None => {
                w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, file.tensor_data(t));
            }
        }
    }
    for (new, &src) in order.iter().enumerate() {
        for (rest, t) in &by_layer[src] {
            let name = format!("blk.{new}.{rest}");
            w.add_tensor(name, &t.dims, t.ggml_type, file.tensor_data(t));
        }
    }
    load::write_gguf(&w, &a.output)?;
    eprintln!(
        "ondo: wrote {} ({} layers from {n}: {})",
        a.output.display(),
        order.len(),
        plan.iter()
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// SOLAR's layout: layers `0..n-m` of one copy, then `m..n` of the other.
fn solar_slices(n: usize, m: usize) -> Result<Vec<Range<usize>>> {
    if m >= n {
        bail!("--drop {m} leaves no layers of a {n}-layer model (it must be below {n})");
    }
    Ok(vec![0..n - m, m..n])
}

/// `a..b,c..d`: half-open slices of `0..n`, each non-empty.
fn parse_slices(spec: &str, n: usize) -> Result<Vec<Range<usize>>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let (a, b) = part
            .split_once("..")
            .with_context(|| format!("slice '{part}' is not of the form START..END"))?;
        let num = |s: &str| -> Result<usize> {
            s.trim()
                .parse()
                .with_context(|| format!("'{s}' in slice '{part}' is not a layer number"))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a >= b || b > n {
            bail!("slice {a}..{b} is empty or outside the base's layers 0..{n}");
        }
        out.push(a..b);
    }
    Ok(out)
}

/// `blk.N.rest` → (N, rest).
fn block_of(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (l, rest) = rest.split_once('.')?;
    Some((l.parse().ok()?, rest))
}

/// A per-layer hyperparameter array (`{arch}.*` with one entry per layer, as some
/// architectures store head counts) laid out like the new layers.
fn per_layer(arch: &str, key: &str, value: &Value, n: usize, order: &[usize]) -> Option<Value> {
    if !key.starts_with(&format!("{arch}.")) {
        return None;
    }
    let Value::Array(a) = value else { return None };
    if a.len() != n {
        return None;
    }
    fn pick<T: Clone>(v: &[T], order: &[usize]) -> Vec<T> {
        order.iter().map(|&i| v[i].clone()).collect()
    }
    let picked = match a {
        Array::U32(v) => Array::U32(pick(v, order)),
        Array::I32(v) => Array::I32(pick(v, order)),
        Array::F32(v) => Array::F32(pick(v, order)),
        Array::U64(v) => Array::U64(pick(v, order)),
        Array::I64(v) => Array::I64(pick(v, order)),
        Array::Bool(v) => Array::Bool(pick(v, order)),
        _ => return None,
    };
    Some(Value::Array(picked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_follow_solar_and_mergekit() {
        assert_eq!(solar_slices(32, 8).unwrap(), vec![0..24, 8..32]);
        assert!(solar_slices(4, 4).is_err());
        assert_eq!(
            parse_slices("0..24, 8..32", 32).unwrap(),
            vec![0..24, 8..32]
        );
        for bad in ["", "0..0", "3..2", "0..33", "a..b", "0-4", "..4"] {
            assert!(parse_slices(bad, 32).is_err(), "{bad}");
        }
        assert_eq!(
            block_of("blk.12.attn_q.weight"),
            Some((12, "attn_q.weight"))
        );
        assert_eq!(block_of("output.weight"), None);
    }
}
