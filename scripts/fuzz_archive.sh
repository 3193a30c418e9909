#!/usr/bin/env bash
# Bounded fuzz run of the backup archive readers (S2 framing, v2 NATSARC1, v1 tar) with
# cargo-fuzz (libFuzzer). Usage: scripts/fuzz_archive.sh [SECONDS]   (default 30)
# Seeds: the captured sample archives, raw (mode byte 0) and decompressed (mode byte 1).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
. scripts/lib/fuzz.sh
corpus=fuzz/corpus/archive_reader
mkdir -p "$corpus"
for f in crates/natrium-store/tests/data/backup/*.s2; do
  b=$(basename "$f")
  { printf '\x00'; cat "$f"; } > "$corpus/raw-$b"
  { printf '\x01'; cargo run -q -p natrium-store --example archive_dump -- --raw "$f"; } > "$corpus/plain-$b" || rm -f "$corpus/plain-$b"
done
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer none archive_reader -- \
  -max_total_time="$secs" -max_len=65536
