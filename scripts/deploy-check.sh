#!/usr/bin/env bash
# The deployment test: everything under deploy/ and the scripts that ship it.
# Exits non-zero on the first failure; ends with "N passed, 0 failed".
#
#   scripts/deploy-check.sh
# Environment:
#   DEPLOY_CHECK_SERVER=PATH  server for the live checks (healthcheck, cluster.sh);
#                             default /usr/bin/memcached, e.g. target/release/memcached-rs
#   DEPLOY_CHECK_DEB=0        skip the .deb (by default `cargo deb --no-build` packages
#                             target/release/memcached-rs when it exists, else builds it)
#                             and apt-get install/remove/purge of it under the live systemd
#   DEPLOY_CHECK_SYSTEMD=0    skip the live systemd test (deploy/test/systemd-live.sh)
#   DEPLOY_CHECK_SYSTEMD_SERVER=PATH  server for it (default: the probe; e.g.
#                             target/release/memcached-rs once it speaks sd_notify)
#
# Checks, with what this machine has (no systemd as PID 1, no Docker engine):
#  - shell syntax (bash -n) and shellcheck of the scripts;
#  - install.sh into a temporary root (DESTDIR), then `systemd-analyze verify --root`
#    on both installed units (memcached-rs.service, memcached-rs@22122.service), with
#    a negative control (no ExecStart program => verify must fail), and
#    `systemd-analyze security --offline` under a threshold; uninstall and purge leave
#    nothing behind;
#  - the default file parses as an environment file and sets every variable the
#    units use;
#  - nutcracker accepts deploy/twemproxy/nutcracker.yml;
#  - healthcheck.sh: 0 against a live server, 1 against a closed port;
#  - cluster.sh end to end (3 servers + nutcracker, one killed);
#  - graceful stop mid-pipeline (deploy/test/graceful-stop.sh): passes the draining
#    reference server, fails memcached 1.6, must pass DEPLOY_CHECK_SERVER;
#  - live systemd: systemd 252 as PID 1 of private namespaces runs install.sh and
#    the units for real (Type=notify, restart, SIGTERM, Restart=, instances);
#  - switching from memcached (deploy/test/drop-in.sh, against a memcached-rs server):
#    the image's entrypoint with and without the `memcached` word, the compose files
#    against our users' memcached ones, start-up failures (memlock, io_uring refused,
#    affinity, -s, -P, port in use, -d), -u, the man page, the memcached.conf wrapper,
#    memcached-rs-tool;
#  - docker: both compose files parse (docker-compose config when present, else YAML),
#    the seccomp profile allows io_uring and the calls the server needs, and loaded
#    with libseccomp (deploy/test/seccomp-run.py) lets the server start, serve and
#    stop; the Dockerfile's COPY sources exist. The image is NOT built (no engine).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0
failed=0
work=$(mktemp -d /tmp/mcrs-deploy-check.XXXXXX)
# Servers started here go into PIDS (scripts/lib/servers.sh): on exit they are killed
# and waited for, then the work directory goes.
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh
# shellcheck disable=SC2016 # expanded when the exit trap runs it
ON_EXIT='stop_all; rm -rf "$work"'

ok() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$*"
}
not_ok() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$*"
    printf '%s passed, %s failed\n' "$passed" "$failed"
    exit 1
}
# Installs a Debian package when a tool is missing and we may (root, apt).
need() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing $package for $tool"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1; } ||
            return 1
    else
        return 1
    fi
}

scripts=(scripts/install.sh scripts/healthcheck.sh scripts/cluster.sh scripts/deploy-check.sh
    deploy/test/systemd-live.sh deploy/test/graceful-stop.sh deploy/test/drop-in.sh
    deploy/conf/memcached-rs-wrapper)
sh_scripts=(deploy/debian/postinst deploy/debian/prerm deploy/docker/docker-entrypoint.sh)

