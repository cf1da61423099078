//! The router: auth and request counting around every route, the body reader with its limits,
//! and the small routes (models, health, metrics, tokenize, detokenize).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::FutureExt;
use ondo_engine::Engine;
use serde_json::{json, Value};

use crate::cors;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use crate::params::{self, Object};
use crate::{ModelText, ServerConfig};

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AppState {
    pub config: ServerConfig,
    pub engine: Engine,
    pub text: ModelText,
    pub http: HttpMetrics,
    /// Unix time the server started (the model's `created`).
    pub started: u64,
}

impl AppState {
    pub fn new(config: ServerConfig, engine: Engine, text: ModelText) -> AppState {
        AppState {
            config,
            engine,
            text,
            http: HttpMetrics::default(),
            started: unix_now(),
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.text.tokenizer.n_vocab()
    }

    /// Checks the request's `model` field, when present: the base model (`None`) or one of
    /// the adapters served as models of their own (`Some(slot)`), as vLLM serves LoRA modules.
    pub fn check_model(&self, o: &Object) -> Result<Option<u32>, ApiError> {
        let Some(m) = params::opt_str(o, "model")? else {
            return Ok(None);
        };
        self.resolve_model(m)
            .ok_or_else(|| ApiError::model_not_found(m, &self.config.model_id))
    }

    /// A model id or alias: `Some(None)` the base model, `Some(Some(slot))` an adapter served
    /// as a model of its own, `None` no model of this server.
    fn resolve_model(&self, id: &str) -> Option<Option<u32>> {
        let c = &self.config;
        if id == c.model_id || c.model_aliases.iter().any(|a| a == id) {
            return Some(None);
        }
        c.adapters
            .iter()
            .position(|a| a == id)
            .map(|i| Some(i as u32))
    }
}

pub type Shared = Arc<AppState>;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(crate::chat::chat_completions))
        .route("/v1/completions", post(crate::completions::completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Around every request: the `Host` a loopback server answers to and a web page's origin (see
/// `cors.rs`), the API key (all routes but `/health`), a caught panic becomes a 500, and the
/// request is counted by route and status. Every response varies with `Origin`.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = crate::metrics::route_label(req.uri().path());
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let browsers = &state.config.allowed_origins;
    let host = req.headers().get(header::HOST);
    let host = host.map(|h| h.to_str().unwrap_or("(not text)"));
    let mut origin = None;
    let response = if let Some(h) = host.filter(|h| !browsers.allows_host(h)) {
        ApiError::host_refused(&h.chars().take(200).collect::<String>()).into_response()
    } else {
        match cors::classify(browsers, req.headers()) {
            cors::Origin::Refused(o) => ApiError::origin_refused(&o).into_response(),
            page => {
                if let cors::Origin::Allowed(o) = page {
                    origin = Some(o);
                }
                if origin.is_some() && cors::is_preflight(req.method(), req.headers()) {
                    cors::preflight(req.headers())
                } else if route != "/health" && !authorized(&state, req.headers()) {
                    ApiError::unauthorized().into_response()
                } else {
                    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
                        Ok(r) => r,
                        Err(_) => ApiError::internal("internal error (a bug): the request failed")
                            .into_response(),
                    }
                }
            }
        }
    };
    let mut response = match origin {
        Some(o) => cors::decorate(response, o),
        None => response,
    };
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    finished(&state, route, method.as_str(), &path, &response);
    response
}

