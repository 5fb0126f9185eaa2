#!/usr/bin/env bash
# Soak test: mixed load on a real memcached-rs for a set time, with connection churn,
# checking replies, errors and the server's memory every minute.
#
#   scripts/soak.sh                      # 10 minutes
#   SOAK_SECONDS=240 scripts/soak.sh     # 4 minutes
#
# Load: mcbench (bench/, checks every reply and every value byte) in a new process
# each interval, with a different workload each time (plain gets, multi-gets, deep
# pipelines, large values that force eviction), so its connections churn every minute;
# beside it a churn client opens a connection for a few requests at a time, checks
# every reply, and sometimes dies mid-request or mid-value.
# Two of the workloads write many times -m per interval with values up to -I (1 MB):
# one with sizes spread evenly up to it, one with 10-500 KB values.
# Each interval prints: requests, errors, churned connections, RSS (now, between two
# loads, and peak so far: VmHWM), items, evictions.
# Fails (exit 1) on any error, a dead server, RSS between two loads above
# SOAK_RSS_MAX_MIB (default -m + 10% + SOAK_SLACK_MIB, issue 5's bound, + 1 MiB per
# executor: the receive buffers every executor keeps in its ring since the io_uring
# data path, 256 x 4 KiB, glommio patch 10), peak RSS above
# SOAK_PEAK_MAX_MIB (default 8 MiB more: the loads' connections hold up to two values
# of up to 1 MB each while they move them), or RSS growing more than
# SOAK_RSS_GROWTH_MIB (default 8) over what it was after the first round of the
# workloads (the cache is full by then).
#
# Env: SOAK_SECONDS (600), SOAK_INTERVAL (60), SOAK_SERVER_ARGS ("-t 2 -m 64 -c 4096"),
# SOAK_RSS_MAX_MIB (-m * 1.1 + SOAK_SLACK_MIB + -t), SOAK_SLACK_MIB (8), SOAK_PEAK_MAX_MIB,
# SOAK_RSS_GROWTH_MIB (8), SOAK_NO_BUILD=1 to use the binaries already built,
# SOAK_SERVER (target/release/memcached-rs) to soak another build.
# A compressed churn run (hours of turnover in minutes, an RSS sample every 30 s):
#   SOAK_SECONDS=900 SOAK_INTERVAL=30 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SOAK_SECONDS:-600}"
interval="${SOAK_INTERVAL:-60}"
server_args="${SOAK_SERVER_ARGS:--t 2 -m 64 -c 4096}"
growth_mib="${SOAK_RSS_GROWTH_MIB:-8}"
# The value of a flag in the server args, or the default given.
server_flag() {
    awk -v f="$1" -v d="$2" '{for (i = 1; i < NF; i++) if ($i == f) v = $(i + 1)} END {print v ? v : d}' <<<"$server_args"
}
# For the default RSS bound: -m (memcached's default 64) and -t (default: one executor
# per CPU; each keeps 1 MiB of receive buffers in its ring).
m_mib=$(server_flag -m 64)
threads=$(server_flag -t "$(nproc)")
max_mib="${SOAK_RSS_MAX_MIB:-$(( m_mib * 11 / 10 + ${SOAK_SLACK_MIB:-8} + threads ))}"
peak_max_mib="${SOAK_PEAK_MAX_MIB:-$(( max_mib + 8 ))}"

if [ -z "${SOAK_NO_BUILD:-}" ]; then
    cargo build --release --bin memcached-rs -p memcached-rs -p mcbench 2>&1 | tail -1
fi
server=${SOAK_SERVER:-target/release/memcached-rs}
bench=target/release/mcbench
[ -x "$bench" ] || { echo "soak.sh: $bench missing (build the bench/ crate)" >&2; exit 2; }

work=$(mktemp -d)
churn_pid=
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh
ON_EXIT='[ -n "$churn_pid" ] && kill "$churn_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"'
# shellcheck disable=SC2086
SERVER_LOG=$work/server.err start "$server" $server_args
port=$PORT server_pid=$PID

# The churn client: short-lived connections, every reply checked. Writes its running
# totals to $work/churn every second; any wrong reply is an error (and is printed).
cat >"$work/churn.py" <<'PY'
import os, random, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(6)
conns = ops = errors = aborted = 0
last = 0.0

def read_exactly(s, n, buf):
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed")
        buf += d
    return buf

def expect(s, want, buf):
    buf = read_exactly(s, len(want), buf)
    if buf[:len(want)] != want:
        raise ValueError("want %r got %r" % (want[:80], bytes(buf[:80])))
    return buf[len(want):]