# --- scripts ---------------------------------------------------------------------
for s in "${scripts[@]}"; do
    bash -n "$s" || not_ok "syntax: $s"
done
for s in "${sh_scripts[@]}"; do
    sh -n "$s" || not_ok "syntax: $s"
done
perl -c deploy/memcached-rs-tool >/dev/null 2>&1 || not_ok "perl -c deploy/memcached-rs-tool"
ok "shell syntax of ${#scripts[@]} bash and ${#sh_scripts[@]} sh scripts; memcached-rs-tool compiles"
if need shellcheck shellcheck; then
    shellcheck -x "${scripts[@]}" || not_ok "shellcheck" # -x: follow scripts/lib/servers.sh
    shellcheck -s sh "${sh_scripts[@]}" || not_ok "shellcheck (sh)"
    ok "shellcheck clean"
else
    echo "skip shellcheck (not installed)"
fi

# --- systemd units, through install.sh -----------------------------------------
need systemd-analyze systemd || not_ok "systemd-analyze missing (apt-get install systemd)"
sysroot=$work/root
mkdir -p "$sysroot/usr/lib/systemd"
# verify --root resolves dependencies (sysinit.target, ...) inside the root.
stock=/usr/lib/systemd/system
[[ -d $stock ]] || stock=/lib/systemd/system
cp -a "$stock" "$sysroot/usr/lib/systemd/"
# verify checks that ExecStart's binary exists and is executable, inside the root.
stub=$work/memcached-rs-stub
printf '#!/bin/sh\nexit 0\n' >"$stub"
chmod +x "$stub"
DESTDIR=$sysroot scripts/install.sh --binary "$stub" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; not_ok "install.sh into DESTDIR"; }
for f in usr/bin/memcached-rs usr/lib/systemd/system/memcached-rs.service \
    usr/lib/systemd/system/memcached-rs@.service etc/default/memcached-rs \
    usr/share/doc/memcached-rs/README.md usr/share/memcached-rs/healthcheck.sh \
    etc/memcached-rs.conf usr/share/memcached-rs/memcached-rs-wrapper usr/bin/memcached-rs-tool \
    usr/share/man/man1/memcached-rs.1.gz; do
    [[ -e $sysroot/$f ]] || not_ok "install.sh did not install /$f"
done
grep -q "skipped daemon-reload" "$work/install.log" || not_ok "install.sh: no 'skipped' notice under DESTDIR"
man -l "$sysroot/usr/share/man/man1/memcached-rs.1.gz" 2>/dev/null | grep -q 'RUNNING AS ROOT' ||
    not_ok "installed man page does not render"
ok "install.sh installs binary, units, default file, memcached-rs.conf and its wrapper, man page, memcached-rs-tool, docs into DESTDIR"

verify() { # unit: verify must print nothing and exit 0 (it exits 0 on mere warnings)
    local out
    out=$(cd "$sysroot" && systemd-analyze verify --man=no --root="$sysroot" "$1" 2>&1) ||
        { echo "$out"; return 1; }
    [[ -z $out ]] || { echo "$out"; return 1; }
}
for unit in memcached-rs.service memcached-rs@22122.service; do
    verify "$unit" || not_ok "systemd-analyze verify $unit"
    ok "systemd-analyze verify $unit"
done
# Negative controls: the check must be able to fail.
# (ExecStart= runs the wrapper, which execs the binary.)
mv "$sysroot/usr/share/memcached-rs/memcached-rs-wrapper" "$work/moved"
if verify memcached-rs.service >/dev/null 2>&1; then not_ok "verify passes without ExecStart's program"; fi
mv "$work/moved" "$sysroot/usr/share/memcached-rs/memcached-rs-wrapper"
cp "$sysroot/usr/lib/systemd/system/memcached-rs.service" "$work/unit.bak"
echo "NoSuchSetting=1" >>"$sysroot/usr/lib/systemd/system/memcached-rs.service"
if verify memcached-rs.service >/dev/null 2>&1; then not_ok "verify passes an unknown setting"; fi
cp "$work/unit.bak" "$sysroot/usr/lib/systemd/system/memcached-rs.service"
ok "verify fails without ExecStart's program and on an unknown setting (negative controls)"

