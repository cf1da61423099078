#!/usr/bin/env python3
"""Load, memory, batching and prefix-reuse figures for `ondo serve` (not run in CI).

Usage:
    pip install -r tests/serve/requirements.txt      # httpx
    python bench/serve_load.py --ondo target/release/ondo [--model M] [--requests 1000]
                               [--json OUT] [--only A,B,C,D] [--threads T] [--pairs N]

Every section starts its own `ondo serve --port 0 ...` (no API key; ONDO_API_KEY is removed
from its environment), waits for `ondo: listening on http://HOST:PORT` on its stderr, talks
to it with httpx.AsyncClient (server-sent events parsed by hand: `data: {...}` lines, then
`data: [DONE]`) and kills it at the end. Each section prints a result line with its figures
and PASS/FAIL against its bar; a table of all sections closes the run, and the exit status is
1 if any section failed.

  A  load       --parallel 8 -c 2048: 32 concurrent streaming chats (max_tokens 64,
                temperature 0.7, one seed each, varied prompts); 8 of them close the
                connection after 3-8 chunks. Bar: every other stream ends with a
                finish_reason chunk and [DONE], and within 5 s /metrics shows
                ondo_active_sequences, ondo_kv_cache_used_tokens and ondo_queue_depth at 0.
  B  memory     --parallel 8 -c 2048: VmRSS after 50 warm-up requests, then --requests
                requests at concurrency 16 (streaming and not, chat and completions, some
                streams dropped early, max_tokens 8-32), VmRSS again once idle.
                Bar: final <= baseline * 1.10 + 10 MB, and no request failed.
  C  batching   --parallel 8 -c 2048: generated tokens/s of 8 concurrent streams
                (max_tokens 128, temperature 0) against one stream alone, in --pairs
                interleaved pairs (one stream, then eight) after a warm-up, with two
                clients: httpx and the lean `examples/sse_load`. Completions with counting
                prompts ("1, 2, 3, 4,") so that the streams do not end early; tokens are
                counted from usage. Bar: the median pair's aggregate / single >= 3.0 (lean
                client when it is built). Also printed, for the machine's state at the
                time: the bare engine's figures (`ondo bench -p 32 -n 64 --parallel 1` and
                `8`, no HTTP, run while the server idles) and what an empty parallel region
                costs (`ondo bench --bandwidth`: the round trips between the cores).
  D  prefix     --parallel 2 -c 4096: a ~1,000-token conversation (system message starting
                with a fresh nonce, several user/assistant turns of filler); time to the
                first content chunk of its first request (cold) and of a second request
                that shares the whole conversation but asks another final question (warm),
                max_tokens 8, three nonces. Bar: median cold / median warm >= 5.
"""
import argparse
import asyncio
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "serve"))
from ondo_server import OndoServer  # noqa: E402

MB = 1024 * 1024

# Short, varied chat prompts for the load and memory sections.
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain what a prime number is.",
    "Give me three tips for better sleep.",
    "Why is the sky blue?",
    "Name a few fruits that are red.",
    "What does a compiler do?",
    "Tell me a short joke about cats.",
    "How do plants make food?",
    "Describe the ocean in two sentences.",
    "What is 12 times 12?",
    "Suggest a name for a small bakery.",
    "What is the boiling point of water?",
    "List four musical instruments.",
    "How far away is the Moon?",
    "Write one sentence about friendship.",
]

# Completion prompts that keep going (counting), for the batching section.
COUNT_PROMPTS = [
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "101, 102, 103, 104, 105,",
    "10, 20, 30, 40, 50, 60,",
    "2, 4, 6, 8, 10, 12, 14,",
    "1000, 1001, 1002, 1003,",
    "5, 10, 15, 20, 25, 30,",
    "300, 301, 302, 303, 304,",
    "42, 43, 44, 45, 46, 47,",
]

