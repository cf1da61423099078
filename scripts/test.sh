#!/usr/bin/env bash
# The test command: fetches the default model into the cache if missing, sets up .venv-test
# (the official openai client for the server test), then runs every test.
# Tests that need the model or the client fail (not skip) here, because ONDO_REQUIRE_MODEL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ondo
./target/release/ondo pull >/dev/null
if ! .venv-test/bin/python -c "import openai" 2>/dev/null; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install -q --disable-pip-version-check -r tests/serve/requirements.txt
fi
export ONDO_REQUIRE_MODEL=1
cargo test --workspace --release "$@"
