#!/usr/bin/env bash
# How many items memcached-rs holds in the same -m as memcached 1.6, and what RSS it
# takes to hold them (issue 5).
#
# For each value size (16-byte keys, flags 0, no exptime) every server is filled with
# distinct keys until `stats` shows evictions, then a further quarter of that many keys
# (the steady state: the index has settled), and then:
#   items     curr_items from `stats`
#   sampled   items held estimated by reading back a random sample of the keys written
#   B/item    -m / items
#   RSS       VmRSS of the server process (/proc/PID/status)
# Then a mixed run (value sizes log-uniform from 1 B up to what -I allows) writes
# 3x -m of data twice over, checks that RSS stays within -m + 10% + SLACK_MB, and
# reads every key back: items and value bytes still held.
#
# Usage: scripts/memory-vs-memcached.sh [-m MB] [-s "32 100 1000"] [--no-mixed]
# Env:   MEMCACHED=/usr/bin/memcached  OURS=target/release/memcached-rs  SLACK_MB=16
# Exit status 1 if a target is missed: items >= 1.5x memcached's at 32 B, 1.3x at
# 100 B, 1.0x at 1000 B (for each of ours -t 1 and -t 2), RSS <= -m*1.1 + SLACK_MB.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=256
SIZES="32 100 1000"
MIXED=1
while [ $# -gt 0 ]; do
    case "$1" in
        -m) MB=$2; shift 2 ;;
        -s) SIZES=$2; shift 2 ;;
        --no-mixed) MIXED=0; shift ;;
        *) echo "usage: $0 [-m MB] [-s \"32 100 1000\"] [--no-mixed]" >&2; exit 2 ;;
    esac
done
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
OURS=${OURS:-target/release/memcached-rs}
SLACK_MB=${SLACK_MB:-16}
[ -x "$OURS" ] || cargo build --release --bin memcached-rs
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh  # the cd above put us at the repository root

# The filler: one connection, pipelined `set ... noreply` in chunks, `stats` between.
FILL=$(cat <<'EOF'
import os, random, socket, sys
port, pid, mode, arg, mb = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def read_until(end):
    global buf
    while end not in buf:
        d = s.recv(1 << 20)
        if not d: raise SystemExit("server closed the connection")
        buf += d
    i = buf.index(end) + len(end)
    out, buf = buf[:i], buf[i:]
    return out
def stats():
    s.sendall(b"stats\r\n")
    return {l.split()[1].decode(): l.split()[2].decode() for l in read_until(b"END\r\n").split(b"\r\n") if l.startswith(b"STAT ")}
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) * 1024
KEY = b"%016d"
if mode == "fixed":
    size = arg
    value = b"v" * size
    chunk = 200_000 if size < 500 else 40_000
    i = 0
    first_evict = None
    stop_at = None
    while True:
        s.sendall(b"".join(b"set " + KEY % k + b" 0 0 %d noreply\r\n" % size + value + b"\r\n" for k in range(i, i + chunk)))
        i += chunk
        st = stats()
        if first_evict is None and int(st["evictions"]) > 0:
            first_evict = i
            stop_at = i + i // 4
        if stop_at is not None and i >= stop_at:
            break
        if i > 50_000_000: raise SystemExit("no eviction after 50 M sets")
    st = stats()
    # Read back a random sample of everything written.
    rng = random.Random(1)
    sample = [rng.randrange(i) for _ in range(20_000)]
    hits = 0
    for j in range(0, len(sample), 100):
        s.sendall(b"get " + b" ".join(KEY % k for k in sample[j:j + 100]) + b"\r\n")
        reply = read_until(b"END\r\n")
        hits += reply.count(b"VALUE ")
    sampled = hits * i // len(sample)
    print(st["curr_items"], sampled, rss(), st["evictions"], i)
else:
    # Mixed sizes, log-uniform from 1 B to the largest value -I allows; 3x -m written, twice.
    imax = arg
    vmax = imax - 56 - 17 - 2
    rng = random.Random(2)
    blob = os.urandom(vmax)
    peak = 0
    written = 0
    k = 0
    sizes = []
    for rnd in range(2):
        target = 3 * mb << 20
        done = 0
        while done < target:
            parts = []
            for _ in range(200):
                n = max(1, min(vmax, int(2 ** rng.uniform(0, 20))))
                parts.append(b"set " + KEY % k + b" 0 0 %d noreply\r\n" % n + blob[:n] + b"\r\n")
                sizes.append(n)
                k += 1
                done += n
            s.sendall(b"".join(parts))
            stats()
            peak = max(peak, rss())
    st = stats()
    # Read every key back: the items still held and the sum of their value sizes.
    held = held_bytes = 0
    kept = {}
    for j in range(0, k, 100):
        s.sendall(b"get " + b" ".join(KEY % i for i in range(j, min(k, j + 100))) + b"\r\n")
        while True:
            line = read_until(b"\r\n")
            if line == b"END\r\n":
                break
            _, key, _, n = line.split()
            n = int(n)
            while len(buf) < n + 2:
                d = s.recv(1 << 20)
                if not d: raise SystemExit("server closed the connection")
                buf += d
            if n != sizes[int(key)] or buf[:n] != blob[:n]:
                raise SystemExit("wrong value for key %s" % key.decode())
            buf = buf[n + 2:]
            held += 1
            held_bytes += n
            kept[n.bit_length()] = kept.get(n.bit_length(), 0) + 1
    # Which sizes are held: memcached's per-class slabs keep small items that a global
    # FIFO over segments evicts with the rest.
    wrote = {}
    for n in sizes:
        wrote[n.bit_length()] = wrote.get(n.bit_length(), 0) + 1
    print("  held/written by value size (< 2^b B):",
          " ".join("%d:%d/%d" % (b, kept.get(b, 0), wrote[b]) for b in sorted(wrote)), file=sys.stderr)
    print(st["curr_items"], peak, rss(), st["evictions"], k, held, held_bytes, st["bytes"])