FILLER_WORDS = (
    "the garden river morning light village market bread story winter summer road friend "
    "music window table letter mountain forest teacher library train station harbor boat "
    "evening lamp coffee book street city bridge rain wind cloud field farmer apple orchard "
    "bicycle museum painting kitchen recipe soup candle season festival song journey map"
).split()


def new_client(server):
    return httpx.AsyncClient(
        base_url=server.url,
        timeout=httpx.Timeout(600.0, connect=10.0),
        limits=httpx.Limits(max_connections=128, max_keepalive_connections=64))


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

def parse_metrics(text):
    """Prometheus text format, simply: `name value [timestamp]` or `name{labels} value
    [timestamp]`. Returns {name: sum of the values over all label sets}."""
    out = collections.defaultdict(float)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name = line[:line.index("{")]
            rest = line[line.rindex("}") + 1:].split()
        else:
            name, *rest = line.split()
        if not rest:
            continue
        try:
            out[name] += float(rest[0])
        except ValueError:
            pass
    return dict(out)


async def get_metrics(client):
    r = await client.get("/metrics")
    r.raise_for_status()
    return parse_metrics(r.text)


IDLE_GAUGES = ("ondo_active_sequences", "ondo_kv_cache_used_tokens", "ondo_queue_depth")


async def wait_idle(client, timeout=5.0):
    """Polls /metrics until the idle gauges are all 0. Returns (ok, metrics, seconds)."""
    t0 = time.monotonic()
    while True:
        m = await get_metrics(client)
        if all(m.get(g) == 0 for g in IDLE_GAUGES):
            return True, m, time.monotonic() - t0
        if time.monotonic() - t0 >= timeout:
            return False, m, time.monotonic() - t0
        await asyncio.sleep(0.1)


def gauges_text(m):
    parts = []
    for g in IDLE_GAUGES:
        v = m.get(g)
        parts.append(f"{g[len('ondo_'):]}=" + (f"{v:g}" if v is not None else "absent"))
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

def new_result():
    return {"status": None, "error": None, "chunks": 0, "content": "", "finish_reason": None,
            "done": False, "usage": None, "disconnected": False, "t_send": None,
            "t_first": None, "t_end": None}


def completion_tokens(r):
    """Generated tokens of a result: usage when the server sent it, else content chunks."""
    if r["usage"]:
        return r["usage"].get("completion_tokens", 0)
    return r.get("content_chunks", 0)


async def stream_request(client, path, body, disconnect_after=None):
    """POSTs a streaming request and reads its server-sent events by hand.

    disconnect_after=k closes the response (and so the connection) once k data events have
    arrived. t_first is the time of the first event carrying generated text (falling back to
    the event carrying finish_reason when no text came)."""
    r = new_result()
    r["content_chunks"] = 0
    body = dict(body, stream=True)
    r["t_send"] = time.perf_counter()
    try:
        async with client.stream("POST", path, json=body) as resp:
            r["status"] = resp.status_code
            if resp.status_code != 200:
                r["error"] = (await resp.aread()).decode("utf-8", "replace")[:300]
                r["t_end"] = time.perf_counter()
                return r
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, other SSE fields
                payload = line[5:].strip()
                if payload == "[DONE]":
                    r["done"] = True
                    break
                ev = json.loads(payload)
                r["chunks"] += 1
                if "error" in ev:
                    r["error"] = json.dumps(ev["error"])[:300]
                if ev.get("usage"):
                    r["usage"] = ev["usage"]
                for ch in ev.get("choices") or []:
                    text = ch.get("text")
                    if text is None:
                        text = (ch.get("delta") or {}).get("content")
                    if text:
                        r["content"] += text
                        r["content_chunks"] += 1
                        if r["t_first"] is None:
                            r["t_first"] = time.perf_counter()
                    if ch.get("finish_reason") is not None:
                        r["finish_reason"] = ch["finish_reason"]
                        if r["t_first"] is None:
                            r["t_first"] = time.perf_counter()
                if disconnect_after is not None and r["chunks"] >= disconnect_after:
                    r["disconnected"] = True
                    break  # leaving the `async with` closes the connection mid-stream
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        r["error"] = f"{type(e).__name__}: {e}"
    r["t_end"] = time.perf_counter()
    return r


