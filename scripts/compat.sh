#!/usr/bin/env bash
# Compatibility check: run what memcached's users run (python-memcached, pymemcache,
# meta-memcache (the meta protocol), libmemcached-tools, nc) against a server binary,
# and fail on any wrong result.
#
# Usage: scripts/compat.sh [SERVER_BIN]     (default: target/release/memcached-rs;
#                                            /usr/bin/memcached works too)
# Installs what it needs itself (idempotent): the Python clients into a venv under
# target/compat-venv, libmemcached-tools and netcat-openbsd with apt-get if missing.
# Builds nothing. Prints `compat: N passed, M failed`; exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-target/release/memcached-rs}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
if [ ! -x "$BIN" ]; then
    echo "compat: server binary $BIN not found or not executable (build it first: cargo build --release)" >&2
    exit 2
fi

VENV=$ROOT/target/compat-venv
PY=$VENV/bin/python
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compat.XXXXXX")
PASS=0
FAIL=0

# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
ON_EXIT='stop_all; rm -rf "$WORK"'

pass() { PASS=$((PASS + 1)); echo "PASS $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }

# --- what we need -------------------------------------------------------------
# apt_install PKG...: install Debian packages, running `apt-get update` only if the
# plain install fails (stale or empty package lists on a fresh machine).
apt_install() {
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y "$@" >/dev/null ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y "$@" >/dev/null; }
}
if ! "$PY" -c 'import memcache, pymemcache, meta_memcache' 2>/dev/null; then
    echo "compat: installing python-memcached, pymemcache and meta-memcache into $VENV"
    if ! python3 -m venv --clear "$VENV" 2>/dev/null; then
        # Debian ships venv (ensurepip) separately.
        apt_install python3-venv && python3 -m venv --clear "$VENV" ||
            { echo "compat: cannot create a Python venv (python3-venv)" >&2; exit 2; }
    fi
    "$VENV/bin/pip" install -q python-memcached pymemcache meta-memcache ||
        { echo "compat: pip install python-memcached pymemcache meta-memcache failed" >&2; exit 2; }
fi
missing=0
for tool in memcstat memccp memccat nc; do
    command -v "$tool" >/dev/null || missing=1
done
if [ $missing = 1 ]; then
    echo "compat: installing libmemcached-tools netcat-openbsd"
    apt_install libmemcached-tools netcat-openbsd ||
        { echo "compat: cannot install libmemcached-tools/netcat-openbsd" >&2; exit 2; }
fi

# --- servers ------------------------------------------------------------------
# start_server VAR_PORT VAR_PID: one server on a free port (scripts/lib/servers.sh:
# it retries when another process takes the port first).
start_server() {
    SERVER_LOG=$WORK/server-$1.log start "$BIN" -t 2 -m 64 ||
        { echo "compat: cannot start $BIN; its log:" >&2; cat "$WORK/server-$1.log" >&2; exit 2; }
    printf -v "$1" %s "$PORT"
    printf -v "$2" %s "$PID"
}
start_server P1 PID1
start_server P2 PID2
start_server P3 PID3
echo "compat: $BIN on ports $P1 $P2 $P3"

# --- Python clients -----------------------------------------------------------
run_py() {
    local out rc line
    out=$(cd "$ROOT/scripts/compat" && "$PY" "$@" 2>&1)
    rc=$?
    while IFS= read -r line; do
        case $line in
            PASS\ *) pass "${line#PASS }" ;;
            FAIL\ *) fail "${line#FAIL }" ;;
            *) echo "  $line" ;;
        esac
    done <<<"$out"
    if [ $rc != 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
        fail "$1 exited with status $rc"
    fi
}
run_py python_memcached.py "$P1"
run_py pymemcache_client.py "$P2"
run_py three_servers.py "$P1" "$P2" "$P3"
run_py meta_memcache_client.py "$P3"

# --- libmemcached-tools ---------------------------------------------------------
out=$(memcstat --servers=127.0.0.1:"$P1" 2>&1)
if grep -q "^[[:space:]]*pid: $PID1\$" <<<"$out" && grep -Eq '^[[:space:]]*uptime: [0-9]+$' <<<"$out"; then
    pass "memcstat shows pid $PID1 and uptime"
else
    fail "memcstat: no 'pid: $PID1' / 'uptime: N' in: $(head -c 300 <<<"$out")"
fi

head -c 300000 /dev/urandom >"$WORK/blob.bin"
mkdir -p "$WORK/out"
if (cd "$WORK" && memccp --servers=127.0.0.1:"$P2" blob.bin) &&
    (cd "$WORK" && memccat --servers=127.0.0.1:"$P2" --file=out/blob.bin blob.bin) &&
    cmp -s "$WORK/blob.bin" "$WORK/out/blob.bin"; then
    pass "memccp then memccat returns identical bytes (300 kB)"
else
    fail "memccp/memccat round trip of a 300 kB file"
fi

# --- nc -----------------------------------------------------------------------
out=$(echo stats | nc -q1 127.0.0.1 "$P3" 2>&1)
if grep -q '^STAT pid [0-9]' <<<"$out" && grep -q '^STAT curr_connections [0-9]' <<<"$out" &&
    [ "$(tail -n1 <<<"$out" | tr -d '\r')" = END ]; then
    pass "echo stats | nc shows STAT lines and END"
else
    fail "echo stats | nc: $(head -c 300 <<<"$out")"
fi

# --- the servers survived all of it ----------------------------------------------
for pid in "$PID1" "$PID2" "$PID3"; do
    kill -0 "$pid" 2>/dev/null || fail "server pid $pid died during the run"
done

echo "compat: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
