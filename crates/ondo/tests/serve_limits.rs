//! `ondo serve` against clients that push on its limits (docs/serve.md; robustness.md 5c,
//! items 1, 8, 10, 11, 12): bodies and headers over the limits, connections dropped mid-stream
//! or while queued, a full queue, slow headers and unfinished bodies. Each test starts a real
//! server on the default model and talks raw TCP; the server must answer with the documented
//! status, free what a client held, and keep answering valid requests.
//!
//! The helpers (server handle, raw client, request builders) are in `common/http.rs`.

mod common;
#[path = "common/http.rs"]
mod http;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::*;
use common::model_path;

/// A server on the default model; None (the test skips) when the model is not in the cache.
fn start(opts: &ServerOpts) -> Option<Server> {
    let model = model_path()?;
    Some(Server::start(&model, opts))
}

/// Non-empty lines of a case table.

#[test]
fn oversized_bodies_and_headers_are_refused() {
    let opts = ServerOpts {
        max_body: Some(65536),
        ..Default::default()
    };
    let Some(srv) = start(&opts) else { return };
    let port = srv.port;

    // At the limit: served. One byte over, sent in full: 413.
    expect_ok(
        "a body of --max-body",
        &post_json(port, CHAT, &padded_chat(65536), &[]),
    );
    let r = post_json(port, CHAT, &padded_chat(65537), &[]);
    assert_error("a body of --max-body + 1", &r, 413);
    assert_serves(&srv, "a body over the limit");

    // Lengths far past the limit (10^12; a 2^31-char prompt) with a few bytes sent: refused
    // from the head alone, without waiting for the body.
    for cl in ["1000000000000", "2147483700"] {
        let what = format!("Content-Length {cl}");
        let t = Instant::now();
        let head = format!("Content-Type: application/json\r\nContent-Length: {cl}\r\n");
        let r = send_within(port, &raw_post(CHAT, &head, b"{\"messages\":["), 10, &what);
        assert_error(&what, &r, 413);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            t.elapsed()
        );
        assert_serves(&srv, &what);
    }

    // Lengths that are not one number. These (and 431) are refused by the HTTP layer before
    // the routes see the request, so only the status is checked.
    let bad_lengths: [(&str, &[u16]); 5] = [
        ("abc", &[400]),
        ("-1", &[400]),
        ("18446744073709551616", &[400, 413]),
        ("2, 3", &[400]),
        ("2\r\nContent-Length: 3", &[400]),
    ];
    for (cl, statuses) in bad_lengths {
        let what = format!("Content-Length {cl:?}");
        let head = format!("Content-Type: application/json\r\nContent-Length: {cl}\r\n");
        let r = send_within(port, &raw_post(CHAT, &head, b"{}x"), 15, &what);
        assert_status_in(&what, &r, statuses);
        assert_serves(&srv, &what);
    }

    // Chunked bodies: served within the limit, 413 past it, 400 for a bad chunk size.
    let te = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
    let ok_chunked = raw_post(CHAT, te, &chunked(&chat("hi", json!({})), 7));
    expect_ok("a chunked request", &send_raw(port, &ok_chunked));
    let spaces = " ".repeat(72 * 1024);
    let r = send_raw(port, &raw_post(CHAT, te, &chunked(spaces.as_bytes(), 8192)));
    assert_error("72 KiB chunked", &r, 413);
    assert_serves(&srv, "72 KiB chunked");
    let bad_chunks: [(&[u8], &[u16]); 3] = [
        (b"zz\r\n{}\r\n0\r\n\r\n", &[400]),
        (b"-2\r\n{}\r\n0\r\n\r\n", &[400]),
        (b"fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", &[400, 413]),
    ];
    for (body, statuses) in bad_chunks {
        let what = format!("chunked body {:?}", short(body));
        assert_error_in(&what, &send_raw(port, &raw_post(CHAT, te, body)), statuses);
        assert_serves(&srv, &what);
    }

    // Headers: one of 17 KiB, 40 of 500 bytes, 105 in all → 431; 95 small ones are fine.
    let ok = chat("hi", json!({}));
    let big = "a".repeat(17 * 1024);
    let r = post_json(port, CHAT, &ok, &[("X-Big", big.as_str())]);
    assert_status_in("a 17 KiB header", &r, &[431]);
    assert_serves(&srv, "a 17 KiB header");
    for (count, size, want) in [(40, 500, 431), (101, 1, 431), (91, 1, 200)] {
        let what = format!("{count} extra headers of {size} bytes");
        let owned: Vec<(String, String)> = (0..count)
            .map(|i| (format!("X-H{i}"), "b".repeat(size)))
            .collect();
        let refs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let r = post_json(port, CHAT, &ok, &refs);
        if want == 200 {
            expect_ok(&what, &r);
        } else {
            assert_status_in(&what, &r, &[want]);
            assert_serves(&srv, &what);
        }
    }

    // A compressed body: refused (ondo does not inflate), never a 5xx.
    let mut x = 0x1234_5678u32;
    let mut junk = vec![0x1f, 0x8b, 8, 0];
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x as u8);
    }
    let r = post_json(port, CHAT, &junk, &[("Content-Encoding", "gzip")]);
    assert_error_in("Content-Encoding: gzip", &r, &[400, 415]);
    assert_serves(&srv, "Content-Encoding: gzip");

    // Not HTTP: a 4xx (or 505) or a closed connection, but no hang and no 500.
    let garbage: [&[u8]; 6] = [
        b"GARBAGE\r\n\r\n",
        b"\r\n\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for g in garbage {
        let what = format!("request {:?}", short(g));
        match send_raw_timeout(port, g, Duration::from_secs(15)) {
            Ok(r) => assert!(r.status < 500 || r.status == 505, "{what}: {r:?}"),
            Err(e) => assert!(!e.starts_with("timeout"), "{what}: {e}"),
        }
        assert_serves(&srv, &what);
    }
}

