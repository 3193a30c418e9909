#!/usr/bin/env bash
# Runs the NATS clients' own test suites (nats.py, async-nats) against natrium-server.
#
# Why: our differential tests check what we thought of; the clients' own suites check
# what their authors thought of, with the client's own expectations of nats-server.
# Each suite starts `nats-server` itself (from the working directory or PATH), so a
# shim named `nats-server` that execs natrium-server stands in for it. Nothing fetched
# is kept in this repository: the suites are cloned at pinned commits into a scratch
# directory. Needs network access (git, PyPI, crates.io); not part of CI.
#
# Usage: scripts/client-suites.sh [py|py2|rs|all] [--work DIR] [--server PATH]
#                                 [--py-git DIR] [--rs-git DIR]
#   --work DIR     scratch directory (default /tmp/natrium-client-suites)
#   --server PATH  natrium-server binary (default target/debug/natrium-server)
#   py2 runs the new nats.py packages' suites (nats-core, nats-jetstream,
#   nats-key-value; they need Python >= 3.13: python3.13 on PATH or $PY313)
#   --py-git DIR, --rs-git DIR
#                  a local git directory holding the pinned commit (a mirror), used
#                  instead of cloning from GitHub
#
# Expected failures (each also fails for a reason that is not natrium's):
#   nats.py      ClusterDiscovery*            clustering (not implemented)
#                test_fetch_cancelled_errors_raised  run alone, the test's own
#                                             `unittest.mock` import fails (against
#                                             nats-server too)
#                test_ordered_consumer_larger_streams  timing-dependent against any
#                                             server (its close() can meet an ordered
#                                             consumer's reset queued while the test had
#                                             killed the server); see scripts/README.md
#   nats-core    test_cluster_reconnect_sequential_shutdown[3|5]  clustering
#   nats-jetstream, nats-key-value  test_*get_message_with_multi_value_header,
#                test_keys_filtered           fail against nats-server 2.15.1 too
#                test_consumer_reset_to_ack_floor  flaky against both servers
#   async-nats   create_stream_with_replicas  clustering (not implemented)
#                connect_domain, schemas, tls_with_native_certs, custom_tls_client
#                                             need the internet (demo.nats.io, GitHub)
#                cross_clients_tests          needs another client's binary
set -euo pipefail

NATS_PY_REPO=https://github.com/nats-io/nats.py
NATS_PY_COMMIT=06b677808029274b64e06af9eee7170d3b80a09b
NATS_RS_REPO=https://github.com/nats-io/nats.rs
NATS_RS_COMMIT=d00e6b58d8da89a1b60f23b756173b6379dccbd7

here=$(cd "$(dirname "$0")/.." && pwd)
which=all
work=/tmp/natrium-client-suites
server="$here/target/debug/natrium-server"
py_git=""
rs_git=""
while [ $# -gt 0 ]; do
    case "$1" in
        py | py2 | rs | all) which=$1 ;;
        --work) work=$2; shift ;;
        --server) server=$2; shift ;;
        --py-git) py_git=$2; shift ;;
        --rs-git) rs_git=$2; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$server" ] || { echo "natrium-server not found at $server (cargo build -p natrium-server)" >&2; exit 2; }
mkdir -p "$work/shim"
cp "$server" "$work/shim/natrium-server"
printf '#!/bin/sh\nexec "%s/shim/natrium-server" "$@"\n' "$work" > "$work/shim/nats-server"
chmod +x "$work/shim/nats-server"

# The tree of commit $2 of repository $1 into $3 (once): from the local git directory
# $4 when given, else a shallow fetch from $1.
checkout() {
    [ -e "$3/.done" ] && return 0
    rm -rf "$3"
    mkdir -p "$3"
    if [ -n "$4" ]; then
        git --git-dir="$4" archive "$2" | tar -x -C "$3"
    else
        git init -q "$3"
        git -C "$3" remote add origin "$1"
        git -C "$3" fetch -q --depth 1 origin "$2"
        git -C "$3" checkout -q --detach "$2"
    fi
    touch "$3/.done"
}

status=0

