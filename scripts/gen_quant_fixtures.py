#!/usr/bin/env python3
"""Generate golden fixtures for crates/ondo-kernels from gguf-py (llama.cpp's Python port).

Usage:
    python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf numpy
    /tmp/venv-gguf/bin/python scripts/gen_quant_fixtures.py

Writes raw little-endian files to crates/ondo-kernels/tests/fixtures/:
    deq_<TYPE>.q    random ggml blocks (f16 scale fields forced to finite values in +-0.1)
    deq_<TYPE>.f32  gguf.quants.dequantize() of those blocks, f32 LE
    quant_<TYPE>.src  f32 LE source rows (random + edge-case blocks)
    quant_<TYPE>.q    gguf.quants.quantize() of those rows (ggml reference quantizers)
The Rust tests (tests/golden.rs) read these with include_bytes!; Python is not needed at test time.
Output is deterministic (fixed seed).
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ondo-kernels", "tests", "fixtures")

# (type, block_elems, block_bytes, byte offsets of the f16 scale fields, number of blocks)
LAYOUTS = [
    (T.Q4_0, 32, 18, [0], 8),
    (T.Q4_1, 32, 20, [0, 2], 8),
    (T.Q5_0, 32, 22, [0], 8),
    (T.Q5_1, 32, 24, [0, 2], 8),
    (T.Q8_0, 32, 34, [0], 8),
    (T.Q2_K, 256, 84, [80, 82], 4),
    (T.Q3_K, 256, 110, [108], 4),
    (T.Q4_K, 256, 144, [0, 2], 4),
    (T.Q5_K, 256, 176, [0, 2], 4),
    (T.Q6_K, 256, 210, [208], 4),
]


def write(name: str, data: bytes) -> None:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0x0DD0)

    # --- dequantization fixtures: random blocks -> gguf-py dequantize ---
    for qt, be, bb, f16_offs, nb in LAYOUTS:
        raw = rng.integers(0, 256, size=(nb, bb), dtype=np.uint8)
        for off in f16_offs:
            vals = rng.uniform(-0.1, 0.1, size=nb).astype(np.float16)
            raw[:, off:off + 2] = vals.view(np.uint8).reshape(nb, 2)
        deq = quants.dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
        assert deq.size == nb * be and np.all(np.isfinite(deq)), qt.name
        write(f"deq_{qt.name}.q", raw.tobytes())
        write(f"deq_{qt.name}.f32", deq.astype("<f4").tobytes())

    # float types: random finite values (avoid NaN/Inf bit patterns)
    n = 96
    f = (rng.standard_normal(n) * 3.0).astype(np.float32)
    write("deq_F32.q", f.astype("<f4").tobytes())
    write("deq_F32.f32", quants.dequantize(f.view(np.uint8), T.F32).astype("<f4").tobytes())
    h = f.astype(np.float16)
    write("deq_F16.q", h.astype("<f2").tobytes())
    write("deq_F16.f32", quants.dequantize(h.view(np.uint8), T.F16).astype("<f4").tobytes())
    b = (f.view(np.uint32) >> 16).astype("<u2")
    write("deq_BF16.q", b.tobytes())
    write("deq_BF16.f32", quants.dequantize(b.view(np.uint8), T.BF16).astype("<f4").reshape(-1).tobytes())

    # --- quantization fixtures: f32 rows -> gguf-py quantize ---
    for qt in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.F16, T.BF16]:
        blocks = [rng.standard_normal(32 * 12).astype(np.float32) * np.float32(0.5)]
        blocks.append(np.zeros(32, np.float32))                         # all zero: d = 0, id = 0
        blocks.append(np.full(32, 0.75, np.float32))                    # constant block
        blocks.append(np.full(32, -1.25, np.float32))                   # constant negative block
        spike = np.zeros(32, np.float32); spike[5] = -3.0; spike[20] = 1.0  # max magnitude negative
        blocks.append(spike)
        ramp = np.linspace(-1.0, 1.0, 32, dtype=np.float32)             # exact ramp: many .5 ties
        blocks.append(ramp)
        halves = np.arange(-15, 16, dtype=np.float32) + np.float32(0.5)
        blocks.append(np.concatenate([[127.0], halves]).astype(np.float32))  # Q8_0: d=1, exact .5 ties
        blocks.append(np.concatenate([[-8.0], halves / 2]).astype(np.float32))  # Q4_0: d=1, ties at .5
        blocks.append(rng.uniform(-1e-3, 1e-3, 32).astype(np.float32))  # tiny values (f16 subnormal d)
        blocks.append(rng.uniform(-200.0, 300.0, 32).astype(np.float32))  # large values
        src = np.concatenate(blocks).astype(np.float32)
        q = quants.quantize(src.reshape(1, -1), qt)
        write(f"quant_{qt.name}.src", src.astype("<f4").tobytes())
        write(f"quant_{qt.name}.q", np.ascontiguousarray(q).view(np.uint8).tobytes())

    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
