//! The engine: a synchronous scheduler thread that owns the KV slots and advances every active
//! sequence together, one batched forward pass per step (continuous batching). Requests arrive
//! through a channel; each request's results go back through its own [`EventSink`], so the
//! engine knows nothing of HTTP or async runtimes. A sink that reports itself closed (the
//! client went away) frees its slot at the next step.
//!
//! See `scheduler.rs` for the step loop and `sequence.rs` for what happens to each sampled
//! token (logit bias, logprobs, sampling, detokenizing, stop strings).

mod metrics;
mod scheduler;
mod sequence;
mod stop;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ondo_model::LlamaModel;
use ondo_sample::SamplerConfig;
use ondo_text::Tokenizer;

pub use metrics::{EngineMetrics, Histogram, LATENCY_BUCKETS};
pub use stop::StopMatcher;

/// How the engine is sized.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Sequences decoded together; each has its own KV slot.
    pub slots: usize,
    /// Positions per slot.
    pub ctx: usize,
    /// Requests that may wait for a slot; [`Engine::submit`] refuses more.
    pub max_queue: usize,
    /// Prompt tokens evaluated per step while other sequences are decoding (keeps their
    /// per-token latency bounded while a long prompt is read).
    pub prefill_chunk_busy: usize,
    /// Prompt tokens evaluated per step when no sequence is decoding.
    pub prefill_chunk_idle: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            slots: 4,
            ctx: 4096,
            max_queue: 64,
            prefill_chunk_busy: 64,
            prefill_chunk_idle: 256,
        }
    }
}

/// Generation settings of one request.
#[derive(Clone, Debug)]
pub struct GenParams {
    /// At most this many new tokens (the engine also stops when the slot is full).
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Generation ends before the first occurrence of any of these; they are not emitted.
    pub stop: Vec<String>,
    /// Added to the logits before sampling (and before logprobs are computed).
    pub logit_bias: Vec<(u32, f32)>,
    /// `Some(k)`: report each sampled token's log-probability and the `k` most likely.
    pub logprobs: Option<usize>,
    /// The selectable LoRA adapter this request uses (`ondo_model::lora`), if any.
    pub adapter: Option<u32>,
    /// Only tokens that keep the output a prefix of one JSON object (or of a value valid
    /// under a schema) may be sampled, and generation stops when it closes
    /// (`response_format` `json_object` / `json_schema`).
    pub json: Option<ondo_sample::JsonFormat>,
}

/// One request: the prompt's token ids and where the results go.
pub struct Request {
    pub prompt: Vec<u32>,
    pub params: GenParams,
    pub sink: Box<dyn EventSink>,
}

/// Receives a request's events. Implemented by the server over its async channels.
pub trait EventSink: Send {
    /// Delivers an event; `false` means the receiver is gone (the request is then dropped).
    fn send(&mut self, event: Event) -> bool;
    /// Whether the receiver is gone; polled every step, also while the request waits.
    fn is_closed(&self) -> bool;
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The request has a slot; `cached_tokens` of its prompt were reused from that slot.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    /// One sampled token. `text` is what became printable with it (possibly empty: bytes of
    /// an unfinished character or a possible stop string are held back).
    Token {
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The end. Any text still held back was sent before it.
    Done {
        finish: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The request failed; nothing follows.
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the slot's context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A token's log-probability and, when asked for, the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: TokenInfo,
    pub logprob: f32,
    pub top: Vec<(TokenInfo, f32)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenInfo {
    pub id: u32,
    /// The token's bytes (a piece of a UTF-8 character for byte tokens).
    pub bytes: Vec<u8>,
}

impl TokenInfo {
    /// The bytes as text, with U+FFFD for incomplete characters.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("the engine has stopped")]
    Stopped,
    #[error("{0}")]
    Invalid(String),
}

/// A handle to the engine thread. Dropping it stops the thread after the current step.
pub struct Engine {
    tx: Option<mpsc::Sender<Submitted>>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<EngineMetrics>,
    config: EngineConfig,
    n_vocab: usize,
}

struct Submitted {
    request: Request,
    at: Instant,
}

impl Engine {
    /// Starts the scheduler thread. The KV slots are allocated here (zeroed pages the OS maps
    /// lazily, so memory grows with use).
    pub fn start(
        model: Arc<LlamaModel>,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
    ) -> Result<Engine, ondo_model::ModelError> {
        let config = EngineConfig {
            slots: config.slots.max(1),
            ctx: config.ctx.max(2),
            prefill_chunk_busy: config.prefill_chunk_busy.max(1),
            prefill_chunk_idle: config.prefill_chunk_idle.max(1),
            ..config
        };
        let metrics = Arc::new(EngineMetrics::default());
        let n_vocab = model.config.n_vocab;
        let sched = scheduler::Scheduler::new(model, tokenizer, &config, metrics.clone())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ondo-engine".into())
            .spawn(move || sched.run(rx))
            .map_err(|e| {
                ondo_model::ModelError::BadHyperparameter(format!("cannot start engine: {e}"))
            })?;
        Ok(Engine {
            tx: Some(tx),
            thread: Some(thread),
            metrics,
            config,
            n_vocab,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.metrics
    }

    /// Queues requests, all or none (the `n` choices of one API call go in together).
    pub fn submit(&self, requests: Vec<Request>) -> Result<(), SubmitError> {
        for r in &requests {
            self.check(r)?;
        }
        let k = requests.len() as u64;
        let depth = &self.metrics.queue_depth;
        let max = self.config.max_queue as u64;
        let admitted = depth.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
            (d + k <= max).then_some(d + k)
        });
        if let Err(d) = admitted {
            return Err(SubmitError::QueueFull(d as usize));
        }
        let tx = self.tx.as_ref().ok_or(SubmitError::Stopped)?;
        let at = Instant::now();
        for request in requests {
            if tx.send(Submitted { request, at }).is_err() {
                return Err(SubmitError::Stopped);
            }
        }
        Ok(())
    }

    fn check(&self, r: &Request) -> Result<(), SubmitError> {
        if r.prompt.is_empty() {
            return Err(SubmitError::Invalid("the prompt is empty".into()));
        }
        if r.prompt.len() >= self.config.ctx {
            return Err(SubmitError::Invalid(format!(
                "the prompt has {} tokens but the context holds {} (and one more is needed to \
                 generate); shorten the prompt or start the server with a larger -c",
                r.prompt.len(),
                self.config.ctx
            )));
        }
        if let Some(&id) = r.prompt.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(SubmitError::Invalid(format!(
                "token id {id} is outside the vocabulary (size {})",
                self.n_vocab
            )));
        }
        if let Some(&(id, _)) = r
            .params
            .logit_bias
            .iter()
            .find(|b| b.0 as usize >= self.n_vocab)
        {
            return Err(SubmitError::Invalid(format!(
                "logit_bias names token {id}, outside the vocabulary (size {})",
                self.n_vocab
            )));
        }
        r.params
            .sampler
            .validate()
            .map_err(|e| SubmitError::Invalid(e.to_string()))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
