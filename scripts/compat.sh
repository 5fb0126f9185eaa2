#!/usr/bin/env bash
# Compatibility check: run what memcached's users run (python-memcached, pymemcache,
# meta-memcache (the meta protocol), libmemcached-tools, nc; in the binary protocol
# pylibmc with binary=True, with and without SASL, and Node's memjs with SASL;
# pymemcache and openssl s_client over TLS with -Z) against a server binary, and fail
# on any wrong result.
#
# Usage: scripts/compat.sh [SERVER_BIN]     (default: target/release/memcached-rs;
#                                            /usr/bin/memcached works too)
# Installs what it needs itself (idempotent): the Python clients (pylibmc too) into a
# venv under target/compat-venv, memjs with npm into target/compat-npm,
# libmemcached-tools, netcat-openbsd, nodejs/npm, sasl2-bin and libsasl2-modules with
# apt-get if missing.
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
if ! "$PY" -c 'import memcache, pymemcache, meta_memcache, pylibmc' 2>/dev/null; then
    echo "compat: installing python-memcached, pymemcache, meta-memcache and pylibmc into $VENV"
    if [ ! -x "$PY" ] && ! python3 -m venv --clear "$VENV" 2>/dev/null; then
        # Debian ships venv (ensurepip) separately.
        apt_install python3-venv && python3 -m venv --clear "$VENV" ||
            { echo "compat: cannot create a Python venv (python3-venv)" >&2; exit 2; }
    fi
    "$VENV/bin/pip" install -q python-memcached pymemcache meta-memcache pylibmc ||
        { echo "compat: pip install python-memcached pymemcache meta-memcache pylibmc failed" >&2; exit 2; }
fi
# pylibmc's wheel carries its own libsasl2, which looks for its mechanisms (PLAIN) in
# Red Hat's directory: point it at Debian's plugins.
SASL_PLUGINS=/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/sasl2
[ -e "$SASL_PLUGINS/libplain.so" ] || [ -e /usr/lib/x86_64-linux-gnu/sasl2/libplain.so ] ||
    apt_install libsasl2-modules || { echo "compat: cannot install libsasl2-modules" >&2; exit 2; }
[ -d "$SASL_PLUGINS" ] || SASL_PLUGINS=/usr/lib/x86_64-linux-gnu/sasl2
command -v saslpasswd2 >/dev/null || apt_install sasl2-bin ||
    { echo "compat: cannot install sasl2-bin" >&2; exit 2; }
NPM_DIR=$ROOT/target/compat-npm
if [ ! -d "$NPM_DIR/node_modules/memjs" ]; then
    echo "compat: installing memjs into $NPM_DIR"
    command -v npm >/dev/null || apt_install nodejs npm ||
        { echo "compat: cannot install nodejs/npm" >&2; exit 2; }
    mkdir -p "$NPM_DIR" && (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund memjs@1.3.2 >/dev/null) ||
        { echo "compat: npm install memjs failed" >&2; exit 2; }
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

# A SASL (-S) server: ours reads MEMCACHED_SASL_PWDB; Debian's memcached reads Cyrus'
# sasldb through SASL_CONF_PATH. Both get the same user.
SASL_USER=compat
SASL_PASS=compat-$RANDOM$RANDOM
printf '%s:%s\n' "$SASL_USER" "$SASL_PASS" >"$WORK/pwdb"
mkdir -p "$WORK/sasl"
printf 'mech_list: plain login\nsasldb_path: %s\n' "$WORK/sasldb2" >"$WORK/sasl/memcached.conf"
printf '%s' "$SASL_PASS" | saslpasswd2 -p -c -f "$WORK/sasldb2" -a memcached "$SASL_USER"
MEMCACHED_SASL_PWDB=$WORK/pwdb SASL_CONF_PATH=$WORK/sasl SERVER_LOG=$WORK/server-sasl.log \
    start "$BIN" -t 2 -m 64 -S ||
    { echo "compat: cannot start $BIN -S; its log:" >&2; cat "$WORK/server-sasl.log" >&2; exit 2; }
PS=$PORT PIDS_SASL=$PID
echo "compat: $BIN -S on port $PS"

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
export SASL_PATH=$SASL_PLUGINS
run_py pylibmc_binary.py "$P3"
run_py pylibmc_binary.py "$PS" "$SASL_USER" "$SASL_PASS"

# --- memjs (Node, binary protocol, SASL) -------------------------------------------
out=$(cd "$ROOT/scripts/compat" && NODE_PATH=$NPM_DIR/node_modules node memjs_sasl.js "$PS" "$SASL_USER" "$SASL_PASS" 2>&1)
rc=$?
while IFS= read -r line; do
    case $line in
        PASS\ *) pass "${line#PASS }" ;;
        FAIL\ *) fail "${line#FAIL }" ;;
        *) echo "  $line" ;;
    esac
done <<<"$out"
[ $rc = 0 ] || grep -q '^FAIL ' <<<"$out" || fail "memjs_sasl.js exited with status $rc"

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

# --- TLS (-Z) ------------------------------------------------------------------
# A CA and a server certificate made here (openssl), a TLS server started as
# memcached's users start it, pymemcache with a tls_context and openssl s_client
# against it. `scripts/compat.sh /usr/bin/memcached` runs the same against memcached -Z.
if command -v openssl >/dev/null || apt_install openssl; then
    (cd "$WORK" &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=compat-ca &&
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=localhost &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile san.ext
    ) >"$WORK/openssl.log" 2>&1 || fail "openssl could not make the test certificates: $(tail -3 "$WORK/openssl.log")"
    if SERVER_LOG=$WORK/server-tls.log start "$BIN" -t 2 -m 64 -Z -o "ssl_chain_cert=$WORK/cert.pem,ssl_key=$WORK/key.pem"; then
        PT=$PORT
        run_py pymemcache_tls.py "$PT" "$WORK/ca.pem"
        out=$(printf 'set sc 0 0 5\r\nhello\r\nget sc\r\nversion\r\nquit\r\n' |
            timeout 10 openssl s_client -connect 127.0.0.1:"$PT" -CAfile "$WORK/ca.pem" -verify_return_error -quiet 2>/dev/null | tr -d '\r')
        if [ "$out" = "$(printf 'STORED\nVALUE sc 0 5\nhello\nEND\nVERSION 1.6.18')" ]; then
            pass "openssl s_client: set, get, version, quit over TLS (certificate verified)"
        else
            fail "openssl s_client over TLS: $(head -c 300 <<<"$out")"
        fi
        out=$(echo version | timeout 5 nc -q1 127.0.0.1 "$PT" 2>&1 | tr -d '\0')
        if ! grep -q VERSION <<<"$out"; then
            pass "a plaintext client on the TLS port gets no reply"
        else
            fail "a plaintext client on the TLS port was answered: $out"
        fi
        kill -0 "$PID" 2>/dev/null || fail "the TLS server died during the run"
    else
        fail "cannot start $BIN -Z; its log: $(head -c 300 "$WORK/server-tls.log")"
    fi
else
    fail "openssl is missing and could not be installed"
fi

# --- the servers survived all of it ----------------------------------------------
for pid in "$PID1" "$PID2" "$PID3" "$PIDS_SASL"; do
    kill -0 "$pid" 2>/dev/null || fail "server pid $pid died during the run"
done

echo "compat: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
