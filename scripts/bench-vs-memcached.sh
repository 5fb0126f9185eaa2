#!/usr/bin/env bash
# memcached-rs against memcached 1.6 (Debian package), with mcbench.
#
# Both servers run on the same pinned core(s) with the same flags (-m, -c, -U 0), are
# preloaded with the same keys, and are measured in alternation (A B A B ..., ROUNDS
# rounds per workload) with the generator pinned to the other core. Per run the
# server's CPU time (utime+stime from /proc/PID/stat) is divided by the requests served.
# Prints one table per mode (medians over rounds) with our/memcached ratios.
#
# Usage: scripts/bench-vs-memcached.sh [path/to/memcached-rs]
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10] s per run  WARMUP [1] s  MODES ["1 2"] server cores
#   WORKLOADS ["p1 p16 mget10 open50 set1k"]  KEYS [100000]  MEM [1024] MB
#                 also: lowrate (open loop at LOW_RATE [20000] req/s: every request wakes an
#                 idle server) and pingpong (one connection per generator thread, get after
#                 get of the preloaded keys: the round trip through an idle server)
#   MODES=""     no server comparison (with GENCMP=1: only the generator comparison)
#   QUICK=1       DURATION=3, WARMUP=0.5 (still ROUNDS rounds)
#   B_BIN=path    run this binary as server B instead of memcached-rs (B_BIN=memcached
#                 compares memcached with itself: the ratios show the noise)
#   B_ARGS="..."  extra flags for server B only (B_ARGS="-o cpu_steering")
#   GENCMP=1      also compare one core of mcbench with memcaslap on memcached -t 1
#   OUT [target/bench-vs-memcached]  where run JSON and the tables go
#   LAG_SHARE [0.25]  open loop: a row is marked INVALID when mcbench's send lag (how late
#                 it sent against its schedule; latency counts from the schedule) is more
#                 than this share of the latency at p99 or p99.9: then the tail is the
#                 generator's. STRICT=1 also makes the script exit 1 then.
#
# open50 runs both servers at half of memcached's peak measured in the same run (its
# median pipeline-1 closed-loop throughput; p1 rounds are run first if not asked for).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
if [[ ${QUICK:-0} == 1 ]]; then DURATION=${QUICK_DURATION:-3}; WARMUP=0.5; fi
MODES=${MODES-"1 2"}
WORKLOADS=${WORKLOADS:-"p1 p16 mget10 open50 set1k"}
KEYS=${KEYS:-100000}
MEM=${MEM:-1024}
OUT=${OUT:-$ROOT/target/bench-vs-memcached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
OURS=${1:-${B_BIN:-$ROOT/target/release/memcached-rs}}
NAME_B=${B_NAME:-memcached-rs}
[[ -n ${B_BIN:-} ]] && NAME_B=${B_NAME:-$(basename "$B_BIN")-B}
MCBENCH=$ROOT/target/release/mcbench
TICK=$(getconf CLK_TCK)
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
rm -f "$OUT/gencmp.jsonl"
: > "$RESULTS"
rm -f "$OUT/open-rate.txt"

die() { echo "bench-vs-memcached: $*" >&2; exit 1; }
[[ -x $MEMCACHED ]] || die "memcached not found at $MEMCACHED (apt-get install memcached)"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server core and generator core)"
if [[ ! -x $MCBENCH ]]; then cargo build --release -p mcbench; fi
if [[ -z ${B_BIN:-} && ! -x $OURS ]]; then cargo build --release -p memcached-rs; fi
[[ -x $OURS ]] || OURS=$(command -v "$OURS" || true)
[[ -x $OURS ]] || die "server B binary not found: ${1:-${B_BIN:-target/release/memcached-rs}}"
# shellcheck source=lib/servers.sh
source scripts/lib/servers.sh  # the cd above put us at the repository root

