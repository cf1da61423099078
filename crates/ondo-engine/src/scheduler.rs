//! The step loop. Each step: take new requests, drop the ones whose client is gone, give free
//! slots to waiting requests (the slot whose cached tokens share the longest prefix with the
//! prompt, so a continued conversation is not recomputed), then one batched forward pass over
//! every active sequence: one token for each decoding sequence, a chunk of the prompt for
//! prefilling ones (small while others decode, so they are not stalled).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use ondo_model::{KvCache, LlamaModel, Logits, ModelError, SeqInput};
use ondo_sample::{JsonSampling, JsonVocab, Sampler};
use ondo_text::Tokenizer;

use crate::sequence::{After, Sequence};
use crate::{EngineConfig, EngineMetrics, Event, Submitted};

struct Slot {
    kv: KvCache,
    /// The tokens whose keys and values `kv` holds.
    tokens: Vec<u32>,
    /// The adapter they were computed with (a prefix is only reused under the same one).
    adapter: Option<u32>,
    busy: bool,
    last_used: u64,
}

pub(crate) struct Scheduler {
    model: Arc<LlamaModel>,
    tok: Arc<Tokenizer>,
    cfg: EngineConfig,
    metrics: Arc<EngineMetrics>,
    slots: Vec<Slot>,
    waiting: VecDeque<Submitted>,
    active: Vec<Sequence>,
    logits: Vec<f32>,
    clock: u64,
    json_vocab: Option<Arc<JsonVocab>>,
}

