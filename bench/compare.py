#!/usr/bin/env python3
"""Side-by-side speed of ondo and llama.cpp on the same GGUF files, in one run.

Usage: bash bench/compare.sh [--threads 2] [--rounds 3] [--quick] [--only smollm2,q4_0,q4_k_m]
(compare.sh sets up .venv with llama-cpp-python built from source for this CPU, builds ondo,
makes the random 1B-shape models with bench/make_models.py, then runs this script.)

Cases (issue 3): pp128 + tg64 (64 tokens decoded after a 128-token prompt), pp512, and for the
1B-shape Q4_0 model tg32 at a depth of 2048 cached tokens. Batching (issue 4): tg64x1 and
tg64x8, one and eight sequences (a 32-token prompt each) decoding 64 greedy tokens together,
the aggregate tokens/s: `ondo bench --parallel N` (the server's batched pass and numerics)
against llama.cpp's llama_decode with one token of each sequence per batch (n_seq_max N,
a KV stream per sequence, as llama-batched-bench); then each engine's x8 / x1. Opt-in
(`--cases tg32x1@p1000,tg32x8@p1000`): the same after 1,000-token prompts, where the batch
reads eight sequences' KV caches at every step. Every measurement is a fresh
process (`ondo bench --json`, or this script's `--worker` mode for llama.cpp through
llama-cpp-python), alternating ondo, llama.cpp, ondo, llama.cpp ... for --rounds rounds; the
tables show medians over rounds and ratios ondo / llama.cpp. Inside a process each engine
does one warm-up run (none for the depth case) and reports the median of its repetitions.

Also printed: the machine's read bandwidth (`ondo bench --bandwidth`), decode speed as a
fraction of the bandwidth limit (bandwidth / bytes of weights read per token), prefill as
GOP/s (2 x parameters x tokens/s), peak RSS and load time of each engine. llama.cpp's RSS is
its process's peak minus the Python interpreter's own RSS before the model loads, so it
counts what llama.cpp adds. llama.cpp runs with llama-cpp-python's defaults (f16 KV cache, no
flash attention, n_batch = n_ubatch = 512) and includes Python's small per-call overhead.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("ONDO_HOME") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ondo")
ONDO = os.path.join(REPO, "target", "release", "ondo")
MODELS = {
    "smollm2": os.path.join(HOME, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "q4_0": os.path.join(HOME, "bench", "random-1B-shape.Q4_0.gguf"),
    "q4_k_m": os.path.join(HOME, "bench", "random-1B-shape.Q4_K_M.gguf"),
}


def ids(n, salt, n_vocab):
    return [(i * 7919 + salt * 104729) % n_vocab for i in range(n)]


def proc_status_kb(field):
    """VmRSS / VmHWM of this process (unlike ru_maxrss, VmHWM does not carry over from the
    parent across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def worker(a):
    """llama.cpp in this process: prints one JSON object like `ondo bench --json`."""
    from llama_cpp import Llama  # with numpy etc.: part of the interpreter's baseline

    base_kb = proc_status_kb("VmRSS")

    need = a.depth + a.p + a.n + 8
    t = time.perf_counter()
    llm = Llama(model_path=a.model, n_ctx=need, n_batch=512, n_ubatch=512, n_threads=a.threads,
                n_threads_batch=a.threads, verbose=False)
    load_ms = (time.perf_counter() - t) * 1e3
    nv = llm.n_vocab()
    pp, tg = [], []
    first = 1 if a.no_warmup else 0
    for rep in range(first, a.reps + 1):
        llm.reset()
        llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else None
        d = ids(a.depth, 1, nv)
        for i in range(0, len(d), 512):
            llm.eval(d[i:i + 512])
        prompt = ids(a.p, rep + 2, nv)
        t = time.perf_counter()
        for i in range(0, len(prompt), 512):
            llm.eval(prompt[i:i + 512])
        pp_s = time.perf_counter() - t
        tok = prompt[-1] if prompt else 1
        t = time.perf_counter()
        for _ in range(a.n):
            llm.eval([tok])
        tg_s = time.perf_counter() - t
        if rep > 0:
            pp.append(a.p / pp_s if a.p else 0.0)
            tg.append(a.n / tg_s if a.n else 0.0)
    rss_mb = (proc_status_kb("VmHWM") - base_kb) / 1024
    print(json.dumps({"pp_tok_s": statistics.median(pp), "tg_tok_s": statistics.median(tg),
                      "load_ms": load_ms, "peak_rss_mb": rss_mb}))


def worker_parallel(a):
    """llama.cpp decoding a.parallel sequences together (the `--parallel` cases)."""
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama, _internals

    # llama.cpp gives each sequence's KV stream a multiple of 256 cells.
    n_seq, need = a.parallel, (a.p + a.n + 8 + 255) // 256 * 256
    llm = Llama(model_path=a.model, n_ctx=need, n_batch=512, n_ubatch=512, n_threads=a.threads,
                n_threads_batch=a.threads, verbose=False)
    params = llm.context_params
    params.n_ctx, params.n_seq_max, params.kv_unified = need * n_seq, n_seq, False
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    nv = llm.n_vocab()
    batch = llama_cpp.llama_batch_init(max(min(a.p, 512), n_seq, 1), 0, 1)

    def decode(entries):  # [(token, position, sequence, wants logits)]
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, want
        rc = llama_cpp.llama_decode(ctx.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    pp, tg = [], []
    for rep in range(0, a.reps + 1):
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx.ctx), True)
        prompts = [ids(a.p, rep + 2 + s, nv) or [1] for s in range(n_seq)]
        t = time.perf_counter()
        for s, prompt in enumerate(prompts):
            for c in range(0, len(prompt), 512):
                decode([(tok, i, s, i == len(prompt) - 1)
                        for i, tok in enumerate(prompt[c:c + 512], c)])
        pp_s = time.perf_counter() - t
        toks = [prompt[-1] for prompt in prompts]
        t = time.perf_counter()
        for step in range(a.n):
            decode([(toks[s], len(prompts[s]) + step, s, True) for s in range(n_seq)])
            for s in range(n_seq):
                row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, s), shape=(nv,))
                toks[s] = int(row.argmax())
        tg_s = time.perf_counter() - t
        if rep > 0:
            pp.append(n_seq * a.p / pp_s)
            tg.append(n_seq * a.n / tg_s)
    llama_cpp.llama_batch_free(batch)
    print(json.dumps({"pp_tok_s": statistics.median(pp), "tg_tok_s": statistics.median(tg)}))


