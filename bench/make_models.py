#!/usr/bin/env python3
"""Makes the random-weight benchmark models of issue 3: the Llama-3.2-1B body shape (dim 2048,
16 layers, ffn 8192, 32 heads, 8 KV heads, vocab 128256, tied embedding) with weights drawn from
N(0, 0.02), written as F16 and then quantized to Q4_0 and Q4_K_M by llama.cpp's own quantizer
(`llama_cpp.llama_model_quantize`). Speed does not depend on weight values.

The tokenizer is SmolLM2's (49152 tokens) padded to 128256 with control tokens, as Llama 3 pads
its vocabulary with reserved special tokens, so both runtimes load the file normally.

Usage: .venv/bin/python bench/make_models.py [--out DIR]   (default $ONDO_HOME/bench)
Files that already exist are kept.
"""
import argparse
import ctypes
import os
import sys

import numpy as np

HOME = os.environ.get("ONDO_HOME") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ondo")
SMOL = os.path.join(HOME, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

DIM, LAYERS, FFN, HEADS, KV_HEADS, VOCAB = 2048, 16, 8192, 32, 8, 128256
FTYPES = {"Q4_0": 2, "Q4_K_M": 15}


def field_value(reader, key):
    f = reader.fields[key]
    return [f.parts[i] for i in f.data]


def write_f16(path):
    import gguf

    src = gguf.GGUFReader(SMOL)
    tokens = [bytes(p).decode("utf-8") for p in field_value(src, "tokenizer.ggml.tokens")]
    types = [int(p[0]) for p in field_value(src, "tokenizer.ggml.token_type")]
    merges = [bytes(p).decode("utf-8") for p in field_value(src, "tokenizer.ggml.merges")]
    for i in range(len(tokens), VOCAB):
        tokens.append(f"<|reserved_special_token_{i}|>")
        types.append(3)  # CONTROL

    w = gguf.GGUFWriter(path + ".tmp", "llama")
    w.add_name("random-1B-shape")
    w.add_block_count(LAYERS)
    w.add_context_length(8192)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(DIM // HEADS)
    w.add_vocab_size(VOCAB)
    w.add_file_type(1)  # MOSTLY_F16
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)

    rng = np.random.default_rng(1234)
    kv_dim = DIM // HEADS * KV_HEADS

    def rand(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    w.add_tensor("token_embd.weight", rand(VOCAB, DIM))
    w.add_tensor("output_norm.weight", np.ones(DIM, dtype=np.float32))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(DIM, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", rand(DIM, DIM))
        w.add_tensor(p + "attn_k.weight", rand(kv_dim, DIM))
        w.add_tensor(p + "attn_v.weight", rand(kv_dim, DIM))
        w.add_tensor(p + "attn_output.weight", rand(DIM, DIM))
        w.add_tensor(p + "ffn_norm.weight", np.ones(DIM, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(FFN, DIM))
        w.add_tensor(p + "ffn_up.weight", rand(FFN, DIM))
        w.add_tensor(p + "ffn_down.weight", rand(DIM, FFN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".tmp", path)


def quantize(src, dst, ftype):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 2
    rc = llama_cpp.llama_model_quantize(src.encode(), (dst + ".tmp").encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed ({rc}) for {dst}")
    os.replace(dst + ".tmp", dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HOME, "bench"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    f16 = os.path.join(a.out, "random-1B-shape.F16.gguf")
    outs = {t: os.path.join(a.out, f"random-1B-shape.{t}.gguf") for t in FTYPES}
    if all(os.path.exists(p) for p in outs.values()):
        return
    if not os.path.exists(f16):
        print(f"writing {f16}", file=sys.stderr)
        write_f16(f16)
    for t, p in outs.items():
        if not os.path.exists(p):
            print(f"quantizing {p}", file=sys.stderr)
            quantize(f16, p, FTYPES[t])
    os.remove(f16)


if __name__ == "__main__":
    main()
