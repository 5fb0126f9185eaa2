# Sourced by the *-vs-memcached.sh scripts: start and stop a server (memcached or
# memcached-rs) on a free loopback port, and kill what is left on exit.
#   start BIN ARGS...   starts BIN -p PORT -l 127.0.0.1 -U 0 ARGS...; sets PORT and PID
#                       SERVER_CPUS=LIST  pin it with taskset -c LIST
#                       SERVER_LOG=FILE   its stdout and stderr go there (else inherited)
#   stop                stops the last started server and waits for it
#   stop_all            stops every server started so far and waits for them
# memcached refuses to run as root without -u root; memcached-rs accepts and ignores -u.

AS_ROOT=()
[ "$(id -u)" = 0 ] && AS_ROOT=(-u root)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
    local bin=$1 pin=() try; shift
    [ -n "${SERVER_CPUS:-}" ] && pin=(taskset -c "$SERVER_CPUS")
    # The port is free when chosen, not reserved: if something else takes it first the
    # server exits, and we try another.
    for try in 1 2 3; do
        PORT=$(free_port)
        if [ -n "${SERVER_LOG:-}" ]; then
            "${pin[@]}" "$bin" -p "$PORT" -l 127.0.0.1 -U 0 "${AS_ROOT[@]}" "$@" > "$SERVER_LOG" 2>&1 &
        else
            "${pin[@]}" "$bin" -p "$PORT" -l 127.0.0.1 -U 0 "${AS_ROOT[@]}" "$@" &
        fi
        PID=$!
        PIDS+=("$PID")
        for _ in $(seq 100); do
            kill -0 "$PID" 2>/dev/null || continue 2
            if python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null; then return; fi
            sleep 0.05
        done
        break
    done
    echo "server $bin did not start listening${SERVER_LOG:+; see $SERVER_LOG}" >&2; exit 1
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

stop_all() {
    cleanup
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