async def plain_request(client, path, body):
    r = new_result()
    r["t_send"] = time.perf_counter()
    try:
        resp = await client.post(path, json=dict(body, stream=False))
        r["status"] = resp.status_code
        if resp.status_code != 200:
            r["error"] = resp.text[:300]
        else:
            j = resp.json()
            r["usage"] = j.get("usage")
            ch = (j.get("choices") or [{}])[0]
            r["content"] = ch.get("text") if "text" in ch else (ch.get("message") or {}).get(
                "content") or ""
            r["finish_reason"] = ch.get("finish_reason")
            r["done"] = True
    except (httpx.HTTPError, ValueError) as e:
        r["error"] = f"{type(e).__name__}: {e}"
    r["t_end"] = r["t_first"] = time.perf_counter()
    return r


def stream_ok(r):
    """A stream that ran to its end: finish_reason, [DONE], no error."""
    return (r["status"] == 200 and r["error"] is None and r["done"]
            and r["finish_reason"] is not None)


def chat_body(prompt, **kw):
    return dict({"messages": [{"role": "user", "content": prompt}],
                 "stream_options": {"include_usage": True}}, **kw)


def server_args(a, *args):
    out = list(args)
    if a.model:
        out += ["-m", a.model]
    if a.threads:
        out += ["-t", str(a.threads)]
    return out


def fmt_mb(kb):
    return f"{kb / 1024:.1f} MB"


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

