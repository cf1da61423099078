//! Counters, gauges and latency histograms the scheduler keeps while it runs, read lock-free by
//! the server's `/metrics` route.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative-free histogram: per-bucket counts, the total count and the sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Cumulative counts per bucket (Prometheus `le` semantics), the count and the sum.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect();
        (
            cumulative,
            self.count.load(Relaxed),
            self.sum_micros.load(Relaxed) as f64 / 1e6,
        )
    }
}

/// What the engine reports. Gauges are set by the scheduler after every step.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub prompt_tokens_total: AtomicU64,
    pub prompt_tokens_cached_total: AtomicU64,
    pub generated_tokens_total: AtomicU64,
    pub requests_finished_total: AtomicU64,
    pub requests_cancelled_total: AtomicU64,
    /// Requests submitted and not yet given a slot.
    pub queue_depth: AtomicU64,
    pub active_sequences: AtomicU64,
    pub slots: AtomicU64,
    /// Positions held by active sequences.
    pub kv_used_tokens: AtomicU64,
    /// Positions kept by idle slots for prefix reuse.
    pub kv_cached_tokens: AtomicU64,
    pub kv_capacity_tokens: AtomicU64,
    pub steps_total: AtomicU64,
    pub time_to_first_token: Histogram,
    pub time_per_output_token: Histogram,
}
