//! `POST /v1/chat/completions`: messages are checked, rendered with the model's chat template
//! (message contents can never become control tokens) and generated from.

use axum::extract::{Request, State};
use axum::response::Response;
use ondo_text::ChatMessage;
use serde_json::Value;

use crate::error::ApiError;
use crate::generate::{answer, Job, Kind};
use crate::params::{self, opt_bool, opt_int, type_name, Object, MAX_TOP_LOGPROBS};
use crate::routes::{read_json, Shared};

pub async fn chat_completions(
    State(state): State<Shared>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = read_json(&state, req).await?;
    let adapter = state.check_model(&o)?;
    params::refuse_unsupported(&o)?;
    let mut common = params::common(&o, state.n_vocab())?;
    common.params.adapter = adapter;
    let messages = parse_messages(&o)?;
    let top = opt_int(&o, "top_logprobs", 0, MAX_TOP_LOGPROBS as i128)?;
    let logprobs = match (opt_bool(&o, "logprobs")?, top) {
        (Some(true), t) => Some(t.unwrap_or(0) as usize),
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "'top_logprobs' needs 'logprobs': true",
            ))
        }
        _ => None,
    };
    let st = state.clone();
    let prompt = tokio::task::spawn_blocking(move || {
        st.text
            .template
            .render_tokens(&st.text.tokenizer, &messages, true, None)
    })
    .await
    .map_err(|_| ApiError::internal("the chat template failed"))?
    .map_err(|e| {
        ApiError::invalid(
            "messages",
            format!("the messages do not fit the model's chat template: {e}"),
        )
    })?;
    let job = Job {
        kind: Kind::Chat,
        prompts: vec![prompt],
        common,
        logprobs,
    };
    answer(state, job).await
}

fn parse_messages(o: &Object) -> Result<Vec<ChatMessage>, ApiError> {
    let list = match params::field(o, "messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "messages",
                "'messages' must not be empty",
            ))
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "messages",
                format!(
                    "'messages' must be an array of messages, not {}",
                    type_name(v)
                ),
            ))
        }
        None => return Err(ApiError::invalid("messages", "'messages' is required")),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m))
        .collect()
}

fn parse_message(i: usize, m: &Value) -> Result<ChatMessage, ApiError> {
    let param = format!("messages[{i}]");
    let bad = |msg: String| ApiError::invalid(&param, msg);
    let Value::Object(m) = m else {
        return Err(bad(format!(
            "{param} must be an object, not {}",
            type_name(m)
        )));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) => r.as_str(),
        Some(v) => {
            return Err(bad(format!(
                "{param}.role must be a string, not {}",
                type_name(v)
            )))
        }
        None => return Err(bad(format!("{param}.role is required"))),
    };
    let role = match role {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        other => {
            return Err(bad(format!(
                "{param}.role {other:?} is not supported (system, developer, user, assistant)"
            )))
        }
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None if role == "assistant" => String::new(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                texts.push(part_text(p).map_err(|e| bad(format!("{param}.content[{j}]: {e}")))?);
            }
            texts.join("\n")
        }
        Some(v) => {
            return Err(bad(format!(
                "{param}.content must be a string or an array of content parts, not {}",
                type_name(v)
            )))
        }
        None => return Err(bad(format!("{param}.content is required"))),
    };
    Ok(ChatMessage::new(role, content))
}

fn part_text(p: &Value) -> Result<String, String> {
    let Value::Object(p) = p else {
        return Err(format!(
            "a content part must be an object, not {}",
            type_name(p)
        ));
    };
    match p.get("type").and_then(Value::as_str) {
        Some("text") => match p.get("text") {
            Some(Value::String(t)) => Ok(t.clone()),
            _ => Err("a text part needs 'text', a string".into()),
        },
        Some(other) => Err(format!(
            "content parts of type {other:?} are not supported (only \"text\")"
        )),
        None => Err("a content part needs 'type'".into()),
    }
}
