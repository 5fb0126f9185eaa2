#!/usr/bin/env bash
# Three memcached-rs behind twemproxy on loopback; one instance dies mid-run.
#
#   scripts/cluster.sh [SERVER_BINARY]     (default target/release/memcached-rs;
#                                           /usr/bin/memcached works the same)
# Environment:
#   CLUSTER_BASE_PORT  proxy port; instances on +1..+3, proxy stats on +100 (22121)
#   CLUSTER_KEYS       keys written through the proxy (3000)
#   CLUSTER_SERVER_ARGS extra server flags (default: -t 1, and -u root as root)
#   CLUSTER_PROXY_TIMEOUT backend timeout in ms (3000: a shared, busy test machine
#                      can stall a healthy server past the shipped 1000)
#   MCBENCH_CMD        load through the proxy, run before the kill and after the
#                      ejection; {proxy} is replaced by 127.0.0.1:PORT. Default: mcbench
#                      (bench/target/release/mcbench, or $MCBENCH) for 2 s when built,
#                      else none. Also e.g. MCBENCH_CMD='memcaslap -s {proxy} -t 2s';
#                      MCBENCH_CMD=none turns it off.
#
# What it shows, each step asserted (exit 1 on the first failure):
#  1. every key written through the proxy reads back (100% hits), and each key lives
#     on exactly one instance (asked directly), about a third each (ketama);
#  2. SIGKILL one instance; twemproxy ejects it after server_failure_limit errors;
#  3. after the ejection: keys owned by the dead instance are misses, every other key
#     still hits with its value, zero errors; new writes are stored and read back.
# The twemproxy config is deploy/twemproxy/nutcracker.yml itself (ports and timeout
# changed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
server=${1:-$root/target/release/memcached-rs}
base=${CLUSTER_BASE_PORT:-22121}
keys=${CLUSTER_KEYS:-3000}
proxy_port=$base
ports=($((base + 1)) $((base + 2)) $((base + 3)))
stats_port=$((base + 100))

say() { printf '== %s\n' "$*"; }
die() {
    printf 'cluster.sh: FAIL: %s\n' "$*" >&2
    exit 1
}

[[ -x $server ]] || die "no server binary at $server (build it, or pass /usr/bin/memcached)"
if ! command -v nutcracker >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing nutcracker (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nutcracker >/dev/null ||
            die "apt-get install nutcracker failed (run apt-get update first?)"
    else
        die "nutcracker not installed: apt-get install nutcracker"
    fi
fi
# Debian's package starts a nutcracker service on 22121 where systemd runs: we only
# ever talk to the processes started below, so check our ports are free first.
for p in "$proxy_port" "${ports[@]}" "$stats_port"; do
    for try in $(seq 30); do # a previous run's servers may still be draining
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || continue 2
        sleep 0.2
    done
    die "port $p already in use (tried ${try}x): set CLUSTER_BASE_PORT"
done

work=$(mktemp -d /tmp/mcrs-cluster.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${CLUSTER_KEEP_LOGS:-} ]]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- servers ---------------------------------------------------------------
if [[ -n ${CLUSTER_SERVER_ARGS+x} ]]; then
    read -r -a server_args <<<"$CLUSTER_SERVER_ARGS"
else
    server_args=(-t 1)
    # memcached refuses to run as root without -u; memcached-rs takes the same flag.
    [[ $EUID -eq 0 ]] && server_args+=(-u root)
fi
server_pids=()
for i in 0 1 2; do
    "$server" -l 127.0.0.1 -p "${ports[$i]}" -U 0 -m 64 -c 1024 "${server_args[@]}" \
        >"$work/server-${ports[$i]}.log" 2>&1 &
    pids+=($!)
    server_pids+=($!)
done
for p in "${ports[@]}"; do
    for _ in $(seq 50); do
        HEALTHCHECK_TIMEOUT=1 "$root/scripts/healthcheck.sh" 127.0.0.1 "$p" >/dev/null 2>&1 && continue 2
        sleep 0.2
    done
    cat "$work/server-$p.log" >&2 || true
    die "server on port $p did not become healthy"
done
say "3 servers healthy: $server on ${ports[*]}"

