//! One active request: its sampler, detokenizer and stop matcher, and what happens to each
//! logits row it gets (bias → logprobs → penalties and sampling → end checks → text).

use std::time::Instant;

use ondo_sample::{JsonSampling, Sampler};
use ondo_text::{Detokenizer, Tokenizer};

use crate::{Event, EventSink, FinishReason, GenParams, StopMatcher, TokenInfo, TokenLogprob};

pub(crate) struct Sequence {
    pub sink: Box<dyn EventSink>,
    pub slot: usize,
    params: GenParams,
    sampler: Sampler,
    detok: Detokenizer,
    stop: StopMatcher,
    /// Under `GenParams::json`: the draw that keeps the output one JSON value.
    json: Option<JsonSampling>,
    pub prompt_len: usize,
    /// Tokens to evaluate next: the rest of the prompt, then each sampled token.
    pub pending: Vec<u32>,
    pub generated: usize,
    pub submitted_at: Instant,
    pub last_token_at: Option<Instant>,
    /// The sink refused an event: the client is gone.
    pub gone: bool,
    /// The last event (`Done` or an error), held until the scheduler has freed the slot and
    /// published the gauges: a client that reads /metrics after its answer sees itself gone.
    last: Option<Event>,
}

/// What a sequence does after a logits row.
pub(crate) enum After {
    /// Feed this token next step.
    Continue,
    /// Finished; its `Done` (or error) is held for [`Sequence::send_last`].
    Finished,
}

impl Sequence {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sink: Box<dyn EventSink>,
        slot: usize,
        params: GenParams,
        sampler: Sampler,
        prompt: &[u32],
        cached: usize,
        submitted_at: Instant,
        json: Option<JsonSampling>,
    ) -> Sequence {
        Sequence {
            sink,
            slot,
            stop: StopMatcher::new(&params.stop),
            json,
            params,
            sampler,
            detok: Detokenizer::new(true),
            prompt_len: prompt.len(),
            pending: prompt[cached..].to_vec(),
            generated: 0,
            submitted_at,
            last_token_at: None,
            gone: false,
            last: None,
        }
    }

    pub fn adapter(&self) -> Option<u32> {
        self.params.adapter
    }

    pub fn is_prefilling(&self) -> bool {
        self.last_token_at.is_none()
    }

    pub fn emit(&mut self, event: Event) {
        if !self.gone && !self.sink.send(event) {
            self.gone = true;
        }
    }

    /// Takes the logits of this sequence's last evaluated token. `room` is how many more
    /// positions its slot can take.
    pub fn on_logits(&mut self, logits: &mut [f32], tok: &Tokenizer, room: usize) -> After {
        for &(id, bias) in &self.params.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        let logprob_of = self.params.logprobs.map(|k| LogSoftmax::new(logits, k));
        let id = match &mut self.json {
            None => self.sampler.sample(logits),
            Some(json) => match json.sample(&mut self.sampler, logits) {
                Ok(id) => id,
                Err(e) => {
                    self.last = Some(Event::Error(e.to_string()));
                    return After::Finished;
                }
            },
        };
        let now = Instant::now();
        self.last_token_at = Some(now);
        if tok.is_eog(id) {
            return self.finish(FinishReason::Stop);
        }
        self.generated += 1;
        self.sampler.accept(id);
        let logprob = logprob_of.map(|ls| ls.report(id, tok));
        let piece = self.detok.push(tok, id);
        let (text, stopped) = self.stop.push(&piece);
        self.emit(Event::Token { id, text, logprob });
        if stopped || self.json.as_ref().is_some_and(JsonSampling::is_complete) {
            return self.finish(FinishReason::Stop);
        }
        if self.generated >= self.params.max_tokens || room == 0 {
            return self.finish(FinishReason::Length);
        }
        self.pending.clear();
        self.pending.push(id);
        After::Continue
    }

    /// Sends what is held back, and holds `Done`.
    pub fn finish(&mut self, finish: FinishReason) -> After {
        let tail = self.detok.flush();
        let (mut text, stopped) = self.stop.push(&tail);
        if !stopped {
            text.push_str(&self.stop.flush());
        }
        let finish = if stopped { FinishReason::Stop } else { finish };
        if !text.is_empty() {
            // The tail belongs to the last token; it carries no id or logprob of its own.
            self.emit(Event::Token {
                id: u32::MAX,
                text,
                logprob: None,
            });
        }
        self.last = Some(Event::Done {
            finish,
            prompt_tokens: self.prompt_len,
            completion_tokens: self.generated,
        });
        After::Finished
    }

    /// Sends the held last event of a finished sequence.
    pub fn send_last(&mut self) {
        if let Some(e) = self.last.take() {
            self.emit(e);
        }
    }
}

/// Log-probabilities of one logits row, computed before sampling changes it.
struct LogSoftmax {
    /// max + ln Σ exp(l - max)
    log_z: f32,
    chosen_row: Vec<f32>,
    top: Vec<(u32, f32)>,
}

impl LogSoftmax {
    fn new(logits: &[f32], k: usize) -> LogSoftmax {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
        let log_z = max + sum.ln() as f32;
        let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < k || top.last().is_some_and(|t| l > t.1) {
                let at = top.partition_point(|t| t.1 >= l);
                top.insert(at, (i as u32, l));
                top.truncate(k);
            }
        }
        LogSoftmax {
            log_z,
            chosen_row: logits.to_vec(),
            top,
        }
    }

    fn report(&self, id: u32, tok: &Tokenizer) -> TokenLogprob {
        let info = |id: u32| TokenInfo {
            id,
            bytes: tok.token_piece(id, true).to_vec(),
        };
        let l = self
            .chosen_row
            .get(id as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY);
        TokenLogprob {
            token: info(id),
            logprob: l - self.log_z,
            top: self
                .top
                .iter()
                .map(|&(t, l)| (info(t), l - self.log_z))
                .collect(),
        }
    }
}
