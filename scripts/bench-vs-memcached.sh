#!/usr/bin/env bash
# memcached-rs against memcached 1.6 (Debian package), with two generators: mcbench (ours)
# and memtier_benchmark (Redis Ltd.'s, independent; built by shared/tools/build-memtier.sh).
#
# Both servers run on the same pinned core(s) with the same flags (-m, -c, -U 0), are
# preloaded with the same keys, and are measured in alternation (A B A B ..., ROUNDS
# rounds per workload and generator) with the generator pinned to the other core. Per
# run the server's CPU time (utime+stime from /proc/PID/stat) is divided by the
# requests served. Prints one table per mode (medians over rounds) with our/memcached
# ratios, a row per generator; a ratio is a result only where both generators agree.
#
# Usage: scripts/bench-vs-memcached.sh [path/to/memcached-rs]
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10] s per run  WARMUP [1] s  MODES ["1 2"] server cores
#   WORKLOADS ["p1 p16 mget10 open50 set1k mp1 mp16"]  KEYS [100000]  MEM [1024] MB
#                 mp1 mp16 mmget10 mset1k: p1 p16 mget10 set1k in the meta protocol
#                 (mcbench --protocol meta: mg KEY v f, a multi-get as quiet mg's and mn,
#                 ms KEY LEN F<flags>), both servers serving the same meta commands
#                 bget1 bmget16 bp1 bp16 bset1k: the binary protocol (mcbench --protocol
#                 binary): single Gets at pipeline 1, 16-key multi-gets as GetKQ...Noop
#                 batches (libmemcached's), get:set 9:1 at pipeline 1 and 16, 1 KiB Sets;
#                 e.g. WORKLOADS="bget1 bmget16 bset1k" (not in the default list)
#                 also: lowrate (open loop at LOW_RATE [20000] req/s: every request wakes an
#                 idle server) and pingpong (one connection per generator thread, get after
#                 get of the preloaded keys: the round trip through an idle server)
#                 tp1 tp16: p1 p16 over TLS (TLS 1.3): both servers started with -Z and
#                 memcached's ssl_chain_cert/ssl_key (a throwaway CA and server certificate
#                 made with openssl in $OUT/tls, TLS_KEY [ec]: ECDSA P-256, or rsa: RSA
#                 2048), the plain workloads and the stats on a `notls:` listener beside
#                 the TLS one; mcbench --tls --tls-ca, memtier --tls --cacert
#                 tlsconn: new TLS connections: every connection sends one get and is
#                 closed, then reopened (mcbench --reconnect 1, memtier
#                 --reconnect-interval=1), so req/s is full handshakes per second (no
#                 session resumption) and CPU us/req the server's CPU per new connection
#                 (accept, handshake, one get, close); a request's latency counts from
#                 its connect. The generators skip the certificate chain check there
#                 (--tls-skip-verify; the handshake signature is still checked): a client
#                 handshake costs about what the server's does, and a generator core is
#                 soon the limit. Then req/s says little (see gen busy) and the server's
#                 CPU per new connection is the figure to compare. The versions, suites and key exchange negotiated (openssl
#                 s_client's, and mcbench's from its report) are printed under the tables.
#                 e.g. WORKLOADS="tp1 tp16 tlsconn" (not in the default list)
#   MODES=""     no server comparison (with GENCMP=1: only the generator comparison)
#   QUICK=1       DURATION=3, WARMUP=0.5 (still ROUNDS rounds)
#   B_BIN=path    run this binary as server B instead of memcached-rs (B_BIN=memcached
#                 compares memcached with itself: the ratios show the noise)
#   B_ARGS="..."  extra flags for server B only (B_ARGS="-o cpu_steering")
#   A_NAME=name, A_ARGS="..."  server A's name in the tables and its extra flags: with
#                 MEMCACHED=path/to/another/memcached-rs, two builds or two settings of ours
#                 (A_NAME=metrics-off B_NAME=metrics-on B_ARGS="-o metrics=19150")
#   GENS ["mcbench memtier"]  generators; memtier runs p1 p16 set1k and their binary
#                 forms bp1 bp16 bset1k (-P memcache_binary), and tp1 tp16 tlsconn (--tls;
#                 it has no multi-get nor open loop of this kind), with MEMTIER=path or the shared build script
#   SYSCALLS=1    after the timed rounds, one more run per workload, server and generator
#                 with `perf stat` attached to the server: syscalls and context switches
#                 per command (cmd_get+cmd_set from the server's stats, same window); kept
#                 out of the timed rounds so tracing does not touch their CPU figures
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
WORKLOADS=${WORKLOADS:-"p1 p16 mget10 open50 set1k mp1 mp16"}
KEYS=${KEYS:-100000}
MEM=${MEM:-1024}
OUT=${OUT:-$ROOT/target/bench-vs-memcached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
OURS=${1:-${B_BIN:-$ROOT/target/release/memcached-rs}}
NAME_A=${A_NAME:-memcached}
NAME_B=${B_NAME:-memcached-rs}
[[ -n ${B_BIN:-} ]] && NAME_B=${B_NAME:-$(basename "$B_BIN")-B}
MCBENCH=$ROOT/target/release/mcbench
GENS=${GENS:-"mcbench memtier"}
if [[ " $GENS " == *" memtier "* && -z ${MEMTIER:-} ]]; then
    MEMTIER=$("$ROOT/../shared/tools/build-memtier.sh" 2>/dev/null || true)
    [[ -x ${MEMTIER:-} ]] || MEMTIER=$(command -v memtier_benchmark || true)
fi
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

is_tls() { [[ $1 == tp1 || $1 == tp16 || $1 == tlsconn ]]; }
TLS=0
for wl in $WORKLOADS; do if is_tls "$wl"; then TLS=1; fi; done
declare -A TLSPORT  # plain (stats) port -> the same server's TLS port
TLSDIR=$OUT/tls
if [[ $TLS == 1 ]]; then
    # A throwaway CA and a server certificate for 127.0.0.1 signed by it (not
    # self-signed: rustls, like any client that verifies, refuses a CA certificate
    # as the server's own).
    mkdir -p "$TLSDIR"
    if [[ ${TLS_KEY:-ec} == rsa ]]; then keyargs=(-newkey rsa:2048); else keyargs=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); fi
    openssl req -x509 "${keyargs[@]}" -nodes -keyout "$TLSDIR/ca.key" -out "$TLSDIR/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
    openssl req "${keyargs[@]}" -nodes -keyout "$TLSDIR/key.pem" -out "$TLSDIR/req.csr" -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$TLSDIR/ext.cnf"
    openssl x509 -req -in "$TLSDIR/req.csr" -CA "$TLSDIR/ca.pem" -CAkey "$TLSDIR/ca.key" -CAcreateserial \
        -out "$TLSDIR/cert.pem" -days 2 -extfile "$TLSDIR/ext.cnf" 2>/dev/null || die "openssl could not make the test certificate"
    : > "$OUT/tls-negotiated.txt"
