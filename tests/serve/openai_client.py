#!/usr/bin/env python3
"""Acceptance test of `ondo serve` through the official `openai` Python client.

Usage:
    pip install -r tests/serve/requirements.txt
    python tests/serve/openai_client.py --ondo target/release/ondo [--model MODEL_ARG]

MODEL_ARG is passed to `ondo serve -m` (default: none, so the server's default model
`smollm2`). The script starts

    ondo serve --port 0 --parallel 4 -c 2048 --api-key test-key-123 [-m MODEL_ARG]

waits for `ondo: listening on http://HOST:PORT` on its stderr, then talks to it with the
unmodified `openai` client (only base_url and api_key set) and runs the numbered checks below
against the contract in docs/serve.md. Each check prints PASS or FAIL with details; the last
line is `openai_client: N passed, M failed` and the exit status is 1 if anything failed. The
server must still be alive after all checks (that is a check too); it is always killed at
the end.

Generation is kept short (at most 24 tokens per request) so that the whole run takes well
under two minutes on a 2-core CPU with SmolLM2-135M.
"""
import argparse
import concurrent.futures
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request

import openai

from ondo_server import OndoServer

API_KEY = "test-key-123"
REQUEST_TIMEOUT_S = 60

SYSTEM = "You are a helpful assistant. Answer briefly."
QUESTION = "What is the capital of France?"
CHAT_MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]
COMPLETION_PROMPT = "The capital of France is"


# --------------------------------------------------------------------------------------------
# Check bookkeeping
# --------------------------------------------------------------------------------------------

class Failed(Exception):
    """A check's expectation did not hold."""


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


class Checks:
    def __init__(self, server=None):
        self.server = server
        self.passed = 0
        self.failed = 0
        self.state = {}  # results that later checks build on

    def run(self, name, fn, *deps):
        missing = [d for d in deps if d not in self.state]
        t0 = time.monotonic()
        if missing:
            ok, detail = False, "skipped: needs the result of " + ", ".join(missing)
        else:
            try:
                detail = fn() or ""
                ok = True
            except Failed as e:
                ok, detail = False, str(e)
            except openai.APIStatusError as e:
                ok, detail = False, (f"{type(e).__name__} status {e.status_code}: {e.message}"
                                     f" body={e.body!r}")
            except openai.APIError as e:  # connection errors, bad stream events
                cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
                ok, detail = False, f"{type(e).__name__}: {e}{cause}"
            except OSError as e:  # plain-HTTP connection errors
                ok, detail = False, f"{type(e).__name__}: {e}"
            except Exception as e:  # a bug here or in the client: show where
                ok, detail = False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        dt = time.monotonic() - t0
        if (not ok and self.server is not None and not self.server.alive()
                and "exited" not in detail):
            detail += f"\n(the server has exited, status {self.server.proc.returncode})"
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({dt:.2f} s)"
              + (("\n      " + detail.replace("\n", "\n      ")) if detail else ""), flush=True)
        return ok


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def expected_model_id(model_arg):
    """The id the server should report (docs/serve.md): the `-m` name when it is a known
    name, else the file stem; `smollm2` without `-m`."""
    if model_arg is None:
        return "smollm2"
    if os.sep in model_arg or model_arg.lower().endswith(".gguf") or os.path.exists(model_arg):
        base = os.path.basename(model_arg)
        return base[:-5] if base.lower().endswith(".gguf") else os.path.splitext(base)[0]
    return model_arg


def usage_tuple(u):
    return (u.prompt_tokens, u.completion_tokens, u.total_tokens)


def check_usage(u, max_completion=None):
    expect(u is not None, "no usage in the response")
    expect(u.prompt_tokens > 0, f"usage.prompt_tokens = {u.prompt_tokens}, want > 0")
    expect(u.completion_tokens > 0, f"usage.completion_tokens = {u.completion_tokens}, want > 0")
    if max_completion is not None:
        expect(u.completion_tokens <= max_completion,
               f"usage.completion_tokens = {u.completion_tokens} > max_tokens {max_completion}")
    expect(u.total_tokens == u.prompt_tokens + u.completion_tokens,
           f"usage.total_tokens {u.total_tokens} != {u.prompt_tokens} + {u.completion_tokens}")


