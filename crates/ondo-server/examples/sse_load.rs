//! A lean load generator for `ondo serve`: N concurrent streaming completions over plain
//! blocking sockets, one thread each, so that on a small machine the client takes little CPU
//! from the server it measures (an asyncio/httpx client spends ~350 µs of CPU per streamed
//! token on this project's 2-core machines, ~16% of a core at 450 tokens/s).
//!
//! `cargo run --release -p ondo-server --example sse_load -- HOST:PORT MAX_TOKENS PROMPT...`
//! starts one `/v1/completions` stream per prompt (temperature 0, usage included) at once and
//! prints one JSON line: the aggregate generated tokens per second (all tokens over the time
//! from the first request to the last `[DONE]`), the wall time, and per stream its tokens,
//! finish reason, time to first token and end time. Exits non-zero if any stream fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: sse_load HOST:PORT MAX_TOKENS PROMPT...");
        std::process::exit(2);
    }
    let (addr, prompts) = (args[0].clone(), args[2..].to_vec());
    let max_tokens: u64 = match args[1].parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("MAX_TOKENS must be a number, got {:?}", args[1]);
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let streams: Vec<_> = prompts
        .into_iter()
        .map(|prompt| {
            let addr = addr.clone();
            std::thread::spawn(move || stream(&addr, &prompt, max_tokens, t0))
        })
        .collect();
    let results: Vec<Result<Stream, String>> = streams
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("client thread panicked".into()))
        })
        .collect();
    let mut failed = false;
    let mut per = Vec::new();
    let (mut tokens, mut wall) = (0u64, 0f64);
    for r in results {
        match r {
            Ok(s) => {
                tokens += s.tokens;
                wall = wall.max(s.end);
                per.push(
                    json!({"tokens": s.tokens, "finish_reason": s.finish, "ttft_s": s.first,
                                "end_s": s.end}),
                );
            }
            Err(e) => {
                failed = true;
                per.push(json!({"error": e}));
            }
        }
    }
    let rate = if wall > 0.0 {
        tokens as f64 / wall
    } else {
        0.0
    };
    println!(
        "{}",
        json!({"tokens": tokens, "wall_s": wall, "tok_s": rate, "streams": per})
    );
    if failed {
        std::process::exit(1);
    }
}

struct Stream {
    tokens: u64,
    finish: Option<String>,
    /// Seconds from the start of the run to the first text, and to `[DONE]`.
    first: Option<f64>,
    end: f64,
}

fn stream(addr: &str, prompt: &str, max_tokens: u64, t0: Instant) -> Result<Stream, String> {
    let body = json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                      "stream": true, "stream_options": {"include_usage": true}})
    .to_string();
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut s = Stream {
        tokens: 0,
        finish: None,
        first: None,
        end: 0.0,
    };
    let (mut raw, mut sse) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_done = false;
    let mut usage = None;
    loop {
        let n = sock.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the connection closed before [DONE]".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if !head_done {
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("status: {}", head.lines().next().unwrap_or("")));
            }
            if !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                return Err("expected a chunked body".into());
            }
            raw.drain(..end + 4);
            head_done = true;
        }
        dechunk(&mut raw, &mut sse)?;
        while let Some(end) = find(&sse, b"\n\n") {
            let event: Vec<u8> = sse.drain(..end + 2).collect();
            let Some(data) = event.strip_prefix(b"data: ") else {
                continue;
            };
            let data = &data[..data.len() - 2];
            if data == b"[DONE]" {
                s.end = t0.elapsed().as_secs_f64();
                s.tokens = usage.ok_or("no usage before [DONE]")?;
                return Ok(s);
            }
            let v: Value = serde_json::from_slice(data).map_err(|e| format!("event: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("error event: {err}"));
            }
            if let Some(n) = v
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
            {
                usage = Some(n);
            }
            for ch in v["choices"].as_array().into_iter().flatten() {
                let text = ch["text"].as_str().unwrap_or("");
                if !text.is_empty() && s.first.is_none() {
                    s.first = Some(t0.elapsed().as_secs_f64());
                }
                if let Some(f) = ch["finish_reason"].as_str() {
                    s.finish = Some(f.to_string());
                }
            }
        }
    }
}

/// Moves the complete chunks of a chunked body from `raw` into `out`.
fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
    loop {
        let Some(eol) = find(raw, b"\r\n") else {
            return Ok(());
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .ok_or("bad chunk size")?;
        if raw.len() < eol + 2 + size + 2 {
            return Ok(());
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw.drain(..eol + 2 + size + 2);
        if size == 0 {
            return Ok(());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
