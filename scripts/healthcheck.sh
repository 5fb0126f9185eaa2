#!/usr/bin/env bash
# Health check for memcached-rs (or memcached): set, get and delete a unique key.
#
#   scripts/healthcheck.sh [HOST [PORT]]     (defaults: 127.0.0.1 11211)
#   HEALTHCHECK_TIMEOUT=seconds              (default 3, for the whole exchange)
#
# Exit 0 and one "healthy" line when all three replies are right; 1 and the reason
# on stderr otherwise (refused, timed out, wrong reply, value mismatch); 2 on bad
# usage. Fit for a load balancer, a Docker HEALTHCHECK or systemd's ExecStartPost=.
# Needs only bash (/dev/tcp) and coreutils' timeout.
set -u

host=${1:-127.0.0.1}
port=${2:-11211}
limit=${HEALTHCHECK_TIMEOUT:-3}

if [[ $# -gt 2 || ! $port =~ ^[0-9]+$ || ! $limit =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [HOST [PORT]]   (HEALTHCHECK_TIMEOUT=seconds)" >&2
    exit 2
fi

# bash's connect() has no timeout of its own: run the exchange under timeout(1).
if [[ -z ${_MCRS_HEALTHCHECK_INNER:-} ]]; then
    _MCRS_HEALTHCHECK_INNER=1 timeout "$limit" bash "$0" "$host" "$port"
    rc=$?
    if [[ $rc -eq 124 ]]; then
        echo "UNHEALTHY $host:$port: no complete answer within ${limit}s" >&2
        exit 1
    fi
    exit "$rc"
fi

fail() {
    echo "UNHEALTHY $host:$port: $*" >&2
    exit 1
}

# Unique per host, process and call, so concurrent checks never collide.
key="healthcheck:$(hostname 2>/dev/null || echo host):$$:$RANDOM$RANDOM"
value="ok-$RANDOM$RANDOM"

{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || fail "cannot connect"

# Reads one reply line into $reply, without its CR LF.
read_reply() {
    IFS= read -r reply <&3 || fail "connection closed while waiting for $1"
    reply=${reply%$'\r'}
}

printf 'set %s 0 30 %d\r\n%s\r\n' "$key" "${#value}" "$value" >&3 || fail "write failed"
read_reply "set"
[[ $reply == STORED ]] || fail "set replied '$reply'"

printf 'get %s\r\n' "$key" >&3 || fail "write failed"
read_reply "get"
[[ $reply == "VALUE $key 0 ${#value}" ]] || fail "get replied '$reply'"
read_reply "get data"
[[ $reply == "$value" ]] || fail "get returned '$reply', expected '$value'"
read_reply "get END"
[[ $reply == END ]] || fail "get ended with '$reply'"

printf 'delete %s\r\n' "$key" >&3 || fail "write failed"
read_reply "delete"
[[ $reply == DELETED ]] || fail "delete replied '$reply'"

printf 'quit\r\n' >&3
exec 3>&-
echo "healthy $host:$port (set/get/delete)"