fi

# start_server NAME BIN THREADS CPUS -> sets SPORT and SPID. With TLS workloads: -Z, the
# port started on is the TLS one (TLSPORT[SPORT]) and SPORT a notls: listener beside it.
start_server() {
    local name=$1 bin=$2 threads=$3 extra=() plain
    # shellcheck disable=SC2206
    if [[ $name == "$NAME_A" ]]; then extra=(${A_ARGS:-}); else extra=(${B_ARGS:-}); fi
    if [[ $TLS == 1 ]]; then
        plain=$(free_port)
        extra+=(-Z -o "ssl_chain_cert=$TLSDIR/cert.pem,ssl_key=$TLSDIR/key.pem" -l "notls:127.0.0.1:$plain")
    fi
    SERVER_CPUS=$4 SERVER_LOG=$OUT/$name.log start "$bin" "${extra[@]}" -t "$threads" -m "$MEM" -c 4096
    SPORT=$PORT SPID=$PID
    if [[ $TLS == 1 ]]; then
        wait_port "$plain" "$PID" || die "$name: no notls listener on $plain; see $OUT/$name.log"
        TLSPORT[$plain]=$PORT SPORT=$plain
        # What an OpenSSL client (memtier's library) negotiates with this server.
        echo "$name: openssl s_client: $(openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$TLSDIR/ca.pem" </dev/null 2>&1 |
            sed -n -e 's/^New, \(.*\), Cipher is \(.*\)/\1 \2/p' -e 's/^Server Temp Key: \(.*\)/key exchange \1/p' -e 's/^Peer signature type: \(.*\)/signature \1/p' |
            paste -sd, -)" | tee -a "$OUT/tls-negotiated.txt" >&2
    fi
}