# start_server NAME BIN THREADS CPUS -> sets SPORT and SPID
start_server() {
    local name=$1 bin=$2 threads=$3 extra=()
    # shellcheck disable=SC2206
    [[ $name != memcached ]] && extra=(${B_ARGS:-})
    SERVER_CPUS=$4 SERVER_LOG=$OUT/$name.log start "$bin" "${extra[@]}" -t "$threads" -m "$MEM" -c 4096
    SPORT=$PORT SPID=$PID
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Workload flags for mcbench; $1 workload, $2 connections per thread.
workload_args() {
    local common=(--keys "$KEYS" --connections "$2")
    case $1 in
        p1) echo "${common[*]} --ratio 9:1 --value-size 64-1024 --pipeline 1" ;;
        p16) echo "${common[*]} --ratio 9:1 --value-size 64-1024 --pipeline 16" ;;
        mget10) echo "${common[*]} --ratio 1:0 --multiget 10 --pipeline 1" ;;
        set1k) echo "${common[*]} --ratio 0:1 --value-size 1024 --pipeline 1" ;;
        open50) echo "${common[*]} --ratio 9:1 --value-size 64-1024 --pipeline 64 --rate $OPEN_RATE" ;;
        lowrate) echo "${common[*]} --ratio 9:1 --value-size 64-1024 --pipeline 64 --rate ${LOW_RATE:-20000}" ;;
        pingpong) echo "--keys $KEYS --connections 1 --ratio 1:0 --pipeline 1" ;;
        *) die "unknown workload $1" ;;
    esac
}

# run_one MODE WORKLOAD ROUND SERVERNAME PORT PID GEN_THREADS GEN_CPUS CONNS
run_one() {
    local mode=$1 wl=$2 round=$3 name=$4 port=$5 pid=$6 gthreads=$7 gcpus=$8 conns=$9
    local json=$OUT/$mode-core-$wl-$name-$round.json
    local before after load
    load=$(cut -d' ' -f1 /proc/loadavg)
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2046  # the workload's flags are meant to split
    "$MCBENCH" --servers "127.0.0.1:$port" --threads "$gthreads" --cpus "$gcpus" \
        $(workload_args "$wl" "$conns") --duration "$DURATION" --warmup "$WARMUP" \
        --label "$name $wl ${mode}c r$round" --json -q > "$json"
    after=$(cpu_ticks "$pid")
    python3 - "$json" "$mode" "$wl" "$name" "$round" "$before" "$after" "$TICK" "$DURATION" "$WARMUP" "$load" >> "$RESULTS" <<'EOF'
import json, sys
f, mode, wl, name, rnd, b, a, tick, dur, warm, load = sys.argv[1:]
r = json.load(open(f))
secs = (float(a) - float(b)) / float(tick)
# The server also worked during warm-up: charge it the warm-up's requests too.
served = r["requests"] * (float(dur) + float(warm)) / float(dur)
print(json.dumps({
    "mode": int(mode), "workload": wl, "server": name, "round": int(rnd),
    "throughput": r["throughput"], "p50": r["latency_us"]["p50"], "p99": r["latency_us"]["p99"],
    "p999": r["latency_us"]["p999"], "errors": r["errors"],
    "cpu_us_per_req": secs * 1e6 / served if served else None,
    # Open loop: p99 of how late requests left; large = the generator fell behind.
    "send_lag_p99": (r.get("send_lag_us") or {}).get("p99"),
    "send_lag_p999": (r.get("send_lag_us") or {}).get("p999"),
    "load": float(load),
}))
EOF
    tail -n1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %(mode)sc %(workload)-7s %(server)-14s r%(round)s %(throughput)10.0f req/s  p50 %(p50)8.1f us  p99 %(p99)8.1f us  p99.9 %(p999)8.1f us  errors %(errors)s  cpu %(cpu_us_per_req).2f us/req  load %(load)s" % r + ("  send lag p99 %.1f us p99.9 %.1f us" % (r["send_lag_p99"], r["send_lag_p999"]) if r["send_lag_p99"] is not None else ""))' >&2
}

median_throughput() { # mode workload server
    python3 - "$RESULTS" "$@" <<'EOF'
import json, statistics, sys
f, mode, wl, name = sys.argv[1:]
v = [r["throughput"] for r in map(json.loads, open(f)) if r["mode"] == int(mode) and r["workload"] == wl and r["server"] == name]
print(int(statistics.median(v)) if v else 0)
EOF
}

preload() { # port gthreads gcpus
    "$MCBENCH" --servers "127.0.0.1:$1" --threads "$2" --cpus "$3" --keys "$KEYS" \
        --value-size 64-1024 --preload --requests 1 --connections 8 -q > /dev/null
}