/// Counts the response and logs it when it refuses the request.
fn finished(state: &AppState, route: &'static str, method: &str, path: &str, r: &Response) {
    let status = r.status().as_u16();
    state.http.count(route, status);
    let covered = r.extensions().get::<crate::log::Logged>().is_some();
    if status >= 400 && !state.config.quiet && !covered {
        crate::log::refused(method, path, status, r.extensions().get());
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(key) = &state.config.api_key else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a JSON request body within the size and time limits.
pub async fn read_json(state: &AppState, req: Request) -> Result<Object, ApiError> {
    let limit = state.config.max_body;
    let headers = req.headers();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        // curl's `-d` sends the form type; a JSON body under it is accepted like llama-server.
        let json_like = mime == "application/json" || mime.ends_with("+json");
        if !json_like && mime != "application/x-www-form-urlencoded" {
            return Err(ApiError::unsupported_media(format!(
                "the content type must be application/json, not '{mime}'"
            )));
        }
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(ApiError::unsupported_media(
                "compressed request bodies are not accepted: send plain JSON",
            ));
        }
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let body: Body = req.into_body();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => return Err(ApiError::timeout()),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            });
        }
        Ok(Ok(b)) => b,
    };
    params::parse_object(&bytes)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}: see docs/serve.md for the routes",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The served models: the base, then the adapters served as models of their own.
fn model_objects(state: &AppState) -> Vec<Value> {
    let c = &state.config;
    let base = json!({
        "id": c.model_id, "object": "model", "created": state.started, "owned_by": "ondo",
    });
    let adapters = c.adapters.iter().map(|a| {
        json!({
            "id": a, "object": "model", "created": state.started, "owned_by": "ondo",
            "parent": c.model_id,
        })
    });
    std::iter::once(base).chain(adapters).collect()
}

async fn models(State(state): State<Shared>) -> Json<Value> {
    Json(json!({ "object": "list", "data": model_objects(&state) }))
}

/// One model by id (OpenAI's "retrieve model"); an alias of the base model finds it too.
async fn model(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(ApiError::not_found(
            "no such model: the id in the path is not valid percent-encoded UTF-8",
        ));
    };
    let found = state
        .resolve_model(&id)
        .map(|slot| slot.map_or(0, |i| i as usize + 1));
    found
        .and_then(|i| model_objects(&state).into_iter().nth(i))
        .map(Json)
        .ok_or_else(|| ApiError::model_not_found(&id, &state.config.model_id))
}

async fn metrics(State(state): State<Shared>) -> Response {
    let text = crate::metrics::render(&state.http, state.engine.metrics());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn tokenize(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let o = read_json(&state, req).await?;
    let content = params::opt_str(&o, "content")?
        .ok_or_else(|| ApiError::invalid("content", "'content' (a string) is required"))?
        .to_string();
    let add_special = params::opt_bool(&o, "add_special")?.unwrap_or(false);
    let parse_special = params::opt_bool(&o, "parse_special")?.unwrap_or(false);
    let st = state.clone();
    let ids = tokio::task::spawn_blocking(move || {
        let tok = &st.text.tokenizer;
        if parse_special {
            tok.encode_with_special(&content, add_special)
        } else {
            tok.encode(&content, add_special)
        }
    })
    .await
    .map_err(|_| ApiError::internal("the tokenizer failed"))?;
    Ok(Json(json!({ "tokens": ids })))
}

async fn detokenize(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let o = read_json(&state, req).await?;
    let n_vocab = state.n_vocab();
    let ids = token_ids(&o, "tokens", n_vocab)?;
    let text = state.text.tokenizer.decode(&ids, false);
    Ok(Json(json!({ "content": text })))
}

/// A required array of token ids, each checked against the vocabulary.
pub fn token_ids(o: &Object, key: &str, n_vocab: usize) -> Result<Vec<u32>, ApiError> {
    let Some(Value::Array(a)) = params::field(o, key) else {
        return Err(ApiError::invalid(
            key,
            format!("'{key}' must be an array of token ids"),
        ));
    };
    a.iter().map(|v| token_id(v, key, n_vocab)).collect()
}

pub fn token_id(v: &Value, key: &str, n_vocab: usize) -> Result<u32, ApiError> {
    v.as_u64()
        .filter(|&id| id < n_vocab as u64)
        .map(|id| id as u32)
        .ok_or_else(|| {
            ApiError::invalid(
                key,
                format!("{v} is not a token id (0 to {})", n_vocab.saturating_sub(1)),
            )
        })
}