def collect_chat_stream(stream):
    """Reads a streamed chat completion (one choice). Returns a dict with the concatenated
    content, the chunks, the finish reasons seen and the usage chunk."""
    chunks = list(stream)
    expect(chunks, "the stream had no chunks")
    content, finishes, usage_chunks = [], [], []
    for i, c in enumerate(chunks):
        expect(c.object == "chat.completion.chunk",
               f"chunk {i} object = {c.object!r}, want 'chat.completion.chunk'")
        if not c.choices:
            usage_chunks.append(c)
            continue
        expect(len(c.choices) == 1 and c.choices[0].index == 0,
               f"chunk {i} has choices {[ch.index for ch in c.choices]}, want one with index 0")
        ch = c.choices[0]
        if ch.delta is not None and ch.delta.content:
            content.append(ch.delta.content)
        if ch.finish_reason is not None:
            finishes.append((i, ch.finish_reason))
    return {"chunks": chunks, "content": "".join(content), "finishes": finishes,
            "usage_chunks": usage_chunks}


def collect_completion_stream(stream):
    """Reads a streamed text completion (one choice); same result shape as above."""
    chunks = list(stream)
    expect(chunks, "the stream had no chunks")
    text, finishes, usage_chunks = [], [], []
    for i, c in enumerate(chunks):
        expect(c.object == "text_completion",
               f"chunk {i} object = {c.object!r}, want 'text_completion'")
        if not c.choices:
            usage_chunks.append(c)
            continue
        ch = c.choices[0]
        if ch.text:
            text.append(ch.text)
        if ch.finish_reason is not None:
            finishes.append((i, ch.finish_reason))
    return {"chunks": chunks, "content": "".join(text), "finishes": finishes,
            "usage_chunks": usage_chunks}


def check_stream_tail(s, want_finish, want_usage=None):
    """The last chunk with choices carries the (only) finish_reason; with include_usage the
    very last chunk has empty choices and the usage."""
    chunks = s["chunks"]
    with_choices = [i for i, c in enumerate(chunks) if c.choices]
    expect(with_choices, "no chunk with choices")
    last = with_choices[-1]
    expect(s["finishes"] and s["finishes"][-1][0] == last,
           f"finish_reason chunks at {s['finishes']}, want it on the last chunk with choices "
           f"(index {last})")
    expect(len(s["finishes"]) == 1, f"finish_reason set on several chunks: {s['finishes']}")
    got = s["finishes"][-1][1]
    expect(got == want_finish, f"stream finish_reason {got!r}, want {want_finish!r}")
    if want_usage is not None:
        expect(len(s["usage_chunks"]) == 1,
               f"{len(s['usage_chunks'])} chunks with empty choices, want exactly one (usage)")
        expect(chunks[-1] is s["usage_chunks"][0],
               "the usage chunk (empty choices) is not the last chunk")
        u = chunks[-1].usage
        expect(u is not None, "the chunk with empty choices has no usage")
        expect(usage_tuple(u) == usage_tuple(want_usage),
               f"stream usage {usage_tuple(u)} != non-streaming usage "
               f"{usage_tuple(want_usage)}")