#[test]
fn disconnected_clients_free_their_slots() {
    let Some(srv) = start(&ServerOpts::default()) else {
        return;
    };
    let port = srv.port;
    let long = post(COMPLETIONS, &long_completion(Some(400), true));
    let secs = Duration::from_secs;

    // Dropped after the first event.
    let (s, _) = open_stream(port, &long);
    assert_eq!(metric(port, "ondo_active_sequences"), 1.0);
    drop(s);
    wait_for_metrics(
        port,
        &IDLE,
        secs(2),
        "a stream dropped after its first event",
    );
    assert_serves(&srv, "a stream dropped after its first event");

    // Dropped before anything was read.
    drop(start_request(port, &long));
    thread::sleep(Duration::from_millis(300));
    wait_for_metrics(port, &IDLE, secs(3), "a stream dropped unread");
    assert_serves(&srv, "a stream dropped unread");

    // Dropped while queued behind two running streams: the two go on.
    let (a, _) = open_stream(port, &long);
    let (b, _) = open_stream(port, &long);
    let c = start_request(port, &long);
    let busy = [("ondo_active_sequences", 2.0), ("ondo_queue_depth", 1.0)];
    wait_for_metrics(port, &busy, secs(3), "two streams and one queued");
    drop(c);
    let left = [("ondo_active_sequences", 2.0), ("ondo_queue_depth", 0.0)];
    wait_for_metrics(
        port,
        &left,
        secs(3),
        "a queued request dropped, two running",
    );
    drop(a);
    drop(b);
    wait_for_metrics(port, &IDLE, secs(3), "all three dropped");
    assert_serves(&srv, "a queued stream dropped");

    // Again and again: nothing accumulates.
    for _ in 0..5 {
        drop(open_stream(port, &long));
    }
    wait_for_metrics(port, &IDLE, secs(3), "five dropped streams");
    assert_serves(&srv, "five dropped streams");
}

