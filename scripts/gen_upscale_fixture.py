#!/usr/bin/env python3
"""Golden fixture for `ondo upscale`: llama.cpp's logits on the up-scaled default model.

    .venv/bin/python scripts/gen_upscale_fixture.py [--ondo target/release/ondo]

Runs `ondo upscale --drop 8` on SmolLM2-135M-Instruct (30 layers -> 44, SOLAR's layout), loads
the result in llama.cpp (llama-cpp-python, set up by scripts/setup_reference_env.sh),
evaluates a fixed prompt in one batch and writes tests/fixtures/reference/upscale_smollm2.json:
the file's sha256 (so the test knows it rebuilt the same file), the prompt's token ids and the
top-10 logits at every position. crates/ondo/tests/upscale.rs compares ondo against it.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "reference", "upscale_smollm2.json")
DROP = 8
TOPK = 10
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes "
        "Gutenberg combined movable metal type with an oil-based ink and a wooden press.")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ondo", default=os.path.join(REPO, "target", "release", "ondo"))
    a = ap.parse_args()
    from llama_cpp import Llama
    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "up.gguf")
        subprocess.run([a.ondo, "upscale", "--drop", str(DROP), "-o", path], check=True)
        digest = sha256(path)
        llm = Llama(model_path=path, n_ctx=256, logits_all=True, n_threads=2,
                    n_threads_batch=2, n_batch=256, seed=0, verbose=False)
        ids = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
        llm.eval(ids)
        lg = np.array(llm.scores[:len(ids)], dtype=np.float32, copy=True)
        n_layer = llm.metadata.get("llama.block_count")
        llm.close()
    top = []
    for row in lg:
        order = np.argsort(-row, kind="stable")[:TOPK]
        top.append({"ids": [int(i) for i in order], "logits": [float(row[i]) for i in order]})
    fixture = {
        "what": f"llama.cpp logits of `ondo upscale --drop {DROP}` on SmolLM2-135M-Instruct Q4_1",
        "generator": "scripts/gen_upscale_fixture.py",
        "llama_cpp_python": llama_cpp.__version__,
        "drop": DROP,
        "block_count": int(n_layer),
        "sha256": digest,
        "text": TEXT,
        "ids": [int(i) for i in ids],
        "top": top,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, REPO)}: {len(ids)} positions, {n_layer} layers, sha256 {digest[:12]}")


if __name__ == "__main__":
    sys.exit(main())
