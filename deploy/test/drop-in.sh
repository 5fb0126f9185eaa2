#!/usr/bin/env bash
# Switching from memcached, point by point (issue #18), without a Docker engine or
# systemd as PID 1 (scripts/deploy-check.sh runs this; systemd-live.sh covers the
# units for real):
#  - the image's entrypoint with and without the `memcached` word, the compose files'
#    commands through it, and the two compose files against our users' memcached ones;
#  - start-up failures: one line on stderr and a non-zero status (memlock too low,
#    io_uring refused by seccomp, no CPUs readable, -s, -P, port in use, -d, setuid
#    refused), and a
#    memlock below 512 KiB that still fits: serves, and says so at -v;
#  - -u: the uid after start, memcached's message and status for a missing user;
#    root without -u warns; -h says so;
#  - the man page renders, is current, and the units point at it;
#  - memcached-rs-wrapper reads Debian's /etc/memcached.conf as the unit passes it;
#  - memcached-rs-tool against the server.
#
#   deploy/test/drop-in.sh SERVER
# Prints `ok ...` per check; exits 1 at the first failure, 77 when not root (the
# checks of -u and of the memlock limit need root to switch users).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
server=$(realpath "${1:?usage: drop-in.sh SERVER}")
[[ $EUID -eq 0 ]] || { echo "drop-in: skipped: needs root (-u, memlock as another user)"; exit 77; }
work=$(mktemp -d /tmp/mcrs-drop-in.XXXXXX)
# Servers started here go into PIDS (scripts/lib/servers.sh): on exit they are killed
# and waited for, then the work directory goes.
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh
# shellcheck disable=SC2016 # expanded when the exit trap runs it
ON_EXIT='stop_all; rm -rf "$work"'
ok() { printf 'ok   %s\n' "$*"; }
fail() { # on stderr: also seen from inside $(...)
    printf 'FAIL %s\n' "$*" >&2
    exit 1
}
healthy() { HEALTHCHECK_TIMEOUT=1 scripts/healthcheck.sh 127.0.0.1 "$1" >/dev/null 2>&1; }
wait_healthy() { # port pid: up within 5 s while pid lives
    for _ in $(seq 50); do
        healthy "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# A server that must fail: `expect_fail STATUS PATTERN -- CMD...`: exit STATUS within
# 5 s, stderr exactly one line (besides seccomp-run.py's), matching PATTERN (grep -E).
expect_fail() {
    local want=$1 pattern=$2 status=0
    shift 3
    timeout 5 "$@" >"$work/out" 2>"$work/err.all" </dev/null || status=$?
    grep -v '^seccomp-run: ' "$work/err.all" >"$work/err" || true # the test harness's own line
    [[ $status -eq $want ]] || { cat "$work/err" >&2; fail "$*: exit $status, want $want"; }
    [[ $(wc -l <"$work/err") -eq 1 ]] || { cat "$work/err" >&2; fail "$*: not one line on stderr"; }
    grep -qE "$pattern" "$work/err" || { cat "$work/err" >&2; fail "$*: stderr does not say /$pattern/"; }
    echo "$status: $(cat "$work/err")"
}
port=0
next_port() { port=$(free_port); } # a port free right now

# A python with PyYAML (Debian's python3-yaml) for the compose files.
pyyaml=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import yaml' 2>/dev/null; then pyyaml=$py; break; fi
done
[[ -n $pyyaml ]] || fail "no python with PyYAML (apt-get install python3-yaml)"
command -v man >/dev/null || fail "no man (apt-get install man-db)"

# --- the image's entrypoint ------------------------------------------------------
stubs=$work/stubs
mkdir -p "$stubs"
# shellcheck disable=SC2016 # the stub's own $0 and $@
printf '#!/bin/sh\nprintf "%%s" "$(basename "$0")"; for a in "$@"; do printf " %%s" "$a"; done; echo\n' \
    >"$stubs/memcached-rs"
chmod +x "$stubs/memcached-rs"
entry=deploy/docker/docker-entrypoint.sh
argv() { PATH=$stubs:$PATH "$entry" "$@"; }
for case in "memcached -m 256 -c 1024|memcached-rs -m 256 -c 1024" \
    "-m 256 -c 1024|memcached-rs -m 256 -c 1024" \
    "memcached-rs -vv|memcached-rs -vv" \
    "/usr/bin/memcached -p 11300|memcached-rs -p 11300" \
    "|memcached-rs" \
    "--port=11300|memcached-rs --port=11300"; do
    args=${case%%|*} want=${case#*|}
    # shellcheck disable=SC2086 # the case's words
    got=$(argv $args)
    [[ $got == "$want" ]] || fail "entrypoint '$args': ran '$got', want '$want'"
done
[[ $(argv echo hello) == hello ]] || fail "entrypoint: another command is not run as given"
ok "entrypoint: 'memcached FLAGS', bare FLAGS, 'memcached-rs FLAGS', no arguments, other commands"
grep -q '^ENTRYPOINT \["docker-entrypoint.sh"\]$' deploy/docker/Dockerfile || fail "Dockerfile ENTRYPOINT"
grep -q '^COPY deploy/docker/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh$' deploy/docker/Dockerfile ||
    fail "Dockerfile does not install the entrypoint"
ok "Dockerfile: ENTRYPOINT docker-entrypoint.sh, installed from deploy/docker/"

# The compose files against our users' memcached ones: the same services, commands
# and ports; only the image differs, plus build, security_opt and ulimits.
"$pyyaml" - <<'PY' || fail "compose files differ from the memcached ones beyond image and io_uring"
import yaml
for ours, theirs, n in (("deploy/docker/compose.yaml", "deploy/test/memcached-compose.yaml", 1),
                        ("deploy/docker/compose.three.yaml", "deploy/test/memcached-compose.three.yaml", 3)):
    o = yaml.safe_load(open(ours))["services"]
    t = yaml.safe_load(open(theirs))["services"]
    assert len(o) == len(t) == n, (ours, len(o))
    assert o.keys() == t.keys(), (ours, o.keys(), t.keys())
    for name in o:
        s, m = dict(o[name]), dict(t[name])
        assert m.pop("image").startswith("memcached:1.6"), theirs
        assert s.pop("image") == "memcached-rs:latest", ours
        s.pop("build", None)
        assert "seccomp=seccomp-io_uring.json" in s.pop("security_opt"), (ours, name)
        assert s.pop("ulimits") == {"memlock": -1}, (ours, name)
        assert s == m, (ours, name, s, m)
    ports = sorted(p.split(":")[1] for s in o.values() for p in s["ports"])
    assert ports == ["11211", "11212", "11213"][:n], ports
    if n == 3:
        assert all(s["command"] == "memcached -m 512" for s in o.values())
PY
ok "compose.yaml and compose.three.yaml = our users' memcached files + image name, seccomp profile, memlock"

# Each compose command through the entrypoint with the real server (plus a test port,
# loopback, one core): the three instances serve side by side.
bin=$work/bin
mkdir -p "$bin"
ln -s "$server" "$bin/memcached-rs"
started=()
while read -r command; do
    next_port
    # shellcheck disable=SC2086 # the command's words, as Compose splits them
    PATH=$bin:$PATH "$entry" $command -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody >"$work/c$port.log" 2>&1 &
    PIDS+=($!)
    started+=("$port:$!:$command")
done < <("$pyyaml" -c 'import yaml
for f in ("deploy/docker/compose.yaml", "deploy/docker/compose.three.yaml"):
    for s in yaml.safe_load(open(f))["services"].values():
        print(s["command"])')
[[ ${#started[@]} -eq 4 ]] || fail "expected 4 compose services, got ${#started[@]}"
for s in "${started[@]}"; do
    IFS=: read -r p pid command <<<"$s"
    wait_healthy "$p" "$pid" || { cat "$work/c$p.log"; fail "compose command '$command' through the entrypoint"; }
    want=$(($(awk '{for (i = 1; i < NF; i++) if ($i == "-m") print $(i + 1)}' <<<"$command") << 20))
    got=$(printf 'stats settings\r\nquit\r\n' | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p; cat >&3; cat <&3" |
        tr -d '\r' | awk '$2 == "maxbytes" {print $3}')
    [[ $got == "$want" ]] || fail "'$command': maxbytes $got, want $want"
done
for s in "${started[@]}"; do
    IFS=: read -r p pid command <<<"$s"
    kill -TERM "$pid"
    wait "$pid" || fail "'$command' exited $? after SIGTERM"
done
ok "the 4 compose commands ('memcached -m 256 -c 1024', 3 x 'memcached -m 512') through the entrypoint: serve with their -m, exit 0"

# --- RLIMIT_MEMLOCK -------------------------------------------------------------
# The kernel charges io_uring rings to the user (not the process), and releases them
# a moment after a process exits: each check uses its own user.
next_port
status=0
(ulimit -l 64 && exec "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u daemon -v) >"$work/memlock.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_healthy "$port" "$pid" || { cat "$work/memlock.log"; fail "64 KiB of RLIMIT_MEMLOCK (a container's default): does not serve"; }
grep -q '^RLIMIT_MEMLOCK is 64 KiB, below glommio.s 512 KiB: running with .*no registered I/O buffers' "$work/memlock.log" ||
    { cat "$work/memlock.log"; fail "-v does not say how it fits 64 KiB"; }
kill -TERM "$pid"
wait "$pid" || status=$?
[[ $status -eq 0 ]] || fail "exit $status after SIGTERM under 64 KiB"
ok "RLIMIT_MEMLOCK 64 KiB (as user daemon): serves, -v says '$(grep -o 'running with [^;]*' "$work/memlock.log")'"
next_port
said=$(expect_fail 71 '^RLIMIT_MEMLOCK is 8 KiB: too low for the io_uring rings of 2 executors' -- \
    bash -c "ulimit -l 8 && exec $server -p $port -l 127.0.0.1 -U 0 -t 2 -u bin")
ok "RLIMIT_MEMLOCK 8 KiB: $said"
next_port
out=$( (ulimit -l 8 && timeout 3 "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u bin 2>&1; echo "exit $?") | tail -1)
[[ $out != "exit 0" ]] || fail "silent exit 0 under a low memlock limit"

# --- other start-up failures: one line, non-zero --------------------------------
next_port
said=$(expect_fail 71 '^failed to listen on UNIX socket: /nonexistent/dir/mc.sock: No such file' -- \
    "$server" -s /nonexistent/dir/mc.sock -u nobody)
ok "-s in a missing directory: $said"
next_port
said=$(expect_fail 71 '^Could not open the pid file /nonexistent/dir/mc.pid.tmp for writing' -- \
    "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -P /nonexistent/dir/mc.pid -u nobody)
ok "-P not writable: $said"
next_port
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$port" &
holder=$!
PIDS+=("$holder")
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
said=$(expect_fail 71 "^failed to listen on TCP port $port: Address already in use" -- \
    "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody)
ok "port in use: $said"
said=$(expect_fail 71 "^failed to listen on TCP port $port" -- \
    "$server" -d -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody)
ok "-d with the port in use: the parent exits 71, not 0 (memcached's exits 0): $said"
kill "$holder"
next_port
"$server" -d -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody -P "$work/d.pid" || fail "-d: parent exit $?"
healthy "$port" || fail "-d: not serving when the parent exited 0"
dpid=$(cat "$work/d.pid")
kill -TERM "$dpid"
for _ in $(seq 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
ok "-d: the parent exits 0 once the daemon serves (pid file $dpid)"
if /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
    profile() { # names to drop from the io_uring profile -> file
        python3 -c 'import json, sys
p = json.load(open("deploy/docker/seccomp-io_uring.json"))
drop = set(sys.argv[2:])
for rule in p["syscalls"]:
    rule["names"] = [n for n in rule["names"] if n not in drop]
json.dump(p, open(sys.argv[1], "w"))' "$@"
    }
    profile "$work/no-io_uring.json" io_uring_setup io_uring_enter io_uring_register
    next_port
    # shellcheck disable=SC2016 # backquotes in the message
    said=$(expect_fail 71 '^io_uring is refused: check `sysctl kernel.io_uring_disabled`.*seccomp' -- \
        deploy/test/seccomp-run.py "$work/no-io_uring.json" "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u root)
    ok "io_uring refused by seccomp (Docker's default; kernel.io_uring_disabled gives the same EPERM): ${said:0:90}..."
    profile "$work/no-affinity.json" sched_getaffinity
    next_port
    said=$(expect_fail 71 "^no CPUs in this process's affinity mask" -- \
        deploy/test/seccomp-run.py "$work/no-affinity.json" "$server" -p "$port" -l 127.0.0.1 -U 0 -u root)
    ok "CPU affinity mask unreadable, no -t: $said"
    profile "$work/no-setuid.json" setuid
    next_port
    said=$(expect_fail 71 '^failed to assume identity of user nobody$' -- \
        deploy/test/seccomp-run.py "$work/no-setuid.json" "$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody)
    ok "-u nobody with setuid refused: $said (memcached's words)"
else
    echo "skip io_uring/affinity refusals (no python3-seccomp)"
fi

# --- -u ----------------------------------------------------------------------------
said=$(expect_fail 67 "^can't find the user nosuchuser to switch to$" -- "$server" -p 0 -u nosuchuser)
if [[ -x /usr/bin/memcached ]]; then
    mc=$(expect_fail 67 . -- /usr/bin/memcached -p 0 -u nosuchuser)
    [[ $mc == "$said" ]] || fail "-u nosuchuser: memcached says '$mc', we say '$said'"
fi
ok "-u nosuchuser: $said (memcached's words and status)"
next_port
"$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody >"$work/u.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_healthy "$port" "$pid" || { cat "$work/u.log"; fail "-u nobody does not serve"; }
want_uid=$(id -u nobody) want_gid=$(id -g nobody)
read -r _ ruid euid suid fsuid < <(grep '^Uid:' "/proc/$pid/status")
read -r _ rgid egid sgid fsgid < <(grep '^Gid:' "/proc/$pid/status")
groups=$(awk '/^Groups:/ {print $2}' "/proc/$pid/status")
[[ "$ruid $euid $suid $fsuid" == "$want_uid $want_uid $want_uid $want_uid" ]] || fail "-u nobody: Uid $ruid $euid $suid $fsuid"
[[ "$rgid $egid $sgid $fsgid" == "$want_gid $want_gid $want_gid $want_gid" ]] || fail "-u nobody: Gid $rgid $egid $sgid $fsgid"
[[ -z $groups ]] || fail "-u nobody: supplementary groups kept: $groups"
for task in /proc/"$pid"/task/*; do
    [[ $(awk '/^Uid:/ {print $3}' "$task/status") == "$want_uid" ]] || fail "-u: thread $task still root"
done
[[ ! -s $work/u.log ]] || { cat "$work/u.log"; fail "-u nobody printed something"; }
kill -TERM "$pid"
wait "$pid" || fail "-u nobody: exit $? after SIGTERM"
ok "-u nobody as root: every thread uid/gid $want_uid/$want_gid, no supplementary groups, serves, exit 0"
next_port
"$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 >"$work/root.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_healthy "$port" "$pid" || { cat "$work/root.log"; fail "root without -u does not serve"; }
grep -q '^warning: running as root without -u USER' "$work/root.log" || fail "root without -u: no warning"
kill -TERM "$pid"
wait "$pid" || true
"$server" -h | grep -q 'memcached-rs starts, warns on' || fail "-h does not tell about root without -u"
ok "root without -u: serves with a warning on stderr (memcached refuses); -h says so"

# --- man page ----------------------------------------------------------------------
warnings=$(MANWIDTH=80 man --warnings -l deploy/memcached-rs.1 2>&1 >/dev/null)
[[ -z $warnings ]] || { echo "$warnings"; fail "man -l deploy/memcached-rs.1 warns"; }
page=$(MANWIDTH=80 man -l deploy/memcached-rs.1 2>/dev/null)
for want in 'memcached-rs - a memcached 1.6 compatible' '-u, --user <USER>' 'RUNNING AS ROOT' \
    'EXIT STATUS' '/etc/memcached-rs.conf'; do
    grep -qF -- "$want" <<<"$page" || fail "man page lacks '$want'"
done
if [[ ${DROP_IN_MAN_FRESH:-1} == 1 ]]; then
    cargo run --quiet --release --locked --example gen-man >"$work/memcached-rs.1" 2>"$work/gen-man.log" ||
        { cat "$work/gen-man.log"; fail "cargo run --example gen-man"; }
    cmp -s "$work/memcached-rs.1" deploy/memcached-rs.1 ||
        fail "deploy/memcached-rs.1 is stale: cargo run --release --example gen-man > deploy/memcached-rs.1"
fi
for unit in deploy/systemd/memcached-rs.service deploy/systemd/memcached-rs@.service; do
    grep -q '^Documentation=man:memcached-rs(1) ' "$unit" || fail "$unit: Documentation= lacks man:memcached-rs(1)"
done
ok "man -l deploy/memcached-rs.1: renders without warnings, current with the clap flags; units' Documentation="

# --- /etc/memcached-rs.conf through the unit's wrapper ----------------------------
# shellcheck disable=SC2016 # the stub's own $@
printf '#!/bin/sh\nfor a in "$@"; do printf "%%s " "$a"; done; echo\n' >"$work/argv"
chmod +x "$work/argv"
exec_start=$(sed -n 's/^ExecStart=//p' deploy/systemd/memcached-rs.service)
[[ $exec_start == "/usr/share/memcached-rs/memcached-rs-wrapper /etc/memcached-rs.conf "* ]] ||
    fail "the unit does not read /etc/memcached-rs.conf through the wrapper: $exec_start"
# The unit's command line with the default file's values, as systemd expands it.
defaults=(-l 127.0.0.1 -p 11211 -U 0 -m 64 -c 1024)
got=$(MEMCACHED_RS_BIN=$work/argv deploy/conf/memcached-rs-wrapper deploy/test/debian-memcached.conf \
    "${defaults[@]}" 2>"$work/wrapper.err")
[[ $got == "-p 11211 -U 0 -m 64 -c 1024 -m 64 -p 11211 -u memcache -l 127.0.0.1 " ]] ||
    fail "Debian's memcached.conf through the wrapper: '$got'"
for note in 'ignoring -d' 'ignoring logfile' 'ignoring -P'; do
    grep -q "$note" "$work/wrapper.err" || fail "wrapper: no note '$note'"
done
got=$(MEMCACHED_RS_BIN=$work/argv deploy/conf/memcached-rs-wrapper deploy/conf/memcached-rs.conf "${defaults[@]}" 2>&1)
[[ $got == "${defaults[*]} " ]] || fail "the shipped memcached-rs.conf changes the defaults: '$got'"
got=$(MEMCACHED_RS_BIN=$work/argv deploy/conf/memcached-rs-wrapper "$work/none.conf" "${defaults[@]}" 2>&1)
[[ $got == "${defaults[*]} " ]] || fail "a missing conf: '$got'"
printf 'verbose\n' >"$work/bad.conf"
if MEMCACHED_RS_BIN=$work/argv deploy/conf/memcached-rs-wrapper "$work/bad.conf" 2>/dev/null; then
    fail "wrapper accepts a line that is not a flag"
fi
# And the real server takes that command line (memcached's -u memcache is a no-op when
# not root; here as root, -u nobody replaces it).
next_port
sed -e "s/^-p 11211$/-p $port/" -e 's/^-u memcache$/-u nobody/' deploy/test/debian-memcached.conf >"$work/memcached.conf"
MEMCACHED_RS_BIN=$server deploy/conf/memcached-rs-wrapper "$work/memcached.conf" -t 1 -U 0 >"$work/conf.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_healthy "$port" "$pid" || { cat "$work/conf.log"; fail "server with Debian's memcached.conf"; }
kill -TERM "$pid"
wait "$pid" || fail "exit $? after SIGTERM (memcached.conf)"
ok "memcached-rs-wrapper: Debian's /etc/memcached.conf -> its flags after the unit's (-d, logfile, -P dropped with a note); the server serves with it"

# --- memcached-rs-tool -------------------------------------------------------------
next_port
"$server" -p "$port" -l 127.0.0.1 -U 0 -t 1 -u nobody >/dev/null 2>&1 &
pid=$!
PIDS+=("$pid")
wait_healthy "$port" "$pid" || fail "server for memcached-rs-tool"
printf 'set drop-in 0 0 2\r\nhi\r\nquit\r\n' | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat >&3; cat <&3" >/dev/null
deploy/memcached-rs-tool "127.0.0.1:$port" stats >"$work/tool.out" || fail "memcached-rs-tool stats"
tr -d '\r' <"$work/tool.out" | grep -qE '^ +curr_items +1$' || { cat "$work/tool.out"; fail "memcached-rs-tool stats: no curr_items 1"; }
kill -TERM "$pid"
wait "$pid" || true
ok "memcached-rs-tool 127.0.0.1:PORT stats: works against memcached-rs"