for unit in memcached-rs.service memcached-rs@22122.service; do
    # Exposure 0..100 (shown as 0.0..10.0); 20 = "OK" band. The units score 14.
    out=$(cd "$sysroot" && systemd-analyze security --offline=yes --root="$sysroot" \
        --threshold=20 "$unit" 2>&1) || { echo "$out" | tail -5; not_ok "security exposure of $unit"; }
    ok "systemd-analyze security $unit: $(echo "$out" | grep -o 'exposure level.*')"
done
for unit in memcached-rs.service memcached-rs@.service; do
    f=$sysroot/usr/lib/systemd/system/$unit
    grep -q '^Type=notify$' "$f" || not_ok "$unit: not Type=notify"
    grep -qE '^SystemCallFilter=.*io_uring_setup.*io_uring_enter.*io_uring_register' "$f" ||
        not_ok "$unit: SystemCallFilter does not name io_uring"
    grep -q '^LimitMEMLOCK=infinity$' "$f" || not_ok "$unit: LimitMEMLOCK"
    grep -q '^Documentation=man:memcached-rs(1) ' "$f" || not_ok "$unit: Documentation= lacks man:memcached-rs(1)"
done
grep -q '^ExecStart=/usr/share/memcached-rs/memcached-rs-wrapper /etc/memcached-rs.conf ' \
    "$sysroot/usr/lib/systemd/system/memcached-rs.service" || not_ok "memcached-rs.service does not read /etc/memcached-rs.conf"
grep -q '^ExecStart=/usr/share/memcached-rs/memcached-rs-wrapper /etc/memcached-rs@%i.conf ' \
    "$sysroot/usr/lib/systemd/system/memcached-rs@.service" || not_ok "memcached-rs@.service does not read /etc/memcached-rs@PORT.conf"
# @system-service must still hold io_uring in this systemd (it does since v244).
if ! systemd-analyze syscall-filter @system-service 2>/dev/null | grep -q '@aio' ||
    ! systemd-analyze syscall-filter @aio 2>/dev/null | grep -q io_uring_setup; then
    echo "note: this systemd's @system-service lacks io_uring; the units name it explicitly"
fi
ok "units: Type=notify, io_uring in SystemCallFilter, LimitMEMLOCK=infinity, man page, /etc/memcached-rs.conf through the wrapper"

# The default file: KEY=value lines a shell and systemd read alike.
env -i bash -c "set -a; . deploy/default/memcached-rs; \
    for v in LISTEN PORT UDPPORT CACHESIZE MAXCONN; do [[ -n \${!v} ]] || exit 1; done; \
    [[ \$LISTEN == 127.0.0.1 && \$CACHESIZE == 64 && \$MAXCONN == 1024 && \$UDPPORT == 0 ]]" ||
    not_ok "deploy/default/memcached-rs: variables or safe defaults"
if grep -vE '^\s*(#|$)' deploy/default/memcached-rs | grep -vqE '^[A-Z_]+=[^ ]*$'; then
    not_ok "deploy/default/memcached-rs: a line is not KEY=value"
fi
for v in LISTEN UDPPORT CACHESIZE MAXCONN OPTIONS METRICS; do
    grep -q "\${$v}\|\$$v" deploy/systemd/memcached-rs.service || not_ok "unit does not use $v"
done
ok "default file: loopback, -m 64, -c 1024, -U 0; every variable used by the units"

