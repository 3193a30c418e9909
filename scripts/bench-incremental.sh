#!/usr/bin/env bash
# bench-incremental.sh — how long an incremental backup takes after 1% of a stream
# changed, against a full backup of the same stream (natrium-server only: nats-server
# has no incremental backups).
#
# Per round: a fresh natrium-server (-js -sd <dir>, 127.0.0.1, -p -1) gets a file
# stream of SIZE MiB of 1 KiB messages (crates/natrium/examples/js_fill.rs). Then:
#   1. full: page cache dropped (if allowed), `natrium stream backup` timed;
#   2. change: 1% more bytes published (SIZE MiB / 100 of 1 KiB messages);
#   3. incremental: page cache dropped again, `natrium stream backup --since full`
#      timed; ratio = incremental wall time / full wall time (target <= 5%);
#   4. restore: the server is stopped, a second fresh one started, and
#      `natrium stream restore <incremental>` (the chain merged on the fly) timed;
#      the restored message count is checked against the source.
# Every process this script starts is stopped by PID; every step is bounded by
# timeout(1).
#
# Environment:
#   SIZE_MB             stream size in MiB (default 1024); smaller for a quick run
#   ROUNDS              rounds (default 2)
#   NATRIUM_SERVER_BIN  natrium-server (default: $CARGO_TARGET_DIR or target, release)
#   NATRIUM_BIN         natrium CLI (same default place)
#   JS_FILL_BIN         the fill helper (same place, examples/js_fill)
#   WORK                where store dirs and backups go (default: a new dir under
#                       ${TMPDIR:-/tmp}); removed after each round unless KEEP=1
#
# Usage: SIZE_MB=256 scripts/bench-incremental.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"
case "${1:-}" in -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-2}
KEEP=${KEEP:-0}
die() { echo "bench-incremental: $*" >&2; exit 1; }
case "$SIZE_MB" in ''|*[!0-9]*|0) die "SIZE_MB must be a positive integer" ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) die "ROUNDS must be a positive integer" ;; esac
[ "$SIZE_MB" -ge 2 ] || die "SIZE_MB must be at least 2 (1% must be a message or more)"

release_bins
require_bins "cargo build --release -p natrium -p natrium-server --bins, and --example js_fill" \
  "$NATRIUM_SERVER_BIN" "$NATRIUM_BIN" "$JS_FILL_BIN"
command -v python3 >/dev/null || die "python3 is required (for the summary)"

WORK=$(work_dir "${WORK:-}" bench-incremental)
RAW="$WORK/raw.jsonl"
: >"$RAW"
LOG="$WORK/client.stderr"

MSGS=$((SIZE_MB * 1024))
CHANGE=$((MSGS / 100))
STEP_LIMIT=$((SIZE_MB / 2 + 60))

cleanup() { stop_pid "$SERVER_PID"; SERVER_PID=""; }
trap cleanup EXIT
trap 'exit 130' INT TERM

init_drop_caches

run() {
  local round=$1 dir url f0 f1 i0 i1 r0 r1
  dir="$WORK/r$round"
  rm -rf "$dir"; mkdir -p "$dir"
  start_js "$NATRIUM_SERVER_BIN" "$dir/store" "$dir/server.log"
  url="nats://127.0.0.1:$PORT"
  printf '  fill %d msgs... ' "$MSGS" >&2
  timeout -k 5 "$STEP_LIMIT" "$JS_FILL_BIN" fill "$url" BENCH "$MSGS" 1024 512 \
    >"$dir/fill.json" 2>>"$LOG" </dev/null || die "fill failed"
  echo ok >&2

  drop_caches
  f0=$(now)
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream backup BENCH "$dir/full" --json \
    >"$dir/full.json" 2>>"$LOG" </dev/null || die "full backup failed, see $LOG"
  f1=$(now)

  timeout -k 5 "$STEP_LIMIT" "$JS_FILL_BIN" fill "$url" BENCH "$CHANGE" 1024 512 \
    >"$dir/change.json" 2>>"$LOG" </dev/null || die "change failed"

  drop_caches
  i0=$(now)
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream backup BENCH "$dir/inc" \
    --since "$dir/full" --json >"$dir/inc.json" 2>>"$LOG" </dev/null \
    || die "incremental backup failed, see $LOG"
  i1=$(now)
  stop_pid "$SERVER_PID"; SERVER_PID=""

  rm -rf "$dir/store"
  drop_caches
  start_js "$NATRIUM_SERVER_BIN" "$dir/store2" "$dir/server2.log"
  url="nats://127.0.0.1:$PORT"
  r0=$(now)
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream restore "$dir/inc" --json \
    >"$dir/restore.json" 2>>"$LOG" </dev/null || die "chain restore failed, see $LOG"
  r1=$(now)
  stop_pid "$SERVER_PID"; SERVER_PID=""

  python3 - "$round" "$dir" "$MSGS" "$CHANGE" "$f0" "$f1" "$i0" "$i1" "$r0" "$r1" >>"$RAW" <<'EOF'
import json, sys
rnd, d, msgs, change = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
f0, f1, i0, i1, r0, r1 = map(float, sys.argv[5:11])
ld = lambda n: json.load(open(f"{d}/{n}"))
full, inc, rs = ld("full.json"), ld("inc.json"), ld("restore.json")
row = {
    "round": rnd, "messages": msgs + change, "full_s": f1 - f0, "inc_s": i1 - i0,
    "restore_s": r1 - r0, "full_bytes": full["bytes"], "inc_bytes": inc["bytes"],
    "restored_messages": rs["messages"],
}
row["time_ratio"] = row["inc_s"] / row["full_s"]
row["byte_ratio"] = row["inc_bytes"] / row["full_bytes"]
if rs["messages"] != msgs + change:
    print(f"bench-incremental: round {rnd}: restored {rs['messages']} of {msgs + change} messages", file=sys.stderr)
    sys.exit(1)
print(json.dumps(row))
EOF
  tail -n 1 "$RAW" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read());
print("  full %.2fs, incremental %.3fs (%.1f%%), archive %.1f%%, chain restore %.2fs" % (r["full_s"], r["inc_s"], 100*r["time_ratio"], 100*r["byte_ratio"], r["restore_s"]))' >&2
  [ "$KEEP" = 1 ] || rm -rf "$dir"
}

echo "natrium-server: $NATRIUM_SERVER_BIN"
echo "$ROUNDS round(s), $SIZE_MB MiB ($MSGS x 1 KiB) + 1% ($CHANGE msgs), drop_caches: $([ $CAN_DROP = 1 ] && echo yes || echo no), work $WORK"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  run "$round"
done

python3 - "$RAW" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(k):
    v = [r[k] for r in rows]
    m = statistics.median(v)
    return m, (max(v) - min(v)) / m if m else 0
print()
print("Medians over %d rounds; spread = (max-min)/median" % len(rows))
for label, k, f in [("full backup", "full_s", "%.2f s"), ("incremental backup (1%% changed)", "inc_s", "%.3f s"),
                    ("incremental / full time", "time_ratio", "%.3f"), ("incremental / full archive bytes", "byte_ratio", "%.3f"),
                    ("chain restore (full + incremental)", "restore_s", "%.2f s")]:
    m, sp = med(k)
    print("%-36s %12s  (spread %.0f%%)" % (label % (), f % m, 100 * sp))
print("raw results: %s" % sys.argv[1])
EOF