# utime stime (clock ticks) of a process: the server's CPU split into its own code and the
# kernel's work on its behalf (syscalls, io_uring task work, the TCP stack it drives).
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

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
        mp1 | mp16 | mmget10 | mset1k) echo "$(workload_args "${1#m}" "$2") --protocol meta" ;;
        bp1 | bp16 | bset1k) echo "$(workload_args "${1#b}" "$2") --protocol binary" ;;
        bget1) echo "${common[*]} --ratio 1:0 --value-size 64-1024 --pipeline 1 --protocol binary" ;;
        bmget16) echo "${common[*]} --ratio 1:0 --value-size 64-1024 --multiget 16 --pipeline 1 --protocol binary" ;;
        tp1 | tp16) echo "$(workload_args "${1#t}" "$2") --tls --tls-ca $TLSDIR/ca.pem" ;;
        tlsconn) echo "${common[*]} --ratio 1:0 --pipeline 1 --reconnect 1 --tls --tls-skip-verify" ;;
        *) die "unknown workload $1" ;;
    esac
}

# Workload flags for memtier_benchmark (memcache_text); $1 workload, $2 connections
# per thread; empty: memtier has no such workload.
memtier_args() {
    local common=(-P memcache_text -c "$2" --key-minimum=1 --key-maximum="$KEYS" --key-pattern=R:R --hide-histogram)
    case $1 in
        p1) echo "${common[*]} --ratio=1:9 --data-size-range=64-1024 --pipeline=1" ;;
        p16) echo "${common[*]} --ratio=1:9 --data-size-range=64-1024 --pipeline=16" ;;
        set1k) echo "${common[*]} --ratio=1:0 --data-size=1024 --pipeline=1" ;;
        tp1 | tp16) echo "$(memtier_args "${1#t}" "$2") --tls --cacert=$TLSDIR/ca.pem" ;;
        tlsconn) echo "${common[*]} --ratio=0:1 --pipeline=1 --reconnect-interval=1 --tls --tls-skip-verify" ;;
        bp1 | bp16 | bset1k) echo "$(memtier_args "${1#b}" "$2" | sed 's/memcache_text/memcache_binary/')" ;;
        *) echo "" ;;
    esac
}

# Commands the server has run: cmd_get + cmd_set from its stats.
server_commands() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    buf += s.recv(65536)
st = dict(l.split()[1:3] for l in buf.decode().splitlines() if l.startswith("STAT "))
print(int(st["cmd_get"]) + int(st["cmd_set"]))
EOF
}

