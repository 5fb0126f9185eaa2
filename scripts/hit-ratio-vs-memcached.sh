#!/usr/bin/env bash
# Eviction quality against memcached 1.6 at the same -m (issue 5).
#
# 1. zipf: mcbench, keys zipf-distributed (exponent ZIPF), a working set of KEYS keys
#    of VALUE bytes (several times -m), every key set once first (--preload), then
#    REQUESTS gets and sets (RATIO, 1:1: enough sets to turn the cache over several
#    times, as the sets are what brings keys in) to reach the steady state, then
#    REQUESTS more measured
#    (fixed counts, so a slower server is not judged on less warm-up);
#    hit ratio = hits / gets of the measured pass.
# 2. scan: a hot set (HOT keys of 100 B) is read 3 times, then a one-off scan sets
#    cold keys worth 2x -m once, without reading the hot set; then the hot set is
#    read back: the share still there. A second run reads the hot set once every
#    10 000 scan sets (a hot set that stays in use during the scan).
#
# Usage: scripts/hit-ratio-vs-memcached.sh [-m MB]
# Env:   MEMCACHED OURS MCBENCH KEYS VALUE ZIPF REQUESTS RATIO HOT
# Exit status 1 if ours hits less often than memcached in any run.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=64
[ "${1:-}" = -m ] && MB=$2
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
OURS=${OURS:-target/release/memcached-rs}
MCBENCH=${MCBENCH:-target/release/mcbench}
KEYS=${KEYS:-$((MB * 30000))}
VALUE=${VALUE:-100}
ZIPF=${ZIPF:-0.99}
REQUESTS=${REQUESTS:-5000000}
RATIO=${RATIO:-1:1}
HOT=${HOT:-20000}
[ -x "$OURS" ] || cargo build --release --bin memcached-rs
[ -x "$MCBENCH" ] || cargo build --release -p mcbench
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh  # the cd above put us at the repository root

SCAN=$(cat <<'EOF'
import socket, sys
port, mb, hot, interleave = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
buf = b""
def read_until(end):
    global buf
    while end not in buf:
        d = s.recv(1 << 20)
        if not d: raise SystemExit("closed")
        buf += d
    i = buf.index(end) + len(end)
    out, buf = buf[:i], buf[i:]
    return out
v = b"h" * 100
def read_hot():
    hits = 0
    for j in range(0, hot, 100):
        s.sendall(b"get " + b" ".join(b"hot:%012d" % k for k in range(j, min(hot, j + 100))) + b"\r\n")
        hits += read_until(b"END\r\n").count(b"VALUE ")
    return hits
s.sendall(b"".join(b"set hot:%012d 0 0 100 noreply\r\n" % k + v + b"\r\n" for k in range(hot)))
for _ in range(3):
    assert read_hot() == hot, "hot set stored"
n = 2 * (mb << 20) // 100
chunk = 10_000
for i in range(0, n, chunk):
    s.sendall(b"".join(b"set scn:%012d 0 0 100 noreply\r\n" % k + v + b"\r\n" for k in range(i, i + chunk)))
    if interleave:
        read_hot()
s.sendall(b"stats\r\n")
ev = [l.split()[2].decode() for l in read_until(b"END\r\n").split(b"\r\n") if l.startswith(b"STAT evictions ")][0]
print(read_hot() * 100.0 / hot, ev)
EOF
)

declare -A ZHIT SCAN1 SCAN2
SERVERS=("memcached|$MEMCACHED|-t 1" "memcached-rs -t 1|$OURS|-t 1" "memcached-rs -t 2|$OURS|-t 2")
for spec in "${SERVERS[@]}"; do
    IFS='|' read -r label bin targs <<<"$spec"
    # shellcheck disable=SC2086
    start "$bin" -m "$MB" $targs
    zipf=(--servers "127.0.0.1:$PORT" --keys "$KEYS" --key-dist "zipf:$ZIPF" --value-size "$VALUE"
        --ratio "$RATIO" --requests "$REQUESTS" --connections 8 --pipeline 8 --quiet --json --label "$label")
    # A first pass brings the cache to its steady state (the preload leaves it full of
    # the last keys set, the coldest); the second pass is measured.
    "$MCBENCH" "${zipf[@]}" --preload >/dev/null
    json=$("$MCBENCH" "${zipf[@]}")
    ZHIT[$label]=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.2f" % (100.0*r["hits"]/max(1,r["gets"])))' <<<"$json")
    echo "  $label zipf: ${ZHIT[$label]}% hits" >&2
    stop
    # shellcheck disable=SC2086
    start "$bin" -m "$MB" $targs
    SCAN1[$label]=$(python3 -c "$SCAN" "$PORT" "$MB" "$HOT" 0)
    stop
    # shellcheck disable=SC2086
    start "$bin" -m "$MB" $targs
    SCAN2[$label]=$(python3 -c "$SCAN" "$PORT" "$MB" "$HOT" 1)
    stop
    echo "  $label scan: ${SCAN1[$label]} / ${SCAN2[$label]}" >&2
done

FAIL=0
base_z=${ZHIT[memcached]}
read -r base_s1 _ <<<"${SCAN1[memcached]}"
read -r base_s2 _ <<<"${SCAN2[memcached]}"
echo
echo "## Hit ratios at -m $MB (memcached $("$MEMCACHED" -V | awk '{print $2}'))"
echo
echo "zipf: $KEYS keys of $VALUE B, zipf:$ZIPF, get:set $RATIO, preload + $REQUESTS requests, then $REQUESTS measured."
echo "scan: $HOT hot keys of 100 B read 3 times, then 2x -m of cold sets; hot keys still held."
echo
echo "| server | zipf hit ratio | hot set kept after scan (no reads during it) | ... (hot set read every 10k sets) | evictions in scan |"
echo "|---|---|---|---|---|"
for spec in "${SERVERS[@]}"; do
    IFS='|' read -r label _ _ <<<"$spec"
    read -r s1 ev1 <<<"${SCAN1[$label]}"
    read -r s2 _ <<<"${SCAN2[$label]}"
    mark=""
    if [ "$label" != memcached ]; then
        for pair in "${ZHIT[$label]} $base_z" "$s1 $base_s1" "$s2 $base_s2"; do
            read -r a b <<<"$pair"
            if [ "$(echo "$a < $b" | bc)" = 1 ]; then mark=" (WORSE than memcached)"; FAIL=1; fi
        done
    fi
    echo "| $label$mark | ${ZHIT[$label]}% | $s1% | $s2% | $ev1 |"
done
exit $FAIL
