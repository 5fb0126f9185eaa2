#!/usr/bin/env bash
# Live systemd test of the units and install.sh, on a host without systemd as PID 1.
#
#   deploy/test/systemd-live.sh [SERVER]
#   deploy/test/systemd-live.sh --deb FILE.deb [SERVER|packaged]
#
# Boots /lib/systemd/systemd as PID 1 of private namespaces (pid, mount, net, uts,
# ipc, cgroup; /usr and /etc behind overlays whose changes land in a temp dir), so
# nothing leaks to the host: not its files, ports (own loopback) or services. Inside,
# as an admin would: scripts/install.sh (daemon-reload, enable, restart), health,
# config change + restart, SIGTERM stop -> exit 0, Restart=on-failure after SIGKILL,
# memcached-rs@PORT instances with per-instance files, uninstall.
#
# --deb: the same through the package instead of install.sh: `apt-get install
# ./FILE.deb` (postinst enables and starts the unit), serve, `apt-get remove` (stops
# it, keeps the conffile), `apt-get purge`. The package's binary is replaced by
# SERVER (the probe by default) unless SERVER is `packaged`.
#
# SERVER: the binary installed as /usr/bin/memcached-rs. Default: the probe
# (deploy/test/probe), which sends READY=1/STOPPING=1 through src/server/systemd.rs,
# reports what the sandbox allows (io_uring_setup, memlock, seccomp, uid) and serves
# through /usr/bin/memcached. Pass target/release/memcached-rs for the real server.
# Exit 0 all passed, 1 a check failed, 77 cannot run here (not root, no unshare,
# no cgroup2, no overlayfs).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)