# --- twemproxy -------------------------------------------------------------
conf=$work/nutcracker.yml
sed -e "s/127\.0\.0\.1:22121/127.0.0.1:$proxy_port/" \
    -e "s/127\.0\.0\.1:22122:/127.0.0.1:${ports[0]}:/" \
    -e "s/127\.0\.0\.1:22123:/127.0.0.1:${ports[1]}:/" \
    -e "s/127\.0\.0\.1:22124:/127.0.0.1:${ports[2]}:/" \
    -e "s/^  timeout: [0-9]*/  timeout: ${CLUSTER_PROXY_TIMEOUT:-3000}/" \
    "$root/deploy/twemproxy/nutcracker.yml" >"$conf"
nutcracker -t -c "$conf" >/dev/null 2>&1 || die "nutcracker rejects $conf"
nutcracker -c "$conf" -o "$work/nutcracker.log" -s "$stats_port" -a 127.0.0.1 &
pids+=($!)
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break
    sleep 0.2
done
"$root/scripts/healthcheck.sh" 127.0.0.1 "$proxy_port" || die "proxy unhealthy"
say "nutcracker on $proxy_port (ketama, auto_eject_hosts)"

client() {
    python3 - "$@" <<'PY'
import json, socket, sys, time

cmd, proxy, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Conn:
    """Minimal memcached text-protocol client: one request at a time."""
    def __init__(self, port):
        self.port, self.sock, self.buf = port, None, b""
    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.buf = b""
    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()
    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data
    def request(self, payload, reader):
        """Returns (kind, detail); kind 'error' on an error reply or a broken link."""
        try:
            if self.sock is None:
                self._connect()
            self.sock.sendall(payload)
            return reader()
        except (OSError, ConnectionError, ValueError) as e:
            if self.sock:
                self.sock.close()
            self.sock = None
            return ("error", f"{type(e).__name__}: {e}")
    def set(self, key, value):
        data = value.encode()
        def read():
            line = self._line()
            return ("stored", None) if line == "STORED" else ("error", line)
        return self.request(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(data), data), read)
    def get(self, key):
        def read():
            line = self._line()
            if line == "END":
                return ("miss", None)
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "VALUE" and parts[1] == key:
                data = self._exact(int(parts[3]) + 2)[:-2].decode()
                end = self._line()
                return ("hit", data) if end == "END" else ("error", f"after value: {end}")
            return ("error", line)
        return self.request(b"get %s\r\n" % key.encode(), read)

