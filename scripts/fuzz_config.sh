#!/usr/bin/env bash
# Bounded fuzz run of the NATS config-file parser and the options it builds, with
# cargo-fuzz (libFuzzer). Usage: scripts/fuzz_config.sh [SECONDS]   (default 30)
# Seeds: the config fixtures of the server's tests and one inline config.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
. scripts/lib/fuzz.sh
corpus=fuzz/corpus/config_parser
mkdir -p "$corpus"
for f in crates/natrium-server/tests/conf_fixtures/*.conf crates/natrium-server/tests/conf_fixtures/sub/*.conf; do
  [ -f "$f" ] && cp "$f" "$corpus/seed-$(basename "$f")"
done
printf 'port: 4222\njetstream { store_dir: "/x", max_mem: 1G }\naccounts { A { users [ {user: a, password: b, permissions: { publish: { deny: ">" } } } ] } }\n' > "$corpus/seed-inline"
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer none config_parser -- \
  -max_total_time="$secs" -max_len=8192
