#!/usr/bin/env python3
"""Golden fixture for LoRA adapters at run time: llama.cpp's logits with a GGUF adapter.

    .venv/bin/python scripts/gen_lora_fixture.py

Writes a rank-8 LoRA adapter for SmolLM2-135M-Instruct (attn_q, attn_v and ffn_down of every
layer, alpha 16) in llama.cpp's GGUF adapter format with gguf-py, its values from an integer
hash (see `value`; crates/ondo/tests/lora.rs builds the same tensors with ondo's writer, so no
binary is committed), loads base + adapter in llama.cpp (llama-cpp-python's lora_path),
evaluates a fixed prompt in one batch, and writes tests/fixtures/reference/lora_smollm2.json
with the prompt ids and the top-10 logits at every position.

It also checks that llama.cpp loads the adapters ondo writes: the adapter is converted by
`ondo convert-lora` to GGUF (ondo's writer), and to PEFT and back to GGUF, and llama.cpp must
give bit-identical logits with each (recorded in the fixture as `ondo_written`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "reference", "lora_smollm2.json")
ONDO_HOME = os.environ.get("ONDO_HOME", os.path.join(os.path.expanduser("~"), ".cache", "ondo"))
MODEL = os.path.join(ONDO_HOME, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
RANK, ALPHA, LAYERS = 8, 16.0, 30
TARGETS = [("attn_q", 576, 576), ("attn_v", 576, 192), ("ffn_down", 1536, 576)]  # (name, in, out)
TOPK = 10
TEXT = "Seoul is the capital of South Korea. Its name means"


def value(ti, count):
    """Tensor `ti`'s `count` values: ((h >> 8) % 2001 - 1000) * 1e-4 in f32, with
    h = (k * 2654435761 + ti * 40503 + 12345) mod 2^32 for element k."""
    k = np.arange(count, dtype=np.uint64)
    h = (k * np.uint64(2654435761) + np.uint64(ti * 40503 + 12345)) & np.uint64(0xFFFFFFFF)
    v = ((h >> np.uint64(8)) % np.uint64(2001)).astype(np.int64) - 1000
    return v.astype(np.float32) * np.float32(1e-4)


def llama_logits(path, lora):
    from llama_cpp import Llama

    llm = Llama(model_path=path, lora_path=lora, lora_scale=1.0, n_ctx=128, logits_all=True,
                n_threads=2, n_threads_batch=2, n_batch=128, seed=0, verbose=False)
    ids = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
    llm.eval(ids)
    lg = np.array(llm.scores[:len(ids)], dtype=np.float32, copy=True)
    llm.close()
    return ids, lg


def main():
    import gguf
    import llama_cpp

    ap = argparse.ArgumentParser()
    ap.add_argument("--ondo", default=os.path.join(REPO, "target", "release", "ondo"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lora.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_string("general.type", "adapter")
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", ALPHA)
        ti = 0
        for layer in range(LAYERS):
            for name, n_in, n_out in TARGETS:
                a = value(ti, RANK * n_in).reshape(RANK, n_in)
                b = value(ti + 1, n_out * RANK).reshape(n_out, RANK)
                w.add_tensor(f"blk.{layer}.{name}.weight.lora_a", a)
                w.add_tensor(f"blk.{layer}.{name}.weight.lora_b", b)
                ti += 2
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        ids, lg = llama_logits(MODEL, path)
        # Adapters written by ondo: GGUF directly, and through PEFT and back.
        ondo_gguf = os.path.join(tmp, "ondo.gguf")
        peft = os.path.join(tmp, "peft")
        back = os.path.join(tmp, "back.gguf")
        for src, dst in [(path, ondo_gguf), (path, peft), (peft, back)]:
            subprocess.run([args.ondo, "convert-lora", "-m", MODEL, src, "-o", dst], check=True)
        ondo_written = {}
        for name, p in [("gguf", ondo_gguf), ("peft_then_gguf", back)]:
            _, other = llama_logits(MODEL, p)
            diff = float(np.abs(other - lg).max())
            ondo_written[name] = {"max_abs_logit_diff": diff}
            assert diff == 0.0, f"llama.cpp with the adapter ondo wrote ({name}) differs by {diff}"
    top = []
    for row in lg:
        order = np.argsort(-row, kind="stable")[:TOPK]
        top.append({"ids": [int(i) for i in order], "logits": [float(row[i]) for i in order]})
    fixture = {
        "what": "llama.cpp logits of SmolLM2-135M-Instruct Q4_1 with a hashed rank-8 LoRA adapter",
        "generator": "scripts/gen_lora_fixture.py",
        "llama_cpp_python": llama_cpp.__version__,
        "rank": RANK, "alpha": ALPHA, "layers": LAYERS,
        "targets": [[n, i, o] for n, i, o in TARGETS],
        "text": TEXT,
        "ids": [int(i) for i in ids],
        "ondo_written": ondo_written,
        "top": top,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, REPO)}: {len(ids)} positions")


if __name__ == "__main__":
    sys.exit(main())