while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        conns += 1
        buf = bytearray()
        if rng.random() < 0.1:
            # Die mid-value: the item must never be visible.
            s.sendall(b"set soak:partial 0 0 1000\r\n" + b"p" * rng.randrange(1000))
            s.close()
            aborted += 1
            continue
        for _ in range(rng.randrange(1, 20)):
            k = b"soak:%d" % rng.randrange(5000)
            v = os.urandom(rng.randrange(1, 3000)).hex().encode()[: rng.randrange(1, 3000)]
            s.sendall(b"set %s 7 0 %d\r\n%s\r\nget %s soak:partial\r\n" % (k, len(v), v, k))
            buf = expect(s, b"STORED\r\n", buf)
            # The value may already be evicted, never different or partial.
            head = b"VALUE %s 7 %d\r\n%s\r\nEND\r\n" % (k, len(v), v)
            buf = read_exactly(s, 5, buf)
            if buf[:5] == b"END\r\n":
                buf = buf[5:]
            else:
                buf = expect(s, head, buf)
            s.sendall(b"incr soak:n%d 1\r\n" % rng.randrange(10))
            buf = read_exactly(s, 3, buf)
            while b"\r\n" not in buf:
                buf = read_exactly(s, len(buf) + 1, buf)
            line, _, buf = bytes(buf).partition(b"\r\n")
            buf = bytearray(buf)
            if line == b"NOT_FOUND":
                s.sendall(b"add soak:n%d 0 0 1 noreply\r\n0\r\n" % rng.randrange(10))
            elif not line.isdigit():
                raise ValueError("incr: %r" % line)
            ops += 3
        if rng.random() < 0.2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(b"get soak:1 soak:2 soak:3\r\n")
            aborted += 1
        s.close()
    except Exception as e:  # a wrong reply, a timeout, a refused connection
        errors += 1
        print("churn error: %r" % (e,), file=sys.stderr, flush=True)
        time.sleep(0.1)
    now = time.time()
    if now - last > 1:
        last = now
        with open(out + ".tmp", "w") as f:
            f.write("%d %d %d %d\n" % (conns, ops, errors, aborted))
        os.replace(out + ".tmp", out)
PY
python3 "$work/churn.py" "$port" "$work/churn" 2>"$work/churn.err" &
churn_pid=$!

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
stat() { printf 'stats\r\nquit\r\n' | timeout 5 nc -q 1 127.0.0.1 "$port" | tr -d '\r' | awk -v n="$1" '$2==n {print $3}'; }

# Workloads, one per interval in turn.
workloads=(
    "--connections 20 --pipeline 1 --value-size 64-1024 --ratio 9:1"
    "--connections 10 --pipeline 16 --value-size 16-4096 --ratio 4:1"
    "--connections 10 --pipeline 4 --multiget 10 --value-size 64-2048 --ratio 9:1"
    "--connections 8 --pipeline 2 --value-size 10000-500000 --ratio 1:1 --keys 20000"
    "--connections 4 --pipeline 2 --value-size 1-1048000 --ratio 1:3 --keys 4000"
)

echo "soak: memcached-rs $server_args on port $port, ${seconds}s, checks every ${interval}s, RSS bound ${max_mib} MiB (peak ${peak_max_mib} MiB)"
printf '%-6s %-10s %-9s %-7s %-8s %-8s %-8s %-9s %-9s %-9s %s\n' \
    round bench_reqs req/s errors churn_c churn_op churn_er rss_kib peak_kib items evictions
start=$SECONDS
minute=0
baseline=
failed=0
while [ $((SECONDS - start)) -lt "$seconds" ]; do
    minute=$((minute + 1))
    left=$((seconds - (SECONDS - start)))
    run=$(( (left < interval ? left : interval) - 2 ))
    [ "$run" -ge 1 ] || run=1
    w=${workloads[$(( (minute - 1) % ${#workloads[@]} ))]}
    # shellcheck disable=SC2086
    if ! "$bench" --servers "127.0.0.1:$port" --threads 1 --duration "$run" --json --quiet $w \
        >"$work/bench.json" 2>"$work/bench.err"; then
        echo "mcbench failed:"; tail -5 "$work/bench.err"; failed=1
    fi
    read -r breqs brate berrs < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["requests"], int(r["throughput"]), r["errors"] + r.get("preload_errors", 0))
if r["errors"]:
    print(r["errors_by_kind"], r["error_samples"][:3], file=sys.stderr)
' "$work/bench.json" 2>>"$work/bench.err" || echo "0 0 1")
    read -r cconns cops cerrs _ <"$work/churn" 2>/dev/null || { cconns=0 cops=0 cerrs=0; }
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server died:"; tail -5 "$work/server.err"; exit 1
    fi
    rss=$(rss_kib)
    items=$(stat curr_items); evictions=$(stat evictions)
    peak=$(peak_kib)
    printf '%-6s %-10s %-9s %-7s %-8s %-8s %-8s %-9s %-9s %-9s %s\n' \
        "$minute" "$breqs" "$brate" "$berrs" "$cconns" "$cops" "$cerrs" "$rss" "$peak" "$items" "$evictions"
    if [ "$minute" -le "${#workloads[@]}" ] && [ "$rss" -gt "${baseline:-0}" ]; then baseline=$rss; fi
    if [ "$berrs" != 0 ] || [ "$cerrs" != 0 ]; then
        failed=1
        tail -3 "$work/bench.err" "$work/churn.err" 2>/dev/null
    fi
    if [ "$rss" -gt $((baseline + growth_mib * 1024)) ]; then
        echo "RSS grew from $baseline KiB to $rss KiB (bound +${growth_mib} MiB)"; failed=1
    fi
    if [ "$rss" -gt $((max_mib * 1024)) ]; then
        echo "RSS $rss KiB over ${max_mib} MiB"; failed=1
    fi
    if [ "$peak" -gt $((peak_max_mib * 1024)) ]; then
        echo "peak RSS $peak KiB over ${peak_max_mib} MiB"; failed=1
    fi
    if [ "$failed" != 0 ]; then
        echo "soak: FAILED in round $minute"; exit 1
    fi
done
echo "soak: ok, $minute intervals, RSS $baseline -> $(rss_kib) KiB"