def pick_stop_strings(text):
    """Stop strings derived from the actual output, so they are sure to occur. Returns
    [(label, stop)]: a whole word that starts after the first few characters, and a piece
    that starts inside a word (so the cut falls inside a token, and the stop string most
    likely spans a token boundary)."""
    out = []
    words = [m for m in re.finditer(r"[A-Za-z0-9]+", text) if m.start() >= 3]
    for m in words:
        w = m.group(0)
        if len(w) >= 2 and text.find(w) >= 3:
            out.append(("word", w))
            break
    for m in words:
        w = m.group(0)
        if len(w) >= 4:
            piece = w[1:4]
            if text.find(piece) >= 3:
                out.append(("mid-word", piece))
                break
    if not out:  # no usable word: any 3 characters from the middle
        k = max(3, len(text) // 2)
        piece = text[k:k + 3]
        if len(piece) == 3 and piece.strip() and text.find(piece) >= 3:
            out.append(("middle", piece))
    return out


def http_get(url, key=None, timeout=REQUEST_TIMEOUT_S):
    """Plain HTTP GET (no openai client). Returns (status, body text)."""
    req = urllib.request.Request(url, method="GET")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ondo", required=True, help="path to the ondo binary")
    ap.add_argument("--model", default=None, help="value for `ondo serve -m` (default: none)")
    a = ap.parse_args()

    # K-quant models may decode differently batched than alone (docs/serve.md): there a
    # mismatch beside other requests is only a warning.
    kquant = bool(a.model and re.search(r"q[2-6]_k", os.path.basename(a.model).lower()))

    argv = [a.ondo, "serve", "--port", "0", "--parallel", "4", "-c", "2048",
            "--api-key", API_KEY]
    if a.model:
        argv += ["-m", a.model]

    t_start = time.monotonic()
    server = OndoServer(argv)
    checks = Checks(server)
    try:
        try:
            server.start()
        except Exception as e:
            print(f"FAIL  server start\n      {e}", flush=True)
            checks.failed += 1
            return finish(checks, server, t_start, show_tail=False)

        base = server.url
        client = openai.OpenAI(base_url=base + "/v1", api_key=API_KEY,
                               timeout=REQUEST_TIMEOUT_S, max_retries=0)
        S = checks.state

        # 1 ----------------------------------------------------------------------------------
        def models():
            page = client.models.list()
            data = list(page.data)
            expect(len(data) == 1, f"{len(data)} models listed, want 1: {data!r}")
            m = data[0]
            want = expected_model_id(a.model)
            expect(m.id, "empty model id")
            expect(m.id == want, f"model id {m.id!r}, want {want!r}")
            expect(m.object == "model", f"object {m.object!r}, want 'model'")
            expect(getattr(m, "owned_by", None) == "ondo", f"owned_by {m.owned_by!r}")
            one = client.models.retrieve(m.id)
            expect(one.id == m.id and one.object == "model", f"models.retrieve: {one!r}")
            S["model"] = m.id
            return f"model id {m.id!r} (listed and retrieved)"

        checks.run("1 models.list and models.retrieve", models)
        model = S.get("model", expected_model_id(a.model))

        def chat(**kw):
            kw.setdefault("model", model)
            kw.setdefault("messages", CHAT_MESSAGES)
            return client.chat.completions.create(**kw)

        def complete(**kw):
            kw.setdefault("model", model)
            kw.setdefault("prompt", COMPLETION_PROMPT)
            return client.completions.create(**kw)

        # 2 ----------------------------------------------------------------------------------
        def chat_plain():
            r = chat(temperature=0, max_tokens=24)
            expect(r.id, "empty response id")
            expect(r.object == "chat.completion", f"object {r.object!r}")
            expect(len(r.choices) == 1, f"{len(r.choices)} choices, want 1")
            c = r.choices[0]
            expect(c.index == 0, f"choice index {c.index}")
            expect(c.message.role == "assistant", f"role {c.message.role!r}")
            expect(c.message.content, f"empty content: {c.message.content!r}")
            expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
            check_usage(r.usage, 24)
            S["chat"] = r
            return (f"{c.message.content!r} finish={c.finish_reason} "
                    f"usage={usage_tuple(r.usage)}")

        checks.run("2 chat, non-streaming", chat_plain)

        # 3 ----------------------------------------------------------------------------------
        def chat_stream():
            ref = S["chat"]
            s = collect_chat_stream(chat(temperature=0, max_tokens=24, stream=True,
                                         stream_options={"include_usage": True}))
            first = s["chunks"][0]
            expect(first.choices and first.choices[0].delta.role == "assistant",
                   f"first chunk's delta has no role 'assistant': {first!r}")
            ids = {c.id for c in s["chunks"]}
            expect(len(ids) == 1 and "" not in ids and None not in ids,
                   f"chunk ids {ids!r}, want one non-empty id")
            want = ref.choices[0].message.content
            expect(s["content"] == want,
                   f"streamed content differs from non-streaming:\n  stream: {s['content']!r}"
                   f"\n  plain:  {want!r}")
            check_stream_tail(s, ref.choices[0].finish_reason, ref.usage)
            return f"{len(s['chunks'])} chunks, same text, finish and usage"

        checks.run("3 chat, streaming = non-streaming", chat_stream, "chat")

        # 4 ----------------------------------------------------------------------------------
        def completions():
            r = complete(max_tokens=16, temperature=0)
            expect(r.id, "empty response id")
            expect(r.object == "text_completion", f"object {r.object!r}")
            expect(len(r.choices) == 1 and r.choices[0].index == 0,
                   f"choices {r.choices!r}")
            c = r.choices[0]
            expect(c.text, f"empty text {c.text!r}")
            expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
            check_usage(r.usage, 16)
            s = collect_completion_stream(complete(max_tokens=16, temperature=0, stream=True,
                                                   stream_options={"include_usage": True}))
            expect(s["content"] == c.text,
                   f"streamed text differs:\n  stream: {s['content']!r}\n  plain:  {c.text!r}")
            check_stream_tail(s, c.finish_reason, r.usage)
            S["completion"] = r
            return f"{c.text!r} finish={c.finish_reason} usage={usage_tuple(r.usage)}"

        checks.run("4 completions, non-streaming and streaming", completions)

        # 5 ----------------------------------------------------------------------------------
        def stop_strings():
            text = S["completion"].choices[0].text
            stops = pick_stop_strings(text)
            expect(stops, f"output too short to derive a stop string from: {text!r}")
            notes = []
            for label, stop in stops:
                want = text[:text.find(stop)]
                # A second stop string that never occurs: stop accepts a list.
                stop_list = [stop, "\u2603never\u2603"]
                r = complete(max_tokens=16, temperature=0, stop=stop_list)
                got = r.choices[0].text
                expect(got == want, f"stop {stop!r} ({label}): text {got!r}, want {want!r}")
                expect(r.choices[0].finish_reason == "stop",
                       f"stop {stop!r} ({label}): finish_reason "
                       f"{r.choices[0].finish_reason!r}, want 'stop'")
                s = collect_completion_stream(complete(max_tokens=16, temperature=0,
                                                       stop=stop_list, stream=True))
                expect(s["content"] == want,
                       f"stop {stop!r} ({label}), streaming: text {s['content']!r}, "
                       f"want {want!r}")
                check_stream_tail(s, "stop")
                notes.append(f"{label} {stop!r} -> {want!r}")
            return "; ".join(notes)

        checks.run("5 stop strings (non-streaming and streaming)", stop_strings, "completion")

        # 6 ----------------------------------------------------------------------------------
        def one_token():
            notes = []
            for field in ("max_tokens", "max_completion_tokens"):
                r = chat(temperature=0, **{field: 1})
                c, u = r.choices[0], r.usage
                expect(u is not None, "no usage")
                expect(u.completion_tokens <= 1,
                       f"{field}=1: completion_tokens {u.completion_tokens}")
                expect(c.finish_reason in ("length", "stop"),
                       f"{field}=1: finish_reason {c.finish_reason!r}")
                if c.message.content:
                    expect(c.finish_reason == "length",
                           f"{field}=1: content {c.message.content!r} but finish_reason "
                           f"{c.finish_reason!r}, want 'length'")
                notes.append(f"{field}: {c.message.content!r} {c.finish_reason} "
                             f"{u.completion_tokens} token(s)")
            return "; ".join(notes)

        checks.run("6 max_tokens=1", one_token)

        # 7 ----------------------------------------------------------------------------------
        def seeded_n2():
            kw = dict(messages=[{"role": "user", "content": "Write a short poem about the sea."}],
                      n=2, temperature=0.9, seed=7, max_tokens=16)
            runs = []
            for _ in range(2):
                r = chat(**kw)
                idx = sorted(c.index for c in r.choices)
                expect(idx == [0, 1], f"choice indices {idx}, want [0, 1]")
                by_idx = {c.index: c.message.content for c in r.choices}
                expect(all(by_idx.values()), f"an empty choice: {by_idx!r}")
                u = r.usage
                expect(u is not None and u.completion_tokens > 0, f"usage {u!r}")
                runs.append([by_idx[0], by_idx[1]])
            expect(runs[0] == runs[1],
                   f"seed=7 gave different texts on repeat:\n  first:  {runs[0]!r}\n"
                   f"  second: {runs[1]!r}")
            same = " (the two choices are identical)" if runs[0][0] == runs[0][1] else ""
            return f"choices {runs[0]!r}{same}"

        checks.run("7 n=2 with a seed is reproducible", seeded_n2)

        # 8 ----------------------------------------------------------------------------------
        def logprobs():
            r = chat(messages=[{"role": "user", "content": "Count from 1 to 20."}],
                     logprobs=True, top_logprobs=3, max_tokens=5, temperature=0)
            c = r.choices[0]
            expect(c.logprobs is not None and c.logprobs.content is not None,
                   f"no choices[0].logprobs.content: {c.logprobs!r}")
            entries = c.logprobs.content
            n = r.usage.completion_tokens
            expect(len(entries) == n, f"{len(entries)} logprob entries, {n} completion tokens")
            for i, e in enumerate(entries):
                expect(e.logprob <= 1e-6, f"token {i} {e.token!r}: logprob {e.logprob} > 0")
                tops = e.top_logprobs
                expect(len(tops) == 3, f"token {i}: {len(tops)} top_logprobs, want 3")
                for t in tops:
                    expect(t.logprob <= 1e-6, f"token {i}: top logprob {t.logprob} > 0")
                lps = [t.logprob for t in tops]
                expect(all(x >= y - 1e-6 for x, y in zip(lps, lps[1:])),
                       f"token {i}: top_logprobs not in descending order: {lps}")
                expect(e.logprob >= max(lps) - 1e-5,
                       f"token {i} {e.token!r} (greedy) has logprob {e.logprob}, below the "
                       f"best of its top_logprobs {[(t.token, t.logprob) for t in tops]}")
            if c.finish_reason == "length":
                joined = "".join(e.token for e in entries)
                expect(joined == c.message.content,
                       f"logprob tokens {joined!r} do not spell the content "
                       f"{c.message.content!r}")
            return " ".join(f"{e.token!r}:{e.logprob:.3f}" for e in entries)

        checks.run("8 logprobs / top_logprobs", logprobs)

        # 8b ---------------------------------------------------------------------------------
        def json_mode():
            ask = [{"role": "user",
                    "content": "Describe a cat named Tom, aged 3, as a JSON object."}]
            fmt = {"type": "json_object"}
            r = chat(messages=ask, temperature=0, max_tokens=120, response_format=fmt)
            c = r.choices[0]
            expect(c.finish_reason == "stop",
                   f"JSON mode: finish_reason {c.finish_reason!r}: {c.message.content!r}")
            try:
                obj = json.loads(c.message.content)
            except ValueError as e:
                raise Failed(f"JSON mode: content is not JSON ({e}): {c.message.content!r}")
            expect(isinstance(obj, dict), f"JSON mode: not an object: {obj!r}")
            s = collect_chat_stream(chat(messages=ask, temperature=0, max_tokens=120,
                                         response_format=fmt, stream=True))
            expect(s["content"] == c.message.content,
                   f"JSON mode streamed {s['content']!r}, non-streamed {c.message.content!r}")
            return f"{c.message.content!r}"

        checks.run("8b response_format json_object", json_mode)

        # 8c ---------------------------------------------------------------------------------
        def structured_outputs():
            # The client's own structured-outputs helper: a pydantic model becomes a strict
            # json_schema, and the reply is parsed back into the model.
            import datetime
            from typing import Literal, Optional

            import pydantic
            from openai.lib._parsing._completions import type_to_response_format_param

            class Cat(pydantic.BaseModel):
                name: str = pydantic.Field(max_length=12)
                age: int
                indoor: bool
                color: Optional[Literal["black", "white", "orange", "grey"]]
                adopted: datetime.date

            ask = [{"role": "user",
                    "content": "Describe a cat named Tom, aged 3, who lives indoors, as JSON."}]
            r = client.chat.completions.parse(model=model, messages=ask, temperature=0,
                                              max_tokens=100, response_format=Cat)
            c = r.choices[0]
            expect(c.finish_reason == "stop",
                   f"structured: finish_reason {c.finish_reason!r}: {c.message.content!r}")
            cat = c.message.parsed
            expect(isinstance(cat, Cat), f"structured: parsed {cat!r}")
            expect(cat.name == "Tom" and cat.age == 3,
                   f"structured: greedy reply changed: {c.message.content!r}")
            fmt = type_to_response_format_param(Cat)
            s = collect_chat_stream(chat(messages=ask, temperature=0, max_tokens=100,
                                         response_format=fmt, stream=True))
            expect(s["content"] == c.message.content,
                   f"structured streamed {s['content']!r}, non-streamed {c.message.content!r}")
            # A keyword the server cannot enforce is refused, naming it.
            bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"at": {"type": "string", "format": "email"}}}}}
            try:
                chat(messages=ask, max_tokens=4, response_format=bad)
            except openai.BadRequestError as e:
                expect("format" in str(e.body), f"structured: 400 without the keyword: {e.body!r}")
            else:
                raise Failed("structured: an unsupported schema keyword was accepted")
            return f"{cat!r}"

        checks.run("8c response_format json_schema (client.chat.completions.parse)",
                   structured_outputs)

        # 9 ----------------------------------------------------------------------------------
        def expect_error(label, exc_type, status, fn, want_in=None, want_type=None):
            try:
                r = fn()
            except exc_type as e:
                expect(e.status_code == status,
                       f"{label}: status {e.status_code}, want {status}")
                body = e.body
                expect(isinstance(body, dict) and isinstance(body.get("message"), str)
                       and body["message"],
                       f"{label}: error body {body!r} has no error.message")
                raw = e.response.json()
                expect(isinstance(raw, dict) and isinstance(raw.get("error"), dict),
                       f"{label}: response is not {{'error': {{...}}}}: {raw!r}")
                for k in ("message", "type", "param", "code"):
                    expect(k in raw["error"], f"{label}: error object lacks {k!r}: {raw!r}")
                if want_type:
                    expect(body.get("type") == want_type,
                           f"{label}: error type {body.get('type')!r}, want {want_type!r}")
                if want_in:
                    hay = " ".join(str(body.get(k) or "") for k in ("message", "code", "type"))
                    expect(want_in in hay.lower(),
                           f"{label}: error does not mention {want_in!r}: {body!r}")
                return f"{label}: {status} {body.get('message')!r}"
            except openai.APIStatusError as e:
                raise Failed(f"{label}: {type(e).__name__} status {e.status_code}, want "
                             f"{exc_type.__name__} ({status}); body {e.body!r}")
            raise Failed(f"{label}: succeeded, want {exc_type.__name__} ({status}): {r!r}")

        def errors():
            bad_key = openai.OpenAI(base_url=base + "/v1", api_key="wrong-key",
                                    timeout=REQUEST_TIMEOUT_S, max_retries=0)
            cases = [
                ("wrong api key", openai.AuthenticationError, 401,
                 lambda: bad_key.chat.completions.create(model=model, messages=CHAT_MESSAGES,
                                                         max_tokens=4),
                 None, "authentication_error"),
                ("unknown model", openai.NotFoundError, 404,
                 lambda: chat(model="no-such-model", max_tokens=4),
                 "model_not_found", "not_found_error"),
                ("models.retrieve of an unknown model", openai.NotFoundError, 404,
                 lambda: client.models.retrieve("no-such-model"),
                 "model_not_found", "not_found_error"),
                ("temperature=-1", openai.BadRequestError, 400,
                 lambda: chat(temperature=-1, max_tokens=4), None, "invalid_request_error"),
                ("messages=[]", openai.BadRequestError, 400,
                 lambda: chat(messages=[], max_tokens=4), None, "invalid_request_error"),
                ("prompt longer than the context", openai.BadRequestError, 400,
                 lambda: chat(messages=[{"role": "user", "content": "hello " * 5000}],
                              max_tokens=4),
                 "context", "invalid_request_error"),
                ("max_tokens=0", openai.BadRequestError, 400,
                 lambda: chat(max_tokens=0), None, "invalid_request_error"),
                ("json_schema whose top level is not an object", openai.BadRequestError, 400,
                 lambda: chat(max_tokens=4, response_format={
                     "type": "json_schema",
                     "json_schema": {"name": "x", "schema": {"type": "string"}}}),
                 "top level", "invalid_request_error"),
            ]
            notes, fails = [], []
            for label, exc, status, fn, want_in, want_type in cases:
                try:
                    notes.append(expect_error(label, exc, status, fn, want_in, want_type))
                except Failed as e:
                    fails.append(str(e))
                except Exception as e:
                    cause = f" ({e.__cause__})" if e.__cause__ else ""
                    fails.append(f"{label}: {type(e).__name__}: {e}{cause}")
            expect(not fails, "\n".join(fails + ["(passed: " + "; ".join(notes) + ")"]))
            return "\n".join(notes)

        checks.run("9 errors through the client", errors)

        # 10 ---------------------------------------------------------------------------------
        def concurrency():
            kw = dict(temperature=0, max_tokens=24)
            alone = chat(**kw).choices[0].message.content
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
                futs = [pool.submit(chat, **kw) for _ in range(6)]
                results = [f.result() for f in futs]
            texts = [r.choices[0].message.content for r in results]
            for r in results:
                check_usage(r.usage, 24)
            expect(all(t for t in texts), f"an empty response among {texts!r}")
            ref = S["chat"].choices[0].message.content if "chat" in S else alone
            distinct = sorted(set(texts + [alone, ref]))
            if len(distinct) != 1:
                msg = ("texts differ beside other requests:\n  alone: " + repr(alone)
                       + "\n  check 2: " + repr(ref)
                       + "".join(f"\n  #{i}: {t!r}" for i, t in enumerate(texts)))
                if kquant:
                    return "WARNING (K-quant model, batched kernels may differ): " + msg
                raise Failed(msg)
            return f"6 concurrent = alone = {alone!r}"

        checks.run("10 six concurrent requests, same text as alone", concurrency)

        # 11 ---------------------------------------------------------------------------------
        def health_metrics():
            st, body = http_get(base + "/health")
            expect(st == 200, f"/health without a key: {st} {body!r}")
            expect(json.loads(body).get("status") == "ok", f"/health body {body!r}")
            st, body = http_get(base + "/metrics")
            expect(st == 401, f"/metrics without a key: {st}, want 401")
            st, body = http_get(base + "/metrics", key=API_KEY)
            expect(st == 200, f"/metrics with the key: {st} {body[:200]!r}")
            for name in ("ondo_requests_total", "ondo_active_sequences"):
                expect(name in body, f"/metrics lacks {name}")
            st, body = http_get(base + "/v1/no-such-route", key=API_KEY)
            expect(st == 404, f"unknown route with the key: {st}, want 404")
            st, body = http_get(base + "/v1/no-such-route")
            expect(st == 401, f"unknown route without the key: {st}, want 401")
            return "/health 200, /metrics 401 without key, 200 with; unknown route 401/404"

        checks.run("11 /health and /metrics over plain HTTP", health_metrics)

        # The server must have survived everything above.
        def alive():
            time.sleep(0.2)
            expect(server.alive(), f"the server exited with status {server.proc.returncode}")
            return f"pid {server.proc.pid} still running"

        checks.run("12 server still alive", alive)
        return finish(checks, server, t_start)
    finally:
        server.stop()


def finish(checks, server, t_start, show_tail=True):
    if checks.failed and show_tail:
        print("\nlast lines of the server's output:\n" + server.tail_text(), flush=True)
    print(f"openai_client: {checks.passed} passed, {checks.failed} failed "
          f"({time.monotonic() - t_start:.1f} s)", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
