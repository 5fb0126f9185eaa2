#!/usr/bin/env bash
# Warm restart benchmark (issue #19): a cache of -m MEM full of VALUE-byte items, stopped
# with SIGTERM and started again on the same -e directory. Reports:
#   - stop time: SIGTERM to exit (the save included);
#   - start time: process start to the first `stats` reply (the load included);
#   - items restored against items stored;
#   - the hit ratio of one second of uniform gets over the key space just before the
#     stop and in the first second after the start (equal when nothing was lost).
#
# Usage: scripts/restart-bench.sh            (builds the server and mcbench if needed)
# Env:   MEM [4096] megabytes, VALUE [100] bytes, KEYS [MEM*1048576/VALUE: more than fit,
#        so the cache is full and evicting], THREADS [server default: one per CPU],
#        PORT [21299], DIR [a new directory under /dev/shm] (-e target: tmpfs, as
#        RuntimeDirectory= is), ROUNDS [1] stop/start cycles, SAVE_TIMEOUT [60]
#        (--restart-save-timeout: the measured stop is not cut short at 8 s).
# Needs MEM megabytes of RAM for the server plus as much tmpfs for the files.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MEM=${MEM:-4096}
VALUE=${VALUE:-100}
KEYS=${KEYS:-$((MEM * 1048576 / VALUE))}
PORT=${PORT:-21299}
ROUNDS=${ROUNDS:-1}
SAVE_TIMEOUT=${SAVE_TIMEOUT:-60}
BIN=$ROOT/target/release/memcached-rs
MCBENCH=$ROOT/target/release/mcbench
[ -x "$BIN" ] && [ -x "$MCBENCH" ] || (cd "$ROOT" && cargo build --release --workspace)
DIR=${DIR:-$(mktemp -d /dev/shm/restart-bench.XXXXXX)}
LOG=$DIR/server.log
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

now() { date +%s.%N; }
# One `stats` field. Through bash's /dev/tcp, reading up to END: the reply is taken the
# moment it is complete (nc -q1 would wait a second after sending, which blurred the
# start time by up to that much).
stat() {
    local line k v
    { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 0
    printf 'stats\r\n' >&3
    while IFS=' ' read -r -t 120 line k v <&3; do
        v=${v%$'\r'}
        [ "${line%$'\r'}" = END ] && break
        [ "$k" = "$1" ] && echo "$v"
    done
    exec 3>&-
}

start() {
    local t0
    t0=$(now)
    "$BIN" -p "$PORT" -l 127.0.0.1 -m "$MEM" ${THREADS:+-t "$THREADS"} -e "$DIR/cache" \
        --restart-save-timeout "$SAVE_TIMEOUT" 2>>"$LOG" &
    SERVER_PID=$!
    until [ -n "$(stat pid 2>/dev/null)" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG"; echo "server died" >&2; exit 1; }
        sleep 0.01
    done
    START_S=$(echo "$(now) - $t0" | bc)
}

stop() {
    local t0
    t0=$(now)
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
    STOP_S=$(echo "$(now) - $t0" | bc)
}

# One second of uniform gets over the key space; prints the hit ratio.
hit_ratio() {
    "$MCBENCH" --servers "127.0.0.1:$PORT" --keys "$KEYS" --value-size "$VALUE" --ratio 1:0 \
        --threads 1 --connections 20 --pipeline 8 --duration 1 --json -q 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.4f" % (r["hits"] / max(1, r["hits"] + r["misses"])))'
}

start
echo "filling -m $MEM with $KEYS keys of $VALUE B (mcbench preload)..." >&2
t0=$(now)
"$MCBENCH" --servers "127.0.0.1:$PORT" --keys "$KEYS" --value-size "$VALUE" --ratio 0:1 --preload \
    --threads 2 --connections 8 --requests 1 -q >/dev/null 2>&1
echo "filled in $(echo "$(now) - $t0" | bc | cut -c1-6) s" >&2
printf 'load: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    before=$(hit_ratio)
    stored=$(stat curr_items)
    bytes=$(stat bytes)
    stop
    files=$(du -sm "$DIR" | cut -f1)
    start
    cpu=$(echo "$(stat rusage_user) + $(stat rusage_system)" | bc)
    after=$(hit_ratio)
    restored=$(stat restart_items)
    load=$(stat restart_load_seconds)
    printf 'round %s: stop %.2f s (files %s MB)  start %.2f s (load %s s, %s CPU s)  items restored %s of %s (%s bytes)  hit ratio before %s, first second after %s\n' \
        "$round" "$STOP_S" "$files" "$START_S" "$load" "$cpu" "$restored" "$stored" "$bytes" "$before" "$after"
done
grep 'warm restart' "$LOG" >&2 || true
