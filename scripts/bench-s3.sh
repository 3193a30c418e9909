#!/usr/bin/env bash
# bench-s3.sh — stream backup to a local folder vs to s3:// on a loopback S3 server.
#
# One natrium-server (-js -sd <dir>, 127.0.0.1, -p -1) gets a file stream of N x 1 KiB
# messages (crates/natrium/examples/js_fill.rs). One S3-compatible server listens on a
# free loopback port with bucket "bench": S3_SERVER=moto (default; moto_server, the one
# the tests use, from PyPI) or S3_SERVER=s3s-fs (a filesystem-backed S3 server in Rust,
# from crates.io, stores objects under the work dir; see scripts/README.md to install).
# Then, alternately (local, s3, local, s3, ...), `natrium stream backup BENCH TARGET`
# is timed: TARGET is a fresh folder under the work dir, or s3://bench/rN. Rate =
# stream bytes (state.bytes of the snapshot) / the CLI's wall time. Each backup is
# removed after its run (the folder; on s3 the previous round's, by `natrium backup
# prune --keep 1`), so the S3 server's memory/disk stays flat. With s3s-fs (which
# writes objects to disk without fsync) the s3 time also includes a final sync(1), as
# the local one does, so both count the data reaching the disk.
# The table shows medians and the ratio s3 / local. Every process started here is
# stopped by PID; every step is bounded by timeout(1).
#
# What the s3 number measures: the CLI (streaming multipart upload) *and* the S3
# server, which on a 2-core machine competes with natrium-server and the CLI for CPU.
# moto is a single Python process that parses, checksums and spools every part and
# caps any client at about 40 MB/s here; s3s-fs is much faster.
#
# Environment:
#   NATRIUM_SERVER_BIN  natrium-server (default: $CARGO_TARGET_DIR or target, release)
#   NATRIUM_BIN         natrium CLI (same default place)
#   JS_FILL_BIN         the fill helper (same place, examples/js_fill)
#   S3_SERVER           moto (default) or s3s-fs
#   MOTO_SERVER_BIN     moto_server (default: .venv/bin/moto_server, then PATH)
#   S3S_FS_BIN          s3s-fs (default: s3s-fs on PATH)
#   S3S_FS_ROOT         where s3s-fs keeps its objects (default: <work dir>/s3root, on
#                       the disk the local backups go to; a tmpfs path such as
#                       /dev/shm/s3root models an object store whose disks are not
#                       the server's; it then needs twice the backup's size in RAM)
#   NATRIUM_S3_PART_MIB, NATRIUM_S3_PARTS_IN_FLIGHT  passed through to the CLI (upload shape)
#
# Usage: scripts/bench-s3.sh [--size-mb N] [--rounds N] [--chunk-size SZ] [--work DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/bench.sh
. "$ROOT/scripts/lib/bench.sh"

SIZE_MB=512
ROUNDS=3
CHUNK_SIZE=""
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --chunk-size) CHUNK_SIZE=${2:?}; shift 2 ;;
    --work) WORK=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-s3: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "bench-s3: $*" >&2; exit 1; }
case "$SIZE_MB" in ''|*[!0-9]*|0) die "--size-mb must be a positive integer" ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) die "--rounds must be a positive integer" ;; esac

release_bins
S3_SERVER=${S3_SERVER:-moto}
case "$S3_SERVER" in
  moto)
    if [ -z "${MOTO_SERVER_BIN:-}" ]; then
      for c in "$ROOT/.venv/bin/moto_server" "$(command -v moto_server || true)"; do
        if [ -n "$c" ] && [ -x "$c" ]; then MOTO_SERVER_BIN=$c; break; fi
      done
    fi
    [ -n "${MOTO_SERVER_BIN:-}" ] || die "moto_server not found: pip install -r tests/python/requirements.txt into .venv, or set MOTO_SERVER_BIN"
    S3_BIN=$MOTO_SERVER_BIN ;;
  s3s-fs)
    S3S_FS_BIN=${S3S_FS_BIN:-$(command -v s3s-fs || true)}
    [ -n "$S3S_FS_BIN" ] || die "s3s-fs not found: install it (scripts/README.md) and set S3S_FS_BIN"
    S3_BIN=$S3S_FS_BIN ;;
  *) die "S3_SERVER must be moto or s3s-fs, not $S3_SERVER" ;;
esac
require_bins "cargo build --release -p natrium -p natrium-server --bins --example js_fill" \
  "$NATRIUM_SERVER_BIN" "$NATRIUM_BIN" "$JS_FILL_BIN" "$S3_BIN"
command -v python3 >/dev/null || die "python3 is required"

WORK=$(work_dir "$WORK" bench-s3)
RAW="$WORK/raw.jsonl"
: >"$RAW"
MSGS=$((SIZE_MB * 1024))
STEP_LIMIT=$((SIZE_MB / 2 + 60))