async def section_a(a, server):
    """Load with a quarter of the clients disconnecting mid-stream."""
    async with new_client(server) as client:
        jobs = []
        for i in range(32):
            body = chat_body(PROMPTS[i % len(PROMPTS)], max_tokens=64, temperature=0.7,
                             seed=1000 + i)
            drop = 3 + (i // 4) % 6 if i % 4 == 3 else None  # 8 clients, after 3..8 chunks
            jobs.append(stream_request(client, "/v1/chat/completions", body, drop))
        t0 = time.perf_counter()
        results = await asyncio.gather(*jobs)
        wall = time.perf_counter() - t0
        idle, m, waited = await wait_idle(client, 5.0)

    droppers = [r for i, r in enumerate(results) if i % 4 == 3]
    others = [r for i, r in enumerate(results) if i % 4 != 3]
    # A dropper whose stream ended before its k-th chunk ran to completion instead.
    dropped = sum(1 for r in droppers if r["disconnected"])
    dropper_bad = [r for r in droppers if not r["disconnected"] and not stream_ok(r)]
    bad = [r for r in others if not stream_ok(r)]
    tokens = sum(completion_tokens(r) for r in others)
    ok = not bad and not dropper_bad and idle and server.alive()
    fig = {
        "streams_completed_ok": len(others) - len(bad), "streams_expected": len(others),
        "disconnected": dropped, "wall_s": round(wall, 2),
        "generated_tokens_completed": tokens, "idle_after_s": round(waited, 2),
        **{g: m.get(g) for g in IDLE_GAUGES},
        "errors": [r["error"] or f"status={r['status']} done={r['done']} "
                   f"finish={r['finish_reason']}" for r in bad + dropper_bad][:5],
    }
    line = (f"{len(others) - len(bad)}/{len(others)} streams ended with finish_reason and "
            f"[DONE], {dropped}/8 disconnected mid-stream, {wall:.1f} s; after "
            f"{waited:.1f} s: {gauges_text(m)}")
    return ok, line, "all finish+[DONE]; gauges 0 within 5 s", fig


async def run_mix(client, count, offset, concurrency=16):
    """`count` requests, `concurrency` at a time: request i is streaming chat, plain chat,
    streaming completion or plain completion by i % 4; max_tokens 8..32; one streaming
    request in five is dropped after 1-4 chunks."""
    counter = iter(range(offset, offset + count))
    results = []

    async def worker():
        for i in counter:
            prompt = PROMPTS[i % len(PROMPTS)]
            kind = i % 4
            mt = 8 + (i * 7) % 25
            common = {"max_tokens": mt, "temperature": 0.8, "seed": i}
            if kind in (0, 1):
                path, body = "/v1/chat/completions", chat_body(prompt, **common)
            else:
                path = "/v1/completions"
                body = dict({"prompt": f"Question: {prompt}\nAnswer:",
                             "stream_options": {"include_usage": True}}, **common)
            if kind in (0, 2):
                drop = 1 + i % 4 if i % 5 == 0 else None
                r = await stream_request(client, path, body, drop)
            else:
                body.pop("stream_options")
                r = await plain_request(client, path, body)
            results.append(r)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def section_b(a, server):
    """RSS before and after many requests."""
    async with new_client(server) as client:
        warm = await run_mix(client, 50, 0)
        idle0, _, _ = await wait_idle(client, 10.0)
        base_kb = server.rss_kb("VmRSS")
        t0 = time.perf_counter()
        results = await run_mix(client, a.requests, 50)
        wall = time.perf_counter() - t0
        idle, m, waited = await wait_idle(client, 10.0)
        final_kb = server.rss_kb("VmRSS")
        peak_kb = server.rss_kb("VmHWM")

    def failed(r):
        return not r["disconnected"] and not (
            r["status"] == 200 and r["error"] is None and r["done"]
            and r["finish_reason"] is not None)

    bad = [r for r in warm + results if failed(r)]
    dropped = sum(r["disconnected"] for r in results)
    tokens = sum(completion_tokens(r) for r in results)
    limit_kb = base_kb * 1.10 + 10 * 1024
    ok = final_kb <= limit_kb and not bad and idle0 and idle and server.alive()
    fig = {"baseline_rss_kb": base_kb, "final_rss_kb": final_kb, "peak_rss_kb": peak_kb,
           "limit_rss_kb": round(limit_kb), "requests": len(results), "dropped": dropped,
           "failed": len(bad), "wall_s": round(wall, 2),
           "requests_per_s": round(len(results) / wall, 2),
           "generated_tokens_per_s": round(tokens / wall, 1),
           "errors": [r["error"] or f"status={r['status']}" for r in bad][:5],
           **{g: m.get(g) for g in IDLE_GAUGES}}
    line = (f"RSS {fmt_mb(base_kb)} after warm-up -> {fmt_mb(final_kb)} after "
            f"{len(results)} requests (limit {fmt_mb(limit_kb)}, peak {fmt_mb(peak_kb)}); "
            f"{len(results) / wall:.1f} req/s, {tokens / wall:.0f} tok/s, {dropped} dropped, "
            f"{len(bad)} failed; idle: {gauges_text(m)}")
    return ok, line, "final <= base*1.10 + 10 MB, no failures", fig


async def section_c(a, server):
    """Aggregate tokens/s of 8 streams against one alone, through two clients."""
    region_before = region_ns(a)

    def body(prompt):
        return {"prompt": prompt, "max_tokens": 128, "temperature": 0,
                "stream_options": {"include_usage": True}}

    async def run_httpx(client, prompts):
        cpu0, t0 = process_cpu(), time.perf_counter()
        rs = await asyncio.gather(*(stream_request(client, "/v1/completions", body(p))
                                    for p in prompts))
        wall, cpu = max(r["t_end"] for r in rs) - t0, process_cpu() - cpu0
        for r in rs:
            if not stream_ok(r):
                raise RuntimeError(f"stream failed: {r['error'] or r['status']}")
        toks = [completion_tokens(r) for r in rs]
        per = [t / (r["t_end"] - r["t_send"]) for t, r in zip(toks, rs)]
        return sum(toks) / wall, sum(toks), wall, per, cpu

    async def run_lean(prompts):
        addr = server.url.split("//", 1)[1].rstrip("/")
        cpu0 = children_cpu()
        proc = await asyncio.create_subprocess_exec(
            a.load_client, addr, "128", *prompts, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{a.load_client} failed: {(out + err).decode()[-300:]}")
        r = json.loads(out)
        per = [st["tokens"] / st["end_s"] for st in r["streams"]]
        return r["tok_s"], r["tokens"], r["wall_s"], per, children_cpu() - cpu0

    def text(name, pairs):
        ones, eights = [p[0] for p in pairs], [p[1] for p in pairs]
        ratios = [b[0] / o[0] for o, b in pairs]
        cpu_us = 1e6 * sum(b[4] for b in eights) / max(sum(b[1] for b in eights), 1)
        per = sorted(x for b in eights for x in b[3])
        return (f"{name}: median of {len(pairs)} pairs {statistics.median(ratios):.2f} "
                f"(pairs {', '.join(f'{r:.2f}' for r in ratios)}); 1 stream "
                f"{statistics.median(o[0] for o in ones):.1f} tok/s, 8 streams "
                f"{statistics.median(b[0] for b in eights):.1f} tok/s (median; per stream "
                f"{per[0]:.1f}..{per[-1]:.1f}; client CPU {cpu_us:.0f} us/token)")

    def figs(pairs):
        return {"pairs": [{"single_tok_s": round(o[0], 1), "aggregate_tok_s": round(b[0], 1),
                           "aggregate_wall_s": round(b[2], 2),
                           "ratio": round(b[0] / o[0], 3)} for o, b in pairs],
                "median_ratio": round(statistics.median(b[0] / o[0] for o, b in pairs), 3),
                "client_cpu_us_per_token": round(
                    1e6 * sum(b[4] for _, b in pairs) / max(sum(b[1] for _, b in pairs), 1))}

    async def interleaved(run):
        # One stream, then eight, then one again...: both halves of a pair see the same
        # moment of a machine whose speed drifts.
        return [(await run(COUNT_PROMPTS[:1]), await run(COUNT_PROMPTS[:8]))
                for _ in range(a.pairs)]

    lean = a.load_client and os.path.exists(a.load_client)
    async with new_client(server) as client:
        # Warm-up: every prompt once (later runs reuse their cached prefixes alike).
        await asyncio.gather(*(stream_request(client, "/v1/completions",
                                              dict(body(p), max_tokens=16))
                               for p in COUNT_PROMPTS))
        hx = await interleaved(lambda ps: run_httpx(client, ps))
        ln = await interleaved(run_lean) if lean else None
    bare = {n: bare_engine_tok_s(a, n) for n in (1, 8)}
    region = (region_before, region_ns(a))
    fig = {"httpx": figs(hx), "bare_engine_tok_s": bare, "region_ns": region}
    line = text("httpx client", hx)
    line += (f"; bare engine (ondo bench --parallel, no HTTP): 1 sequence {bare[1]:.1f} tok/s, "
             f"8 sequences {bare[8]:.1f} ({bare[8] / bare[1]:.2f}x); an empty parallel region "
             f"{region[0]:.0f} ns before, {region[1]:.0f} after (~130 with the vCPUs on one "
             "CCX, ~530 on two CCDs)")
    ratio = fig["httpx"]["median_ratio"]
    if lean:
        fig["lean"] = figs(ln)
        line = text("lean client", ln) + "; " + line
        ratio = fig["lean"]["median_ratio"]
    if not lean:
        line += (f"; lean client not found at {a.load_client} (cargo build --release -p "
                 "ondo-server --example sse_load)")
    bar = "median pair ratio >= 3.0" + (" (lean client)" if lean else "")
    return ratio >= 3.0 and server.alive(), line, bar, fig


def bare_engine_tok_s(a, n):
    """Aggregate decode tok/s of n sequences in the bare batched pass (`ondo bench`)."""
    cmd = ([a.ondo] + (["-t", str(a.threads)] if a.threads else [])
           + ["bench", "-p", "32", "-n", "64", "-r", "3", "--parallel", str(n), "--json"]
           + (["-m", a.model] if a.model else []))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["tg_tok_s"]


def region_ns(a):
    """What an empty parallel region costs now (`ondo bench --bandwidth`): where the vCPUs sit."""
    cmd = ([a.ondo] + (["-t", str(a.threads)] if a.threads else [])
           + ["bench", "--bandwidth", "--json"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["region_ns"]


def process_cpu():
    t = os.times()
    return t.user + t.system


def children_cpu():
    t = os.times()
    return t.children_user + t.children_system


def filler_paragraph(rng, words=60):
    out = []
    for _ in range(words // 10):
        s = " ".join(rng.choice(FILLER_WORDS) for _ in range(10))
        out.append(s[0].upper() + s[1:] + ".")
    return " ".join(out)


def conversation(nonce, turns):
    """System message (starting with the nonce) and `turns` user/assistant pairs of filler;
    the filler itself is the same for every nonce."""
    rng = random.Random(1234)
    msgs = [{"role": "system", "content": f"Session {nonce}. You are a helpful assistant. "
                                          + filler_paragraph(rng, 40)}]
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Tell me about part {t + 1}. "
                                                + filler_paragraph(rng, 50)})
        msgs.append({"role": "assistant", "content": filler_paragraph(rng, 60)})
    return msgs


async def section_d(a, server):
    """Time to first token, cold and with the conversation's prefix cached."""
    async with new_client(server) as client:
        # Warm-up: touches the weights, unrelated to the conversations below.
        await stream_request(client, "/v1/chat/completions",
                             chat_body("Hello!", max_tokens=4, temperature=0))

        # Enough turns for ~1,000 tokens of conversation (counted with /tokenize).
        turns, n_tokens = 1, 0
        while True:
            text = "\n".join(m["content"] for m in conversation("x" * 16, turns))
            r = await client.post("/tokenize", json={"content": text})
            r.raise_for_status()
            n_tokens = len(r.json()["tokens"])
            if n_tokens >= 1000 or turns >= 40:
                break
            turns += 1

        m0 = await get_metrics(client)
        colds, warms, prompt_tokens = [], [], []
        for rep in range(3):
            nonce = f"{random.getrandbits(64):016x}"
            conv = conversation(nonce, turns)
            bodies = [
                {"messages": conv + [{"role": "user", "content": q}], "max_tokens": 8,
                 "temperature": 0, "stream_options": {"include_usage": True}}
                for q in ("Summarize our conversation in one sentence.",
                          "Which part did we talk about first?")]
            rc = await stream_request(client, "/v1/chat/completions", bodies[0])
            rw = await stream_request(client, "/v1/chat/completions", bodies[1])
            for r in (rc, rw):
                if not stream_ok(r) or r["t_first"] is None:
                    raise RuntimeError(f"request failed: {r['error'] or r['status']}")
            colds.append(rc["t_first"] - rc["t_send"])
            warms.append(rw["t_first"] - rw["t_send"])
            prompt_tokens.append((rc["usage"] or {}).get("prompt_tokens"))
            print(f"    nonce {nonce}: cold {colds[-1] * 1000:.1f} ms, warm "
                  f"{warms[-1] * 1000:.1f} ms, prompt {prompt_tokens[-1]} tokens", flush=True)
        m1 = await get_metrics(client)

    cold, warm = statistics.median(colds), statistics.median(warms)
    ratio = cold / warm if warm > 0 else float("inf")
    cached = m1.get("ondo_prompt_tokens_cached_total")
    cached_delta = (cached - m0.get("ondo_prompt_tokens_cached_total", 0)
                    if cached is not None else None)
    fig = {"conversation_tokens_tokenize": n_tokens, "turns": turns,
           "prompt_tokens": prompt_tokens, "cold_ttft_ms": [round(x * 1000, 1) for x in colds],
           "warm_ttft_ms": [round(x * 1000, 1) for x in warms],
           "cold_median_ms": round(cold * 1000, 1), "warm_median_ms": round(warm * 1000, 1),
           "ratio": round(ratio, 2), "prompt_tokens_cached_total": cached,
           "prompt_tokens_cached_during_reps": cached_delta}
    line = (f"conversation ~{n_tokens} tokens (prompt {prompt_tokens[0]}); TTFT cold "
            f"{cold * 1000:.1f} ms, warm {warm * 1000:.1f} ms (medians of 3); ratio "
            f"{ratio:.1f}; ondo_prompt_tokens_cached_total {cached} "
            f"(+{cached_delta} during the 6 requests)")
    return ratio >= 5.0 and server.alive(), line, "cold/warm >= 5", fig


SECTIONS = {
    "A": ("load + disconnects", section_a, ("--parallel", "8", "-c", "2048")),
    "B": ("memory", section_b, ("--parallel", "8", "-c", "2048")),
    "C": ("batching", section_c, ("--parallel", "8", "-c", "2048")),
    "D": ("prefix reuse", section_d, ("--parallel", "2", "-c", "4096")),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ondo", required=True, help="path to the ondo binary")
    ap.add_argument("--model", default=None, help="value for `ondo serve -m`")
    ap.add_argument("--requests", type=int, default=1000, help="requests in section B")
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    ap.add_argument("--only", default="A,B,C,D", help="sections to run, e.g. A,C")
    ap.add_argument("--threads", type=int, default=None, help="`ondo serve -t`")
    ap.add_argument("--pairs", type=int, default=5,
                    help="section C: interleaved (1 stream, 8 streams) runs per client")
    ap.add_argument("--load-client", default=None,
                    help="section C's lean client (default: examples/sse_load beside the "
                         "ondo binary; build it with `cargo build --release -p ondo-server "
                         "--example sse_load`)")
    a = ap.parse_args()
    if a.load_client is None:
        a.load_client = os.path.join(os.path.dirname(a.ondo), "examples", "sse_load")

    rows, report = [], {"model": a.model or "smollm2", "sections": {}}
    for key in [s.strip().upper() for s in a.only.split(",") if s.strip()]:
        name, fn, args = SECTIONS[key]
        print(f"\n== {key}. {name}", flush=True)
        t0 = time.monotonic()
        server = OndoServer([a.ondo, "serve", "--port", "0"] + server_args(a, *args),
                            log_prefix="  ", announce_ready=False)
        try:
            with server:
                ok, line, bar, fig = asyncio.run(fn(a, server))
        except Exception as e:
            ok, line, bar, fig = False, f"error: {type(e).__name__}: {e}", "-", {}
            if server.proc is not None:
                line += "\n  server output:\n" + server.tail_text(20)
        dt = time.monotonic() - t0
        verdict = "PASS" if ok else "FAIL"
        print(f"  {key} {verdict}: {line}  [{dt:.0f} s]", flush=True)
        rows.append((key, name, verdict, bar, line.split("\n")[0]))
        report["sections"][key] = dict(fig, name=name, passed=ok, bar=bar, summary=line,
                                       seconds=round(dt, 1))

    print("\n| section | verdict | bar | result |\n| --- | --- | --- | --- |")
    for key, name, verdict, bar, line in rows:
        print(f"| {key} {name} | {verdict} | {bar} | {line} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nfigures written to {a.json}")
    return 0 if all(r[2] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
