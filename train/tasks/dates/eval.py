#!/usr/bin/env python3
"""Evaluates the date-normalization task (issue 5, acceptance 2) on the held-out split.

    python3 train/tasks/dates/eval.py --ondo target/release/ondo [-m MODEL] [--lora ADAPTER]
                                      [--limit N] [--json OUT]

Starts `ondo serve` (with `--lora ADAPTER` when given), asks every test.jsonl question
(system + user message) at temperature 0 and counts exact matches of the stripped reply with
the ISO date. Then measures the perplexity of an unrelated text (tests/fixtures/text/eval_en.txt,
`ondo perplexity -c 256`) with and without the adapter: the adapter must not make the model
worse at ordinary text by more than 10%. Standard library only (urllib); prints one summary
line per figure.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "serve"))
from ondo_server import OndoServer  # noqa: E402

TEXT = os.path.join(REPO, "tests", "fixtures", "text", "eval_en.txt")


def ask(url, messages):
    body = json.dumps({"messages": messages, "temperature": 0, "max_tokens": 16}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["choices"][0]["message"]["content"]


def perplexity(ondo, model, lora):
    argv = [ondo, "perplexity", "-f", TEXT, "-c", "256", "--json"]
    argv += ["-m", model] if model else []
    argv += ["--lora", lora] if lora else []
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ppl"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ondo", required=True)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--lora", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(os.path.join(HERE, "test.jsonl"), encoding="utf-8")]
    rows = rows[: a.limit] if a.limit else rows
    argv = [a.ondo, "serve", "--port", "0", "--parallel", "4", "-c", "512"]
    argv += ["-m", a.model] if a.model else []
    argv += ["--lora", a.lora] if a.lora else []
    t0 = time.time()
    correct, wrong = 0, []
    with OndoServer(argv, announce_ready=False) as srv:
        for r in rows:
            want = r["messages"][-1]["content"]
            got = ask(srv.url, r["messages"][:-1]).strip()
            if got == want:
                correct += 1
            elif len(wrong) < 5:
                wrong.append((r["messages"][1]["content"], want, got))
    acc = correct / len(rows)
    print(f"held-out accuracy: {correct}/{len(rows)} = {acc:.1%} ({time.time() - t0:.0f} s)")
    for q, want, got in wrong:
        print(f"  e.g. {q!r}: want {want!r}, got {got!r}")
    result = {"accuracy": acc, "n": len(rows), "lora": a.lora}
    base_ppl = perplexity(a.ondo, a.model, None)
    result["ppl_base"] = base_ppl
    print(f"perplexity of eval_en.txt, base: {base_ppl:.4f}")
    if a.lora:
        ppl = perplexity(a.ondo, a.model, a.lora)
        result["ppl_adapted"] = ppl
        print(f"perplexity with the adapter: {ppl:.4f} ({(ppl / base_ppl - 1):+.1%}; bar < +10%)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
