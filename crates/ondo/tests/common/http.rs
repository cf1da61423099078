//! Helpers of the `ondo serve` tests: a running server ([`Server`]) and a raw HTTP/1.1 client
//! over std's `TcpStream` that writes requests byte for byte, so a test can send what no
//! well-behaved client would, and reads responses framed by Content-Length, chunked encoding
//! or the end of the connection.
//!
//! Included by `serve_http.rs` with `#[path = "common/http.rs"] mod http;`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The flags a test server starts with (always `--port 0 -t 1`).
pub struct ServerOpts<'a> {
    pub parallel: u32,
    pub queue: u32,
    pub ctx: u32,
    pub max_body: Option<u64>,
    pub api_key: Option<&'a str>,
    /// More arguments for `ondo serve`.
    pub extra: &'a [&'a str],
}

impl Default for ServerOpts<'_> {
    fn default() -> Self {
        ServerOpts {
            parallel: 2,
            queue: 8,
            ctx: 512,
            max_body: None,
            api_key: None,
            extra: &[],
        }
    }
}

/// A running `ondo serve`; its stderr is kept (shown when a test fails). Dropped, it is killed.
pub struct Server {
    child: Mutex<Child>,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server and waits (60 s at most) for its `ondo: listening on` line.
    pub fn start(model: &Path, opts: &ServerOpts) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "-m".into(),
            model.to_str().expect("model path is UTF-8").into(),
            "--port".into(),
            "0".into(),
            "-t".into(),
            "1".into(),
            "--parallel".into(),
            opts.parallel.to_string(),
            "-c".into(),
            opts.ctx.to_string(),
            "--queue".into(),
            opts.queue.to_string(),
        ];
        if let Some(b) = opts.max_body {
            args.extend(["--max-body".into(), b.to_string()]);
        }
        if let Some(k) = opts.api_key {
            args.extend(["--api-key".into(), k.to_string()]);
        }
        args.extend(opts.extra.iter().map(|a| a.to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_ondo"))
            .args(&args)
            .env_remove("ONDO_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ondo serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        // Drains stderr for the server's whole life (a full pipe would block it), lossily: a
        // line that is not UTF-8 must not stop the draining.
        thread::spawn(move || {
            let mut tx = Some(tx);
            let mut reader = BufReader::new(stderr);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw).into_owned();
                if let Some(rest) = line.trim_end().strip_prefix("ondo: listening on http://") {
                    if let Some(port) = rest.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
                    {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(port);
                        }
                    }
                }
                lock(&sink).push_str(&line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "ondo serve {args:?} never said where it listens ({e}); stderr:\n{}",
                    lock(&log)
                );
            }
        };
        Server {
            child: Mutex::new(child),
            port,
            log,
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// The process still runs and has not reported a panic.
    pub fn assert_alive(&self, after: &str) {
        let status = lock(&self.child).try_wait().expect("try_wait");
        if let Some(status) = status {
            thread::sleep(Duration::from_millis(200));
            panic!(
                "ondo serve exited ({status}) after {after}; stderr:\n{}",
                self.log()
            );
        }
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "ondo serve panicked after {after}; stderr:\n{log}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
        if thread::panicking() {
            eprintln!("--- ondo serve stderr ---\n{}", lock(&self.log));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the start of `buf`. Ok(None): more bytes are needed (only while
/// `eof` is false; at the end of the connection an incomplete response is an error).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let incomplete = |what: &str| {
        if eof {
            Err(format!(
                "connection closed inside the {what}: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(2000)])
            ))
        } else {
            Ok(None)
        }
    };
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return incomplete("response head");
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[head_end + 4..];
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        match decode_chunked(rest)? {
            Some(body) => resp.body = body,
            None => return incomplete("chunked body"),
        }
    } else if let Some(cl) = resp.header("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| format!("bad Content-Length {cl:?}"))?;
        if rest.len() < n {
            return incomplete("body");
        }
        resp.body = rest[..n].to_vec();
    } else if status == 204 || status == 304 || status < 200 {
    } else if eof {
        resp.body = rest.to_vec();
    } else {
        return Ok(None);
    }
    Ok(Some(resp))
}

/// Decodes a chunked body; Ok(None) when it has not ended yet.
fn decode_chunked(buf: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| "chunk size line")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let Some(eol) = find(&buf[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(out));
                }
            }
        }
        let end = pos.saturating_add(size);
        if buf.len() < end.saturating_add(2) {
            return Ok(None);
        }
        out.extend_from_slice(&buf[pos..end]);
        if &buf[end..end + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        pos = end + 2;
    }
}

