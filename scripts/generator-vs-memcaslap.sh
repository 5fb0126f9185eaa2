#!/usr/bin/env bash
# One core of mcbench against memcaslap (libmemcached-tools), driving the same memcached.
#
# memcached -t 1 runs on CPU 0, the generator is pinned to CPU 1. Same workload for both:
# get:set 9:1, 50 connections, 100k keys of 16 bytes (memcaslap: a 2k-object window per
# connection), values 64-1024 B. Rounds alternate mcbench / memcaslap (ROUNDS each), so
# both see the same machine; per case it prints each run, then medians and the ratio.
#
# Cases:
#   p1   pipeline 1 (one request in flight per connection), both generators.
#   p1hot pipeline 1 with the fewest keys each generator can use, so that memcached's items
#        stay in the CPU caches and cost it less: mcbench --keys HOT_KEYS (5000, preloaded),
#        memcaslap -w 1k (its smallest window: 1k keys per connection, 50k in all, each
#        connection walking its own window). Shows what each drives when memcached is cheaper.
#   p16  mcbench --pipeline 16. memcaslap cannot pipeline separate requests; its only
#        batching is -d 16 (16 gets sent as one multi-get, sets alone), run as its
#        nearest equivalent. Its req/s then counts keys, not requests.
# Per run: req/s, the generator's CPU time per request (utime+stime / requests), the
# capacity that implies for one generator core (1 s / CPU per request), its CPU use,
# memcached's CPU use (1.00 = the server core is saturated: the generator drove more than
# one memcached core can serve) and CPU time per request, and the 1-minute load average.
#
# memtier_benchmark is not packaged in Debian (apt-cache search memtier: nothing) nor on
# PyPI, and nothing else can be fetched here, so it is not compared.
#
# Usage: scripts/generator-vs-memcaslap.sh
# Environment: ROUNDS [3]  DURATION [10] s  CASES ["p1 p1hot p16"]  KEYS [100000]  HOT_KEYS [5000]
#              OUT [target/generator-vs-memcaslap]  QUICK=1 (DURATION=3)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
[[ ${QUICK:-0} == 1 ]] && DURATION=3
CASES=${CASES:-"p1 p1hot p16"}
KEYS=${KEYS:-100000}
HOT_KEYS=${HOT_KEYS:-5000}
CONNS=50
OUT=${OUT:-$ROOT/target/generator-vs-memcaslap}
MCBENCH=${MCBENCH:-$ROOT/target/release/mcbench}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
TICK=$(getconf CLK_TCK)
# 11 + up to 5 digits: 16-byte keys for 90% of them, as memcaslap's.
PREFIX=mcb:gencmp:

die() { echo "generator-vs-memcaslap: $*" >&2; exit 1; }
command -v memcaslap > /dev/null || die "memcaslap not found (apt-get install libmemcached-tools)"
[[ -x $MEMCACHED ]] || die "memcached not found at $MEMCACHED (apt-get install memcached)"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server core and generator core)"
[[ -x $MCBENCH ]] || cargo build --release -p mcbench
(( KEYS % (CONNS * 1000) == 0 )) || die "KEYS must be a multiple of $((CONNS * 1000)) (memcaslap: a window of N k objects per connection)"
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

# shellcheck source=lib/servers.sh
source "$ROOT/scripts/lib/servers.sh"
SERVER_CPUS=0 SERVER_LOG=$OUT/memcached.log start "$MEMCACHED" -t 1 -m 1024 -c 4096 ||
    die "memcached did not start; see $OUT/memcached.log"
SPID=$PID
"$MCBENCH" --servers "127.0.0.1:$PORT" --keys "$KEYS" --key-prefix "$PREFIX" --value-size 64-1024 \
    --preload --requests 1 --connections 8 -q > /dev/null
cfg=$OUT/memcaslap.cfg
printf 'key\n16 16 1\nvalue\n64 1024 1\ncmd\n0 0.1\n1 0.9\n' > "$cfg"

ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }

# run GEN CASE ROUND: one run, one JSON line in $RESULTS.
run() {
    local gen=$1 case=$2 round=$3 load t0 t1 s0 s1 reqs tput
    load=$(cut -d' ' -f1 /proc/loadavg)
    s0=$(ticks); t0=$(date +%s.%N)
    if [[ $gen == mcbench ]]; then
        local depth=1 keys=$KEYS
        [[ $case == p16 ]] && depth=16
        [[ $case == p1hot ]] && keys=$HOT_KEYS
        /usr/bin/time -f '%U %S' -o "$OUT/time" taskset -c 1 "$MCBENCH" --servers "127.0.0.1:$PORT" \
            --cpus 1 --connections $CONNS --pipeline $depth --keys "$keys" --key-prefix "$PREFIX" \
            --value-size 64-1024 --ratio 9:1 --duration "$DURATION" --json -q > "$OUT/run.json"
        read -r reqs tput errors < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["requests"], r["throughput"], r["errors"])' "$OUT/run.json")
        [[ $errors == 0 ]] || echo "  warning: mcbench counted $errors errors" >&2
    else
        local batch=() window="$((KEYS / CONNS / 1000))k"
        [[ $case == p16 ]] && batch=(-d 16)
        [[ $case == p1hot ]] && window=1k
        /usr/bin/time -f '%U %S' -o "$OUT/time" taskset -c 1 memcaslap -s "127.0.0.1:$PORT" -T 1 \
            -c $CONNS -w "$window" -t "${DURATION}s" -F "$cfg" "${batch[@]}" > "$OUT/run.txt" 2>&1 \
            || true  # memcaslap exits non-zero even after a good run; its output is checked
        reqs=$(sed -n 's/.*Ops: \([0-9]*\).*/\1/p' "$OUT/run.txt" | tail -n1)
        tput=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' "$OUT/run.txt" | tail -n1)
        [[ -n $reqs && -n $tput ]] || die "memcaslap printed no result; see $OUT/run.txt"
    fi
    t1=$(date +%s.%N); s1=$(ticks)
    python3 - "$gen" "$case" "$round" "$reqs" "$tput" "$(tail -n1 "$OUT/time")" "$t0" "$t1" "$s0" "$s1" "$TICK" "$load" >> "$RESULTS" <<'EOF'