S3_PID=""
S3ROOT=${S3S_FS_ROOT:-$WORK/s3root}
cleanup() {
  stop_pid "$SERVER_PID"; SERVER_PID=""
  stop_pid "$S3_PID"; S3_PID=""
  rm -rf "$WORK/store" "$WORK"/local.r* "$S3ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# natrium-server.
start_js "$NATRIUM_SERVER_BIN" "$WORK/store" "$WORK/server.log"
URL="nats://127.0.0.1:$PORT"

# The S3 server on a free loopback port, bucket "bench".
S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$S3_SERVER" = moto ]; then
  "$S3_BIN" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/s3server.log" 2>&1 </dev/null &
else
  # s3s-fs serves the directories under its root as buckets.
  mkdir -p "$S3ROOT/bench"
  "$S3_BIN" --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench \
    "$S3ROOT" >"$WORK/s3server.log" 2>&1 </dev/null &
fi
S3_PID=$!
# Ready: moto gets an unsigned PUT /bench (it accepts those), s3s-fs a TCP connect.
s3_ready() {
  python3 - "$S3_PORT" "$S3_SERVER" <<'EOF'
import socket, sys, urllib.request
port, kind = int(sys.argv[1]), sys.argv[2]
if kind == "moto":
    req = urllib.request.Request(f"http://127.0.0.1:{port}/bench", method="PUT", data=b"")
    urllib.request.urlopen(req, timeout=30).read()
else:
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
EOF
}
for i in $(seq 1 300); do
  s3_ready 2>/dev/null && break
  kill -0 "$S3_PID" 2>/dev/null || die "$S3_SERVER exited: $(tail -n 5 "$WORK/s3server.log")"
  [ "$i" -lt 300 ] || die "$S3_SERVER did not start within 30 s"
  sleep 0.1
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"

printf 'fill %d x 1 KiB... ' "$MSGS" >&2
timeout -k 5 "$STEP_LIMIT" "$JS_FILL_BIN" fill "$URL" BENCH "$MSGS" 1024 512 \
  >"$WORK/fill.json" 2>>"$WORK/client.stderr" </dev/null || die "fill failed"
echo done >&2

chunk=()
[ -n "$CHUNK_SIZE" ] && chunk=(--chunk-size "$CHUNK_SIZE")
for round in $(seq 1 "$ROUNDS"); do
  for side in local s3; do
    if [ "$side" = local ]; then target="$WORK/local.r$round"; else target="s3://bench/r$round"; fi
    sync
    t0=$(now)
    timeout -k 5 "$STEP_LIMIT" "$NATRIUM_BIN" -s "$URL" stream backup BENCH "$target" --json -q \
      "${chunk[@]}" >"$WORK/$side.r$round.json" 2>>"$WORK/client.stderr" </dev/null \
      || die "$side backup failed, see $WORK/client.stderr"
    t1=$(now)
    if [ "$side" = local ]; then
      sync
      t1=$(now)
      stream_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"]["bytes"])' "$target/backup.json")
      rm -rf "$target"
    else
      if [ "$S3_SERVER" = s3s-fs ]; then
        sync
        t1=$(now)
      fi
      # Keep the S3 server's memory/disk flat: drop the previous round's backup.
      timeout -k 5 60 "$NATRIUM_BIN" backup prune s3://bench --keep 1 \
        >>"$WORK/prune.log" 2>>"$WORK/client.stderr" </dev/null || die "prune failed"
    fi
    python3 - "$side" "$round" "$t0" "$t1" "$stream_bytes" "$WORK/$side.r$round.json" >>"$RAW" <<'EOF'
import json, sys
side, rnd, t0, t1, sb, f = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
b = json.load(open(f))
row = {"side": side, "round": rnd, "seconds": t1 - t0, "stream_bytes": sb, "archive_bytes": b["bytes"], "mbs": sb / 1e6 / (t1 - t0)}
print(json.dumps(row))
print("round %d %-5s %.1f MB/s (%.2fs, archive %d bytes)" % (rnd, side, row["mbs"], row["seconds"], b["bytes"]), file=sys.stderr)
EOF
  done
done

python3 - "$RAW" "$SIZE_MB" "$S3_SERVER" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(side):
    v = [r["mbs"] for r in rows if r["side"] == side]
    m = statistics.median(v)
    return m, len(v), (max(v) - min(v)) / m
l, ln, lsp = med("local")
s, sn, ssp = med("s3")
print()
print(f"stream backup of {sys.argv[2]} MiB (1 KiB messages); medians, spread = (max-min)/median")
print("| target | MB/s | n | spread |")
print("|---|---|---|---|")
print("| local folder | %.1f | %d | %.0f%% |" % (l, ln, 100 * lsp))
print("| s3:// (%s on loopback) | %.1f | %d | %.0f%% |" % (sys.argv[3], s, sn, 100 * ssp))
print("| ratio s3 / local | %.2f | | |" % (s / l))
EOF
