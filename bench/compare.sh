#!/usr/bin/env bash
# Side-by-side speed of ondo and llama.cpp (issue 3): sets everything up, then runs
# bench/compare.py with the arguments given (see its --help).
#
#   bash bench/compare.sh                 # all models, 3 rounds (about 30 minutes on 2 cores)
#   bash bench/compare.sh --quick         # 1 round, a smoke run
#
# Set-up, each step skipped when done: .venv with llama-cpp-python built from source for this
# CPU (scripts/setup_reference_env.sh, ~20 minutes the first time), the default model, a
# release build of ondo, and the random 1B-shape Q4_0/Q4_K_M models (bench/make_models.py,
# ~2 minutes, ~1.6 GB in $ONDO_HOME/bench).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if ! .venv/bin/python -c "import llama_cpp, gguf" 2>/dev/null; then
    bash scripts/setup_reference_env.sh
fi
cargo build --release --bin ondo
./target/release/ondo pull
.venv/bin/python bench/make_models.py
exec .venv/bin/python bench/compare.py "$@"
