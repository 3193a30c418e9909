#!/usr/bin/env bash
# Bounded fuzz run of the WebSocket upgrade parser and frame decoder, with cargo-fuzz
# (libFuzzer). Usage: scripts/fuzz_websocket.sh [SECONDS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
. scripts/lib/fuzz.sh
corpus=fuzz/corpus/websocket_frames
mkdir -p "$corpus"
# Seeds: an upgrade request, and masked frames (binary, ping, close) behind 4 size bytes.
printf 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' > "$corpus/seed-upgrade"
printf '\x03\x07\x01\x10\x82\x86\x01\x02\x03\x04QKMCD\x0e\x89\x81\x00\x00\x00\x00x\x88\x82\x00\x00\x00\x00\x03\xe8' > "$corpus/seed-frames"
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer none websocket_frames -- \
  -max_total_time="$secs" -max_len=4096
