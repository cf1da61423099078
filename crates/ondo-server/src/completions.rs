//! `POST /v1/completions`: the prompt is a string, a list of strings (one choice set each) or
//! a list of token ids. Text prompts are tokenized like llama.cpp's completion route: with BOS
//! when the model wants it, control-token text parsed as control tokens (the caller writes the
//! whole prompt; chat content, by contrast, never becomes control tokens).

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;

use crate::error::ApiError;
use crate::generate::{answer, Job, Kind};
use crate::params::{self, opt_int, type_name, Object};
use crate::routes::{read_json, token_id, Shared};

/// Most prompts in one request.
const MAX_PROMPTS: usize = 16;

pub async fn completions(State(state): State<Shared>, req: Request) -> Result<Response, ApiError> {
    let o = read_json(&state, req).await?;
    let adapter = state.check_model(&o)?;
    params::refuse_unsupported(&o)?;
    let mut common = params::common(&o, state.n_vocab())?;
    common.params.adapter = adapter;
    let logprobs = opt_int(&o, "logprobs", 0, 5)?.map(|k| k as usize);
    let prompts = parse_prompts(&o, state.n_vocab())?;
    if prompts.len() * common.n > MAX_PROMPTS {
        return Err(ApiError::invalid(
            "n",
            format!("prompts × n must be at most {MAX_PROMPTS}"),
        ));
    }
    let st = state.clone();
    let prompts = tokio::task::spawn_blocking(move || {
        let tok = &st.text.tokenizer;
        prompts
            .into_iter()
            .map(|p| match p {
                Prompt::Text(t) => tok.encode_with_special(&t, tok.add_bos()),
                Prompt::Ids(ids) => ids,
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| ApiError::internal("the tokenizer failed"))?;
    let job = Job {
        kind: Kind::Completion,
        prompts,
        common,
        logprobs,
    };
    answer(state, job).await
}

enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

fn parse_prompts(o: &Object, n_vocab: usize) -> Result<Vec<Prompt>, ApiError> {
    let bad = |m: String| ApiError::invalid("prompt", m);
    match params::field(o, "prompt") {
        None => Err(bad("'prompt' is required".into())),
        Some(Value::String(s)) => Ok(vec![Prompt::Text(s.clone())]),
        Some(Value::Array(a)) if a.is_empty() => Err(bad("'prompt' must not be empty".into())),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if a.len() > MAX_PROMPTS {
                return Err(bad(format!("at most {MAX_PROMPTS} prompts per request")));
            }
            Ok(a.iter()
                .map(|v| Prompt::Text(v.as_str().unwrap_or_default().to_string()))
                .collect())
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => {
            let ids = a
                .iter()
                .map(|v| token_id(v, "prompt", n_vocab))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(vec![Prompt::Ids(ids)])
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_array) => {
            if a.len() > MAX_PROMPTS {
                return Err(bad(format!("at most {MAX_PROMPTS} prompts per request")));
            }
            a.iter()
                .map(|p| {
                    let ids = p.as_array().map(Vec::as_slice).unwrap_or_default();
                    ids.iter()
                        .map(|v| token_id(v, "prompt", n_vocab))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Prompt::Ids)
                })
                .collect()
        }
        Some(v) => Err(bad(format!(
            "'prompt' must be a string, a list of strings or a list of token ids, not {}",
            match v {
                Value::Array(_) => "a mixed array",
                other => type_name(other),
            }
        ))),
    }
}