# run_one GEN MODE WORKLOAD ROUND SERVERNAME PORT PID GEN_THREADS GEN_CPUS CONNS [sys]
# With `sys`: perf stat counts the server's syscalls and context switches over the run.
run_one() {
    local gen=$1 mode=$2 wl=$3 round=$4 name=$5 port=$6 pid=$7 gthreads=$8 gcpus=$9 conns=${10} sys=${11:-}
    # The generator's port (TLS workloads: the TLS listener); stats go to $port.
    local gport=$port
    if is_tls "$wl"; then gport=${TLSPORT[$port]}; fi
    local json=$OUT/$mode-core-$wl-$name-$gen-$round.json
    local before after load perfout="" cmds_before=0 cmds_after=0 perfpid=""
    if [[ $gen == memtier && -z $(memtier_args "$wl" "$conns") ]]; then return; fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [[ -n $sys ]]; then
        perfout=$OUT/$mode-core-$wl-$name-$gen-perf.txt
        cmds_before=$(server_commands "$port")
        perf stat -x, -e 'syscalls:sys_enter_*,context-switches,cpu-migrations,task-clock' -p "$pid" -o "$perfout" &
        perfpid=$!
        sleep 0.2
    fi
    before=$(cpu_ticks "$pid")
    if [[ $gen == mcbench ]]; then
        # shellcheck disable=SC2046  # the workload's flags are meant to split
        /usr/bin/time -f '%U %S %e' -o "$OUT/gen.time" "$MCBENCH" --servers "127.0.0.1:$gport" --threads "$gthreads" --cpus "$gcpus" \
            $(workload_args "$wl" "$conns") --duration "$DURATION" --warmup "$WARMUP" \
            --label "$name $wl ${mode}c r$round" --json -q > "$json"
    else
        # memtier has no warm-up: it runs WARMUP + DURATION and all of it counts.
        local total
        total=$(python3 -c "import math; print(math.ceil($DURATION + $WARMUP))")
        # shellcheck disable=SC2046
        /usr/bin/time -f '%U %S %e' -o "$OUT/gen.time" taskset -c "$gcpus" "$MEMTIER" -s 127.0.0.1 -p "$gport" -t "$gthreads" \
            $(memtier_args "$wl" "$conns") --test-time="$total" --json-out-file="$json.mt" > "$OUT/memtier.log" 2>&1
        python3 - "$json.mt" "$total" > "$json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["ALL STATS"]["Totals"]
p = t["Percentile Latencies"]
print(json.dumps({"requests": t["Count"], "throughput": t["Ops/sec"], "errors": t.get("Connection Errors", 0),
    "latency_us": {"p50": p["p50.00"] * 1e3, "p99": p["p99.00"] * 1e3, "p999": p["p99.90"] * 1e3}, "whole_run": float(sys.argv[2])}))
EOF
    fi
    after=$(cpu_ticks "$pid")
    if [[ -n $perfpid ]]; then
        kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true
        cmds_after=$(server_commands "$port")
    fi
    python3 - "$json" "$mode" "$wl" "$name" "$round" "$before" "$after" "$TICK" "$DURATION" "$WARMUP" "$load" "$gen" "$perfout" "$((cmds_after - cmds_before))" "$OUT/gen.time" >> "$RESULTS" <<'EOF'
import json, sys
f, mode, wl, name, rnd, b, a, tick, dur, warm, load, gen, perfout, cmds, gentime = sys.argv[1:]
r = json.load(open(f))
(ub, sb), (ua, sa) = map(float, b.split()), map(float, a.split())
secs = (ua + sa - ub - sb) / float(tick)
usecs = (ua - ub) / float(tick)
# The generator's own CPU over its run (user+sys / wall): near its cores' count, the
# generator and not the server set the pace, and the server idled between turns.
try:
    gu, gs, gwall = map(float, open(gentime).read().split()[-3:])
    gen_busy = (gu + gs) / gwall if gwall else None
except (OSError, ValueError):
    gen_busy = None
# The server also worked during mcbench's warm-up: charge it the warm-up's requests too.
served = r["requests"] if r.get("whole_run") else r["requests"] * (float(dur) + float(warm)) / float(dur)
row = {
    "gen": gen, "mode": int(mode), "workload": wl, "server": name, "round": int(rnd),
    "throughput": r["throughput"], "p50": r["latency_us"]["p50"], "p99": r["latency_us"]["p99"],
    "p999": r["latency_us"]["p999"], "errors": r["errors"],
    "cpu_us_per_req": secs * 1e6 / served if served else None,
    "cpu_user_share": usecs / secs if secs else None,
    "gen_busy": gen_busy,
    # Open loop: p99 of how late requests left; large = the generator fell behind.
    "send_lag_p99": (r.get("send_lag_us") or {}).get("p99"),
    "send_lag_p999": (r.get("send_lag_us") or {}).get("p999"),
    "load": float(load),
}
if r.get("tls"):
    row["tls"] = r["tls"]  # mcbench --tls: version, suite, key exchange negotiated
if perfout:
    calls, switches, by, task_ms = 0, 0, {}, 0.0
    for line in open(perfout):
        parts = line.strip().split(",")
        if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
            continue
        n, ev = float(parts[0]), parts[2]
        if ev.startswith("syscalls:sys_enter_"):
            calls += n
            if n:
                by[ev[len("syscalls:sys_enter_"):]] = n
        elif ev == "context-switches":
            switches = n
        elif ev == "task-clock":
            task_ms = n
    cmds = max(int(cmds), 1)
    row.update({"syscalls": True, "syscalls_per_cmd": calls / cmds, "switches_per_cmd": switches / cmds,
                # The server's CPU over the perf window divided by the commands its own
                # stats counted there: steady state only, the same count for every
                # generator (the timed rows divide by the generator's requests).
                "window_cpu_us_per_cmd": task_ms * 1e3 / cmds,
                "syscalls_by": {k: round(v / cmds, 3) for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:6]}})
