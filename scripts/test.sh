#!/usr/bin/env bash
# The test command: fetches the default model into the cache if missing, then runs every test.
# Tests that need the model fail (not skip) here, because ONDO_REQUIRE_MODEL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ondo
./target/release/ondo pull >/dev/null
export ONDO_REQUIRE_MODEL=1
cargo test --workspace --release "$@"
