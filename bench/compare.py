#!/usr/bin/env python3
"""Side-by-side speed of ondo and llama.cpp on the same GGUF, in one run (a first cut of the
issue-3 comparison: SmolLM2 only so far; the 1B-shape random models are still to come).

Usage: .venv/bin/python bench/compare.py [--model PATH] [--threads 2] [--rounds 3]
(`scripts/setup_reference_env.sh` makes .venv with llama-cpp-python built from source.)

Each round runs ondo (`ondo bench --json`, its own warm-up and median) and then llama.cpp
(llama-cpp-python: warm-up, then pp = one batched eval of P tokens after reset, tg = N single
evals after that prompt), alternating A, B, A, B; the table shows medians over rounds and the
ratio ondo / llama.cpp. llama.cpp's figures include llama-cpp-python's per-call overhead.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("ONDO_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "ondo")
DEFAULT_MODEL = os.path.join(HOME, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def ondo_round(binary, model, threads, p, n):
    out = subprocess.run(
        [binary, "-t", str(threads), "bench", "-m", model, "-p", str(p), "-n", str(n), "-r", "3", "--json"],
        check=True, capture_output=True, text=True).stdout
    v = json.loads(out)
    return v["pp_tok_s"], v["tg_tok_s"]


def llama_round(llm, n_vocab, p, n):
    ids = [(i * 7919 + 2 * 104729) % n_vocab for i in range(p)]
    llm.reset()
    t = time.perf_counter()
    llm.eval(ids)
    pp = p / (time.perf_counter() - t)
    tok = ids[-1]
    t = time.perf_counter()
    for _ in range(n):
        llm.eval([tok])
    tg = n / (time.perf_counter() - t)
    return pp, tg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=64)
    a = ap.parse_args()
    from llama_cpp import Llama

    binary = os.path.join(REPO, "target", "release", "ondo")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--bin", "ondo"], cwd=REPO, check=True)
    llm = Llama(model_path=a.model, n_ctx=a.p + a.n + 8, n_batch=a.p, n_threads=a.threads,
                n_threads_batch=a.threads, verbose=False)
    llama_round(llm, llm.n_vocab(), a.p, a.n)  # warm-up
    res = {"ondo": ([], []), "llama.cpp": ([], [])}
    for _ in range(a.rounds):
        for name, fn in (("ondo", lambda: ondo_round(binary, a.model, a.threads, a.p, a.n)),
                         ("llama.cpp", lambda: llama_round(llm, llm.n_vocab(), a.p, a.n))):
            pp, tg = fn()
            res[name][0].append(pp)
            res[name][1].append(tg)
    med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in res.items()}
    print(f"model {os.path.basename(a.model)}, {a.threads} threads, medians of {a.rounds} rounds")
    print(f"{'':10} {'pp' + str(a.p):>10} {'tg' + str(a.n):>10}")
    for k in ("ondo", "llama.cpp"):
        print(f"{k:10} {med[k][0]:10.1f} {med[k][1]:10.1f}")
    print(f"{'ratio':10} {med['ondo'][0] / med['llama.cpp'][0]:10.2f} {med['ondo'][1] / med['llama.cpp'][1]:10.2f}")


if __name__ == "__main__":
    main()
