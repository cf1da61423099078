//! `/metrics` in Prometheus' text format: request counts by route and status from the HTTP
//! side, token counts, queue, slots, KV use and latency histograms from the engine.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use ondo_engine::{EngineMetrics, Histogram, LATENCY_BUCKETS};

const ROUTES: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/v1/models/{id}",
    "/health",
    "/metrics",
    "/tokenize",
    "/detokenize",
];

/// The label of a path: a known route, or "other" (so clients cannot grow the label set).
pub fn route_label(path: &str) -> &'static str {
    if path
        .strip_prefix("/v1/models/")
        .is_some_and(|id| !id.is_empty())
    {
        return "/v1/models/{id}";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl HttpMetrics {
    pub fn count(&self, route: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
    }
}

pub fn render(http: &HttpMetrics, e: &EngineMetrics) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP ondo_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(s, "# TYPE ondo_requests_total counter");
    if let Ok(m) = http.requests.lock() {
        for ((route, status), n) in m.iter() {
            let _ = writeln!(
                s,
                "ondo_requests_total{{endpoint=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let counters = [
        (
            "ondo_prompt_tokens_total",
            "Prompt tokens of admitted requests.",
            &e.prompt_tokens_total,
        ),
        (
            "ondo_prompt_tokens_cached_total",
            "Prompt tokens reused from a slot's cache instead of evaluated.",
            &e.prompt_tokens_cached_total,
        ),
        (
            "ondo_generated_tokens_total",
            "Tokens generated.",
            &e.generated_tokens_total,
        ),
        (
            "ondo_requests_finished_total",
            "Requests that ran to their end.",
            &e.requests_finished_total,
        ),
        (
            "ondo_requests_cancelled_total",
            "Requests dropped because their client went away.",
            &e.requests_cancelled_total,
        ),
        (
            "ondo_engine_steps_total",
            "Batched forward passes.",
            &e.steps_total,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
    let gauges = [
        (
            "ondo_queue_depth",
            "Requests waiting for a slot.",
            &e.queue_depth,
        ),
        (
            "ondo_active_sequences",
            "Sequences holding a slot.",
            &e.active_sequences,
        ),
        (
            "ondo_slots",
            "KV slots (sequences decoded together).",
            &e.slots,
        ),
        (
            "ondo_kv_cache_used_tokens",
            "KV positions held by active sequences.",
            &e.kv_used_tokens,
        ),
        (
            "ondo_kv_cache_cached_tokens",
            "KV positions kept by idle slots for prefix reuse.",
            &e.kv_cached_tokens,
        ),
        (
            "ondo_kv_cache_capacity_tokens",
            "KV positions in all slots.",
            &e.kv_capacity_tokens,
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
            v.load(Relaxed)
        );
    }
    histogram(
        &mut s,
        "ondo_time_to_first_token_seconds",
        "Time from a request's arrival to its first token.",
        &e.time_to_first_token,
    );
    histogram(
        &mut s,
        "ondo_time_per_output_token_seconds",
        "Time between consecutive tokens of a sequence.",
        &e.time_per_output_token,
    );
    s
}

fn histogram(s: &mut String, name: &str, help: &str, h: &Histogram) {
    let (cumulative, count, sum) = h.snapshot();
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (le, c) in LATENCY_BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(s, "{name}_sum {sum}\n{name}_count {count}");
}