/// Reads from `stream` (after the bytes already in `buf`) until one full response is there.
/// A read timeout is an error starting with "timeout"; a reset after some bytes counts as the
/// end of the connection (a server that answers 413 and closes may reset the unread rest).
pub fn read_response(stream: &mut TcpStream, mut buf: Vec<u8>) -> Result<Response, String> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(r) = parse_response(&buf, false)? {
            return Ok(r);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return parse_response(&buf, true).map(|r| r.expect("complete at eof")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "timeout waiting for a response; got {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(2000)])
                ))
            }
            Err(e) if !buf.is_empty() => {
                return parse_response(&buf, true)
                    .map(|r| r.expect("complete at eof"))
                    .map_err(|m| format!("{m} (read error: {e})"))
            }
            Err(e) => return Err(format!("read error before any byte: {e}")),
        }
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to ondo serve");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Writes `bytes` (from another thread, so a server that answers before reading everything
/// cannot deadlock the test) and reads one response, waiting at most `timeout` per read.
pub fn send_raw_timeout(port: u16, bytes: &[u8], timeout: Duration) -> Result<Response, String> {
    let mut stream = connect(port);
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut w = stream.try_clone().expect("clone stream");
    let data = bytes.to_vec();
    let writer = thread::spawn(move || {
        let _ = w.write_all(&data);
        let _ = w.flush();
    });
    let r = read_response(&mut stream, Vec::new());
    let _ = stream.shutdown(Shutdown::Both);
    let _ = writer.join();
    r
}

pub fn send_raw(port: u16, bytes: &[u8]) -> Response {
    send_raw_timeout(port, bytes, Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!(
            "request {:?}: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    })
}

/// A request with `Host`, `Connection: close`, and for POST `Content-Type: application/json`
/// and `Content-Length`, each unless `headers` names it.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut s = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        s.push_str("Host: 127.0.0.1\r\n");
    }
    if !has("connection") {
        s.push_str("Connection: close\r\n");
    }
    if method == "POST" && !has("content-type") {
        s.push_str("Content-Type: application/json\r\n");
    }
    if (method == "POST" || !body.is_empty()) && !has("content-length") && !has("transfer-encoding")
    {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn post_json(port: u16, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
    send_raw(port, &request("POST", path, headers, body))
}

pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    send_raw(port, &request("GET", path, headers, b""))
}

/// Sends a request and reads until its first SSE `data:` arrived; returns the open stream and
/// the bytes read so far (head included).
pub fn open_stream(port: u16, req: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut s = start_request(port, req);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&buf, b"data:").is_none() {
        assert!(
            Instant::now() < deadline,
            "no SSE event within 30 s: {:?}",
            String::from_utf8_lossy(&buf)
        );
        match s.read(&mut chunk) {
            Ok(0) => panic!("stream closed early: {:?}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("stream read: {e}; got {:?}", String::from_utf8_lossy(&buf)),
        }
    }
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "stream refused: {:?}",
        String::from_utf8_lossy(&buf)
    );
    (s, buf)
}

/// Connects and writes `req` without reading anything.
pub fn start_request(port: u16, req: &[u8]) -> TcpStream {
    let mut s = connect(port);
    s.write_all(req).expect("write request");
    s
}

/// Reads the rest of a response begun with [`open_stream`] or [`start_request`].
pub fn finish(mut s: TcpStream, buf: Vec<u8>) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    read_response(&mut s, buf).unwrap_or_else(|e| panic!("finishing a stream: {e}"))
}

/// The payloads of an SSE body's `data:` lines, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .flat_map(|ev| {
            ev.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One unlabelled metric of `GET /metrics`.
pub fn metric(port: u16, name: &str) -> f64 {
    let r = get(port, "/metrics", &[]);
    assert_eq!(r.status, 200, "/metrics: {}", r.text());
    let text = r.text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut it = l.split_whitespace();
            if it.next() != Some(name) {
                return None;
            }
            it.next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Polls `/metrics` until every `(name, value)` holds, panicking after `within`.
pub fn wait_for_metrics(port: u16, want: &[(&str, f64)], within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let got: Vec<f64> = want.iter().map(|(n, _)| metric(port, n)).collect();
        if want.iter().zip(&got).all(|((_, w), g)| w == g) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: after {within:?} metrics {:?} are {got:?}",
            want
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts an OpenAI error response with one of `statuses`; returns its `error` object.
pub fn assert_error_in(what: &str, r: &Response, statuses: &[u16]) -> Value {
    assert!(
        statuses.contains(&r.status),
        "{what}: status {} (want one of {statuses:?}), body {}",
        r.status,
        r.text()
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "{what}: {} body is not JSON ({e}): {:?}",
            r.status,
            r.text()
        )
    });
    let err = &v["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no error.message in {v}"
    );
    assert!(err["type"].is_string(), "{what}: no error.type in {v}");
    assert!(
        r.header("content-type").is_some_and(|c| c.contains("json")),
        "{what}: error content type {:?}",
        r.header("content-type")
    );
    err.clone()
}