impl Scheduler {
    pub fn new(
        model: Arc<LlamaModel>,
        tok: Arc<Tokenizer>,
        cfg: &EngineConfig,
        metrics: Arc<EngineMetrics>,
    ) -> Result<Scheduler, ModelError> {
        let slots = (0..cfg.slots)
            .map(|_| {
                Ok(Slot {
                    kv: model.new_cache(cfg.ctx)?,
                    tokens: Vec::new(),
                    adapter: None,
                    busy: false,
                    last_used: 0,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        metrics.slots.store(cfg.slots as u64, Relaxed);
        metrics
            .kv_capacity_tokens
            .store((cfg.slots * cfg.ctx) as u64, Relaxed);
        Ok(Scheduler {
            model,
            tok,
            cfg: cfg.clone(),
            metrics,
            slots,
            waiting: VecDeque::new(),
            active: Vec::new(),
            logits: Vec::new(),
            clock: 0,
            json_vocab: None,
        })
    }

    pub fn run(mut self, rx: Receiver<Submitted>) {
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                match rx.recv() {
                    Ok(s) => self.waiting.push_back(s),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(s) => self.waiting.push_back(s),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return self.shut_down(),
                }
            }
            self.drop_cancelled();
            self.admit();
            if !self.active.is_empty() {
                self.step();
            }
            self.update_gauges();
        }
    }

    fn shut_down(&mut self) {
        for mut s in self.active.drain(..) {
            s.emit(Event::Error("the server is shutting down".into()));
        }
        for mut w in self.waiting.drain(..) {
            w.request
                .sink
                .send(Event::Error("the server is shutting down".into()));
        }
    }

    fn drop_cancelled(&mut self) {
        let m = &self.metrics;
        self.waiting.retain(|w| {
            let closed = w.request.sink.is_closed();
            if closed {
                m.queue_depth.fetch_sub(1, Relaxed);
                m.requests_cancelled_total.fetch_add(1, Relaxed);
            }
            !closed
        });
        let mut i = 0;
        while i < self.active.len() {
            let s = &self.active[i];
            if s.gone || s.sink.is_closed() {
                let s = self.active.swap_remove(i);
                self.release(s.slot);
                self.metrics.requests_cancelled_total.fetch_add(1, Relaxed);
            } else {
                i += 1;
            }
        }
    }

    fn release(&mut self, slot: usize) {
        self.clock += 1;
        let s = &mut self.slots[slot];
        s.busy = false;
        s.last_used = self.clock;
    }

    /// Gives free slots to waiting requests, oldest first.
    fn admit(&mut self) {
        while let Some(w) = self.waiting.front() {
            let (prompt, adapter) = (&w.request.prompt, w.request.params.adapter);
            let reusable = |s: &Slot| {
                if s.adapter == adapter {
                    common_prefix(&s.tokens, prompt)
                } else {
                    0
                }
            };
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.busy)
                .max_by_key(|(_, s)| (reusable(s), u64::MAX - s.last_used));
            let Some((slot, _)) = best else { return };
            let Some(w) = self.waiting.pop_front() else {
                return;
            };
            self.metrics.queue_depth.fetch_sub(1, Relaxed);
            let mut req = w.request;
            let prompt = req.prompt;
            let s = &mut self.slots[slot];
            // The prompt's last token is evaluated (its logits start the generation), with at
            // least one before it: see `prompt_chunk`.
            let reuse = if s.adapter == req.params.adapter {
                common_prefix(&s.tokens, &prompt)
            } else {
                0
            };
            let cached = reuse.min(prompt.len().saturating_sub(2));
            s.kv.truncate(cached);
            s.tokens.truncate(cached);
            s.adapter = req.params.adapter;
            let room = self.cfg.ctx.saturating_sub(prompt.len());
            req.params.max_tokens = req.params.max_tokens.min(room);
            let mut sampler = match Sampler::new(req.params.sampler.clone()) {
                Ok(s) => s,
                Err(e) => {
                    req.sink.send(Event::Error(e.to_string()));
                    continue;
                }
            };
            for &t in &prompt {
                sampler.accept(t);
            }
            s.busy = true;
            let json = req
                .params
                .json
                .clone()
                .map(|f| JsonSampling::for_format(self.json_vocab(), &f));
            let seq = Sequence::new(
                req.sink, slot, req.params, sampler, &prompt, cached, w.at, json,
            );
            let m = &self.metrics;
            m.prompt_tokens_total
                .fetch_add(prompt.len() as u64, Relaxed);
            m.prompt_tokens_cached_total
                .fetch_add(cached as u64, Relaxed);
            self.active.push(seq);
            // The gauges count the sequence before its client can hear of it.
            self.update_gauges();
            if let Some(seq) = self.active.last_mut() {
                seq.emit(Event::Started {
                    prompt_tokens: prompt.len(),
                    cached_tokens: cached,
                });
            }
        }
    }

    /// One batched forward pass over the active sequences, then each one's token.
    fn step(&mut self) {
        // Decoding sequences first, prompts after them in arrival order.
        self.active.sort_by_key(|s| s.is_prefilling());
        let decoding = self.active.iter().filter(|s| !s.is_prefilling()).count();
        let mut budget = if decoding > 0 {
            self.cfg.prefill_chunk_busy
        } else {
            self.cfg.prefill_chunk_idle
        };
        // (index in active, tokens this step)
        let mut plan: Vec<(usize, usize)> = Vec::with_capacity(self.active.len());
        for (i, s) in self.active.iter().enumerate() {
            if !s.is_prefilling() {
                plan.push((i, 1));
            } else if budget > 0 {
                let n = prompt_chunk(s.pending.len(), budget);
                budget = budget.saturating_sub(n);
                plan.push((i, n));
            }
        }
        self.metrics.steps_total.fetch_add(1, Relaxed);
        let result = {
            let Scheduler {
                model,
                slots,
                active,
                logits,
                ..
            } = self;
            let mut by_slot: Vec<Option<&mut Slot>> = slots.iter_mut().map(Some).collect();
            let mut inputs = Vec::with_capacity(plan.len());
            for &(i, n) in &plan {
                let s = &active[i];
                let Some(slot) = by_slot[s.slot].take() else {
                    continue;
                };
                inputs.push(SeqInput {
                    tokens: &s.pending[..n],
                    kv: &mut slot.kv,
                    want: if n == s.pending.len() {
                        Logits::Last
                    } else {
                        Logits::None
                    },
                    adapter: s.adapter(),
                });
            }
            let run = AssertUnwindSafe(|| model.forward_batch(&mut inputs, logits));
            match catch_unwind(run) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("internal error in the forward pass".to_string()),
            }
        };
        if let Err(e) = result {
            self.fail(&plan, &e);
            return;
        }
        self.after_forward(&plan);
    }

