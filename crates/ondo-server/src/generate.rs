//! Running a completion: prompts go to the engine as one request per choice, each with a sink
//! that tags its events with the choice index; the answer is either collected into one JSON
//! response or streamed as server-sent events, `data: [DONE]` last. A dropped response (the
//! client left) drops the receiver, which the engine notices at its next step.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use ondo_engine::{Event, EventSink, FinishReason, Request, SubmitError, TokenLogprob};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::error::ApiError;
use crate::log::{GenerationLog, Logged};
use crate::params::Common;
use crate::routes::{unix_now, Shared};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// A checked request, ready for the engine.
pub struct Job {
    pub kind: Kind,
    pub prompts: Vec<Vec<u32>>,
    pub common: Common,
    /// `Some(k)`: logprobs of each token and its `k` best alternatives.
    pub logprobs: Option<usize>,
}

struct TaggedSink {
    index: usize,
    tx: UnboundedSender<(usize, Event)>,
}

impl EventSink for TaggedSink {
    fn send(&mut self, event: Event) -> bool {
        self.tx.send((self.index, event)).is_ok()
    }
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh pseudo-random number (ids, seeds of unseeded requests): SplitMix64 over the clock
/// and a counter.
pub fn fresh_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = t ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub async fn answer(state: Shared, job: Job) -> Result<Response, ApiError> {
    let ctx = state.engine.config().ctx;
    for p in &job.prompts {
        if p.is_empty() {
            return Err(ApiError::invalid("prompt", "the prompt is empty"));
        }
        if p.len() >= ctx {
            return Err(ApiError::context_length(format!(
                "the prompt has {} tokens but the context of this server holds {ctx} per \
                 request (and one more is needed to generate): shorten the prompt or restart \
                 the server with a larger -c",
                p.len()
            )));
        }
    }
    let c = &job.common;
    let base_seed = if c.seeded {
        c.params.sampler.seed
    } else {
        fresh_u64()
    };
    let (tx, rx) = unbounded_channel();
    let mut requests = Vec::with_capacity(job.prompts.len() * c.n);
    for (pi, prompt) in job.prompts.iter().enumerate() {
        let room = (ctx - prompt.len()) as u64;
        for j in 0..c.n {
            let mut params = c.params.clone();
            params.max_tokens = c.max_tokens.map_or(room, |m| m.min(room)) as usize;
            params.sampler.seed = base_seed.wrapping_add(j as u64);
            params.logprobs = job.logprobs;
            requests.push(Request {
                prompt: prompt.clone(),
                params,
                sink: Box::new(TaggedSink {
                    index: pi * c.n + j,
                    tx: tx.clone(),
                }),
            });
        }
    }
    drop(tx);
    state.engine.submit(requests).map_err(|e| match e {
        SubmitError::QueueFull(n) => ApiError::busy(n),
        SubmitError::Invalid(m) => ApiError::bad_request(m),
        SubmitError::Stopped => ApiError::internal("the engine has stopped"),
    })?;
    let route = match job.kind {
        Kind::Chat => "/v1/chat/completions",
        Kind::Completion => "/v1/completions",
    };
    let prompt_tokens = job.prompts.iter().map(Vec::len).sum();
    let choices = job.prompts.len() * c.n;
    let log = (!state.config.quiet).then(|| GenerationLog::new(route, prompt_tokens, c.n, choices));
    let out = Output {
        kind: job.kind,
        id: match job.kind {
            Kind::Chat => format!("chatcmpl-{:016x}", fresh_u64()),
            Kind::Completion => format!("cmpl-{:016x}", fresh_u64()),
        },
        created: unix_now(),
        model: state.config.model_id.clone(),
        choices,
        prompt_tokens,
        n: c.n,
    };
    if c.stream {
        Ok(stream_response(out, rx, c.include_usage, log).into_response())
    } else {
        // A failure after the engine took the request is in the generation's log line.
        collect_response(out, rx, log).await.or_else(|e| {
            let mut r = e.into_response();
            r.extensions_mut().insert(Logged);
            Ok(r)
        })
    }
}

/// What every response of one request shares.
struct Output {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    choices: usize,
    prompt_tokens: usize,
    /// Choices per prompt.
    n: usize,
}

impl Output {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("object".into(), json!(self.object(chunk)));
        m.insert("created".into(), json!(self.created));
        m.insert("model".into(), json!(self.model));
        m.insert("system_fingerprint".into(), Value::Null);
        m.insert("choices".into(), Value::Array(choices));
        m
    }

