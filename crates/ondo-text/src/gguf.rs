//! Builds the tokenizer and the chat template a GGUF file describes (`tokenizer.ggml.*`,
//! `tokenizer.chat_template`).

use ondo_formats::Metadata;

use crate::{ChatTemplate, TextError, Tokenizer, TokenizerKind, VocabConfig};

fn meta_err(e: impl std::fmt::Display) -> TextError {
    TextError::InvalidVocab(e.to_string())
}

/// The tokenizer of a GGUF file. Its [`Tokenizer::warnings`] are for the caller to show.
pub fn tokenizer_from_gguf(meta: &Metadata) -> Result<Tokenizer, TextError> {
    let kind_name = meta
        .get_str("tokenizer.ggml.model")
        .map_err(meta_err)?
        .ok_or_else(|| {
            TextError::InvalidVocab(
                "the file has no tokenizer (tokenizer.ggml.model is missing)".into(),
            )
        })?;
    let tokens = meta
        .get_str_array("tokenizer.ggml.tokens")
        .map_err(meta_err)?
        .ok_or_else(|| TextError::InvalidVocab("tokenizer.ggml.tokens is missing".into()))?;
    let id = |k: &str| meta.get_u32(k).map_err(meta_err);
    let cfg = VocabConfig {
        kind: TokenizerKind::from_gguf_model(kind_name)?,
        pre: meta
            .get_str("tokenizer.ggml.pre")
            .map_err(meta_err)?
            .map(str::to_string),
        tokens: tokens.to_vec(),
        scores: meta
            .get_f32_array("tokenizer.ggml.scores")
            .map_err(meta_err)?
            .map(<[f32]>::to_vec),
        token_types: meta
            .get_i32_array("tokenizer.ggml.token_type")
            .map_err(meta_err)?
            .map(<[i32]>::to_vec),
        merges: meta
            .get_str_array("tokenizer.ggml.merges")
            .map_err(meta_err)?
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        bos_id: id("tokenizer.ggml.bos_token_id")?,
        eos_id: id("tokenizer.ggml.eos_token_id")?,
        eot_id: id("tokenizer.ggml.eot_token_id")?,
        eom_id: id("tokenizer.ggml.eom_token_id")?,
        unk_id: id("tokenizer.ggml.unknown_token_id")?,
        pad_id: id("tokenizer.ggml.padding_token_id")?,
        add_bos: meta
            .get_bool("tokenizer.ggml.add_bos_token")
            .map_err(meta_err)?,
        add_eos: meta
            .get_bool("tokenizer.ggml.add_eos_token")
            .map_err(meta_err)?,
        add_space_prefix: meta
            .get_bool("tokenizer.ggml.add_space_prefix")
            .map_err(meta_err)?,
    };
    Tokenizer::new(cfg)
}

/// The file's chat template, or ChatML when it has none.
pub fn template_from_gguf(meta: &Metadata, tok: &Tokenizer) -> Result<ChatTemplate, TextError> {
    let text_of = |id: Option<u32>| {
        id.and_then(|i| tok.token_text(i))
            .unwrap_or_default()
            .to_string()
    };
    match meta.get_str("tokenizer.chat_template").map_err(meta_err)? {
        Some(src) => ChatTemplate::new(src, &text_of(tok.bos_id()), &text_of(tok.eos_id())),
        None => Ok(ChatTemplate::chatml()),
    }
}
