//! Opens a GGUF file and builds everything a command needs from it: the model, the tokenizer
//! (from `tokenizer.ggml.*`) and the chat template.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ondo_formats::{GgufFile, Metadata};
use ondo_model::LlamaModel;
use ondo_text::{ChatTemplate, Tokenizer, TokenizerKind, VocabConfig};

pub struct Loaded {
    pub file: Arc<GgufFile>,
    pub model: LlamaModel,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

pub fn open_file(path: &Path) -> Result<Arc<GgufFile>> {
    let file = GgufFile::open(path).with_context(|| format!("cannot load '{}'", path.display()))?;
    Ok(Arc::new(file))
}

/// Opens the file and builds model, tokenizer and template.
pub fn load(path: &Path) -> Result<Loaded> {
    let t0 = Instant::now();
    let file = open_file(path)?;
    let ctx = || format!("cannot load '{}'", path.display());
    // The tokenizer is built on its own thread while the model's weights are readied.
    let (model, tokenizer) = std::thread::scope(|s| {
        let tok = s.spawn(|| tokenizer_from(file.metadata()));
        let model = ondo_model::load_model(&file);
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

/// Builds the tokenizer the GGUF describes.
pub fn tokenizer_from(meta: &Metadata) -> Result<Tokenizer> {
    let kind_name = meta
        .get_str("tokenizer.ggml.model")?
        .context("the file has no tokenizer (tokenizer.ggml.model is missing)")?;
    let tokens = meta
        .get_str_array("tokenizer.ggml.tokens")?
        .context("tokenizer.ggml.tokens is missing")?;
    let id = |k: &str| -> Result<Option<u32>> { Ok(meta.get_u32(k)?) };
    let cfg = VocabConfig {
        kind: TokenizerKind::from_gguf_model(kind_name)?,
        pre: meta.get_str("tokenizer.ggml.pre")?.map(str::to_string),
        tokens: tokens.to_vec(),
        scores: meta
            .get_f32_array("tokenizer.ggml.scores")?
            .map(<[f32]>::to_vec),
        token_types: meta
            .get_i32_array("tokenizer.ggml.token_type")?
            .map(<[i32]>::to_vec),
        merges: meta
            .get_str_array("tokenizer.ggml.merges")?
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        bos_id: id("tokenizer.ggml.bos_token_id")?,
        eos_id: id("tokenizer.ggml.eos_token_id")?,
        eot_id: id("tokenizer.ggml.eot_token_id")?,
        eom_id: id("tokenizer.ggml.eom_token_id")?,
        unk_id: id("tokenizer.ggml.unknown_token_id")?,
        pad_id: id("tokenizer.ggml.padding_token_id")?,
        add_bos: meta.get_bool("tokenizer.ggml.add_bos_token")?,
        add_eos: meta.get_bool("tokenizer.ggml.add_eos_token")?,
        add_space_prefix: meta.get_bool("tokenizer.ggml.add_space_prefix")?,
    };
    let tok = Tokenizer::new(cfg)?;
    for w in tok.warnings() {
        eprintln!("ondo: warning: {w}");
    }
    Ok(tok)
}

/// The GGUF's chat template, or ChatML when it has none.
pub fn template_from(meta: &Metadata, tok: &Tokenizer) -> Result<ChatTemplate> {
    let text_of = |id: Option<u32>| {
        id.and_then(|i| tok.token_text(i))
            .unwrap_or_default()
            .to_string()
    };
    match meta.get_str("tokenizer.chat_template")? {
        Some(src) => Ok(
            ChatTemplate::new(src, &text_of(tok.bos_id()), &text_of(tok.eos_id()))
                .context("the model's chat template does not compile")?,
        ),
        None => Ok(ChatTemplate::chatml()),
    }
}
