//! The engine end to end on a real model: results do not depend on what runs beside a request,
//! a continued conversation reuses its slot's cache and still gives the cold result, clients
//! that go away free their slots, and the queue is bounded. The default model (SmolLM2) when
//! cached, else the tiny test model (whose tokens are too few for text checks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ondo_engine::{Engine, EngineConfig, Event, EventSink, FinishReason, GenParams, Request};
use ondo_formats::GgufFile;
use ondo_sample::SamplerConfig;
use ondo_text::Tokenizer;

struct ChannelSink {
    tx: mpsc::Sender<Event>,
    closed: Arc<AtomicBool>,
}

impl EventSink for ChannelSink {
    fn send(&mut self, event: Event) -> bool {
        !self.closed.load(Ordering::SeqCst) && self.tx.send(event).is_ok()
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

struct Pending {
    rx: mpsc::Receiver<Event>,
    closed: Arc<AtomicBool>,
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    ids: Vec<u32>,
    text: String,
    finish: Option<FinishReason>,
    cached: usize,
    completion_tokens: usize,
}

impl Pending {
    fn wait(self) -> Outcome {
        let mut o = Outcome::default();
        loop {
            match self
                .rx
                .recv_timeout(Duration::from_secs(60))
                .expect("event")
            {
                Event::Started { cached_tokens, .. } => o.cached = cached_tokens,
                Event::Token { id, text, .. } => {
                    if id != u32::MAX {
                        o.ids.push(id);
                    }
                    o.text.push_str(&text);
                }
                Event::Done {
                    finish,
                    completion_tokens,
                    ..
                } => {
                    o.finish = Some(finish);
                    o.completion_tokens = completion_tokens;
                    return o;
                }
                Event::Error(e) => panic!("request failed: {e}"),
            }
        }
    }
}

fn request(prompt: Vec<u32>, params: GenParams) -> (Request, Pending) {
    let (tx, rx) = mpsc::channel();
    let closed = Arc::new(AtomicBool::new(false));
    let sink = ChannelSink {
        tx,
        closed: closed.clone(),
    };
    let req = Request {
        prompt,
        params,
        sink: Box::new(sink),
    };
    (req, Pending { rx, closed })
}

fn params(max_tokens: usize, temperature: f32, seed: u64) -> GenParams {
    GenParams {
        max_tokens,
        sampler: SamplerConfig {
            temperature,
            seed,
            ..SamplerConfig::default()
        },
        stop: Vec::new(),
        logit_bias: Vec::new(),
        logprobs: None,
        adapter: None,
        json: None,
    }
}

struct Setup {
    engine: Engine,
    tok: Arc<Tokenizer>,
    real: bool,
}

fn setup(cfg: EngineConfig) -> Setup {
    let (file, real) = match ondo_formats::testdata::cached_default_model() {
        Some(p) => (GgufFile::open(&p).unwrap(), true),
        None => {
            let bytes = ondo_formats::testdata::tiny_llama_model().to_bytes();
            (GgufFile::from_bytes(bytes).unwrap(), false)
        }
    };
    let file = Arc::new(file);
    let model = Arc::new(ondo_model::load_model(&file).unwrap());
    let tok = Arc::new(ondo_text::tokenizer_from_gguf(file.metadata()).unwrap());
    let engine = Engine::start(model, tok.clone(), cfg).unwrap();
    Setup { engine, tok, real }
}

fn prompt(s: &Setup, text: &str) -> Vec<u32> {
    if s.real {
        s.tok.encode(text, true)
    } else {
        text.bytes().map(|b| u32::from(b % 7) + 1).collect()
    }
}

fn run_one(s: &Setup, prompt: Vec<u32>, p: GenParams) -> Outcome {
    let (req, pending) = request(prompt, p);
    s.engine.submit(vec![req]).unwrap();
    pending.wait()
}

fn wait_idle(s: &Setup) {
    let m = s.engine.metrics();
    let t0 = Instant::now();
    while m.active_sequences.load(Ordering::SeqCst) != 0
        || m.queue_depth.load(Ordering::SeqCst) != 0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "engine did not go idle"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn results_do_not_depend_on_the_batch() {
    let s = setup(EngineConfig {
        slots: 4,
        ctx: 512,
        prefill_chunk_busy: 7,
        ..EngineConfig::default()
    });
    let texts = [
        "The capital of France is",
        "Once upon a time, in a small village by the sea,",
        "1, 2, 3, 4,",
        "A short poem about autumn:",
        "def fibonacci(n):",
    ];
    let cases: Vec<(Vec<u32>, GenParams)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                prompt(&s, t),
                params(12, if i % 2 == 0 { 0.0 } else { 0.9 }, i as u64),
            )
        })
        .collect();
    let alone: Vec<Outcome> = cases
        .iter()
        .map(|(p, g)| run_one(&s, p.clone(), g.clone()))
        .collect();
    // All at once (more than the slots: one waits), then again in reverse order.
    for order in [false, true] {
        let mut reqs = Vec::new();
        let mut pend = Vec::new();
        for (p, g) in &cases {
            let (r, w) = request(p.clone(), g.clone());
            reqs.push(r);
            pend.push(w);
        }
        if order {
            reqs.reverse();
            pend.reverse();
        }
        s.engine.submit(reqs).unwrap();
        let mut got: Vec<Outcome> = pend.into_iter().map(Pending::wait).collect();
        if order {
            got.reverse();
        }
        for (i, (a, b)) in alone.iter().zip(&got).enumerate() {
            assert_eq!(a.ids, b.ids, "request {i} (reversed: {order})");
            assert_eq!(a.text, b.text, "request {i}");
            assert!(a.completion_tokens > 0 && a.completion_tokens <= 12);
        }
    }
    wait_idle(&s);
}