echo "bench-vs-memcached: A=memcached ($MEMCACHED), B=$NAME_B ($OURS)"
echo "  rounds $ROUNDS, ${DURATION}s + ${WARMUP}s warm-up per run, modes: $MODES, workloads: $WORKLOADS"
echo "  $(date -u +%F) on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"

for mode in $MODES; do
    if [[ $mode == 1 ]]; then scpus=0; gcpus=1; gthreads=1; conns=50
    else scpus=0,1; gcpus=0,1; gthreads=2; conns=25; fi
    start_server memcached "$MEMCACHED" "$mode" "$scpus"; PORT_A=$SPORT PA=$SPID
    start_server "$NAME_B" "$OURS" "$mode" "$scpus"; PORT_B=$SPORT PB=$SPID
    preload "$PORT_A" "$gthreads" "$gcpus"
    preload "$PORT_B" "$gthreads" "$gcpus"
    OPEN_RATE=0
    for wl in $WORKLOADS; do
        if [[ $wl == open50 ]]; then
            # memcached's peak measured in this run: its pipeline-1 closed-loop
            # throughput (the p1 rounds above, or rounds made now for it).
            peak=$(median_throughput "$mode" p1 memcached)
            if [[ $peak == 0 ]]; then
                for r in $(seq "$ROUNDS"); do run_one "$mode" p1 "$r" memcached "$PORT_A" "$PA" "$gthreads" "$gcpus" "$conns"; done
                peak=$(median_throughput "$mode" p1 memcached)
            fi
            OPEN_RATE=$((peak / 2))
            echo "  open loop at $OPEN_RATE req/s (50% of memcached's median pipeline-1 peak $peak req/s, this run)" >&2
            echo "$mode $OPEN_RATE $peak" >> "$OUT/open-rate.txt"
        fi
        for r in $(seq "$ROUNDS"); do
            run_one "$mode" "$wl" "$r" memcached "$PORT_A" "$PA" "$gthreads" "$gcpus" "$conns"
            run_one "$mode" "$wl" "$r" "$NAME_B" "$PORT_B" "$PB" "$gthreads" "$gcpus" "$conns"
        done
    done
    stop_all
done

if [[ ${GENCMP:-0} == 1 ]]; then
    # One generator core driving memcached -t 1: mcbench vs memcaslap, same mix.
    start_server memcached "$MEMCACHED" 1 0; PORT_A=$SPORT PA=$SPID
    preload "$PORT_A" 1 1
    cfg=$OUT/memcaslap.cfg
    printf 'key\n16 16 1\nvalue\n64 1024 1\ncmd\n0 0.1\n1 0.9\n' > "$cfg"
    for r in $(seq "$ROUNDS"); do
        for gen in mcbench memcaslap; do
            if [[ $gen == mcbench ]]; then
                /usr/bin/time -f '%U %S' -o "$OUT/gen.time" taskset -c 1 "$MCBENCH" --servers "127.0.0.1:$PORT_A" \
                    --cpus 1 --connections 50 --keys "$KEYS" --duration "$DURATION" --json -q > "$OUT/gen.json"
                reqs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$OUT/gen.json")
                tput=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["throughput"]))' "$OUT/gen.json")
            else
                /usr/bin/time -f '%U %S' -o "$OUT/gen.time" taskset -c 1 memcaslap -s "127.0.0.1:$PORT_A" -T 1 -c 50 \
                    -t "${DURATION%.*}s" -F "$cfg" > "$OUT/gen.txt" 2>&1
                reqs=$(sed -n 's/.*Ops: \([0-9]*\).*/\1/p' "$OUT/gen.txt")
                tput=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' "$OUT/gen.txt")
            fi
            cpu=$(awk '{print $1 + $2}' "$OUT/gen.time")
            echo "{\"gen\":\"$gen\",\"round\":$r,\"throughput\":$tput,\"gen_cpu_us_per_req\":$(python3 -c "print($cpu*1e6/$reqs)")}" >> "$OUT/gencmp.jsonl"
            tail -n1 "$OUT/gencmp.jsonl" >&2
        done
    done
    stop_all
fi

python3 - "$RESULTS" "$NAME_B" "$OUT/gencmp.jsonl" "${LAG_SHARE:-0.25}" "$OUT/open-rate.txt" <<'EOF' | tee "$OUT/table.md"
import json, os, statistics, sys
f, ours, gencmp, lag_share, open_rate = sys.argv[1:]
lag_share = float(lag_share)
rates = {}
if os.path.exists(open_rate):
    for l in open(open_rate):
        m, rate, peak = l.split()
        rates[int(m)] = (int(rate), int(peak))
