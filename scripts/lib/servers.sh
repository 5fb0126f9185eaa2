# Sourced by every script that starts a server (memcached or memcached-rs): the one
# place a free loopback port is picked, a server started on it, waited for and stopped,
# and what is left killed on exit.
#   free_port           prints a loopback port free at the time of asking
#   wait_port PORT [PID] waits WAIT_TRIES x 50 ms (default 5 s) until PORT accepts; fails early if PID exits
#   start BIN ARGS...   starts BIN -p PORT -l 127.0.0.1 -U 0 ARGS...; sets PORT and PID
#                       (fails, under set -e exits, when it does not start listening)
#                       SERVER_CPUS=LIST  pin it with taskset -c LIST
#                       SERVER_LOG=FILE   its stdout and stderr go there (else inherited)
#   stop                stops the last started server and waits for it
#   stop_all            stops every server started so far and waits for them
#   ON_EXIT='cmd'       run by the exit trap after the servers are killed (the script's
#                       own cleanup: temporary directories, other processes)
# memcached refuses to run as root without -u root; with -u root memcached-rs stays root.

AS_ROOT=()
[ "$(id -u)" = 0 ] && AS_ROOT=(-u root)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'cleanup; eval "${ON_EXIT:-}"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to WAIT_TRIES x 50 ms (default 5 s) for $1 to accept; fails early if pid $2 exits.
wait_port() {
    local port=$1 pid=${2:-}
    for _ in $(seq "${WAIT_TRIES:-100}"); do
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

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
        wait_port "$PORT" "$PID" && return
        kill -0 "$PID" 2>/dev/null || continue
        break
    done
    echo "server $bin did not start listening${SERVER_LOG:+; see $SERVER_LOG}" >&2; return 1
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

stop_all() {
    cleanup
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
