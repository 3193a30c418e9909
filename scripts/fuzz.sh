#!/usr/bin/env bash
# Bounded fuzz run of the protocol parser with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [SECONDS]   (default 30)
# cargo-fuzz is installed into ./target/tools on first use; the stable toolchain is used
# with RUSTC_BOOTSTRAP so no nightly is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
. scripts/lib/fuzz.sh
mkdir -p fuzz/corpus/protocol_parser
# Seed the corpus with real protocol bytes.
printf 'CONNECT {"verbose":false}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nPING\r\n' > fuzz/corpus/protocol_parser/seed1
printf '\x05HPUB foo reply 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1 2\r\n' > fuzz/corpus/protocol_parser/seed2
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer none protocol_parser -- \
  -max_total_time="$secs" -max_len=4096
