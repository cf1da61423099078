//! The OpenAI-compatible HTTP server (`ondo serve`): axum routes on a tokio runtime in front of
//! the synchronous [`ondo_engine::Engine`]. Only this crate knows HTTP, JSON, tokio and OpenAI's
//! types. See docs/serve.md for the contract (routes, fields, limits, errors, metrics).
//!
//! - `server.rs`: the accept loop and per-connection limits (headers, timeouts, connection cap)
//! - `routes.rs`: the router, auth, request counting, body reading, small routes
//! - `cors.rs`: which web pages (origins) may call the server
//! - `chat.rs`, `completions.rs`: turning requests into prompts
//! - `generate.rs`: submitting to the engine and answering, streamed (SSE) or whole
//! - `params.rs`: checked reading of the shared request fields; `error.rs`: OpenAI errors
//! - `metrics.rs`: the Prometheus text of `/metrics`; `log.rs`: the request log on stderr

mod chat;
mod completions;
mod cors;
mod error;
mod generate;
mod log;
mod metrics;
mod params;
mod routes;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use ondo_engine::Engine;
use ondo_text::{ChatTemplate, Tokenizer};

pub use cors::AllowedOrigins;
pub use error::ApiError;

/// How the server listens and what it accepts.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Every route but `/health` requires `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Web pages (origins) that may call the server besides the loopback's.
    pub allowed_origins: AllowedOrigins,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// No request log on stderr.
    pub quiet: bool,
    /// The id `/v1/models` lists and requests may name.
    pub model_id: String,
    /// Other names requests may use for the model (e.g. the file stem).
    pub model_aliases: Vec<String>,
    /// Model ids of the selectable LoRA adapters; adapter `i` was loaded for slot `i`.
    pub adapters: Vec<String>,
}

/// What the model needs beyond the engine: text in and out.
pub struct ModelText {
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} (choose another address or --port)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// Serves until the process is stopped. Prints `ondo: listening on http://ADDR` once ready.
pub fn serve(config: ServerConfig, engine: Engine, text: ModelText) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ondo-http")
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(async move {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local: SocketAddr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let state = Arc::new(routes::AppState::new(config, engine, text));
        let app = routes::router(state);
        eprintln!("ondo: listening on http://{local}");
        server::accept_loop(listener, app).await;
        Ok(())
    })
}