DESTDIR=$sysroot scripts/install.sh --uninstall >/dev/null || not_ok "uninstall"
left=$(
    cd "$sysroot"
    find usr/bin usr/share/doc usr/share/memcached-rs usr/share/man etc -name '*memcached-rs*' 2>/dev/null |
        grep -v '^etc/default/memcached-rs$' | grep -v '^etc/memcached-rs.conf$' || true
)
left+=$(ls "$sysroot"/usr/lib/systemd/system/memcached-rs* 2>/dev/null || true)
[[ -z $left ]] || not_ok "uninstall left: $left"
[[ -e $sysroot/etc/default/memcached-rs ]] || not_ok "uninstall removed the config without --purge"
[[ -e $sysroot/etc/memcached-rs.conf ]] || not_ok "uninstall removed /etc/memcached-rs.conf without --purge"
DESTDIR=$sysroot scripts/install.sh --uninstall --purge >/dev/null || not_ok "purge"
[[ ! -e $sysroot/etc/default/memcached-rs && ! -e $sysroot/etc/memcached-rs.conf ]] || not_ok "purge kept the config"
ok "install.sh --uninstall removes everything but the config; --purge removes it"

# --- twemproxy -----------------------------------------------------------------
if need nutcracker nutcracker; then
    nutcracker -t -c deploy/twemproxy/nutcracker.yml >/dev/null 2>&1 || not_ok "nutcracker -t"
    ok "nutcracker accepts deploy/twemproxy/nutcracker.yml"
else
    not_ok "nutcracker not installable"
fi

# --- live checks against a server ------------------------------------------------
server=${DEPLOY_CHECK_SERVER:-/usr/bin/memcached}
if [[ -x $server ]]; then
    user_args=()
    [[ $EUID -eq 0 ]] && user_args=(-u root)
    port=23311
    "$server" -l 127.0.0.1 -p "$port" -U 0 -t 1 "${user_args[@]}" >"$work/hc-server.log" 2>&1 &
    PIDS+=($!)
    up=no
    for _ in $(seq 50); do
        if scripts/healthcheck.sh 127.0.0.1 "$port" >/dev/null 2>&1; then up=yes; break; fi
        sleep 0.1
    done
    [[ $up == yes ]] || not_ok "healthcheck.sh against $server on $port"
    ok "healthcheck.sh: $(scripts/healthcheck.sh 127.0.0.1 "$port")"
    if scripts/healthcheck.sh 127.0.0.1 23399 2>/dev/null; then not_ok "healthcheck passes a closed port"; fi
    ok "healthcheck.sh exits non-zero on a closed port"

    scripts/cluster.sh "$server" >"$work/cluster.log" 2>&1 ||
        { cat "$work/cluster.log"; not_ok "cluster.sh $server"; }
    ok "cluster.sh $server: $(grep 'after ejection: .* misses' "$work/cluster.log")"
else
    echo "skip live checks: no server at $server (DEPLOY_CHECK_SERVER)"
fi

# Graceful stop (SIGTERM/SIGINT mid-pipeline): the reference server must pass,
# memcached 1.6 (which does not drain on SIGTERM) must fail, the server under test
# must pass.
deploy/test/graceful-stop.sh deploy/test/drain-reference.py >"$work/graceful-ref.log" 2>&1 ||
    { cat "$work/graceful-ref.log"; not_ok "graceful-stop.sh against the reference server"; }
ok "graceful-stop.sh passes against the draining reference server"
if [[ -x /usr/bin/memcached ]]; then
    if deploy/test/graceful-stop.sh /usr/bin/memcached >"$work/graceful-mc.log" 2>&1; then
        not_ok "graceful-stop.sh passes memcached 1.6, which does not drain: the test is blind"
    fi
    ok "graceful-stop.sh fails memcached 1.6, which does not drain (negative control)"
fi
if [[ -x $server && $server != /usr/bin/memcached ]]; then
    deploy/test/graceful-stop.sh "$server" >"$work/graceful.log" 2>&1 ||
        { cat "$work/graceful.log"; not_ok "graceful stop of $server"; }
    ok "graceful stop of $server: SIGTERM and SIGINT mid-pipeline, all replies, exit 0"