invalid = []
rows = [json.loads(l) for l in open(f)]
med = lambda v: statistics.median(v) if v else float("nan")
names = {"p1": "get:set 9:1, pipeline 1", "p16": "get:set 9:1, pipeline 16",
         "mget10": "10-key multi-get", "set1k": "set-only 1 KiB", "open50": "open loop 50% of peak",
         "lowrate": f"open loop {os.environ.get('LOW_RATE', '20000')} req/s",
         "pingpong": "one connection, get after get"}
for mode in sorted({r["mode"] for r in rows}):
    print(f"\n### {mode} server core{'s' if mode > 1 else ''} (memcached -t {mode} vs {ours} -t {mode})\n")
    print("| workload | server | req/s | p50 ms | p99 ms | p99.9 ms | CPU us/req | errors | load | send lag p99 / p99.9 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for wl in ["p1", "p16", "mget10", "open50", "set1k", "lowrate", "pingpong"]:
        agg = {}
        for s in ["memcached", ours]:
            rs = [r for r in rows if r["mode"] == mode and r["workload"] == wl and r["server"] == s]
            if not rs:
                continue
            agg[s] = {k: med([r[k] for r in rs if r.get(k) is not None]) for k in ["throughput", "p50", "p99", "p999", "cpu_us_per_req", "load", "send_lag_p99", "send_lag_p999"]}
            agg[s]["errors"] = sum(r["errors"] for r in rs)
            a = agg[s]
            name = names[wl]
            lag = ""
            if wl in ("open50", "lowrate"):
                if wl == "open50" and mode in rates:
                    name = f"open loop {rates[mode][0]} req/s (50% of memcached's p1 peak {rates[mode][1]})"
                lag = f"{a['send_lag_p99']/1e3:.3f} / {a['send_lag_p999']/1e3:.3f}"
                # Latency counts from the scheduled send time: when the generator itself
                # was late by a sizeable share of it, the tail measures the generator.
                behind = a["send_lag_p99"] > lag_share * a["p99"] or a["send_lag_p999"] > lag_share * a["p999"]
                if behind:
                    name += " **INVALID: generator behind schedule**"
                    invalid.append(f"{mode}c {s}")
            print(f"| {name} | {s} | {a['throughput']:.0f} | {a['p50']/1e3:.3f} | {a['p99']/1e3:.3f} | {a['p999']/1e3:.3f} | {a['cpu_us_per_req']:.2f} | {a['errors']} | {a['load']:.1f} | {lag} |")
        if len(agg) == 2:
            a, b = agg["memcached"], agg[ours]
            r = lambda k: b[k] / a[k] if a[k] else float("nan")
            print(f"| {names[wl]} | **ratio ours/memcached** | **{r('throughput'):.2f}x** | {r('p50'):.2f}x | {r('p99'):.2f}x | {r('p999'):.2f}x | **{r('cpu_us_per_req'):.2f}x** | | | |")
print("\nMedians over rounds. load = 1-minute load average when the runs started (2 CPUs: above ~2.5 other")
print("processes compete for the cores and tails mean little). send lag = open loop only: how late mcbench")
print(f"sent against its schedule (p99 / p99.9); a row is INVALID when it exceeds {lag_share:.0%} of the latency at p99 or p99.9.")
if invalid:
    print(f"\nINVALID open-loop rows (generator behind its schedule): {', '.join(invalid)}")
    if os.environ.get("STRICT") == "1":
        sys.exit(1)
if os.path.exists(gencmp):
    g = [json.loads(l) for l in open(gencmp)]
    print("\n### One generator core driving memcached -t 1 (get:set 9:1, 50 connections, pipeline 1)\n")
    print("| generator | req/s (median) | generator CPU us/req (median) | rounds |")
    print("|---|---:|---:|---:|")
    for gen in ["mcbench", "memcaslap"]:
        v = [x for x in g if x["gen"] == gen]
        print(f"| {gen} | {med([x['throughput'] for x in v]):.0f} | {med([x['gen_cpu_us_per_req'] for x in v]):.2f} | {len(v)} |")
EOF