import json, sys
gen, case, rnd, reqs, tput, cpu, t0, t1, s0, s1, tick, load = sys.argv[1:]
cpu = sum(map(float, cpu.split()))
wall = float(t1) - float(t0)
print(json.dumps({
    "gen": gen, "case": case, "round": int(rnd), "rps": float(tput),
    "gen_cpu_us_per_req": cpu * 1e6 / max(int(reqs), 1),
    "gen_cpu_util": cpu / wall,
    "server_cpu_util": (float(s1) - float(s0)) / float(tick) / wall,
    # Per request, not per second: memcaslap's wall time includes its own start-up.
    "server_cpu_us_per_req": (float(s1) - float(s0)) / float(tick) * 1e6 / max(int(reqs), 1),
    "load": float(load),
}))
EOF
    tail -n1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %(case)-4s %(gen)-9s r%(round)d %(rps)10.0f req/s  gen %(gen_cpu_us_per_req).2f us/req (%(gen_cpu_util).2f CPU)  memcached %(server_cpu_util).2f CPU, %(server_cpu_us_per_req).2f us/req  load %(load).1f" % r)' >&2
}

echo "generator-vs-memcaslap: memcached -t 1 on CPU 0, generator on CPU 1; $ROUNDS rounds of ${DURATION}s per generator and case"
echo "  $(date -u '+%F %H:%M') UTC on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
for case in $CASES; do
    for r in $(seq "$ROUNDS"); do
        # Alternate which goes first, so neither always runs right after the other.
        if (( r % 2 )); then order="mcbench memcaslap"; else order="memcaslap mcbench"; fi
        for gen in $order; do run "$gen" "$case" "$r"; done
    done
done

python3 - "$RESULTS" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda v: statistics.median(v) if v else float("nan")
names = {"p1": "pipeline 1", "p1hot": "pipeline 1, few keys (mcbench 5k, memcaslap 50k)", "p16": "pipelined (mcbench --pipeline 16 req/s; memcaslap -d 16 multi-get, keys/s: not like for like)"}
print("\n| case | generator | req/s (median) | gen CPU us/req | gen capacity req/s | gen CPU use | memcached CPU use | memcached CPU us/req | load | rounds |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for case in dict.fromkeys(r["case"] for r in rows):
    agg = {}
    for gen in ["mcbench", "memcaslap"]:
        rs = [r for r in rows if r["case"] == case and r["gen"] == gen]
        if not rs:
            continue
        a = agg[gen] = {k: med([r[k] for r in rs]) for k in ["rps", "gen_cpu_us_per_req", "gen_cpu_util", "server_cpu_util", "server_cpu_us_per_req", "load"]}
        print(f"| {names.get(case, case)} | {gen} | {a['rps']:.0f} | {a['gen_cpu_us_per_req']:.2f} | {1e6 / a['gen_cpu_us_per_req']:.0f} | {a['gen_cpu_util']:.2f} | {a['server_cpu_util']:.2f} | {a['server_cpu_us_per_req']:.2f} | {a['load']:.1f} | {len(rs)} |")
    if len(agg) == 2:
        m, c = agg["mcbench"], agg["memcaslap"]
        # Per-round ratios too: a round's two runs saw the same machine.
        per = [a["rps"] / b["rps"] for a in rows for b in rows if a["case"] == b["case"] == case
               and a["round"] == b["round"] and a["gen"] == "mcbench" and b["gen"] == "memcaslap" and b["rps"]]
        print(f"| {names.get(case, case)} | **ratio mcbench/memcaslap** | **{m['rps']/c['rps']:.2f}x** (per round: {', '.join(f'{x:.2f}' for x in per)}) | {m['gen_cpu_us_per_req']/c['gen_cpu_us_per_req']:.2f}x | {c['gen_cpu_us_per_req']/m['gen_cpu_us_per_req']:.2f}x | | | {m['server_cpu_us_per_req']/c['server_cpu_us_per_req']:.2f}x | | |")
print("\nmemcached CPU use near 1.00 means the server core was saturated (the generator was not the limit);")
print("for memcaslap it reads low because its wall time includes its start-up: compare CPU us/req.")
print("gen capacity = 1 s / gen CPU us per request: what one generator core would drive if the server")
print("were not the limit. With memcached saturated, req/s follows memcached's cost per request, which")
print("depends on the keys each generator asks for: mcbench's are uniform over the whole keyspace,")
print("memcaslap's walk a window per connection (friendlier to memcached's caches).")
EOF
