//! Reading request JSON: the fields both completion routes share, each checked for type and
//! range with an error that names it. Nothing here allocates in proportion to a number the
//! client sent (`max_tokens`, `n` and the like are checked before they size anything).

use std::sync::Arc;

use ondo_engine::GenParams;
use ondo_sample::{JsonFormat, JsonSchema, SamplerConfig};
use serde_json::{Map, Value};

use crate::error::ApiError;

pub type Object = Map<String, Value>;

/// Most choices per request.
pub const MAX_N: u64 = 16;
/// Most alternatives per token in logprobs.
pub const MAX_TOP_LOGPROBS: u64 = 20;
pub const MAX_STOP: usize = 16;
pub const MAX_STOP_BYTES: usize = 512;
pub const MAX_LOGIT_BIAS: usize = 1024;

/// The request body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: send a JSON object",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match v {
        Value::Object(o) => Ok(o),
        other => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The field, treating `null` as absent.
pub fn field<'a>(o: &'a Object, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub fn opt_bool(o: &Object, key: &str) -> Result<Option<bool>, ApiError> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a boolean, not {}", type_name(v)),
        )),
    }
}

pub fn opt_str<'a>(o: &'a Object, key: &str) -> Result<Option<&'a str>, ApiError> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a string, not {}", type_name(v)),
        )),
    }
}

/// A number in `[lo, hi]`.
pub fn opt_f32(o: &Object, key: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    let Some(v) = field(o, key) else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x as f32)),
        Some(x) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be between {lo} and {hi}, got {x}"),
        )),
        None => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a number, not {}", type_name(v)),
        )),
    }
}

/// A whole number in `[lo, hi]` (`1.0` counts as whole, `1.5` does not).
pub fn opt_int(o: &Object, key: &str, lo: i128, hi: i128) -> Result<Option<i128>, ApiError> {
    let Some(v) = field(o, key) else {
        return Ok(None);
    };
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
                    .map(|f| f as i128)
            }),
        _ => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
        Some(n) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be between {lo} and {hi}, got {n}"),
        )),
        None => Err(ApiError::invalid(
            key,
            format!("'{key}' must be an integer, not {}", describe(v)),
        )),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_string(),
    }
}

/// What both completion routes read besides the prompt.
#[derive(Clone, Debug)]
pub struct Common {
    /// `None`: as many as the context allows.
    pub max_tokens: Option<u64>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub params: GenParams,
    /// The request named a seed (else each request draws one).
    pub seeded: bool,
}

pub fn common(o: &Object, n_vocab: usize) -> Result<Common, ApiError> {
    let mt = opt_int(o, "max_tokens", 1, i128::from(u64::MAX))?;
    let mct = opt_int(o, "max_completion_tokens", 1, i128::from(u64::MAX))?;
    let max_tokens = mct.or(mt).map(|n| n as u64);
    let n = opt_int(o, "n", 1, MAX_N as i128)?.unwrap_or(1) as usize;
    let stream = opt_bool(o, "stream")?.unwrap_or(false);
    let include_usage = match field(o, "stream_options") {
        None => false,
        Some(Value::Object(so)) => opt_bool(so, "include_usage")?.unwrap_or(false),
        Some(v) => {
            return Err(ApiError::invalid(
                "stream_options",
                format!("'stream_options' must be an object, not {}", type_name(v)),
            ))
        }
    };
    opt_str(o, "user")?;
    let d = SamplerConfig::default();
    let seed = opt_int(o, "seed", 0, i128::from(u64::MAX))?;
    let sampler = SamplerConfig {
        temperature: opt_f32(o, "temperature", 0.0, 2.0)?.unwrap_or(d.temperature),
        top_p: match opt_f32(o, "top_p", 0.0, 1.0)? {
            Some(p) if p <= 0.0 => return Err(ApiError::invalid("top_p", "'top_p' must be > 0")),
            Some(p) => p,
            None => d.top_p,
        },
        top_k: opt_int(o, "top_k", 0, i128::from(u32::MAX))?.map_or(d.top_k, |k| k as usize),
        min_p: opt_f32(o, "min_p", 0.0, 1.0)?.unwrap_or(d.min_p),
        repeat_penalty: match opt_f32(o, "repeat_penalty", 0.0, 10.0)? {
            Some(r) if r <= 0.0 => {
                return Err(ApiError::invalid(
                    "repeat_penalty",
                    "'repeat_penalty' must be > 0",
                ))
            }
            Some(r) => r,
            None => d.repeat_penalty,
        },
        presence_penalty: opt_f32(o, "presence_penalty", -2.0, 2.0)?.unwrap_or(0.0),
        frequency_penalty: opt_f32(o, "frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0),
        penalty_last_n: d.penalty_last_n,
        seed: seed.map_or(0, |s| s as u64),
    };
    Ok(Common {
        max_tokens,
        n,
        stream,
        include_usage,
        params: GenParams {
            max_tokens: 0,
            sampler,
            stop: stop_strings(o)?,
            logit_bias: logit_bias(o, n_vocab)?,
            logprobs: None,
            adapter: None,
            json: json_format(o)?,
        },
        seeded: seed.is_some(),
    })
}

fn stop_strings(o: &Object) -> Result<Vec<String>, ApiError> {
    let list = match field(o, "stop") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOP {
                return Err(ApiError::invalid(
                    "stop",
                    format!("at most {MAX_STOP} stop strings are allowed"),
                ));
            }
            a.iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(ApiError::invalid(
                        "stop",
                        format!("'stop' entries must be strings, not {}", type_name(v)),
                    )),
                })
                .collect::<Result<_, _>>()?
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "'stop' must be a string or an array of strings, not {}",
                    type_name(v)
                ),
            ))
        }
    };
    if list.iter().any(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            "stop",
            format!("stop strings are limited to {MAX_STOP_BYTES} bytes"),
        ));
    }
    Ok(list)
}

