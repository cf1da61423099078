//! ondo-text: text handling for the ondo runtime.
//!
//! * [`Tokenizer`]: tokenizers built from GGUF `tokenizer.ggml.*` metadata (given as a
//!   [`VocabConfig`]) that reproduce llama.cpp's token ids: byte-level BPE ("gpt2") with
//!   llama.cpp's per-`tokenizer.ggml.pre` pre-tokenizers, and SentencePiece ("llama").
//! * [`Detokenizer`]: incremental, UTF-8-safe conversion of generated ids to text.
//! * [`ChatTemplate`]: sandboxed Jinja chat templates (minijinja) whose rendered
//!   messages tokenize without letting message content produce control tokens.
//!
//! This crate does not read GGUF files itself; the caller fills [`VocabConfig`].

mod bpe;
mod detok;
mod gguf;
mod pretok;
mod pyjson;
mod special;
mod spm;
mod template;
mod unicode;
mod vocab;

pub use detok::Detokenizer;
pub use gguf::{template_from_gguf, tokenizer_from_gguf};
pub use template::{
    ChatMessage, ChatTemplate, TEMPLATE_FUEL, TEMPLATE_MAX_OUTPUT, TEMPLATE_RECURSION_LIMIT,
};
pub use vocab::{Tokenizer, TokenizerKind, VocabConfig};

/// Errors from building tokenizers and rendering chat templates.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum TextError {
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unsupported tokenizer model {0:?} (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)")]
    UnsupportedModel(String),
    /// The vocabulary metadata is inconsistent or malformed.
    #[error("invalid tokenizer vocabulary: {0}")]
    InvalidVocab(String),
    /// The chat template failed to compile.
    #[error("chat template syntax error: {0}")]
    TemplateSyntax(String),
    /// The chat template failed while rendering (including running out of fuel).
    #[error("chat template render error: {0}")]
    TemplateRender(String),
    /// The template called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    TemplateException(String),
    /// The rendered prompt grew past the output limit.
    #[error("chat template output exceeds the limit of {limit} bytes")]
    TemplateOutputTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}