#[test]
fn a_continued_conversation_reuses_its_prefix() {
    let s = setup(EngineConfig {
        slots: 2,
        ctx: 512,
        ..EngineConfig::default()
    });
    let first = prompt(&s, "The history of the printing press begins in");
    let a = run_one(&s, first.clone(), params(8, 0.0, 0));
    // The follow-up extends the first prompt and its answer.
    let mut follow = first.clone();
    follow.extend(&a.ids);
    follow.extend(prompt(&s, " and then"));
    let warm = run_one(&s, follow.clone(), params(8, 0.0, 0));
    assert!(
        warm.cached >= first.len(),
        "reused {} of {} tokens",
        warm.cached,
        follow.len()
    );
    // A cold engine gives the same tokens.
    let cold_engine = setup(EngineConfig {
        slots: 1,
        ctx: 512,
        ..EngineConfig::default()
    });
    let cold = run_one(&cold_engine, follow, params(8, 0.0, 0));
    assert_eq!(cold.cached, 0);
    assert_eq!(cold.ids, warm.ids);
}

#[test]
fn clients_that_leave_free_their_slots_and_the_queue_is_bounded() {
    let s = setup(EngineConfig {
        slots: 1,
        ctx: 256,
        max_queue: 2,
        ..EngineConfig::default()
    });
    let p = prompt(&s, "Tell me a long story about a dragon.");
    let (r1, w1) = request(p.clone(), params(200, 0.9, 1));
    let (r2, w2) = request(p.clone(), params(200, 0.9, 2));
    s.engine.submit(vec![r1, r2]).unwrap();
    // Both wait or run; a third exceeds the queue only while two are queued, so just check
    // that the bound is enforced for a batch that cannot fit.
    let many: Vec<Request> = (0..3)
        .map(|i| request(p.clone(), params(4, 0.0, i)).0)
        .collect();
    assert!(s.engine.submit(many).is_err());
    // The first one streams, then its client leaves; the queued one leaves too.
    match w1.rx.recv_timeout(Duration::from_secs(30)).unwrap() {
        Event::Started { .. } => {}
        e => panic!("expected Started, got {e:?}"),
    }
    w1.closed.store(true, Ordering::SeqCst);
    w2.closed.store(true, Ordering::SeqCst);
    wait_idle(&s);
    assert_eq!(s.engine.metrics().kv_used_tokens.load(Ordering::SeqCst), 0);
    // The engine still answers.
    let o = run_one(&s, p, params(3, 0.0, 0));
    assert!(o.finish.is_some());
}

#[test]
fn stop_strings_end_generation_and_are_not_emitted() {
    let s = setup(EngineConfig::default());
    if !s.real {
        eprintln!("skipped: needs the default model's tokenizer");
        return;
    }
    let p = prompt(&s, "Count: 1, 2, 3, 4, 5, 6, 7, 8,");
    let full = run_one(&s, p.clone(), params(24, 0.0, 0));
    let text = full.text.clone();
    // A stop string from the middle of the greedy continuation.
    let mid = text.char_indices().nth(text.chars().count() / 2).unwrap().0;
    let stop: String = text[mid..].chars().take(3).collect();
    let cut = &text[..text.find(&stop).unwrap()];
    let mut g = params(24, 0.0, 0);
    g.stop = vec![stop.clone()];
    let stopped = run_one(&s, p, g);
    assert_eq!(stopped.text, cut, "stop {stop:?} in {text:?}");
    assert_eq!(stopped.finish, Some(FinishReason::Stop));
}

