#!/usr/bin/env bash
# User-space instructions a server spends per request, counted by valgrind's callgrind:
# the figure to compare code changes with where perf has no hardware counters (VMs
# without a PMU: `perf stat -e instructions` says "not supported") or where CPU time is
# too noisy (a shared machine). Exact and repeatable within a few percent, unlike CPU
# time. What it leaves out: the kernel's work (syscalls, TCP), cache misses and stalls.
# Under valgrind the server runs ~50x slower, so a round of reads holds more pipelined
# requests than natively: per-round costs (io_uring, wakeups) are amortized over more
# requests; parse, store and reply costs per request are what they are natively.
#
# For each workload: start the server (-t 1) under callgrind, preload KEYS keys, zero
# the counters, run REQUESTS requests with mcbench (one connection set, get:set 9:1),
# dump, and divide by the commands served (cmd_get + cmd_set from stats).
#   p1 p16     classic get/set at pipeline 1 and 16 (50 connections)
#   mp1 mp16   the same in the meta protocol (mg KEY v f, ms KEY LEN F<flags>)
# Prints one line per workload: instructions/request; the callgrind files stay in OUT
# for `callgrind_annotate` (e.g. `callgrind_annotate --inclusive=yes OUT/mp16.out`).
#
# Usage: scripts/instructions-per-request.sh [path/to/memcached-rs] (memcached 1.6
#        itself does not start under valgrind: it cannot raise its file limit there)
# Env:   WORKLOADS ["p16 mp16 p1 mp1"]  REQUESTS [100000]  KEYS [20000]
#        OUT [target/instructions-per-request]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=$(realpath "${1:-target/release/memcached-rs}")
WORKLOADS=${WORKLOADS:-"p16 mp16 p1 mp1"}
REQUESTS=${REQUESTS:-100000}
KEYS=${KEYS:-20000}
OUT=${OUT:-$ROOT/target/instructions-per-request}
MCBENCH=$ROOT/target/release/mcbench
command -v valgrind > /dev/null || { echo "instructions-per-request: needs valgrind" >&2; exit 1; }
[[ -x $MCBENCH && -x $BIN ]] || cargo build --release --workspace
mkdir -p "$OUT"
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
# valgrind takes longer than start's 5 s to listen: 30 s.
WAIT_TRIES=600
commands() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"stats\r\n"); buf = b""
while not buf.endswith(b"END\r\n"):
    buf += s.recv(65536)
st = dict(l.split()[1:3] for l in buf.decode().splitlines() if l.startswith("STAT "))
print(int(st["cmd_get"]) + int(st["cmd_set"]))
PY
}
# start runs "$bin -p PORT ..."; valgrind goes in front through this wrapper.
WRAP=$OUT/callgrind-wrapper.sh
# shellcheck disable=SC2016  # expanded by the wrapper, not here
printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file="$CG_OUT" "$CG_BIN" "$@"\n' > "$WRAP"
chmod +x "$WRAP"

for wl in $WORKLOADS; do
    case $wl in
        p1) args=(--protocol text --pipeline 1) ;;
        p16) args=(--protocol text --pipeline 16) ;;
        mp1) args=(--protocol meta --pipeline 1) ;;
        mp16) args=(--protocol meta --pipeline 16) ;;
        *) echo "instructions-per-request: unknown workload $wl" >&2; exit 1 ;;
    esac
    rm -f "$OUT/$wl.out"*
    CG_OUT=$OUT/$wl.out CG_BIN=$BIN SERVER_LOG=$OUT/$wl.log start "$WRAP" -t 1 -m 1024 -c 4096
    "$MCBENCH" --servers "127.0.0.1:$PORT" --keys "$KEYS" --value-size 64-1024 --preload --ratio 0:1 \
        --threads 1 --cpus 1 --connections 8 --requests 1 -q > /dev/null
    c0=$(commands "$PORT")
    callgrind_control -z "$PID" > /dev/null 2>&1
    "$MCBENCH" --servers "127.0.0.1:$PORT" --threads 1 --cpus 1 --keys "$KEYS" --connections 50 --ratio 9:1 \
        --value-size 64-1024 "${args[@]}" --requests "$REQUESTS" --warmup 0 -q > /dev/null
    callgrind_control -d "$PID" > /dev/null 2>&1
    c1=$(commands "$PORT")
    # The dump is what the run cost; the server need not exit cleanly under valgrind.
    kill -9 "$PID"; wait "$PID" 2> /dev/null || true
    dumps=("$OUT/$wl.out".*)
    mv "${dumps[0]}" "$OUT/$wl.out"
    ir=$(awk '/^summary:/ {print $2; exit}' "$OUT/$wl.out")
    echo "$wl: $(( ir / (c1 - c0) )) instructions/request ($(( c1 - c0 )) requests, $(basename "$BIN"))"
done