print(json.dumps(row))
EOF
    tail -n1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %(mode)sc %(workload)-7s %(gen)-7s %(server)-14s r%(round)s %(throughput)10.0f req/s  p50 %(p50)8.1f us  p99 %(p99)8.1f us  p99.9 %(p999)8.1f us  errors %(errors)s  cpu %(cpu_us_per_req).2f us/req (user %(cpu_user_share).2f)  gen busy %(gen_busy).2f  load %(load)s" % r + ("  send lag p99 %.1f us p99.9 %.1f us" % (r["send_lag_p99"], r["send_lag_p999"]) if r["send_lag_p99"] is not None else "") + ("  syscalls/cmd %.2f switches/cmd %.2f window cpu %.2f us/cmd %s" % (r["syscalls_per_cmd"], r["switches_per_cmd"], r["window_cpu_us_per_cmd"], r["syscalls_by"]) if r.get("syscalls") else ""))' >&2
}

median_throughput() { # mode workload server
    python3 - "$RESULTS" "$@" <<'EOF'
import json, statistics, sys
f, mode, wl, name = sys.argv[1:]
v = [r["throughput"] for r in map(json.loads, open(f)) if r["mode"] == int(mode) and r["workload"] == wl and r["server"] == name and r["gen"] == "mcbench" and not r.get("syscalls")]
print(int(statistics.median(v)) if v else 0)
EOF
}

preload() { # port gthreads gcpus
    "$MCBENCH" --servers "127.0.0.1:$1" --threads "$2" --cpus "$3" --keys "$KEYS" \
        --value-size 64-1024 --preload --requests 1 --connections 8 -q > /dev/null
    if [[ " $GENS " == *" memtier "* ]]; then
        # memtier's own key names (memtier-1 ..), every one stored once.
        taskset -c "$3" "$MEMTIER" -s 127.0.0.1 -p "$1" -P memcache_text -t 1 -c 8 --ratio=1:0 \
            --key-pattern=P:P --key-minimum=1 --key-maximum="$KEYS" -n allkeys --data-size-range=64-1024 \
            --hide-histogram > "$OUT/memtier-preload.log" 2>&1
    fi
}

[[ " $GENS " != *" memtier "* || -x ${MEMTIER:-} ]] || die "memtier_benchmark not found (../shared/tools/build-memtier.sh, or MEMTIER=path, or GENS=mcbench)"
echo "bench-vs-memcached: A=$NAME_A ($MEMCACHED), B=$NAME_B ($OURS), generators: $GENS"
echo "  rounds $ROUNDS, ${DURATION}s + ${WARMUP}s warm-up per run, modes: $MODES, workloads: $WORKLOADS"
echo "  $(date -u +%F) on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"