#[test]
fn json_object_mode_gives_json_objects() {
    let s = setup(EngineConfig::default());
    if !s.real {
        eprintln!("skipped: needs the default model's tokenizer");
        return;
    }
    let mut stops = 0;
    let prompts = [
        "Here is a JSON object describing a cat named Tom, aged 3:\n",
        "Output:",
        "Hello",
    ];
    for text in prompts {
        for (temperature, seed) in [(0.0, 0), (0.9, 1), (1.5, 2)] {
            let mut p = params(120, temperature, seed);
            p.json = Some(ondo_sample::JsonFormat::Object);
            let out = run_one(&s, prompt(&s, text), p);
            let what = format!("{text:?} at temperature {temperature}: {:?}", out.text);
            // Always a prefix of an object; whole when the model ended it.
            let state = ondo_sample::JsonObjectState::new().after(out.text.as_bytes());
            let state = state.unwrap_or_else(|| panic!("not a JSON object prefix: {what}"));
            match out.finish {
                Some(FinishReason::Stop) => {
                    stops += 1;
                    assert!(state.is_complete(), "stopped mid-object: {what}");
                    let v: serde_json::Value =
                        serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {what}"));
                    assert!(v.is_object(), "{what}");
                }
                f => assert_eq!(f, Some(FinishReason::Length), "{what}"),
            }
        }
    }
    assert!(stops >= 1, "no object was finished");
    // The sampler's first pick never fits (end of generation pushed to the top): every token
    // comes from the masked second draw.
    let eos = s.tok.eos_id().expect("an EOS token");
    for (temperature, seed) in [(0.0, 0), (1.0, 4)] {
        let mut p = params(40, temperature, seed);
        p.json = Some(ondo_sample::JsonFormat::Object);
        p.logit_bias = vec![(eos, 100.0)];
        let out = run_one(&s, prompt(&s, prompts[1]), p);
        let state = ondo_sample::JsonObjectState::new().after(out.text.as_bytes());
        assert!(state.is_some(), "not a JSON object prefix: {:?}", out.text);
        assert!(out.completion_tokens > 0, "{out:?}");
    }
    // Greedy, the cat prompt closes its object within 120 tokens (53 when written).
    let mut p = params(120, 0.0, 0);
    p.json = Some(ondo_sample::JsonFormat::Object);
    let out = run_one(&s, prompt(&s, prompts[0]), p);
    assert_eq!(out.finish, Some(FinishReason::Stop), "{:?}", out.text);
    assert!(out.text.contains("\"Tom\""), "{:?}", out.text);
}

#[test]
fn invalid_requests_are_refused_at_submit() {
    let s = setup(EngineConfig {
        ctx: 16,
        ..EngineConfig::default()
    });
    let too_long: Vec<u32> = vec![1; 16];
    assert!(s
        .engine
        .submit(vec![request(too_long, params(1, 0.0, 0)).0])
        .is_err());
    assert!(s
        .engine
        .submit(vec![request(vec![], params(1, 0.0, 0)).0])
        .is_err());
    assert!(s
        .engine
        .submit(vec![request(vec![u32::MAX], params(1, 0.0, 0)).0])
        .is_err());
    let mut bad = params(1, 0.0, 0);
    bad.sampler.temperature = f32::NAN;
    assert!(s.engine.submit(vec![request(vec![1], bad).0]).is_err());
    assert_eq!(s.engine.metrics().queue_depth.load(Ordering::SeqCst), 0);
}

#[test]
fn json_schema_mode_gives_values_valid_under_the_schema() {
    let s = setup(EngineConfig::default());
    if !s.real {
        eprintln!("skipped: needs the default model's tokenizer");
        return;
    }
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "indoor": {"type": "boolean"},
            "color": {"anyOf": [{"enum": ["black", "white", "orange"]}, {"type": "null"}]},
            "toys": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
        },
        "required": ["name", "age", "indoor"],
        "additionalProperties": false
    });
    let compiled = Arc::new(ondo_sample::JsonSchema::compile(&schema).expect("compiles"));
    let format = ondo_sample::JsonFormat::Schema(compiled.clone());
    let valid = |text: &str| -> Option<ondo_sample::SchemaState> {
        ondo_sample::SchemaState::new().after(&compiled, text.as_bytes())
    };
    let mut stops = 0;
    let prompts = [
        "A JSON object describing a cat named Tom, aged 3, who lives indoors:\n",
        "Output:",
    ];
    for text in prompts {
        for (temperature, seed) in [(0.0, 0), (0.9, 1), (1.5, 2)] {
            let mut p = params(100, temperature, seed);
            p.json = Some(format.clone());
            let out = run_one(&s, prompt(&s, text), p);
            let what = format!("{text:?} at temperature {temperature}: {:?}", out.text);
            let state = valid(&out.text).unwrap_or_else(|| panic!("not a valid prefix: {what}"));
            if out.finish == Some(FinishReason::Stop) {
                stops += 1;
                assert!(state.is_complete(), "stopped mid-value: {what}");
                let v: serde_json::Value =
                    serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {what}"));
                for key in ["name", "age", "indoor"] {
                    assert!(v.get(key).is_some(), "{key} missing: {what}");
                }
                assert!(v["age"].is_i64() && v["indoor"].is_boolean(), "{what}");
                assert!(v.as_object().unwrap().len() <= 5, "{what}");
            } else {
                assert_eq!(out.finish, Some(FinishReason::Length), "{what}");
            }
        }
    }
    assert!(stops >= 1, "no value was finished");
    // Every token from the masked draw (end of generation pushed to the top) still fits.
    let eos = s.tok.eos_id().expect("an EOS token");
    let mut p = params(40, 1.0, 4);
    p.json = Some(format.clone());
    p.logit_bias = vec![(eos, 100.0)];
    let out = run_one(&s, prompt(&s, prompts[1]), p);
    assert!(
        valid(&out.text).is_some(),
        "not a valid prefix: {:?}",
        out.text
    );
    assert!(out.completion_tokens > 0, "{out:?}");
}
