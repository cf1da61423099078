//! `ondo tokenize`: the ids the model's own tokenizer gives a text (special-token text is
//! plain text; BOS only where the GGUF asks for it).

use anyhow::{Context, Result};

use crate::cli::TokenizeArgs;
use crate::{load, store};

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let path = store::resolve_model(a.model.model.as_deref())?;
    let file = load::open_file(&path)?;
    let tok = load::tokenizer_from(file.metadata())
        .with_context(|| format!("cannot load the tokenizer of '{}'", path.display()))?;
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            let bytes =
                std::fs::read(f).with_context(|| format!("cannot read '{}'", f.display()))?;
            String::from_utf8(bytes)
                .with_context(|| format!("'{}' is not UTF-8 text", f.display()))?
        }
        (None, None) => anyhow::bail!("give a text with -p or a file with -f"),
    };
    let ids = tok.encode(&text, true);
    if a.json {
        println!("{}", serde_json::to_string(&ids)?);
    } else {
        for id in ids {
            let piece = String::from_utf8_lossy(tok.token_piece(id, true)).into_owned();
            println!("{id:>7} {piece:?}");
        }
    }
    Ok(())
}
