#!/usr/bin/env bash
# Where a server's CPU goes per request: memcached and memcached-rs, one pinned server
# core each, driven by memtier_benchmark and by mcbench (get:set 9:1, pipeline 1, 50
# connections, the generator on the other core), with `perf record -g` on the server.
# Prints, per server and generator, CPU us per request and the share of its samples in
# each part of the work, classified by the frames of each sample's stack:
#   user           the server's own code (parsing, the store, the executor)
#   tcp send       tcp_sendmsg and below: the reply's way out, and over loopback the
#                  peer's receive path too (softirq run on the sender's CPU)
#   tcp receive    the request's way in: tcp_recvmsg / copying out of the socket
#   io_uring       io_uring's own work (submission, completions, task work, buffers)
#   epoll          epoll_wait / ep_poll (memcached's event loop)
#   sched          sleeping and waking (schedule, try_to_wake_up, idle entry)
#   syscall entry  entering and leaving the kernel (entry_SYSCALL, mitigations)
#   other kernel   the rest
# The question it answers (#14): what part of a pipeline-1 request the event mechanism
# can change at all, and why the two generators see different ratios.
#
# Usage: scripts/profile-server.sh [path/to/memcached-rs]
# Env:   DURATION [6] s per profile, KEYS [100000], GENS ["memtier mcbench"], PIPELINE [1],
#        OUT [target/profile-server]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-6}
KEYS=${KEYS:-100000}
GENS=${GENS:-"memtier mcbench"}
OUT=${OUT:-$ROOT/target/profile-server}
OURS=${1:-$ROOT/target/release/memcached-rs}
MCBENCH=$ROOT/target/release/mcbench
MEMTIER=${MEMTIER:-$("$ROOT/../shared/tools/build-memtier.sh" 2>/dev/null || command -v memtier_benchmark || true)}
[[ -x $OURS && -x $MCBENCH ]] || cargo build --release --workspace
[[ -x ${MEMTIER:-} ]] || GENS=${GENS//memtier/}
command -v perf > /dev/null || { echo "profile-server: needs perf (linux-perf)" >&2; exit 1; }
mkdir -p "$OUT"
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
TICK=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
commands() {
    printf 'stats\r\n' | timeout 2 nc -q1 127.0.0.1 "$1" | tr -d '\r' |
        awk '$2 == "cmd_get" || $2 == "cmd_set" { n += $3 } END { print n }'
}

for server in memcached memcached-rs; do
    bin=/usr/bin/memcached; [[ $server == memcached-rs ]] && bin=$OURS
    SERVER_CPUS=0 SERVER_LOG=$OUT/$server.log start "$bin" -t 1 -m 1024 -c 4096
    "$MCBENCH" --servers "127.0.0.1:$PORT" --keys "$KEYS" --value-size 64-1024 --preload \
        --ratio 0:1 --threads 1 --cpus 1 --connections 8 --requests 1 -q > /dev/null
    [[ $GENS == *memtier* ]] && taskset -c 1 "$MEMTIER" -s 127.0.0.1 -p "$PORT" -P memcache_text -t 1 -c 8 \
        --ratio=1:0 --key-minimum=1 --key-maximum="$KEYS" --key-pattern=P:P --data-size-range=64-1024 \
        --requests=allkeys --hide-histogram > /dev/null 2>&1
    for gen in $GENS; do
        data=$OUT/$server-$gen.data
        c0=$(commands "$PORT"); t0=$(ticks "$PID")
        perf record -q -g -F 1999 -p "$PID" -o "$data" -- sleep "$DURATION" 2> /dev/null &
        perfpid=$!
        if [[ $gen == memtier ]]; then
            taskset -c 1 "$MEMTIER" -s 127.0.0.1 -p "$PORT" -P memcache_text -t 1 -c 50 --ratio=1:9 \
                --key-minimum=1 --key-maximum="$KEYS" --key-pattern=R:R --data-size-range=64-1024 \
                --pipeline="${PIPELINE:-1}" --test-time="$DURATION" --hide-histogram > /dev/null 2>&1
        else
            "$MCBENCH" --servers "127.0.0.1:$PORT" --threads 1 --cpus 1 --keys "$KEYS" --connections 50 \
                --ratio 9:1 --value-size 64-1024 --pipeline "${PIPELINE:-1}" --duration "$DURATION" --warmup 0 -q > /dev/null
        fi
        wait "$perfpid" || true
        c1=$(commands "$PORT"); t1=$(ticks "$PID")
        perf script -i "$data" 2> /dev/null | python3 scripts/lib/classify_stacks.py \
            "$server" "$gen" "$(( c1 - c0 ))" "$(python3 -c "print(($t1 - $t0) / $TICK)")"
    done
    stop
done