fi

# --- switching from memcached: entrypoint, compose, start-up failures, -u, man page,
# memcached.conf, memcached-rs-tool (deploy/test/drop-in.sh) ------------------------
if [[ -x $server && $server != /usr/bin/memcached ]]; then
    # Its tools: man (the man page), PyYAML (the compose files), readelf (the .deb below).
    need man man-db || true
    /usr/bin/python3 -c 'import yaml' 2>/dev/null || need yamllint yamllint || true
    # libseccomp's python binding: io_uring refused as by Docker's default profile.
    /usr/bin/python3 -c 'import seccomp' 2>/dev/null ||
        { [[ $EUID -eq 0 ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-seccomp >/dev/null 2>&1; } || true
    rc=0
    deploy/test/drop-in.sh "$server" >"$work/drop-in.log" 2>&1 || rc=$?
    if [[ $rc -eq 77 ]]; then
        echo "skip drop-in checks: $(tail -1 "$work/drop-in.log")"
    elif [[ $rc -ne 0 ]]; then
        cat "$work/drop-in.log"
        not_ok "switching from memcached (deploy/test/drop-in.sh)"
    else
        sed -n 's/^ok   /     /p; s/^skip /     skip /p' "$work/drop-in.log"
        ok "switching from memcached: $(grep -c '^ok ' "$work/drop-in.log") checks against $server"
    fi
else
    echo "skip drop-in checks: they need memcached-rs as DEPLOY_CHECK_SERVER"
fi

# --- live systemd: PID 1 of private namespaces (deploy/test/systemd-live.sh) --------
if [[ ${DEPLOY_CHECK_SYSTEMD:-1} == 1 ]]; then
    rc=0
    deploy/test/systemd-live.sh ${DEPLOY_CHECK_SYSTEMD_SERVER:+"$DEPLOY_CHECK_SYSTEMD_SERVER"} \
        >"$work/systemd-live.log" 2>&1 || rc=$?
    if [[ $rc -eq 77 ]]; then
        echo "skip live systemd: $(tail -1 "$work/systemd-live.log")"
    elif [[ $rc -ne 0 ]]; then
        cat "$work/systemd-live.log"
        not_ok "live systemd test"
    else
        sed -n 's/^ok   /     /p' "$work/systemd-live.log"
        ok "live systemd test: $(grep -c '^ok ' "$work/systemd-live.log") checks under $(head -1 "$work/systemd-live.log" | grep -o 'systemd [0-9]*')"
    fi
else
    echo "skip live systemd (DEPLOY_CHECK_SYSTEMD=0)"
fi

# --- docker (no engine here: static checks only) -----------------------------------
python3 - <<'PY' || not_ok "seccomp profile"
import json
p = json.load(open("deploy/docker/seccomp-io_uring.json"))
assert p["defaultAction"] == "SCMP_ACT_ERRNO", "default must refuse"
allowed = {n for rule in p["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
need = {"io_uring_setup", "io_uring_enter", "io_uring_register",   # all I/O
        "sched_setaffinity", "mlock", "membarrier", "mmap", "munmap",  # glommio
        "epoll_pwait", "eventfd2", "accept4", "setsockopt", "clone3", "execve",
        "rt_sigaction", "futex", "capset", "setgroups", "prctl"}       # runtime
missing = need - allowed
assert not missing, f"not allowed: {sorted(missing)}"
for absent in ("mount", "kexec_load", "init_module", "bpf", "ptrace", "reboot"):
    assert absent not in allowed, f"{absent} should stay refused"
PY
ok "seccomp-io_uring.json: refuses by default, allows io_uring_* and what glommio needs"
# A python with PyYAML: ours, or Debian's (python3-yaml, which yamllint brings).
pyyaml=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import yaml' 2>/dev/null; then pyyaml=$py; break; fi
done
if [[ -z $pyyaml ]] && need yamllint yamllint && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    pyyaml=/usr/bin/python3
fi
[[ -n $pyyaml ]] || not_ok "no python with PyYAML (apt-get install python3-yaml)"
# The profile for real: the probe (io_uring_setup, sched_setaffinity, then memcached
# serving) and the server under test run under it through libseccomp, as runc would
# load it; without io_uring_* the same profile must refuse io_uring_setup.
if /usr/bin/python3 -c 'import seccomp' 2>/dev/null ||
    { [[ $EUID -eq 0 ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-seccomp >/dev/null 2>&1; }; then
    CARGO_TARGET_DIR=$root/target/probe cargo build --quiet --release --locked \
        --manifest-path deploy/test/probe/Cargo.toml || not_ok "build the probe"
    probe=$root/target/probe/release/memcached-rs-probe
    under_profile() { # profile port server: serve under the profile, healthy, SIGTERM -> 0
        local profile=$1 port=$2 bin=$3 pid status=0 extra=()
        [[ $EUID -eq 0 ]] && extra=(-u root)
        mkdir -p "$work/seccomp-$port"
        RUNTIME_DIRECTORY=$work/seccomp-$port deploy/test/seccomp-run.py "$profile" \
            "$bin" -l 127.0.0.1 -p "$port" -U 0 -t 1 "${extra[@]}" >"$work/seccomp-$port/out" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 50); do
            HEALTHCHECK_TIMEOUT=1 scripts/healthcheck.sh 127.0.0.1 "$port" >/dev/null 2>&1 && break
            sleep 0.1
        done
        scripts/healthcheck.sh 127.0.0.1 "$port" >/dev/null || { cat "$work/seccomp-$port/out"; return 1; }
        kill -TERM "$pid"
        wait "$pid" || status=$?
        [[ $status -eq 0 ]] || { echo "exit status $status after SIGTERM"; return 1; }
    }
    under_profile deploy/docker/seccomp-io_uring.json 23621 "$probe" ||
        not_ok "probe under seccomp-io_uring.json"
    grep -qx 'io_uring_setup: ok' "$work/seccomp-23621/probe.log" || not_ok "profile refuses io_uring_setup"
    grep -qx 'sched_setaffinity: ok' "$work/seccomp-23621/probe.log" || not_ok "profile refuses sched_setaffinity"
    "$pyyaml" -c 'import json, sys
p = json.load(open(sys.argv[1]))
for rule in p["syscalls"]:
    rule["names"] = [n for n in rule["names"] if not n.startswith("io_uring")]
json.dump(p, open(sys.argv[2], "w"))' deploy/docker/seccomp-io_uring.json "$work/no-io_uring.json"
    under_profile "$work/no-io_uring.json" 23622 "$probe" || not_ok "probe under the profile minus io_uring"
    grep -q '^io_uring_setup: error .*not permitted' "$work/seccomp-23622/probe.log" ||
        not_ok "the profile minus io_uring_* still allows io_uring_setup: the check is blind"
    ok "seccomp-io_uring.json loaded for real: io_uring_setup, affinity, memcached serve, SIGTERM -> 0; minus io_uring_* it is refused"
    if [[ -x $server && $server != /usr/bin/memcached ]]; then
        under_profile deploy/docker/seccomp-io_uring.json 23623 "$server" ||
            not_ok "$server under seccomp-io_uring.json"
        ok "$server serves under seccomp-io_uring.json and exits 0 on SIGTERM"
    fi
else
    echo "skip loading the seccomp profile (no python3-seccomp)"
fi
need docker-compose docker-compose || true
for compose in deploy/docker/compose.yaml deploy/docker/compose.three.yaml; do
    if command -v docker-compose >/dev/null; then
        (cd deploy/docker && docker-compose -f "$(basename "$compose")" config -q) ||
            not_ok "docker-compose config $compose"
        ok "docker-compose config accepts $compose (and reads the seccomp profile)"
    elif docker compose version >/dev/null 2>&1; then
        docker compose -f "$compose" config -q || not_ok "docker compose config $compose"
        ok "docker compose config accepts $compose"
    else
        "$pyyaml" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))["services"]' "$compose" ||
            not_ok "$compose does not parse"
        ok "$compose parses as YAML (no compose client here)"
    fi
done
"$pyyaml" - <<'PY' || not_ok "compose files' settings"
import yaml
for f, n in (("deploy/docker/compose.yaml", 1), ("deploy/docker/compose.three.yaml", 3)):
    d = yaml.safe_load(open(f))
    assert len(d["services"]) == n, f
    ports = []
    for name, s in d["services"].items():
        assert "seccomp=seccomp-io_uring.json" in s["security_opt"], (f, name)
        assert s["ulimits"]["memlock"] == -1, (f, name)
        assert s["command"].split()[0] == "memcached", (f, name)
        ports += [p.split(":")[1] for p in s["ports"]]
        assert all(p.startswith("127.0.0.1:") for p in s["ports"]), f"{f} {name} published beyond loopback"
    assert sorted(ports) == ["11211", "11212", "11213"][:n], ports
PY
ok "compose.yaml (11211) and compose.three.yaml (11211-11213): 'memcached ...' commands, loopback, io_uring seccomp, memlock"
while read -r src; do
    [[ $src == . || -e $src ]] || not_ok "Dockerfile COPY source $src missing"
done < <(awk '/^COPY/ && !/--from/ {print $(NF-1)}' deploy/docker/Dockerfile)
grep -q '^FROM .* AS build$' deploy/docker/Dockerfile || not_ok "Dockerfile: no build stage"
grep -q 'COPY --from=build' deploy/docker/Dockerfile || not_ok "Dockerfile: not multi-stage"
[[ -d vendor/glommio/liburing/src ]] || not_ok "GLOMMIO_LIBURING_DIR target missing"
ok "Dockerfile: multi-stage, COPY sources exist (image not built: no engine here)"

# --- .deb (packaging the release binary when built; else a release build) ---------
if [[ ${DEPLOY_CHECK_DEB:-1} == 1 ]]; then
    if ! command -v cargo-deb >/dev/null; then
        cargo install cargo-deb --locked >"$work/cargo-deb.log" 2>&1 ||
            { tail "$work/cargo-deb.log"; not_ok "cargo install cargo-deb"; }
    fi
    need readelf binutils || not_ok "readelf missing (apt-get install binutils)"
    touch "$work/deb.log.start"
    no_build=()
    [[ -x target/release/memcached-rs ]] && no_build=(--no-build)
    cargo deb "${no_build[@]}" >"$work/deb.log" 2>&1 || { tail -20 "$work/deb.log"; not_ok "cargo deb"; }
    deb=$(find target/debian -name 'memcached-rs_*.deb' -newer "$work/deb.log.start" | head -1)
    ddeb=$(find target/debian -name 'memcached-rs-dbgsym_*.ddeb' -newer "$work/deb.log.start" | head -1)
    [[ -n $deb ]] || not_ok "cargo deb wrote no new .deb"
    [[ -n $ddeb ]] || not_ok "cargo deb wrote no -dbgsym package"
    listing=$(dpkg-deb -c "$deb")
    for f in ./usr/bin/memcached-rs ./usr/lib/systemd/system/memcached-rs.service \
        ./usr/lib/systemd/system/memcached-rs@.service ./etc/default/memcached-rs \
        ./usr/share/doc/memcached-rs/README.md ./usr/share/memcached-rs/healthcheck.sh \
        ./etc/memcached-rs.conf ./usr/share/memcached-rs/memcached-rs-wrapper ./usr/bin/memcached-rs-tool \
        ./usr/share/man/man1/memcached-rs.1.gz; do
        grep -q " $f\$" <<<"$listing" || not_ok "$deb lacks $f"
    done
    if grep -q '/usr/lib/debug' <<<"$listing"; then not_ok "$deb carries debug info (belongs in -dbgsym)"; fi
    dpkg-deb -f "$deb" Depends | grep -q libc6 || not_ok "$deb: no Depends"
    for conffile in /etc/default/memcached-rs /etc/memcached-rs.conf; do
        dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx "$conffile" ||
            not_ok "$deb: $conffile is not a conffile"
    done
    postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)
    grep -q 'deb-systemd-helper enable memcached-rs.service' <<<"$postinst" ||
        not_ok "$deb: postinst does not enable the unit"
    # A start hidden by `|| true` would pass a dead service as installed.
    if grep -E 'deb-systemd-invoke (start|restart|try-restart) .*\|\| true' <<<"$postinst"; then
        not_ok "$deb: postinst hides a failed start"
    fi
    # shellcheck disable=SC2016 # postinst's own $action
    grep -q 'if ! deb-systemd-invoke "$action" memcached-rs.service' <<<"$postinst" ||
        not_ok "$deb: postinst does not start the unit"
    debroot=$work/debroot
    dpkg-deb -x "$ddeb" "$work/dbgsym"
    debug=$(find "$work/dbgsym/usr/lib/debug/.build-id" -name '*.debug' | head -1)
    [[ -n $debug ]] || not_ok "$ddeb: no .build-id/*.debug file"
    # The packaged units verify too, against the packaged binary.
    debroot=$work/debroot
    mkdir -p "$debroot/usr/lib/systemd"
    cp -a "$stock" "$debroot/usr/lib/systemd/"
    dpkg-deb -x "$deb" "$debroot"
    for unit in memcached-rs.service memcached-rs@11211.service; do
        if ! out=$(cd "$debroot" && systemd-analyze verify --man=no --root="$debroot" "$unit" 2>&1) ||
            [[ -n $out ]]; then
            echo "$out"
            not_ok "verify packaged $unit"
        fi
    done
    build_id=$(readelf -n "$debroot/usr/bin/memcached-rs" | awk '/Build ID/ {print $3}')
    [[ $debug == */${build_id:0:2}/${build_id:2}.debug ]] || not_ok "dbgsym $debug does not match build id $build_id"
    if readelf -S "$debroot/usr/bin/memcached-rs" | grep -q '\.debug_info'; then not_ok "packaged binary not stripped"; fi
    ok "$deb (dpkg -c): binary (stripped), units, conffiles /etc/default/memcached-rs and /etc/memcached-rs.conf, wrapper, memcached-rs-tool, man page; debug info in $(basename "$ddeb") ($(du -k "$debug" | cut -f1) KiB, build id matches); postinst starts without || true; packaged units verify"
    if [[ ${DEPLOY_CHECK_SYSTEMD:-1} == 1 ]]; then
        rc=0
        deploy/test/systemd-live.sh --deb "$deb" ${DEPLOY_CHECK_SYSTEMD_SERVER:+"$DEPLOY_CHECK_SYSTEMD_SERVER"} \
            >"$work/systemd-live-deb.log" 2>&1 || rc=$?
        if [[ $rc -eq 77 ]]; then
            echo "skip live .deb test: $(tail -1 "$work/systemd-live-deb.log")"
        elif [[ $rc -ne 0 ]]; then
            cat "$work/systemd-live-deb.log"
            not_ok "live .deb test"
        else
            sed -n 's/^ok   /     /p' "$work/systemd-live-deb.log"
            ok "live .deb test under systemd: apt-get install, serve, remove, purge"
        fi
    fi
else
    echo "skip .deb (DEPLOY_CHECK_DEB=0)"
fi

printf '%s passed, %s failed\n' "$passed" "$failed"