for mode in $MODES; do
    if [[ $mode == 1 ]]; then scpus=0; gcpus=1; gthreads=1; conns=50
    else scpus=0,1; gcpus=0,1; gthreads=2; conns=25; fi
    start_server "$NAME_A" "$MEMCACHED" "$mode" "$scpus"; PORT_A=$SPORT PA=$SPID
    start_server "$NAME_B" "$OURS" "$mode" "$scpus"; PORT_B=$SPORT PB=$SPID
    preload "$PORT_A" "$gthreads" "$gcpus"
    preload "$PORT_B" "$gthreads" "$gcpus"
    OPEN_RATE=0
    for wl in $WORKLOADS; do
        if [[ $wl == open50 ]]; then
            # memcached's peak measured in this run: its pipeline-1 closed-loop
            # throughput (the p1 rounds above, or rounds made now for it).
            peak=$(median_throughput "$mode" p1 "$NAME_A")
            if [[ $peak == 0 ]]; then
                for r in $(seq "$ROUNDS"); do run_one mcbench "$mode" p1 "$r" "$NAME_A" "$PORT_A" "$PA" "$gthreads" "$gcpus" "$conns"; done
                peak=$(median_throughput "$mode" p1 "$NAME_A")
            fi
            OPEN_RATE=$((peak / 2))
            echo "  open loop at $OPEN_RATE req/s (50% of memcached's median pipeline-1 peak $peak req/s, this run)" >&2
            echo "$mode $OPEN_RATE $peak" >> "$OUT/open-rate.txt"
        fi
        for r in $(seq "$ROUNDS"); do
            for gen in $GENS; do
                run_one "$gen" "$mode" "$wl" "$r" "$NAME_A" "$PORT_A" "$PA" "$gthreads" "$gcpus" "$conns"
                run_one "$gen" "$mode" "$wl" "$r" "$NAME_B" "$PORT_B" "$PB" "$gthreads" "$gcpus" "$conns"
            done
        done
        if [[ ${SYSCALLS:-0} == 1 ]]; then
            for gen in $GENS; do
                run_one "$gen" "$mode" "$wl" 0 "$NAME_A" "$PORT_A" "$PA" "$gthreads" "$gcpus" "$conns" sys
                run_one "$gen" "$mode" "$wl" 0 "$NAME_B" "$PORT_B" "$PB" "$gthreads" "$gcpus" "$conns" sys
            done
        fi
    done
    stop_all
done

if [[ ${GENCMP:-0} == 1 ]]; then
    # One generator core driving memcached -t 1: mcbench vs memcaslap, same mix.
    start_server "$NAME_A" "$MEMCACHED" 1 0; PORT_A=$SPORT PA=$SPID
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

python3 - "$RESULTS" "$NAME_B" "$OUT/gencmp.jsonl" "${LAG_SHARE:-0.25}" "$OUT/open-rate.txt" "$NAME_A" <<'EOF' | tee "$OUT/table.md"
import json, os, statistics, sys
f, ours, gencmp, lag_share, open_rate, base = sys.argv[1:]
lag_share = float(lag_share)
rates = {}
if os.path.exists(open_rate):
    for l in open(open_rate):
        m, rate, peak = l.split()
        rates[int(m)] = (int(rate), int(peak))
invalid = []
allrows = [json.loads(l) for l in open(f)]
rows = [r for r in allrows if not r.get("syscalls")]
sysrows = [r for r in allrows if r.get("syscalls")]
gens = [g for g in ["mcbench", "memtier"] if any(r["gen"] == g for r in rows)]
med = lambda v: statistics.median(v) if v else float("nan")
names = {"p1": "get:set 9:1, pipeline 1", "p16": "get:set 9:1, pipeline 16",
         "mget10": "10-key multi-get", "set1k": "set-only 1 KiB", "open50": "open loop 50% of peak",
         "lowrate": f"open loop {os.environ.get('LOW_RATE', '20000')} req/s",
         "pingpong": "one connection, get after get",
         "mp1": "meta mg/ms 9:1, pipeline 1", "mp16": "meta mg/ms 9:1, pipeline 16",
         "mmget10": "meta 10-key multi-get (quiet mg + mn)", "mset1k": "meta ms-only 1 KiB",
         "bget1": "binary Get, pipeline 1", "bmget16": "binary 16-key multi-get (GetKQ + Noop)",
         "bp1": "binary get:set 9:1, pipeline 1", "bp16": "binary get:set 9:1, pipeline 16",
         "bset1k": "binary Set-only 1 KiB",
         "tp1": "TLS get:set 9:1, pipeline 1", "tp16": "TLS get:set 9:1, pipeline 16",
         "tlsconn": "new TLS connection per get (req/s = handshakes/s)"}
