# Sourced by the *-vs-memcached.sh scripts: start and stop a server (memcached or
# memcached-rs) on a free loopback port, and kill what is left on exit.
#   start BIN ARGS...   starts BIN -p PORT -l 127.0.0.1 -U 0 ARGS...; sets PORT and PID
#   stop                stops the last started server and waits for it
# memcached refuses to run as root without -u root; memcached-rs accepts and ignores -u.

ROOT=()
[ "$(id -u)" = 0 ] && ROOT=(-u root)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
    local bin=$1; shift
    PORT=$(free_port)
    "$bin" -p "$PORT" -l 127.0.0.1 -U 0 "${ROOT[@]}" "$@" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null; then return; fi
        sleep 0.05
    done
    echo "server $bin did not start" >&2; exit 1
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