pub fn assert_error(what: &str, r: &Response, status: u16) -> Value {
    assert_error_in(what, r, &[status])
}

/// `error.type` or `error.code` is `kind` (OpenAI puts some kinds in one, some in the other).
pub fn assert_kind(what: &str, err: &Value, kind: &str) {
    assert!(
        err["type"] == kind || err["code"] == kind,
        "{what}: error is not {kind}: {err}"
    );
}

// Requests and checks shared by the tests of `serve_http.rs`.

pub const CHAT: &str = "/v1/chat/completions";
pub const COMPLETIONS: &str = "/v1/completions";
/// The metrics of a server with nothing running or waiting.
pub const IDLE: [(&str, f64); 3] = [
    ("ondo_active_sequences", 0.0),
    ("ondo_queue_depth", 0.0),
    ("ondo_kv_cache_used_tokens", 0.0),
];

/// A greedy chat request of 4 tokens for `content`, with the fields of `extra` set over it.
pub fn chat_req(content: &str, extra: Value) -> Value {
    let mut v = serde_json::json!({
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 4,
        "temperature": 0,
    });
    if let Value::Object(extra) = extra {
        for (k, x) in extra {
            v[k.as_str()] = x;
        }
    }
    v
}

pub fn chat(content: &str, extra: Value) -> Vec<u8> {
    serde_json::to_vec(&chat_req(content, extra)).unwrap()
}

pub fn to_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A completion that runs to its token limit: end-of-text and the chat markers are banned.
pub fn long_completion(max_tokens: Option<u32>, stream: bool) -> Vec<u8> {
    let mut v = serde_json::json!({
        "prompt": "Once upon a time",
        "temperature": 0,
        "stream": stream,
        "logit_bias": {"0": -100, "1": -100, "2": -100},
    });
    if let Some(m) = max_tokens {
        v["max_tokens"] = m.into();
    }
    to_body(&v)
}

pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    request("POST", path, &[], body)
}

/// A POST whose head, after Host and `Connection: close`, is exactly `head` (CRLF lines).
pub fn raw_post(path: &str, head: &str, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{head}\r\n")
            .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A valid chat request of exactly `len` bytes (padded with the `user` field).
pub fn padded_chat(len: usize) -> Vec<u8> {
    let mut v = chat_req("hi", serde_json::json!({"user": ""}));
    let base = to_body(&v).len();
    v["user"] = "u".repeat(len - base).into();
    let b = to_body(&v);
    assert_eq!(b.len(), len);
    b
}

pub fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The start of a request or body, for messages.
pub fn short(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()
}

/// [`send_raw_timeout`] that panics, naming `what`, when no response came.
pub fn send_within(port: u16, req: &[u8], secs: u64, what: &str) -> Response {
    send_raw_timeout(port, req, Duration::from_secs(secs)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Asserts a 200 and returns its JSON body.
pub fn expect_ok(what: &str, r: &Response) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    r.json()
}

/// What follows every hostile case: the process runs and a valid request gets an answer.
pub fn assert_serves(srv: &Server, after: &str) {
    srv.assert_alive(after);
    let r = post_json(srv.port, CHAT, &chat("What is 2+2?", Value::Null), &[]);
    let v = expect_ok(&format!("a valid request after {after}"), &r);
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["role"], "assistant", "after {after}: {v}");
    assert!(
        msg["content"].as_str().is_some_and(|c| !c.is_empty()),
        "after {after}: {v}"
    );
}

/// A 400 `invalid_request_error`, then a valid request answered.
pub fn assert_invalid(srv: &Server, what: &str, r: &Response) {
    assert_kind(what, &assert_error(what, r, 400), "invalid_request_error");
    assert_serves(srv, what);
}

/// True when the peer closed the connection (or answered 408) before the read timeout.
pub fn closed_or_408(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => buf[..n].starts_with(b"HTTP/1.1 408") || buf[..n].starts_with(b"HTTP/1.0 408"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// The content of an SSE chat stream's deltas, and the usage chunk's `usage` (or null); the
/// stream must end with `[DONE]`.
pub fn streamed_content(r: &Response) -> (String, Value) {
    let events = sse_data(&r.body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        r.text()
    );
    let mut text = String::new();
    let mut usage = Value::Null;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap_or_else(|err| panic!("event {e:?}: {err}"));
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
        if v["choices"].as_array().is_some_and(Vec::is_empty) {
            usage = v["usage"].clone();
        }
    }
    (text, usage)
}

/// Asserts only the status: for what the HTTP layer refuses before a request reaches the
/// routes (431, a malformed head), whose body is not OpenAI's JSON.
pub fn assert_status_in(what: &str, r: &Response, statuses: &[u16]) {
    assert!(
        statuses.contains(&r.status),
        "{what}: status {} (want one of {statuses:?}), body {}",
        r.status,
        r.text()
    );
}