    /// The pass failed: its sequences end with an error and their slots forget everything.
    fn fail(&mut self, plan: &[(usize, usize)], msg: &str) {
        let mut failed: Vec<usize> = plan.iter().map(|p| p.0).collect();
        failed.sort_unstable_by(|a, b| b.cmp(a));
        for i in failed {
            let mut s = self.active.swap_remove(i);
            s.emit(Event::Error(msg.to_string()));
            let slot = &mut self.slots[s.slot];
            slot.kv.clear();
            slot.tokens.clear();
            self.release(s.slot);
        }
    }

    fn after_forward(&mut self, plan: &[(usize, usize)]) {
        let n_vocab = self.model.config.n_vocab;
        let mut row = 0;
        let mut finished = Vec::new();
        let mut generated = 0;
        for &(i, n) in plan {
            let s = &mut self.active[i];
            let slot = &mut self.slots[s.slot];
            slot.tokens.extend(s.pending.drain(..n));
            if !s.pending.is_empty() {
                continue;
            }
            let logits = &mut self.logits[row * n_vocab..(row + 1) * n_vocab];
            row += 1;
            let first = s.last_token_at.is_none();
            let before = s.last_token_at;
            let room = slot.kv.capacity() - slot.kv.len();
            let gen_before = s.generated;
            let after = s.on_logits(logits, &self.tok, room);
            generated += s.generated - gen_before;
            let m = &self.metrics;
            if let Some(now) = s.last_token_at {
                if first {
                    m.time_to_first_token.observe(now - s.submitted_at);
                } else if let Some(b) = before {
                    m.time_per_output_token.observe(now - b);
                }
            }
            if matches!(after, After::Finished) {
                finished.push(i);
            }
        }
        self.metrics
            .generated_tokens_total
            .fetch_add(generated as u64, Relaxed);
        finished.sort_unstable_by(|a, b| b.cmp(a));
        let mut done = Vec::with_capacity(finished.len());
        for i in finished {
            let s = self.active.swap_remove(i);
            self.metrics.requests_finished_total.fetch_add(1, Relaxed);
            self.release(s.slot);
            done.push(s);
        }
        if !done.is_empty() {
            // Gauges first, so that a client reading /metrics after its answer does not find
            // itself still active.
            self.update_gauges();
            for mut s in done {
                s.send_last();
            }
        }
    }

    /// The vocabulary laid out for JSON mode, made at the first request that needs it.
    fn json_vocab(&mut self) -> Arc<JsonVocab> {
        let tok = &self.tok;
        self.json_vocab
            .get_or_insert_with(|| Arc::new(JsonVocab::new(tok.output_pieces())))
            .clone()
    }

    fn update_gauges(&self) {
        let m = &self.metrics;
        let (mut used, mut cached) = (0, 0);
        for s in &self.slots {
            if s.busy {
                used += s.kv.len();
            } else {
                cached += s.kv.len();
            }
        }
        m.active_sequences.store(self.active.len() as u64, Relaxed);
        m.kv_used_tokens.store(used as u64, Relaxed);
        m.kv_cached_tokens.store(cached as u64, Relaxed);
    }
}

/// How many of `pending` prompt tokens to evaluate within `budget`. Never a lone token when
/// more than one is pending: a one-token pass takes the decode attention kernel, whose sums run
/// in another order than the batched one's, and a prompt's logits must not depend on how it
/// was chunked (that depends on what else runs) or on how much of it was cached.
fn prompt_chunk(pending: usize, budget: usize) -> usize {
    if pending < 2 {
        return pending;
    }
    let n = pending.min(budget).max(2);
    match pending - n {
        1 if n >= 3 => n - 1,
        1 => n + 1,
        _ => n,
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::prompt_chunk;

    #[test]
    fn prompt_chunks_never_leave_or_take_a_lone_token() {
        for pending in 1..40 {
            for budget in 1..20 {
                let mut left = pending;
                while left > 0 {
                    let n = prompt_chunk(left, budget);
                    assert!(
                        n >= 1 && n <= left && n <= budget.max(2) + 1,
                        "{pending} {budget}"
                    );
                    assert!(n > 1 || pending == 1, "lone token: {pending} {budget}");
                    left -= n;
                }
            }
        }
    }
}