    fn usage(&self, completion: usize, cached: usize) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }

    /// One choice of a stream chunk (`text` new text, `finish` when it ends).
    fn chunk_choice(
        &self,
        index: usize,
        text: Option<&str>,
        role: bool,
        lp: Option<&TokenLogprob>,
        finish: Option<FinishReason>,
    ) -> Value {
        let logprobs = lp.map_or(Value::Null, |l| self.logprobs(std::slice::from_ref(l)));
        let finish = finish.map_or(Value::Null, |f| json!(f.as_str()));
        match self.kind {
            Kind::Chat => {
                let mut delta = Map::new();
                if role {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion => json!({
                "index": index, "text": text.unwrap_or(""), "logprobs": logprobs,
                "finish_reason": finish,
            }),
        }
    }

    /// Logprobs in the route's format.
    fn logprobs(&self, lps: &[TokenLogprob]) -> Value {
        match self.kind {
            Kind::Chat => {
                let entry = |t: &ondo_engine::TokenInfo, lp: f32| json!({"token": t.text(), "logprob": lp, "bytes": t.bytes});
                let content: Vec<Value> = lps
                    .iter()
                    .map(|l| {
                        let mut e = entry(&l.token, l.logprob);
                        let top: Vec<Value> = l.top.iter().map(|(t, p)| entry(t, *p)).collect();
                        e["top_logprobs"] = Value::Array(top);
                        e
                    })
                    .collect();
                json!({"content": content})
            }
            Kind::Completion => {
                let mut offset = 0;
                let mut offsets = Vec::with_capacity(lps.len());
                for l in lps {
                    offsets.push(offset);
                    offset += l.token.text().len();
                }
                json!({
                    "tokens": lps.iter().map(|l| l.token.text()).collect::<Vec<_>>(),
                    "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
                    "top_logprobs": lps.iter().map(|l| {
                        let m: Map<String, Value> =
                            l.top.iter().map(|(t, p)| (t.text(), json!(p))).collect();
                        Value::Object(m)
                    }).collect::<Vec<_>>(),
                    "text_offset": offsets,
                })
            }
        }
    }
}

#[derive(Default)]
struct Choice {
    text: String,
    logprobs: Vec<TokenLogprob>,
    finish: Option<FinishReason>,
    completion_tokens: usize,
}

fn engine_error(msg: String) -> ApiError {
    if msg.contains("shutting down") {
        let mut e = ApiError::busy(0);
        e.message = msg;
        e
    } else {
        ApiError::internal(format!("generation failed: {msg}"))
    }
}

async fn collect_response(
    out: Output,
    mut rx: UnboundedReceiver<(usize, Event)>,
    mut log: Option<GenerationLog>,
) -> Result<Response, ApiError> {
    let mut choices: Vec<Choice> = (0..out.choices).map(|_| Choice::default()).collect();
    let (mut done, mut cached) = (0, 0);
    while done < out.choices {
        let Some((i, ev)) = rx.recv().await else {
            let e = ApiError::internal("the engine dropped the request");
            if let Some(l) = &mut log {
                l.observe(0, &Event::Error(e.message.clone()));
            }
            return Err(e);
        };
        if let Some(l) = &mut log {
            l.observe(i, &ev);
        }
        let c = &mut choices[i];
        match ev {
            Event::Started { cached_tokens, .. } if i % out.n == 0 => cached += cached_tokens,
            Event::Started { .. } => {}
            Event::Token { text, logprob, .. } => {
                c.text.push_str(&text);
                c.logprobs.extend(logprob);
            }
            Event::Done {
                finish,
                completion_tokens,
                ..
            } => {
                c.finish = Some(finish);
                c.completion_tokens = completion_tokens;
                done += 1;
            }
            Event::Error(m) => return Err(engine_error(m)),
        }
    }
    let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
    let list = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let logprobs = if c.logprobs.is_empty() {
                Value::Null
            } else {
                out.logprobs(&c.logprobs)
            };
            let finish = c.finish.map(|f| f.as_str());
            match out.kind {
                Kind::Chat => json!({
                    "index": i,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }),
                Kind::Completion => json!({
                    "index": i, "text": c.text, "logprobs": logprobs, "finish_reason": finish,
                }),
            }
        })
        .collect();
    let mut body = out.envelope(false, list);
    body.insert("usage".into(), out.usage(completion, cached));
    Ok(Json(Value::Object(body)).into_response())
}