#[test]
fn a_full_queue_is_503_and_accepted_streams_finish() {
    let opts = ServerOpts {
        parallel: 1,
        queue: 1,
        ..Default::default()
    };
    let Some(srv) = start(&opts) else { return };
    let port = srv.port;
    let (a, a_buf) = open_stream(port, &post(COMPLETIONS, &long_completion(Some(300), true)));
    let b_req = chat("Say hi.", json!({"max_tokens": 8, "stream": true}));
    let b = start_request(port, &post(CHAT, &b_req));
    let queued = [("ondo_queue_depth", 1.0)];
    wait_for_metrics(
        port,
        &queued,
        Duration::from_secs(5),
        "the second request waits",
    );
    for stream in [false, true] {
        let what = format!("a third request (stream {stream})");
        let r = post_json(port, CHAT, &chat("hi", json!({"stream": stream})), &[]);
        assert_kind(&what, &assert_error(&what, &r, 503), "server_busy");
        let retry = r.header("retry-after");
        assert!(
            retry.is_some_and(|v| v.parse::<u64>().is_ok()),
            "{what}: Retry-After {retry:?}"
        );
    }
    let streams = [
        ("the running stream", finish(a, a_buf), Some("length")),
        ("the queued stream", finish(b, Vec::new()), None),
    ];
    for (what, r, reason) in streams {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let ct = r.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("text/event-stream"),
            "{what}: content type {ct:?}"
        );
        let events = sse_data(&r.body);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{what}: {}",
            r.text()
        );
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{what}: {e:?}: {err}")))
            .collect();
        assert!(
            chunks.iter().all(|c| c.get("error").is_none()),
            "{what}: {}",
            r.text()
        );
        let (last, rest) = chunks.split_last().expect("at least one chunk");
        let fr = last["choices"][0]["finish_reason"].as_str();
        assert!(fr.is_some(), "{what}: last chunk {last}");
        if reason.is_some() {
            assert_eq!(fr, reason, "{what}: last chunk {last}");
        }
        let early = rest
            .iter()
            .find(|c| !c["choices"][0]["finish_reason"].is_null());
        assert!(
            early.is_none(),
            "{what}: finish_reason before the end: {early:?}"
        );
    }
    wait_for_metrics(port, &IDLE, Duration::from_secs(3), "both streams finished");
    assert_serves(&srv, "a full queue");
}

#[test]
fn slow_headers_are_cut_off_and_health_stays_fast() {
    let Some(srv) = start(&ServerOpts::default()) else {
        return;
    };
    let port = srv.port;
    let t0 = Instant::now();
    // 50 connections that stop inside their headers.
    let silent: Vec<_> = (0..50)
        .map(|_| start_request(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    // One that sends a header byte a second: the 10 s are for the whole head.
    let trickle = thread::spawn(move || {
        let mut s = start_request(port, b"POST /v1/chat/completions HTTP/1.1\r\nX-Slow: ");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            let _ = s.write_all(b"a");
            if closed_or_408(&mut s) {
                return Some(t.elapsed());
            }
        }
        None
    });
    for _ in 0..5 {
        let t = Instant::now();
        expect_ok("/health beside slow clients", &get(port, "/health", &[]));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/health took {:?}",
            t.elapsed()
        );
        thread::sleep(Duration::from_secs(1));
    }
    for (i, mut s) in silent.into_iter().enumerate() {
        let left = Duration::from_secs(15).saturating_sub(t0.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(100))))
            .unwrap();
        assert!(
            closed_or_408(&mut s),
            "silent connection {i} open after {:?}",
            t0.elapsed()
        );
    }
    let cut = trickle.join().unwrap();
    assert!(
        cut.is_some_and(|t| t < Duration::from_secs(15)),
        "header trickle cut after {cut:?}"
    );
    assert_serves(&srv, "slow headers");
}

#[test]
fn an_unfinished_body_is_cut_off() {
    let Some(srv) = start(&ServerOpts::default()) else {
        return;
    };
    let t0 = Instant::now();
    let head = "Content-Type: application/json\r\nContent-Length: 100\r\n";
    let mut s = start_request(srv.port, &raw_post(CHAT, head, b"{\"messages"));
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    assert!(closed_or_408(&mut s), "still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(40));
    assert_serves(&srv, "an unfinished body");
}

#[test]
fn a_port_in_use_is_one_clear_error() {
    let Some(model) = model_path() else { return };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ondo"))
        .args(["serve", "-m", &model.to_string_lossy(), "--port", &port])
        .env_remove("ONDO_API_KEY")
        .output()
        .expect("run ondo");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen") && err.contains("in use"),
        "{err}"
    );
    assert_eq!(err.matches("in use").count(), 1, "{err}");
}
