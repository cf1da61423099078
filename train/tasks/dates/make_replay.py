#!/usr/bin/env python3
"""Replay text for the date task: ordinary text written by the base model itself.

    python3 train/tasks/dates/make_replay.py --ondo target/release/ondo   # writes replay.jsonl

Mixed into the training data as {"text": ...} lines, it keeps the adapter from moving the
model on ordinary text (the acceptance bar: perplexity on unrelated text rises < 10%): the
loss on these lines is lowest when the adapted model still writes what the base wrote.
Generated through `ondo serve` at temperature 0.7 with fixed seeds from 240 openings in
English and Korean, so rerunning gives the same file.
"""
import argparse
import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "serve"))
from ondo_server import OndoServer  # noqa: E402

SUBJECTS = ["The history of the printing press", "A good breakfast", "The ocean at night",
            "Learning a new language", "The city of Seoul", "Rivers in Europe",
            "How bread is made", "The first computers", "A walk in the forest",
            "Music in the Baroque era", "Why the sky is blue", "The life of bees",
            "Trains in Japan", "Writing a letter", "The moon landing", "Volcanoes",
            "Chess openings", "The Silk Road", "Rain in the summer", "A small village",
            "한국의 전통 음식", "서울의 봄", "바다와 산", "조선 시대의 역사"]
STARTS = ["{s} is", "Here is a short story about {s}:", "{s}: an introduction.",
          "Many people wonder about {s}.", "In this essay, I will describe {s}.",
          "Notes on {s}", "{s} has changed over time.", "Let me tell you about {s}.",
          "{s} can be surprising.", "A brief history: {s}."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ondo", required=True)
    a = ap.parse_args()
    prompts = [t.format(s=s) for s in SUBJECTS for t in STARTS][:240]
    argv = [a.ondo, "serve", "--port", "0", "--parallel", "8", "-c", "512"]
    with OndoServer(argv, announce_ready=False) as srv:
        def gen(i_p):
            i, p = i_p
            body = json.dumps({"prompt": p, "max_tokens": 80, "temperature": 0.7,
                               "seed": i}).encode()
            req = urllib.request.Request(srv.url + "/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                return p + json.load(r)["choices"][0]["text"]
        with ThreadPoolExecutor(8) as ex:
            texts = list(ex.map(gen, enumerate(prompts)))
    path = os.path.join(HERE, "replay.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    print(f"wrote {os.path.relpath(path)}: {len(texts)} texts")


if __name__ == "__main__":
    main()
