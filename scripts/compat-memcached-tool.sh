#!/usr/bin/env bash
# Debian's memcached-tool (from the memcached package) against memcached-rs: `display`,
# `stats` and `dump` must run without error and show what was stored.
#
# Usage: scripts/compat-memcached-tool.sh [path/to/memcached-rs]   (default target/release)
# Env:   MEMCACHED_TOOL=/usr/share/memcached/scripts/memcached-tool  THREADS=2
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/memcached-rs}
TOOL=${MEMCACHED_TOOL:-/usr/share/memcached/scripts/memcached-tool}
THREADS=${THREADS:-2}
if [ ! -r "$TOOL" ]; then
    echo "memcached-tool not found at $TOOL (apt-get install memcached)" >&2
    exit 1
fi
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
OUT=$(mktemp -d)
ON_EXIT='rm -rf "$OUT"'
start "$BIN" -t "$THREADS" -m 64

# 200 small keys (one with a space-like escape in it, one with a TTL) and 60 larger ones
# in three of memcached's size classes, then every tool mode.
python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
cmds = b"".join(b"set mt:key:%d %d 0 %d\r\n%s\r\n" % (i, i, len(b"value-%d" % i), b"value-%d" % i) for i in range(198))
cmds += b"set odd%20key 7 0 3\r\nabc\r\nset mt:ttl 0 3600 2\r\nhi\r\n"
cmds += b"".join(b"set mt:big:%d 0 0 %d\r\n%s\r\n" % (i, n, b"b" * n) for i, n in enumerate([300, 3000, 30000] * 20))
s.sendall(cmds)
got = b""
while got.count(b"STORED\r\n") < 260:
    got += s.recv(65536)
assert got == b"STORED\r\n" * 260, got[:200]
PY
sleep 1.2 # let the executors publish their figures

fail() { echo "memcached-tool $1: $2" >&2; cat "$OUT/$1" >&2; exit 1; }
for mode in display stats dump; do
    perl "$TOOL" "127.0.0.1:$PORT" "$mode" >"$OUT/$mode" 2>"$OUT/$mode.err" || fail "$mode" "exit status $?"
    [ -s "$OUT/$mode" ] || fail "$mode" "empty output"
    if grep -qiE "error|uninitialized" "$OUT/$mode.err"; then fail "$mode.err" "errors on stderr"; fi
done
# display: a line per size class in use, as memcached shows them: class 1 with the 200
# small items, three more with 20 each.
awk '$1 == 1 && $5 == 200 { found = 1 } END { exit !found }' "$OUT/display" || fail display "no class 1 line with 200 items"
[ "$(awk '$1 ~ /^[0-9]+$/ && $5 == 20' "$OUT/display" | wc -l)" = 3 ] || fail display "not three classes of 20 items"
# stats: the general stats, curr_items among them.
grep -qE $'^ +curr_items +260\r?$' "$OUT/stats" || fail stats "curr_items 260 missing"
# dump: an `add` command and the value for every key, the TTL kept, escapes decoded.
[ "$(grep -c '^add ' "$OUT/dump")" = 260 ] || fail dump "not 260 add lines"
grep -q $'^add mt:key:42 42 0 8\r$' "$OUT/dump" || fail dump "mt:key:42 missing"
grep -q $'^value-42\r$' "$OUT/dump" || fail dump "value of mt:key:42 missing"
grep -q $'^add odd%20key 7 0 3\r$' "$OUT/dump" || fail dump "odd%20key missing"
grep -qE '^add mt:ttl 0 [0-9]{10} 2' "$OUT/dump" || fail dump "mt:ttl without its unix exptime"
echo "memcached-tool display, stats, dump: ok against $BIN (-t $THREADS)"
