//! Opens a GGUF file and builds everything a command needs from it: the model, the tokenizer
//! (from `tokenizer.ggml.*`) and the chat template.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ondo_formats::{GgmlType, GgufFile, Metadata};
use ondo_kernels::DType;
use ondo_model::LlamaModel;
use ondo_text::{ChatTemplate, Tokenizer};

pub struct Loaded {
    pub file: Arc<GgufFile>,
    pub model: LlamaModel,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

impl Loaded {
    /// The file's `general.architecture` ("" when absent).
    pub fn arch(&self) -> Result<String> {
        let meta = self.file.metadata();
        Ok(meta
            .get_str("general.architecture")?
            .unwrap_or("")
            .to_string())
    }
}

pub fn open_file(path: &Path) -> Result<Arc<GgufFile>> {
    let file = GgufFile::open(path).with_context(|| format!("cannot load '{}'", path.display()))?;
    Ok(Arc::new(file))
}

/// Opens the file and builds model, tokenizer and template.
pub fn load(path: &Path) -> Result<Loaded> {
    load_for(path, ondo_model::Numerics::default())
}

/// [`load`] for the products of `numerics` (the server's `BlockSums` lays its weights out
/// for batches).
pub fn load_for(path: &Path, numerics: ondo_model::Numerics) -> Result<Loaded> {
    let t0 = Instant::now();
    let file = open_file(path)?;
    let ctx = || format!("cannot load '{}'", path.display());
    // The tokenizer is built on its own thread while the model's weights are readied.
    let (model, tokenizer) = std::thread::scope(|s| {
        let tok = s.spawn(|| tokenizer_from(file.metadata()));
        let model = ondo_model::load_model_for(&file, numerics);
        let tokenizer = tok
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the tokenizer builder panicked")));
        (model, tokenizer)
    });
    let model = model.with_context(ctx)?;
    let tokenizer = tokenizer.with_context(ctx)?;
    if tokenizer.n_vocab() != model.config.n_vocab {
        anyhow::bail!(
            "cannot load '{}': the tokenizer has {} tokens but the embedding has {} rows",
            path.display(),
            tokenizer.n_vocab(),
            model.config.n_vocab
        );
    }
    let template = template_from(file.metadata(), &tokenizer).with_context(ctx)?;
    eprintln!(
        "ondo: loaded {} ({} layers, dim {}, {} tokens) in {:.0} ms",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        model.config.n_layers,
        model.config.dim,
        tokenizer.n_vocab(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(Loaded {
        file,
        model,
        tokenizer,
        template,
    })
}

/// Attaches LoRA adapters given as `FILE[:SCALE]` (llama.cpp's GGUF adapter format).
pub fn apply_loras(l: &mut Loaded, specs: &[String]) -> Result<()> {
    let arch = l.arch()?;
    for spec in specs {
        let (path, scale) = lora_spec(spec)?;
        let n = ondo_model::lora::load_adapter(&mut l.model, &arch, Path::new(path), scale, None)
            .with_context(|| format!("cannot apply the adapter '{path}'"))?;
        eprintln!("ondo: adapter {path} (scale {scale}) adapts {n} matrices");
    }
    Ok(())
}

/// Refuses to replace an existing file unless `force`.
pub fn check_output(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        anyhow::bail!(
            "'{}' exists: choose another -o or pass --force",
            path.display()
        );
    }
    Ok(())
}

/// Writes `w` to `path` through `PATH.partial`, so a failed write leaves no half file.
pub fn write_gguf(w: &ondo_formats::GgufWriter<'_>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("gguf.partial");
    w.write(&tmp)
        .with_context(|| format!("cannot write '{}'", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move the result to '{}'", path.display()))
}

/// Types `ondo_kernels::quantize_row` can write.
pub fn can_quantize(d: DType) -> bool {
    matches!(
        d,
        DType::F32
            | DType::F16
            | DType::BF16
            | DType::Q8_0
            | DType::Q5_1
            | DType::Q5_0
            | DType::Q4_1
            | DType::Q4_0
    )
}

/// A `--type` name ondo can write tensors in.
pub fn writable_type(name: &str) -> Result<DType> {
    GgmlType::from_name(&name.to_ascii_lowercase())
        .and_then(|t| DType::from_ggml_id(t.0))
        .filter(|d| can_quantize(*d))
        .with_context(|| {
            format!("type '{name}': choose f32, f16, bf16, q8_0, q5_1, q5_0, q4_1 or q4_0")
        })
}

/// Rows of `cols` f32 values in `dst`'s encoding (llama.cpp's reference quantizers).
pub fn encode_rows(dst: DType, cols: usize, dense: &[f32]) -> Result<(GgmlType, Vec<u8>)> {
    let rb = dst.row_bytes(cols).context("row size")?;
    let mut out = vec![0u8; dense.len() / cols.max(1) * rb];
    for (row, bytes) in dense.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        ondo_kernels::quantize_row(dst, row, bytes)
            .with_context(|| format!("cannot encode as {}", dst.name()))?;
    }
    let ggml = GgmlType::from_name(&dst.name().to_ascii_lowercase()).context("type id")?;
    Ok((ggml, out))
}

/// `FILE[:SCALE]` → (file, scale); a suffix that is not a number belongs to the path.
pub fn lora_spec(spec: &str) -> Result<(&str, f32)> {
    match spec.rsplit_once(':') {
        Some((p, s)) if !p.is_empty() => match s.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok((p, v)),
            Ok(_) => anyhow::bail!("--lora {spec}: the scale must be a finite number"),
            Err(_) => Ok((spec, 1.0)),
        },
        _ => Ok((spec, 1.0)),
    }
}

/// Builds the tokenizer the GGUF describes, printing its warnings.
pub fn tokenizer_from(meta: &Metadata) -> Result<Tokenizer> {
    let tok = ondo_text::tokenizer_from_gguf(meta)?;
    for w in tok.warnings() {
        eprintln!("ondo: warning: {w}");
    }
    Ok(tok)
}

/// The GGUF's chat template, or ChatML when it has none.
pub fn template_from(meta: &Metadata, tok: &Tokenizer) -> Result<ChatTemplate> {
    ondo_text::template_from_gguf(meta, tok).context("the model's chat template does not compile")
}