if [ "$which" = py ] || [ "$which" = all ]; then
    checkout "$NATS_PY_REPO" "$NATS_PY_COMMIT" "$work/nats.py" "$py_git"
    py="$work/nats.py/venv/bin/python"
    if [ ! -x "$py" ]; then
        python3 -m venv "$work/nats.py/venv"
        "$py" -m pip install -q pytest==9.2.0 nkeys==0.2.1 aiohttp==3.14.5
        "$py" -m pip install -q -e "$work/nats.py/nats"
    fi
    # The suite looks for ./nats-server first (the checkout's root has a directory of
    # that name, so it runs from a directory of its own), its object-store tests read
    # files from the working directory and its TLS configs name ./nats/tests/certs.
    mkdir -p "$work/nats.py-run"
    cd "$work/nats.py-run"
    ln -sfn "$work/nats.py/nats" nats
    cp "$work/shim/nats-server" ./nats-server
    cp nats/README.md nats/pyproject.toml .
    echo "== nats.py's own suite against natrium-server"
    PATH="$work/shim:$PATH" "$py" -m pytest -q -p no:cacheprovider -rf nats/tests/test_js.py nats/tests/test_client.py \
        nats/tests/test_client_v2.py nats/tests/test_micro_service.py \
        nats/tests/test_client_nkeys.py nats/tests/test_client_websocket.py \
        nats/tests/test_custom_headers_websocket.py nats/tests/test_client_async_await.py \
        | grep -E '^(FAILED|ERROR)|passed|failed' || status=1
fi

if [ "$which" = py2 ] || [ "$which" = all ]; then
    checkout "$NATS_PY_REPO" "$NATS_PY_COMMIT" "$work/nats.py" "$py_git"
    py313=""
    for c in "${PY313:-}" python3.13 python3.14 "$HOME"/.pyenv/versions/3.1[3-9]*/bin/python; do
        if [ -n "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
            py313=$c
            break
        fi
    done
    if [ -z "$py313" ]; then
        echo "== nats.py's new packages need Python >= 3.13 (python3.13 or \$PY313): skipped"
        status=1
    else
        py="$work/nats.py/venv313/bin/python"
        if [ ! -x "$py" ]; then
            "$py313" -m venv "$work/nats.py/venv313"
            "$py" -m pip install -q pytest==9.2.0 pytest-asyncio==1.5.0 pytest-timeout==2.4.0 \
                nkeys==0.2.1 websockets==17.4
            "$py" -m pip install -q -e "$work/nats.py/nats-core" -e "$work/nats.py/nats-server" \
                -e "$work/nats.py/nats-jetstream" -e "$work/nats.py/nats-key-value"
        fi
        # Each suite starts `nats-server` through the nats-server package, by PATH.
        for pkg in nats-core nats-jetstream nats-key-value; do
            echo "== nats.py $pkg's own suite against natrium-server"
            (cd "$work/nats.py/$pkg" && PATH="$work/shim:$PATH" timeout 1500 "$py" -m pytest -q \
                -p no:cacheprovider -p no:logging --timeout 60 tests \
                | grep -E '^(FAILED|ERROR)|^[0-9]+ (passed|failed)') || status=1
        done
    fi
fi

if [ "$which" = rs ] || [ "$which" = all ]; then
    checkout "$NATS_RS_REPO" "$NATS_RS_COMMIT" "$work/nats.rs" "$rs_git"
    cd "$work/nats.rs"
    echo "== building async-nats's tests (several minutes)"
    CARGO_TARGET_DIR="$work/nats.rs/target" cargo test -q -p async-nats --no-run 2>/dev/null
    cd async-nats
    for t in jetstream_tests kv_tests object_store client_tests service_tests jwt_tests \
        nkey_tests websocket_test tls_tests; do
        bin=$(find "$work/nats.rs/target/debug/deps" -maxdepth 1 -type f -executable \
            -name "${t}-*" | head -1)
        echo "== async-nats $t against natrium-server"
        PATH="$work/shim:$PATH" timeout 1500 "$bin" --test-threads 2 2>&1 \
            | grep -E 'FAILED|test result' || status=1
    done
fi
exit $status