def fail(msg):
    print(f"cluster.sh: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

if cmd == "fill":
    backends, n = [int(p) for p in sys.argv[4].split(",")], int(sys.argv[5])
    run = f"{time.time_ns():x}"
    keys = {f"cluster:{run}:{i}": f"value-{i}-{run}" for i in range(n)}
    c = Conn(proxy)
    bad = [(k, r) for k in keys if (r := c.set(k, keys[k]))[0] != "stored"]
    if bad:
        fail(f"{len(bad)}/{n} sets through the proxy failed, first: {bad[0]}")
    got = {k: c.get(k) for k in keys}
    wrong = [(k, r) for k, r in got.items() if r != ("hit", keys[k])]
    if wrong:
        fail(f"{len(wrong)}/{n} gets through the proxy not the value written, first: {wrong[0]}")
    print(f"wrote {n} keys through the proxy, read back {n}/{n} (100% hits)")
    # Who owns each key: ask every instance directly.
    owner = {}
    for port in backends:
        b = Conn(port)
        for k in keys:
            r = b.get(k)
            if r[0] == "error":
                fail(f"direct get on {port}: {r}")
            if r[0] == "hit":
                if k in owner:
                    fail(f"{k} on both {owner[k]} and {port}")
                owner[k] = port
    missing = [k for k in keys if k not in owner]
    if missing:
        fail(f"{len(missing)} keys on no instance, first {missing[0]}")
    for port in backends:
        share = sum(1 for p in owner.values() if p == port) / n
        print(f"  instance {port} owns {share:6.1%} of the keys")
        if not 0.20 <= share <= 0.47:
            fail(f"instance {port} owns {share:.1%}: ketama should give about a third")
    json.dump({"keys": keys, "owner": owner}, open(state, "w"))

elif cmd == "await-eject":
    dead, limit = int(sys.argv[4]), float(sys.argv[5])
    st = json.load(open(state))
    dead_keys = [k for k, p in st["owner"].items() if p == dead]
    c, errors, streak, i, start = Conn(proxy), 0, 0, 0, time.monotonic()
    # Ejected once a run of the dead instance's keys come back as plain misses.
    while streak < 20:
        if time.monotonic() - start > limit:
            fail(f"instance {dead} not ejected within {limit}s ({errors} errors seen)")
        key = dead_keys[i % len(dead_keys)]
        kind, detail = c.get(key)
        i += 1
        if kind == "miss":
            streak += 1
        elif kind == "error":
            errors, streak = errors + 1, 0
            time.sleep(0.05)
        else:
            fail(f"dead instance's key {key} answered {kind} {detail}")
    took = time.monotonic() - start
    print(f"instance {dead} ejected after {errors} failed requests, {took:.2f}s")

elif cmd == "verify":
    dead = int(sys.argv[4])
    st = json.load(open(state))
    keys, owner, n = st["keys"], st["owner"], len(st["keys"])
    c = Conn(proxy)
    hits = misses = 0
    for k, v in keys.items():
        kind, detail = c.get(k)
        if kind == "error":
            fail(f"error after ejection on {k}: {detail}")
        if owner[k] == dead:
            if kind != "miss":
                fail(f"{k} owned by the dead instance {dead} answered {kind}")
            misses += 1
        else:
            if (kind, detail) != ("hit", v):
                fail(f"{k} owned by live instance {owner[k]} answered {kind} {detail}")
            hits += 1
    lost = misses / n
    print(f"after ejection: {hits}/{n} hits, {misses}/{n} misses ({lost:.1%} lost, "
          f"exactly the dead instance's keys; expected about 33%), 0 errors")
    if not 0.20 <= lost <= 0.47:
        fail(f"lost {lost:.1%}, expected about a third")
    fresh = {f"{k}:after": v for k, v in keys.items()}
    bad = [(k, r) for k in fresh if (r := c.set(k, fresh[k]))[0] != "stored"]
    if bad:
        fail(f"{len(bad)} sets after ejection failed, first {bad[0]}")
    wrong = [(k, r) for k in fresh if (r := c.get(k)) != ("hit", fresh[k])]
    if wrong:
        fail(f"{len(wrong)} new keys not read back, first {wrong[0]}")
    print(f"after ejection: {n} new keys stored and read back (100%), 0 errors")
else:
    fail(f"unknown client command {cmd}")
PY
}

if [[ -z ${MCBENCH_CMD:-} ]]; then
    for m in "${MCBENCH:-}" "$root/bench/target/release/mcbench" "$root/target/release/mcbench"; do
        if [[ -n $m && -x $m ]]; then
            MCBENCH_CMD="$m --servers {proxy} --connections 8 --duration 2 --preload --keys 10000 --quiet"
            break
        fi
    done
fi
mcbench() {
    [[ -n ${MCBENCH_CMD:-} && $MCBENCH_CMD != none ]] || return 0
    local cmd=${MCBENCH_CMD//\{proxy\}/127.0.0.1:$proxy_port}
    say "load: $cmd"
    bash -c "$cmd" || die "mcbench through the proxy failed"
}

state=$work/state.json
client fill "$proxy_port" "$state" "$(IFS=,; echo "${ports[*]}")" "$keys"
mcbench

dead=${ports[1]}
say "SIGKILL instance $dead (pid ${server_pids[1]})"
{
    kill -KILL "${server_pids[1]}"
    wait "${server_pids[1]}" || true
} 2>/dev/null
client await-eject "$proxy_port" "$state" "$dead" 10
client verify "$proxy_port" "$state" "$dead"
mcbench
for p in "${ports[0]}" "${ports[2]}"; do
    "$root/scripts/healthcheck.sh" 127.0.0.1 "$p" >/dev/null || die "survivor $p unhealthy"
done
say "PASS: requests kept being served; only instance $dead's keys were lost"