def run_ondo(model, threads, p, n, depth, reps, no_warmup, parallel=0):
    cmd = [ONDO, "-t", str(threads), "bench", "-m", model, "-p", str(p), "-n", str(n),
           "-r", str(reps), "--json"]
    cmd += ["--parallel", str(parallel)] if parallel else ["--depth", str(depth)]
    if no_warmup:
        cmd.append("--no-warmup")
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def ratio(a, b):
    return a / b if b else float("nan")


def run_llama(model, threads, p, n, depth, reps, no_warmup, parallel=0):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model,
           "--threads", str(threads), "-p", str(p), "-n", str(n), "--depth", str(depth),
           "--reps", str(reps), "--parallel", str(parallel)]
    if no_warmup:
        cmd.append("--no-warmup")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def gguf_stats(path):
    """(bytes of tensor data read per decoded token, parameter count) from the GGUF header."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    total = sum(int(t.n_bytes) for t in r.tensors)
    params = sum(int(t.n_elements) for t in r.tensors)
    names = {t.name for t in r.tensors}
    embd = next(t for t in r.tensors if t.name == "token_embd.weight")
    if "output.weight" in names:
        # The embedding is only looked up (one row per token), the output head is read whole.
        total -= int(embd.n_bytes)
    return total, params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 round, 1 repetition (a smoke run)")
    ap.add_argument("--only", default="smollm2,q4_0,q4_k_m")
    ap.add_argument("--cases", default="pp128+tg64,pp512,tg32@d2048,tg64x1,tg64x8",
                    help="which cases (default: all)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model")
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--depth", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--parallel", type=int, default=0)
    a = ap.parse_args()
    if a.worker:
        return worker_parallel(a) if a.parallel else worker(a)

    rounds, reps = (1, 1) if a.quick else (a.rounds, 3)

    def bandwidth():
        out = subprocess.run([ONDO, "-t", str(a.threads), "bench", "--bandwidth", "--json"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["read_gb_s"]

    # The machine's bandwidth moves during a run: measured before every case, the highest
    # reading is the limit (each reading is the best of 5 passes over 1 GiB).
    bws = [bandwidth()]
    print(f"read bandwidth: {bws[0]:.1f} GB/s ({a.threads} threads); {a.threads} threads for "
          f"both engines; medians of {rounds} alternating rounds", flush=True)
    cases = []  # (model key, label, p, n, depth, reps, no_warmup, parallel)
    for key in a.only.split(","):
        cases.append((key, "pp128+tg64", 128, 64, 0, reps, False, 0))
        cases.append((key, "pp512", 512, 0, 0, max(1, reps - 1), False, 0))
        if key == "q4_0":
            cases.append((key, "tg32@d2048", 0, 32, 2048, 1, True, 0))
        if key == "smollm2":
            cases.append((key, "tg64x1", 32, 64, 0, reps, False, 1))
            cases.append((key, "tg64x8", 32, 64, 0, reps, False, 8))
            # Not among the default cases: llama.cpp reads 8,000 prompt tokens per run.
            cases.append((key, "tg32x1@p1000", 1000, 32, 0, 1, False, 1))
            cases.append((key, "tg32x8@p1000", 1000, 32, 0, 1, False, 8))
    cases = [c for c in cases if c[1] in a.cases.split(",")]
    rows, results = [], []
    single = {}  # (model key, prompt) -> the one-sequence medians, for the x8 / x1 row
    for key, label, p, n, depth, r, nw, par in cases:
        bws.append(bandwidth())
        bw = max(bws)
        model = MODELS[key]
        nbytes, params = gguf_stats(model)
        got = {"ondo": [], "llama.cpp": []}
        for _ in range(rounds):
            got["ondo"].append(run_ondo(model, a.threads, p, n, depth, r, nw, par))
            got["llama.cpp"].append(run_llama(model, a.threads, p, n, depth, r, nw, par))
        med = {e: {k: statistics.median(x[k] for x in v) for k in v[0]} for e, v in got.items()}
        o, l = med["ondo"], med["llama.cpp"]
        metrics = []
        if par:
            rows.append(f"{key:8} {label:12} {o['tg_tok_s']:9.1f} {l['tg_tok_s']:9.1f} "
                        f"{ratio(o['tg_tok_s'], l['tg_tok_s']):6.2f}x   aggregate of {par}")
            results.append({"model": key, "metric": label, "ondo": o["tg_tok_s"],
                            "llama.cpp": l["tg_tok_s"], "ratio": ratio(o["tg_tok_s"], l["tg_tok_s"])})
            if par == 1:
                single[key, p] = (o["tg_tok_s"], l["tg_tok_s"])
            elif (key, p) in single:
                so, sl = (ratio(o["tg_tok_s"], single[key, p][0]),
                          ratio(l["tg_tok_s"], single[key, p][1]))
                name = f"x{par}/x1 " + label.replace(f"x{par}", "")
                rows.append(f"{key:8} {name:12} {so:9.2f} {sl:9.2f}            "
                            f"what batching {par} sequences pays each engine")
                results.append({"model": key, "metric": name, "ondo": so, "llama.cpp": sl})
            print(json.dumps({"case": f"{key} {label}", "ondo": o, "llama.cpp": l}), flush=True)
            continue
        if p:
            metrics.append((f"pp{p}" + (f"@d{depth}" if depth else ""), "pp_tok_s"))
        if n:
            metrics.append((f"tg{n}" + (f"@d{depth}" if depth else ""), "tg_tok_s"))
        for name, k in metrics:
            if k == "tg_tok_s":
                limit = bw * 1e9 / nbytes
                extra = f"{o[k] / limit:6.0%} {l[k] / limit:6.0%} of {limit:5.1f} tok/s"
            else:
                extra = f"{2 * params * o[k] / 1e9:6.0f} {2 * params * l[k] / 1e9:6.0f} GOP/s"
            rows.append(f"{key:8} {name:12} {o[k]:9.1f} {l[k]:9.1f} {ratio(o[k], l[k]):6.2f}x   {extra}")
            results.append({"model": key, "metric": name, "ondo": o[k], "llama.cpp": l[k],
                            "ratio": ratio(o[k], l[k])})
        if label == "pp128+tg64":
            rows.append(f"{key:8} {'load ms':12} {o['load_ms']:9.0f} {l['load_ms']:9.0f} "
                        f"{ratio(o['load_ms'], l['load_ms']):6.2f}x")
            rows.append(f"{key:8} {'peak RSS MB':12} {o['peak_rss_mb']:9.0f} {l['peak_rss_mb']:9.0f} "
                        f"{ratio(o['peak_rss_mb'], l['peak_rss_mb']):6.2f}x")
            results.append({"model": key, "metric": "load_ms", "ondo": o["load_ms"],
                            "llama.cpp": l["load_ms"]})
            results.append({"model": key, "metric": "peak_rss_mb", "ondo": o["peak_rss_mb"],
                            "llama.cpp": l["peak_rss_mb"]})
        print(json.dumps({"case": f"{key} {label}", "ondo": o, "llama.cpp": l}), flush=True)
    print()
    print(f"read bandwidth, highest of {len(bws)} readings: {max(bws):.1f} GB/s "
          f"(lowest {min(bws):.1f}); limits below use each case's highest reading so far")
    print(f"{'model':8} {'metric':12} {'ondo':>9} {'llama.cpp':>9} {'ratio':>7}   "
          f"decode: share of the bandwidth limit (ondo, llama.cpp) / prefill: GOP/s")
    print("\n".join(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bandwidth_gb_s": max(bws), "threads": a.threads, "rounds": rounds,
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