EOF
)

declare -A ITEMS SAMPLED RSS
run_fixed() { # label bin size args...
    local label=$1 bin=$2 size=$3; shift 3
    start "$bin" -m "$MB" "$@"
    read -r items sampled rss ev written < <(python3 -c "$FILL" "$PORT" "$PID" fixed "$size" "$MB")
    stop
    ITEMS[$label/$size]=$items SAMPLED[$label/$size]=$sampled RSS[$label/$size]=$rss
    printf '  %-22s %5d B: %9d items (sampled %9d), RSS %6.1f MB, %s evictions, %s sets\n' \
        "$label" "$size" "$items" "$sampled" "$(echo "$rss/1048576" | bc -l)" "$ev" "$written" >&2
}

echo "Filling each server to eviction at -m $MB (16-byte keys)..." >&2
for size in $SIZES; do
    run_fixed memcached "$MEMCACHED" "$size" -t 1
    run_fixed "memcached-rs -t 1" "$OURS" "$size" -t 1
    run_fixed "memcached-rs -t 2" "$OURS" "$size" -t 2
done

FAIL=0
LIMIT_RSS=$(( MB * 1048576 * 11 / 10 + SLACK_MB * 1048576 ))
target() { case $1 in 32) echo 1.5 ;; 100) echo 1.3 ;; *) echo 1.0 ;; esac; }
echo
echo "## Items held at -m $MB, 16-byte keys (memcached $("$MEMCACHED" -V | awk '{print $2}'))"
echo
echo "| value | server | items (curr_items) | items (sampled) | B/item (-m/items) | RSS MB | items vs memcached | target |"
echo "|---|---|---|---|---|---|---|---|"
for size in $SIZES; do
    base=${ITEMS[memcached/$size]}
    for label in memcached "memcached-rs -t 1" "memcached-rs -t 2"; do
        items=${ITEMS[$label/$size]} rss=${RSS[$label/$size]}
        ratio=$(echo "scale=3; $items / $base" | bc)
        bpi=$(echo "scale=1; $MB * 1048576 / $items" | bc)
        rssmb=$(echo "scale=1; $rss / 1048576" | bc)
        t="" ok=""
        if [ "$label" != memcached ]; then
            t=">= $(target "$size")x"
            if [ "$(echo "$ratio >= $(target "$size")" | bc)" = 1 ] && [ "$rss" -le "$LIMIT_RSS" ]; then ok=" ok"; else ok=" MISSED"; FAIL=1; fi
        fi
        echo "| $size B | $label | $items | ${SAMPLED[$label/$size]} | $bpi | $rssmb | ${ratio}x | $t$ok |"
    done
done

if [ "$MIXED" = 1 ]; then
    echo
    echo "## Mixed sizes (1 B .. -I 1m, log-uniform), 2 x 3x -m written; RSS bound $((LIMIT_RSS / 1048576)) MB"
    echo
    echo "values MB: sum of the value sizes of the items read back at the end (each checked);"
    echo "\`bytes\`: the server's own stat (memcached counts its item headers, ours its records)."
    echo
    echo "| server | items held | values MB | values / -m | \`bytes\` MB | peak RSS MB | final RSS MB | evictions | sets | within bound |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for spec in "memcached|$MEMCACHED|-t 1" "memcached-rs -t 1|$OURS|-t 1" "memcached-rs -t 2|$OURS|-t 2"; do
        IFS='|' read -r label bin targs <<<"$spec"
        echo "$label, mixed sizes:" >&2
        # shellcheck disable=SC2086
        start "$bin" -m "$MB" -I 1m $targs
        read -r items peak rss ev written held held_bytes stat_bytes < <(python3 -c "$FILL" "$PORT" "$PID" mixed $((1 << 20)) "$MB")
        stop
        ok=yes
        if [ "$peak" -gt "$LIMIT_RSS" ]; then
            ok=no
            [ "$label" != memcached ] && FAIL=1
        fi
        mb() { echo "scale=1; $1/1048576" | bc; }
        echo "| $label | $items (read back $held) | $(mb "$held_bytes") | $(echo "scale=2; $held_bytes / ($MB * 1048576)" | bc) | $(mb "$stat_bytes") | $(mb "$peak") | $(mb "$rss") | $ev | $written | $ok |"
    done
fi
exit $FAIL