if [[ ${1:-} == --inside ]]; then
    shift
    # ---------------------------------------------------------------- inside ---
    server=$1 probe=$2 host_memlock=$3 deb=${4:-}
    passed=0
    pass() {
        passed=$((passed + 1))
        printf 'ok   %s\n' "$*"
    }
    fail() {
        printf 'FAIL %s\n' "$*"
        for f in /run/mcrs-test/*.log; do
            [[ -e $f ]] && { echo "--- $f"; tail -20 "$f"; }
        done
        systemctl --no-pager status 'memcached-rs*' 2>&1 | tail -30 || true
        exit 1
    }
    prop() { systemctl show -P "$2" "$1"; }
    healthy() { HEALTHCHECK_TIMEOUT=2 "$root/scripts/healthcheck.sh" 127.0.0.1 "$1" >/dev/null 2>&1; }
    # One `stats settings` value of the server on a port (the real server's view of
    # the options the unit passed).
    setting() {
        printf 'stats settings\r\nquit\r\n' | timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; cat >&3; cat <&3" |
            tr -d '\r' | awk -v k="$2" '$1 == "STAT" && $2 == k {print $3}'
    }
    # The last argv the probe logged for a unit.
    argv_of() { grep '^argv:' "/run/mcrs-test/$1.log" | tail -1 | cut -d' ' -f2-; }
    wait_active() { # unit, old MainPID to differ from
        for _ in $(seq 100); do
            if [[ $(prop "$1" ActiveState) == active && $(prop "$1" MainPID) != "${2:-x}" ]]; then
                return 0
            fi
            sleep 0.1
        done
        return 1
    }

    # Safety first: only our stub world may be loaded (no tmpfiles, journald, udev).
    # (PID 1 references systemd-journald.socket itself: it must be not-found.)
    loaded=$(systemctl list-units --all --plain --no-legend | awk '$2 != "not-found"')
    if grep -E '^(systemd-|[^ ]*\.(socket|timer|path) )' <<<"$loaded"; then
        systemctl list-units --all --plain --no-legend
        fail "host units visible inside the test systemd: stopping before anything runs"
    fi
    pass "isolated: $(wc -l <<<"$loaded") units loaded, none from the host"
    [[ -n ${SYSTEMD_LIVE_VERBOSE:-} ]] && echo "$loaded"

    # Test-only drop-ins: the namespace runs no journald, so keep output in files.
    mkdir -p /run/mcrs-test
    for u in memcached-rs.service memcached-rs@.service; do
        mkdir -p "/run/systemd/system/$u.d"
        printf '[Service]\nStandardOutput=append:/run/mcrs-test/%%n.log\nStandardError=inherit\n' \
            >"/run/systemd/system/$u.d/test-log.conf"
    done

    if [[ -n $deb ]]; then
        export DEBIAN_FRONTEND=noninteractive
        # Container images ship a policy-rc.d that forbids maintainer scripts to
        # start services (exit 101); a real host has none. Only the overlay loses it.
        rm -f /usr/sbin/policy-rc.d
        if [[ $probe == no ]]; then
            # postinst must not hide a failed start: with the port taken the service
            # cannot start, and the install says so and fails; once the port is free,
            # `dpkg --configure -a` finishes it.
            python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 11211)); s.listen(); time.sleep(60)' &
            holder=$!
            for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/11211) 2>/dev/null && break; sleep 0.1; done
            if out=$(apt-get install -y -q "$deb" 2>&1); then
                echo "$out"
                fail "apt-get install succeeded although memcached-rs.service could not start"
            fi
            grep -q 'memcached-rs.service failed to start' <<<"$out" || { echo "$out"; fail "postinst did not say the start failed"; }
            [[ $(dpkg-query -W -f '${Status}' memcached-rs) == *half-configured* ]] ||
                fail "package state after a failed start: $(dpkg-query -W -f '${Status}' memcached-rs)"
            kill "$holder"
            wait "$holder" 2>/dev/null || true
            systemctl reset-failed memcached-rs.service 2>/dev/null || true
            out=$(dpkg --configure -a 2>&1) || { echo "$out"; fail "dpkg --configure -a once the port is free"; }
            pass "apt-get install with port 11211 taken: fails, says memcached-rs.service failed to start (half-configured); dpkg --configure -a then starts it"
        else
            out=$(apt-get install -y -q "$deb" 2>&1) || { echo "$out"; fail "apt-get install $deb"; }
        fi
        [[ $(systemctl is-enabled memcached-rs.service) == enabled ]] || fail "package did not enable the unit"
        wait_active memcached-rs || fail "package did not start the unit"
        healthy 11211 || fail "healthcheck on 11211 after apt-get install"
        [[ -x /usr/share/memcached-rs/healthcheck.sh ]] || fail "no packaged healthcheck.sh"
        man -w memcached-rs >/dev/null 2>&1 || [[ -f /usr/share/man/man1/memcached-rs.1.gz ]] ||
            fail "no packaged man page"
        /usr/bin/memcached-rs-tool 127.0.0.1:11211 stats >/dev/null || fail "packaged memcached-rs-tool"
        /usr/share/memcached-rs/healthcheck.sh 127.0.0.1 11211 >/dev/null || fail "packaged healthcheck.sh"
        if [[ $probe == yes ]]; then
            grep -qx 'notify READY: Ok(true)' /run/mcrs-test/memcached-rs.service.log || fail "no READY=1"
        fi
        pass "apt-get install ./$(basename "$deb"): unit enabled, started (Type=notify), healthy on 11211"

        systemctl start memcached-rs@22122 || fail "start an instance from the packaged template"
        healthy 22122 || fail "packaged template instance not healthy"
        pass "packaged memcached-rs@.service: memcached-rs@22122 healthy"

        out=$(apt-get remove -y -q memcached-rs 2>&1) || { echo "$out"; fail "apt-get remove"; }
        for port in 11211 22122; do healthy "$port" && fail "$port still serving after remove"; done
        [[ ! -e /usr/bin/memcached-rs ]] || fail "binary left after remove"
        [[ -e /etc/default/memcached-rs ]] || fail "remove took the conffile (only purge may)"
        pass "apt-get remove: service and instances stopped, binary gone, /etc/default/memcached-rs kept"
        out=$(apt-get purge -y -q memcached-rs 2>&1) || { echo "$out"; fail "apt-get purge"; }
        [[ ! -e /etc/default/memcached-rs ]] || fail "purge kept the conffile"
        pass "apt-get purge: conffile removed"
        echo "$passed passed, 0 failed (inside systemd)"
        exit 0
    fi

    out=$("$root/scripts/install.sh" --binary "$server" 2>&1) || { echo "$out"; fail "install.sh"; }
    grep -q skipped <<<"$out" && fail "install.sh skipped systemctl under a live systemd"
    [[ $(systemctl is-enabled memcached-rs.service) == enabled ]] || fail "not enabled"
    # Type=notify: `systemctl restart` in install.sh returned only after READY=1.
    [[ $(prop memcached-rs ActiveState) == active ]] || fail "not active after install"
    healthy 11211 || fail "healthcheck on 11211 after install"
    pass "install.sh: daemon-reload, enable, restart; active (Type=notify) and healthy on 11211"

    [[ $(prop memcached-rs Type) == notify ]] || fail "Type is $(prop memcached-rs Type)"
    pid=$(prop memcached-rs MainPID)
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [[ $uid -ne 0 ]] || fail "server runs as root"
    pass "runs as a DynamicUser (uid $uid), MainPID $pid"

    if [[ $probe == yes ]]; then
        log=/run/mcrs-test/memcached-rs.service.log
        [[ $(argv_of memcached-rs.service) == "-l 127.0.0.1 -p 11211 -U 0 -m 64 -c 1024" ]] ||
            fail "argv from the default file: '$(argv_of memcached-rs.service)'"
        # LimitMEMLOCK=infinity, unless the host caps root itself (setrlimit EPERM
        # beyond it, as in some sandboxes): systemd then gives the closest value.
        memlock=infinity
        [[ $host_memlock == unlimited ]] || memlock=$((host_memlock * 1024))
        for want in 'NoNewPrivs: 1' 'Seccomp: 2' "memlock: $memlock" 'io_uring_setup: ok' \
            'sched_setaffinity: ok' 'notify READY: Ok(true)'; do
            grep -qx "$want" "$log" || fail "probe did not report '$want'"
        done
        pass "sandbox: argv from /etc/default, NoNewPrivs, seccomp on, memlock $memlock, io_uring_setup and sched_setaffinity allowed, READY=1 sent"
    fi

    # Without the file the unit's own Environment= defaults apply.
    mv /etc/default/memcached-rs /etc/default/memcached-rs.away
    systemctl restart memcached-rs || fail "restart without /etc/default/memcached-rs"
    healthy 11211 || fail "healthcheck without /etc/default/memcached-rs"
    if [[ $probe == yes ]]; then
        [[ $(argv_of memcached-rs.service) == "-l 127.0.0.1 -p 11211 -U 0 -m 64 -c 1024" ]] ||
            fail "argv without the default file: '$(argv_of memcached-rs.service)'"
    else
        [[ $(setting 11211 maxbytes) == $((64 << 20)) && $(setting 11211 maxconns) == 1024 &&
            $(setting 11211 udpport) == 0 ]] || fail "defaults not applied: $(setting 11211 maxbytes)"
    fi
    mv /etc/default/memcached-rs.away /etc/default/memcached-rs
    pid=$(prop memcached-rs MainPID)
    pass "without /etc/default/memcached-rs: the unit's safe defaults, healthy"

    sed -i 's/^CACHESIZE=64$/CACHESIZE=128/' /etc/default/memcached-rs
    systemctl restart memcached-rs || fail "restart after config change"
    wait_active memcached-rs "$pid" || fail "not active again after restart"
    healthy 11211 || fail "healthcheck after restart"
    if [[ $probe == yes ]]; then
        [[ $(argv_of memcached-rs.service) == *"-m 128 "* ]] ||
            fail "restart did not pick up CACHESIZE=128: $(argv_of memcached-rs.service)"
    else
        [[ $(setting 11211 maxbytes) == $((128 << 20)) ]] ||
            fail "restart did not pick up CACHESIZE=128: maxbytes $(setting 11211 maxbytes)"
        grep -q '^Max locked memory' "/proc/$(prop memcached-rs MainPID)/limits" || fail "no limits"
    fi
    pass "edit /etc/default/memcached-rs + systemctl restart: new process, new options, healthy"

    # /etc/memcached-rs.conf: a copy of Debian's /etc/memcached.conf with two values
    # changed, read through the unit's wrapper; -d, logfile and -P dropped with a note.
    [[ -f /etc/memcached-rs.conf ]] || fail "install.sh did not install /etc/memcached-rs.conf"
    sed -e 's/^-m 64$/-m 96/' -e 's/^# -c 1024$/-c 900/' "$root/deploy/test/debian-memcached.conf" \
        >/etc/memcached-rs.conf
    pid=$(prop memcached-rs MainPID)
    systemctl restart memcached-rs || fail "restart with Debian's memcached.conf as /etc/memcached-rs.conf"
    wait_active memcached-rs "$pid" || fail "not active with /etc/memcached-rs.conf"
    healthy 11211 || fail "healthcheck with /etc/memcached-rs.conf"
    if [[ $probe == yes ]]; then
        [[ $(argv_of memcached-rs.service) == "-p 11211 -U 0 -m 128 -c 1024 -m 96 -p 11211 -u memcache -l 127.0.0.1 -c 900" ]] ||
            fail "argv with /etc/memcached-rs.conf: '$(argv_of memcached-rs.service)'"
    else
        [[ $(setting 11211 maxbytes) == $((96 << 20)) && $(setting 11211 maxconns) == 900 ]] ||
            fail "/etc/memcached-rs.conf not applied: maxbytes $(setting 11211 maxbytes), maxconns $(setting 11211 maxconns)"
    fi
    grep -q 'line 50: ignoring -P: systemd tracks the pid' /run/mcrs-test/memcached-rs.service.log ||
        fail "no note about the dropped -P"
    cp "$root/deploy/conf/memcached-rs.conf" /etc/memcached-rs.conf
    pass "/etc/memcached-rs.conf = Debian's memcached.conf (-m 96, -c 900) through the unit: applied, healthy; -d, logfile, -P dropped with a note"

    start=$(date +%s%N)
    systemctl stop memcached-rs || fail "stop"
    took=$((($(date +%s%N) - start) / 1000000))
    [[ $(prop memcached-rs Result) == success ]] || fail "stop Result=$(prop memcached-rs Result)"
    [[ $(prop memcached-rs ExecMainStatus) == 0 ]] || fail "exit status $(prop memcached-rs ExecMainStatus) after SIGTERM"
    healthy 11211 && fail "still answering after stop"
    if [[ $probe == yes ]]; then
        grep -qx 'notify STOPPING: Ok(true)' /run/mcrs-test/memcached-rs.service.log || fail "no STOPPING=1"
    fi
    pass "systemctl stop: SIGTERM -> exit 0 in ${took} ms, Result=success"

    systemctl start memcached-rs || fail "start"
    pid=$(prop memcached-rs MainPID)
    kill -KILL "$pid"
    wait_active memcached-rs "$pid" || fail "Restart=on-failure did not bring it back"
    [[ $(prop memcached-rs NRestarts) -ge 1 ]] || fail "NRestarts=$(prop memcached-rs NRestarts)"
    healthy 11211 || fail "healthcheck after automatic restart"
    pass "SIGKILL -> Restart=on-failure: back in $(prop memcached-rs RestartUSec), healthy"

    printf 'CACHESIZE=32\n' >/etc/default/memcached-rs@22123
    systemctl start memcached-rs@22122 memcached-rs@22123 || fail "start instances"
    for port in 22122 22123 11211; do healthy "$port" || fail "$port not healthy"; done
    if [[ $probe == yes ]]; then
        [[ $(argv_of memcached-rs@22122.service) == "-l 127.0.0.1 -p 22122 -U 0 -m 128 -c 1024" ]] ||
            fail "22122 argv: $(argv_of memcached-rs@22122.service)"
        [[ $(argv_of memcached-rs@22123.service) == "-l 127.0.0.1 -p 22123 -U 0 -m 32 -c 1024" ]] ||
            fail "22123 argv (per-instance file): $(argv_of memcached-rs@22123.service)"
    else
        [[ $(setting 22122 maxbytes) == $((128 << 20)) && $(setting 22123 maxbytes) == $((32 << 20)) ]] ||
            fail "instance options: maxbytes $(setting 22122 maxbytes) / $(setting 22123 maxbytes)"
        [[ $(setting 22123 tcpport) == 22123 ]] || fail "22123 tcpport $(setting 22123 tcpport)"
    fi
    systemctl stop memcached-rs
    [[ -d /run/memcached-rs-22122 ]] || fail "stopping memcached-rs removed an instance's runtime dir"
    for port in 22122 22123; do healthy "$port" || fail "$port hurt by stopping memcached-rs"; done
    pass "memcached-rs@22122 and @22123 beside memcached-rs: port from the instance, /etc/default/memcached-rs@PORT applied, independent"

    # Negative control: without io_uring in the filter the same sandbox refuses it.
    mkdir -p /run/systemd/system/memcached-rs@22124.service.d
    printf '[Service]\nSystemCallFilter=~io_uring_setup io_uring_enter io_uring_register\n' \
        >/run/systemd/system/memcached-rs@22124.service.d/deny-io_uring.conf
    systemctl daemon-reload
    if [[ $probe == yes ]]; then
        systemctl start memcached-rs@22124 || fail "start 22124"
        grep -q '^io_uring_setup: error .*Operation not permitted' \
            /run/mcrs-test/memcached-rs@22124.service.log || fail "io_uring_setup not refused without it in the filter"
        pass "negative control: the filter minus io_uring_* refuses io_uring_setup (EPERM)"
    else
        if systemctl start memcached-rs@22124 2>/dev/null && healthy 22124; then
            fail "server serves although io_uring_* are refused"
        fi
        pass "negative control: without io_uring_* in the filter the server does not come up"
    fi
    systemctl stop memcached-rs@22124 2>/dev/null || true

    out=$("$root/scripts/install.sh" --uninstall 2>&1) || { echo "$out"; fail "uninstall"; }
    for u in memcached-rs memcached-rs@22122 memcached-rs@22123; do
        [[ $(prop "$u" ActiveState) != active ]] || fail "$u still active after uninstall"
    done
    [[ ! -e /usr/lib/systemd/system/memcached-rs.service ]] || fail "unit left"
    for port in 11211 22122 22123; do healthy "$port" && fail "$port still serving after uninstall"; done
    pass "install.sh --uninstall: all instances stopped, units removed"
    echo "$passed passed, 0 failed (inside systemd)"
    exit 0
fi

# -------------------------------------------------------------------- outside ---
skip() {
    echo "systemd-live: skipped: $*"
    exit 77
}
[[ $EUID -eq 0 ]] || skip "needs root"
for tool in unshare nsenter /lib/systemd/systemd; do
    command -v "$tool" >/dev/null || skip "no $tool"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || skip "no overlayfs"
if [[ $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
    cgroot=/sys/fs/cgroup/unified
elif [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    cgroot=/sys/fs/cgroup
else
    skip "no cgroup2 hierarchy"
fi
if [[ -d /run/systemd/system ]]; then
    skip "systemd is PID 1 here: install for real, or run this in a container"
fi

deb=
if [[ ${1:-} == --deb ]]; then
    [[ $# -ge 2 && -f $2 ]] || { echo "usage: $0 --deb FILE.deb [SERVER|packaged]" >&2; exit 2; }
    deb=$(realpath "$2")
    shift 2
fi
server=${1:-}
probe=no
if [[ $server == packaged ]]; then
    server=/bin/true # unused: the package's own binary runs
elif [[ -z $server ]]; then
    probe=yes
    CARGO_TARGET_DIR=$root/target/probe cargo build --quiet --release --locked \
        --manifest-path "$root/deploy/test/probe/Cargo.toml"
    server=$root/target/probe/release/memcached-rs-probe
fi
server=$(realpath "$server")
[[ -x $server ]] || { echo "systemd-live: no server at $server" >&2; exit 1; }

# The namespace gets its own empty /tmp and /var/tmp, which would hide a checkout (and
# a server binary) there, as in a CI clone under /tmp: run from a copy under /var/lib,
# which the namespace sees through its /var overlay.
relocated=
case "$root/ $server" in
/tmp/*|/var/tmp/*|*" /tmp/"*|*" /var/tmp/"*)
    [[ -n $deb ]] && skip "a --deb run from a checkout under /tmp is not supported"
    relocated=$(mktemp -d /var/lib/mcrs-systemd-live-src.XXXXXX)
    tar -C "$root" --exclude=./target --exclude=./.git --exclude=./fuzz -cf - . | tar -C "$relocated" -xf -
    mkdir -p "$relocated/target"
    cp "$server" "$relocated/target/server-under-test"
    root=$relocated
    server=$relocated/target/server-under-test
    ;;
esac

# Not under /tmp: the namespace gets its own empty /tmp.
mkdir -p "$root/target"
work=$(mktemp -d "$root/target/systemd-live.XXXXXX")
cg=$cgroot/mcrs-systemd-live.$$
mkdir "$cg"
init_pid=
cleanup() {
    [[ -n $init_pid ]] && kill -KILL "$init_pid" 2>/dev/null
    wait 2>/dev/null || true
    # systemd's cgroups under ours, deepest first; all empty once init is gone.
    for _ in 1 2 3 4 5; do
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ -d $cg ]] || break
        sleep 0.2
    done
    rm -rf "$work"
    [[ -n $relocated ]] && rm -rf "$relocated"
    return 0
}
trap cleanup EXIT

if [[ -n $deb && ${1:-} != packaged ]]; then
    # The package with SERVER as its binary: same scripts, units and conffile.
    dpkg-deb -R "$deb" "$work/deb"
    install -m 0755 "$server" "$work/deb/usr/bin/memcached-rs"
    if [[ -f $work/deb/DEBIAN/md5sums ]]; then
        (cd "$work/deb" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' |
            sort | xargs md5sum >DEBIAN/md5sums)
    fi
    dpkg-deb --root-owner-group -b "$work/deb" "$work/$(basename "$deb")" >/dev/null
    deb=$work/$(basename "$deb")
fi

# PID 1 of the namespaces. The host's unit directories are hidden behind empty
# tmpfs: a systemd that saw them would start sysinit.target's services (tmpfiles
# would empty /tmp, journald, udev, sysctl...), and those act on the host. It sees
# only stub targets, the units install.sh writes, and our drop-ins.
cat >"$work/boot.sh" <<EOF
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 tmpfs /run
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "\$d"; done
umount -l /sys/fs/cgroup 2>/dev/null || true
mount -t cgroup2 none /sys/fs/cgroup
for d in usr etc var; do
    mkdir -p "$work/overlay/\$d/upper" "$work/overlay/\$d/work"
    mount -t overlay overlay \
        -o "lowerdir=/\$d,upperdir=$work/overlay/\$d/upper,workdir=$work/overlay/\$d/work" "/\$d"
done
for d in /usr/lib/systemd/system /etc/systemd/system /etc/systemd/user \
    /usr/lib/systemd/system-generators /usr/lib/systemd/system-environment-generators \
    /usr/lib/systemd/system-preset /usr/lib/systemd/system-shutdown; do
    mkdir -p "\$d"
    mount -t tmpfs -o mode=755 tmpfs "\$d"
done
for t in sysinit basic network network-online multi-user shutdown default local-fs \
    sockets timers paths slices; do
    printf '[Unit]\nDescription=stub %s\nDefaultDependencies=no\n' "\$t" \
        >"/usr/lib/systemd/system/\$t.target"
done
printf '[Unit]\nDescription=memcached-rs live test\nDefaultDependencies=no\n' \
    >/usr/lib/systemd/system/mcrs-test.target
hostname mcrs-systemd-live
exec env -i container=container-other PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=mcrs-test.target --log-level=warning --show-status=no
EOF

(
    echo "$BASHPID" >"$cg/cgroup.procs"
    exec unshare --pid --fork --mount --uts --net --ipc --cgroup --mount-proc \
        --kill-child=SIGKILL bash "$work/boot.sh"
) >"$work/boot.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 100); do
    init_pid=$(pgrep -P "$unshare_pid" || true)
    [[ -n $init_pid ]] && break
    sleep 0.1
done
[[ -n $init_pid ]] || { cat "$work/boot.log"; echo "systemd-live: namespace did not start" >&2; exit 1; }
state=
for _ in $(seq 100); do
    state=$(nsenter -t "$init_pid" -a systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.1
done
[[ $state == running || $state == degraded ]] ||
    { cat "$work/boot.log"; echo "systemd-live: systemd not running ($state)" >&2; exit 1; }
echo "systemd-live: $(/lib/systemd/systemd --version | head -1) as PID 1 of private namespaces;" \
    "server $server$([[ $probe == yes ]] && echo ' (probe)')"
nsenter -t "$init_pid" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    SYSTEMD_LIVE_VERBOSE="${SYSTEMD_LIVE_VERBOSE:-}" bash "$root/deploy/test/systemd-live.sh" --inside "$server" "$probe" "$(ulimit -Hl)" "$deb"
