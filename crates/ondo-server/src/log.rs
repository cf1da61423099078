//! The request log: one line on stderr per request, as llama-server and Ollama print them. A
//! generation's line comes when it ends (or its client leaves): prompt and cached tokens, the
//! tokens generated and how each choice ended, the time to the first token and the rate after
//! it. A refused request's line gives its status and message. Successful requests to the other
//! routes are not logged (monitors poll `/health` and `/metrics`). `ondo serve --quiet` turns
//! the log off.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ondo_engine::Event;

/// The message of an error response, left in its extensions for the log.
#[derive(Clone, Debug)]
pub struct ErrorNote(pub String);

/// Marks an error response whose request a [`GenerationLog`] line already covers.
#[derive(Clone, Copy, Debug)]
pub struct Logged;

/// Refusal lines per second at most; the rest are counted in one line of their own.
const REFUSALS_PER_SECOND: u32 = 20;

/// (second, lines written in it, lines left out in it)
static REFUSALS: Mutex<(u64, u32, u32)> = Mutex::new((0, 0, 0));

/// A refused request's line: `ondo: POST /v1/chat/completions 400: message`. A client that
/// sends many bad requests gets 20 lines a second, then one that counts the others.
pub fn refused(method: &str, path: &str, status: u16, note: Option<&ErrorNote>) {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut left_out = 0;
    {
        let mut w = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != second {
            left_out = w.2;
            *w = (second, 0, 0);
        }
        w.1 += 1;
        if w.1 > REFUSALS_PER_SECOND {
            w.2 += 1;
            return;
        }
    }
    if left_out > 0 {
        write_line(&format!(
            "ondo: ({left_out} more refused requests not logged)"
        ));
    }
    let path = printable(path, 120);
    match note {
        Some(ErrorNote(m)) => write_line(&format!(
            "ondo: {method} {path} {status}: {}",
            printable(m, 300)
        )),
        None => write_line(&format!("ondo: {method} {path} {status}")),
    }
}

/// One line on stderr; a failed write (closed or broken stderr) is ignored, never a panic.
fn write_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// At most `max` characters of `s`, control and line- or direction-changing characters as
/// spaces: a client's text (a model name in an error message) cannot forge or reorder lines.
fn printable(s: &str, max: usize) -> String {
    let odd = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    s.chars()
        .take(max)
        .map(|c| if odd(c) { ' ' } else { c })
        .collect()
}

/// What one generation request did, written when it is dropped: after its last event, or
/// when the client left and its response was dropped.
pub struct GenerationLog {
    route: &'static str,
    start: Instant,
    prompt_tokens: usize,
    /// Choices per prompt (cached tokens are counted once per prompt, as in `usage`).
    n: usize,
    choices: usize,
    cached: usize,
    generated: usize,
    first: Option<Instant>,
    finishes: Vec<&'static str>,
    failure: Option<String>,
}

impl GenerationLog {
    pub fn new(route: &'static str, prompt_tokens: usize, n: usize, choices: usize) -> Self {
        GenerationLog {
            route,
            start: Instant::now(),
            prompt_tokens,
            n,
            choices,
            cached: 0,
            generated: 0,
            first: None,
            finishes: Vec::with_capacity(choices),
            failure: None,
        }
    }

    /// Takes note of choice `i`'s event.
    pub fn observe(&mut self, i: usize, ev: &Event) {
        match ev {
            Event::Started { cached_tokens, .. } if i.is_multiple_of(self.n.max(1)) => {
                self.cached += cached_tokens
            }
            Event::Started { .. } => {}
            // The tail of held-back text comes as a token of its own with no id.
            Event::Token { id, .. } if *id != u32::MAX => {
                self.first.get_or_insert_with(Instant::now);
                self.generated += 1;
            }
            Event::Token { .. } => {}
            Event::Done { finish, .. } => self.finishes.push(finish.as_str()),
            Event::Error(m) => self.failure = Some(printable(m, 300)),
        }
    }

    fn line(&self, now: Instant) -> String {
        let total = now - self.start;
        let mut ended = self.finishes.join(", ");
        if let Some(m) = &self.failure {
            ended = format!("failed: {m}");
        } else if self.finishes.len() < self.choices {
            ended = "the client left".to_string();
        }
        let mut s = format!(
            "ondo: POST {}: {} prompt tokens ({} cached), {} generated ({ended}) in {:.2} s",
            self.route,
            self.prompt_tokens,
            self.cached,
            self.generated,
            total.as_secs_f64()
        );
        if let Some(first) = self.first {
            s.push_str(&format!(
                "; first after {:.0} ms",
                (first - self.start).as_secs_f64() * 1e3
            ));
            let after = (now - first).as_secs_f64();
            if self.generated > self.choices && after > 0.0 {
                let rate = (self.generated - self.choices) as f64 / after;
                s.push_str(&format!(", then {rate:.1} tok/s"));
            }
        }
        s
    }
}

impl Drop for GenerationLog {
    fn drop(&mut self) {
        write_line(&self.line(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ondo_engine::FinishReason;

    use super::*;

    fn done(finish: FinishReason, tokens: usize) -> Event {
        Event::Done {
            finish,
            prompt_tokens: 9,
            completion_tokens: tokens,
        }
    }

    #[test]
    fn a_line_says_what_happened() {
        let mut log = GenerationLog::new("/v1/completions", 9, 2, 2);
        let started = |cached| Event::Started {
            prompt_tokens: 9,
            cached_tokens: cached,
        };
        log.observe(0, &started(4));
        log.observe(1, &started(4));
        let token = |id| Event::Token {
            id,
            text: "x".into(),
            logprob: None,
        };
        for i in 0..14 {
            log.observe(usize::from(i >= 11), &token(i));
        }
        log.observe(1, &token(u32::MAX));
        log.first = Some(log.start + Duration::from_millis(40));
        log.observe(0, &done(FinishReason::Length, 11));
        log.observe(1, &done(FinishReason::Stop, 3));
        let line = log.line(log.start + Duration::from_millis(1040));
        assert_eq!(
            line,
            "ondo: POST /v1/completions: 9 prompt tokens (4 cached), 14 generated (length, \
             stop) in 1.04 s; first after 40 ms, then 12.0 tok/s"
        );
        std::mem::forget(log);

        let mut left = GenerationLog::new("/v1/chat/completions", 5, 1, 1);
        left.observe(0, &started(0));
        left.observe(0, &token(7));
        let line = left.line(left.start + Duration::from_millis(500));
        assert!(
            line.contains("1 generated (the client left) in 0.50 s"),
            "{line}"
        );
        left.observe(0, &Event::Error("the server is shutting down".into()));
        let line = left.line(left.start);
        assert!(
            line.contains("(failed: the server is shutting down)"),
            "{line}"
        );
        std::mem::forget(left);
    }
}