for mode in sorted({r["mode"] for r in rows}):
    print(f"\n### {mode} server core{'s' if mode > 1 else ''} ({base} -t {mode} vs {ours} -t {mode})\n")
    print("| workload | generator | server | req/s | p50 ms | p99 ms | p99.9 ms | CPU us/req | user share | gen busy | errors | load | send lag p99 / p99.9 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for wl, gen in [(w, g) for w in ["p1", "p16", "mget10", "open50", "set1k", "lowrate", "pingpong", "mp1", "mp16", "mmget10", "mset1k", "bget1", "bmget16", "bp1", "bp16", "bset1k", "tp1", "tp16", "tlsconn"] for g in gens]:
        agg = {}
        for s in [base, ours]:
            rs = [r for r in rows if r["mode"] == mode and r["workload"] == wl and r["server"] == s and r["gen"] == gen]
            if not rs:
                continue
            agg[s] = {k: med([r[k] for r in rs if r.get(k) is not None]) for k in ["throughput", "p50", "p99", "p999", "cpu_us_per_req", "cpu_user_share", "gen_busy", "load", "send_lag_p99", "send_lag_p999"]}
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
            print(f"| {name} | {gen} | {s} | {a['throughput']:.0f} | {a['p50']/1e3:.3f} | {a['p99']/1e3:.3f} | {a['p999']/1e3:.3f} | {a['cpu_us_per_req']:.2f} | {a['cpu_user_share']:.2f} | {a['gen_busy']:.2f} | {a['errors']} | {a['load']:.1f} | {lag} |")
        if len(agg) == 2:
            a, b = agg[base], agg[ours]
            r = lambda k: b[k] / a[k] if a[k] else float("nan")
            print(f"| {names[wl]} | {gen} | **ratio {ours}/{base}** | **{r('throughput'):.2f}x** | {r('p50'):.2f}x | {r('p99'):.2f}x | {r('p999'):.2f}x | **{r('cpu_us_per_req'):.2f}x** | | | | | |")
    srs = [r for r in sysrows if r["mode"] == mode]
    if srs:
        print(f"\nSyscalls, context switches and CPU per command (cmd_get+cmd_set), {mode} core{'s' if mode > 1 else ''}, perf stat on the server")
        print("over a window of one more run (window CPU: the server's task-clock there / its own command count):\n")
        print("| workload | generator | server | syscalls/cmd | switches/cmd | window CPU us/cmd | largest |")
        print("|---|---|---|---:|---:|---:|---|")
        for r in srs:
            top = ", ".join(f"{k} {v:.2f}" for k, v in r["syscalls_by"].items())
            print(f"| {names[r['workload']]} | {r['gen']} | {r['server']} | {r['syscalls_per_cmd']:.2f} | {r['switches_per_cmd']:.2f} | {r.get('window_cpu_us_per_cmd', float('nan')):.2f} | {top} |")
print("\nMedians over rounds. load = 1-minute load average when the runs started (2 CPUs: above ~2.5 other")
print("processes compete for the cores and tails mean little). send lag = open loop only: how late mcbench")
print(f"sent against its schedule (p99 / p99.9); a row is INVALID when it exceeds {lag_share:.0%} of the latency at p99 or p99.9.")
tls_seen = sorted({(r["server"], r["tls"]) for r in allrows if r.get("tls")})
negotiated = os.path.join(os.path.dirname(f), "tls-negotiated.txt")
if tls_seen or os.path.exists(negotiated):
    print("\nTLS negotiated (tlsconn: each request a new connection with a full handshake, no resumption;")
    print("CPU us/req there is the server's CPU per new connection: accept, handshake, one get, close):")
    for s, t in tls_seen:
        print(f"- {s}: mcbench (rustls): {t}")
    if os.path.exists(negotiated):
        for l in open(negotiated):
            print(f"- {l.strip()}")
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