struct StreamState {
    out: Output,
    rx: UnboundedReceiver<(usize, Event)>,
    include_usage: bool,
    /// Written when the stream is dropped: at its end, or when the client leaves.
    log: Option<GenerationLog>,
    queue: VecDeque<String>,
    done: usize,
    completion: usize,
    cached: usize,
    ended: bool,
}

impl StreamState {
    fn push(&mut self, v: Value) {
        self.queue.push_back(v.to_string());
    }

    fn push_chunk(&mut self, choice: Value) {
        let v = Value::Object(self.out.envelope(true, vec![choice]));
        self.push(v);
    }

    fn end_with_error(&mut self, e: ApiError) {
        self.push(e.body());
        self.queue.push_back("[DONE]".into());
        self.ended = true;
    }

    fn on_event(&mut self, i: usize, ev: Event) {
        if let Some(l) = &mut self.log {
            l.observe(i, &ev);
        }
        match ev {
            Event::Started { cached_tokens, .. } => {
                if i.is_multiple_of(self.out.n) {
                    self.cached += cached_tokens;
                }
                if self.out.kind == Kind::Chat {
                    let c = self.out.chunk_choice(i, Some(""), true, None, None);
                    self.push_chunk(c);
                }
            }
            Event::Token { text, logprob, .. } => {
                if !text.is_empty() || logprob.is_some() {
                    let c = self
                        .out
                        .chunk_choice(i, Some(&text), false, logprob.as_ref(), None);
                    self.push_chunk(c);
                }
            }
            Event::Done {
                finish,
                completion_tokens,
                ..
            } => {
                let c = self.out.chunk_choice(i, None, false, None, Some(finish));
                self.push_chunk(c);
                self.completion += completion_tokens;
                self.done += 1;
                if self.done == self.out.choices {
                    if self.include_usage {
                        let mut m = self.out.envelope(true, Vec::new());
                        m.insert("usage".into(), self.out.usage(self.completion, self.cached));
                        self.push(Value::Object(m));
                    }
                    self.queue.push_back("[DONE]".into());
                    self.ended = true;
                }
            }
            Event::Error(m) => self.end_with_error(engine_error(m)),
        }
    }
}

fn stream_response(
    out: Output,
    rx: UnboundedReceiver<(usize, Event)>,
    include_usage: bool,
    log: Option<GenerationLog>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let state = StreamState {
        out,
        rx,
        include_usage,
        log,
        queue: VecDeque::new(),
        done: 0,
        completion: 0,
        cached: 0,
        ended: false,
    };
    let events = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.queue.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), s));
            }
            if s.ended {
                return None;
            }
            match s.rx.recv().await {
                Some((i, ev)) => s.on_event(i, ev),
                None => {
                    let e = ApiError::internal("the engine dropped the request");
                    if let Some(l) = &mut s.log {
                        l.observe(0, &Event::Error(e.message.clone()));
                    }
                    s.end_with_error(e)
                }
            }
        }
    });
    // Comments while a request waits for a slot: a client that left is noticed on the write.
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_millis(500)))
}
