//! Token sampling over a logits vector: repetition / presence / frequency penalties, top-k,
//! top-p, min-p and temperature, then a draw from a seeded RNG (greedy when temperature is 0).
//!
//! The chain follows llama.cpp's default order (penalties → top-k → top-p → min-p →
//! temperature → draw), so the same settings mean the same thing in both tools.

pub mod json;
mod rng;
pub mod schema;
pub mod schema_format;
mod schema_graph;
pub mod schema_state;

use std::collections::{HashMap, VecDeque};

pub use json::{JsonFormat, JsonObjectState, JsonSampling, JsonVocab};
pub use rng::Rng;
pub use schema::{JsonSchema, SchemaError};
pub use schema_state::SchemaState;

/// Sampling settings. The defaults match llama.cpp's command line defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the multiplicative repetition penalty.
    pub repeat_penalty: f32,
    /// OpenAI-style additive penalties; 0.0 disables them.
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SampleError {
    #[error("{name} must be {expected}, got {value}")]
    OutOfRange {
        name: &'static str,
        expected: &'static str,
        value: f32,
    },
}

impl SamplerConfig {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), SampleError> {
        let check = |name, ok: bool, expected, value: f32| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(SampleError::OutOfRange {
                    name,
                    expected,
                    value,
                })
            }
        };
        let t = self.temperature;
        check("temperature", (0.0..=100.0).contains(&t), "in [0, 100]", t)?;
        let p = self.top_p;
        check("top_p", p > 0.0 && p <= 1.0, "in (0, 1]", p)?;
        let m = self.min_p;
        check("min_p", (0.0..=1.0).contains(&m), "in [0, 1]", m)?;
        let r = self.repeat_penalty;
        check("repeat_penalty", r > 0.0 && r <= 100.0, "in (0, 100]", r)?;
        let pp = self.presence_penalty;
        check(
            "presence_penalty",
            (-2.0..=2.0).contains(&pp),
            "in [-2, 2]",
            pp,
        )?;
        let fp = self.frequency_penalty;
        check(
            "frequency_penalty",
            (-2.0..=2.0).contains(&fp),
            "in [-2, 2]",
            fp,
        )?;
        Ok(())
    }
}

/// A sampler with its own RNG and the recent-token window the penalties need.
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    recent: VecDeque<u32>,
    /// Scratch space reused across calls so sampling allocates nothing per token.
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Result<Sampler, SampleError> {
        cfg.validate()?;
        Ok(Sampler {
            rng: Rng::new(cfg.seed),
            recent: VecDeque::with_capacity(cfg.penalty_last_n),
            candidates: Vec::new(),
            cfg,
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records a token as part of the context (prompt or generated) for the penalties.
    pub fn accept(&mut self, id: u32) {
        if self.cfg.penalty_last_n == 0 {
            return;
        }
        if self.recent.len() == self.cfg.penalty_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    /// Picks the next token. `logits` is modified in place (penalties applied).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        self.apply_penalties(logits);
        if self.cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (i as u32, l)),
        );
        if cands.is_empty() {
            return 0;
        }
        // Highest logit first, ties by token id: a strict total order, so the top k are one
        // set whatever the method. Selecting them first spares sorting the whole vocabulary
        // (~1.5 ms for 49k tokens) on every token.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.cfg.top_k > 0 && self.cfg.top_k < cands.len() {
            cands.select_nth_unstable_by(self.cfg.top_k - 1, order);
            cands.truncate(self.cfg.top_k);
        }
        cands.sort_unstable_by(order);
        // Probabilities at temperature 1 decide top-p and min-p, as in llama.cpp.
        let max = cands[0].1;
        let mut probs: Vec<f32> = cands.iter().map(|c| (c.1 - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            cands.truncate(keep);
        }
        if self.cfg.min_p > 0.0 {
            let threshold = probs[0] * self.cfg.min_p;
            let keep = probs.iter().take_while(|&&p| p >= threshold).count().max(1);
            cands.truncate(keep.min(cands.len()));
        }
        let t = self.cfg.temperature;
        let max = cands[0].1;
        let weights: Vec<f32> = cands.iter().map(|c| ((c.1 - max) / t).exp()).collect();
        let total: f32 = weights.iter().sum();
        let mut r = self.rng.next_f32() * total;
        for (c, w) in cands.iter().zip(&weights) {
            r -= w;
            if r <= 0.0 {
                return c.0;
            }
        }
        cands[cands.len() - 1].0
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let c = &self.cfg;
        let none =
            c.repeat_penalty == 1.0 && c.presence_penalty == 0.0 && c.frequency_penalty == 0.0;
        if none || self.recent.is_empty() {
            return;
        }
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &id in &self.recent {
            *counts.entry(id).or_default() += 1;
        }
        for (&id, &n) in &counts {
            let Some(l) = logits.get_mut(id as usize) else {
                continue;
            };
            if *l > 0.0 {
                *l /= c.repeat_penalty;
            } else {
                *l *= c.repeat_penalty;
            }
            *l -= n as f32 * c.frequency_penalty + c.presence_penalty;
        }
    }
}

/// Index of the largest value; the lowest index wins ties, NaN never wins.
pub fn argmax(xs: &[f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is available.
        return unsafe { argmax_avx(xs) };
    }
    argmax_lanes(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn argmax_avx(xs: &[f32]) -> u32 {
    argmax_lanes(xs)
}

/// The maximum over independent lanes (which the compiler vectorizes; `x > m` is false for
/// NaN), then the first position holding it. Greedy decoding runs this over the vocabulary
/// once per token of every sequence, on the engine thread alone.
#[inline(always)]
fn argmax_lanes(xs: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let mut max = lanes
        .into_iter()
        .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m });
    for &x in chunks.remainder() {
        max = if x > max { x } else { max };
    }
    if max == f32::NEG_INFINITY {
        return 0;
    }
    let chunk = xs
        .chunks(LANES)
        .position(|c| c.iter().fold(false, |hit, &x| hit | (x == max)))
        .unwrap_or(0);
    let at = xs[chunk * LANES..]
        .iter()
        .position(|&x| x == max)
        .unwrap_or(0);
    (chunk * LANES + at) as u32
}

#[cfg(test)]
mod tests;