fn logit_bias(o: &Object, n_vocab: usize) -> Result<Vec<(u32, f32)>, ApiError> {
    let map = match field(o, "logit_bias") {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(ApiError::invalid(
                "logit_bias",
                format!("'logit_bias' must be an object, not {}", type_name(v)),
            ))
        }
    };
    if map.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::invalid(
            "logit_bias",
            format!("at most {MAX_LOGIT_BIAS} logit_bias entries are allowed"),
        ));
    }
    map.iter()
        .map(|(k, v)| {
            let id: u32 = k
                .parse()
                .ok()
                .filter(|&id: &u32| (id as usize) < n_vocab)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "logit_bias",
                        format!(
                            "logit_bias key {k:?} is not a token id (0 to {})",
                            n_vocab - 1
                        ),
                    )
                })?;
            match v.as_f64() {
                Some(b) if (-100.0..=100.0).contains(&b) => Ok((id, b as f32)),
                _ => Err(ApiError::invalid(
                    "logit_bias",
                    format!("logit_bias values must be numbers in [-100, 100], got {v}"),
                )),
            }
        })
        .collect()
}

/// `response_format`: plain text (`None`), `{"type": "json_object"}`, or `{"type":
/// "json_schema", "json_schema": {"name": .., "schema": {..}}}` (compiled here, so that a
/// schema this server cannot enforce is a 400 before anything runs).
fn json_format(o: &Object) -> Result<Option<JsonFormat>, ApiError> {
    let Some(v) = field(o, "response_format") else {
        return Ok(None);
    };
    let bad = |msg: String| ApiError::invalid("response_format", msg);
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(JsonFormat::Object)),
        Some("json_schema") => {
            let Some(js) = v.get("json_schema").filter(|j| j.is_object()) else {
                return Err(bad(
                    "response_format of type json_schema needs a 'json_schema' object".into(),
                ));
            };
            match js.get("schema") {
                None => Ok(Some(JsonFormat::Object)),
                Some(schema) => JsonSchema::compile(schema)
                    .map(|s| Some(JsonFormat::Schema(Arc::new(s))))
                    .map_err(|e| bad(e.to_string())),
            }
        }
        _ => Err(bad(
            "response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or \
             {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}"
                .into(),
        )),
    }
}

/// Refuses fields that would change the output in ways this server does not implement.
pub fn refuse_unsupported(o: &Object) -> Result<(), ApiError> {
    if let Some(v) = field(o, "tools") {
        if !matches!(v, Value::Array(a) if a.is_empty()) {
            return Err(ApiError::invalid(
                "tools",
                "tool calling is not supported yet",
            ));
        }
    }
    if opt_bool(o, "echo")? == Some(true) {
        return Err(ApiError::invalid("echo", "'echo' is not supported"));
    }
    if opt_str(o, "suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid("suffix", "'suffix' is not supported"));
    }
    if opt_int(o, "best_of", 1, MAX_N as i128)?.is_some_and(|b| b > 1) {
        return Err(ApiError::invalid(
            "best_of",
            "'best_of' > 1 is not supported",
        ));
    }
    Ok(())
}
