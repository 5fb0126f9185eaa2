#!/usr/bin/env bash
# Build and install memcached-rs with its systemd units and default config.
#
#   scripts/install.sh [--no-build | --binary PATH] [--no-start]
#   scripts/install.sh --uninstall [--purge]
#
# Installs (paths under $DESTDIR, if set):
#   $PREFIX/bin/memcached-rs                       PREFIX=/usr by default
#   $UNITDIR/memcached-rs.service, memcached-rs@.service
#                                                  UNITDIR=$PREFIX/lib/systemd/system
#   $SYSCONFDIR/default/memcached-rs               SYSCONFDIR=/etc; an existing file is
#                                                  kept, the new one written beside it
#                                                  as memcached-rs.dist
#   $SYSCONFDIR/memcached-rs.conf                  memcached.conf's format, read by the
#                                                  unit (kept like the default file)
#   $PREFIX/share/memcached-rs/memcached-rs-wrapper  reads it for the unit
#   $PREFIX/bin/memcached-rs-tool                  memcached's memcached-tool
#   $PREFIX/share/man/man1/memcached-rs.1.gz       the man page
#   $PREFIX/share/doc/memcached-rs/README.md, $PREFIX/share/memcached-rs/healthcheck.sh
# Then, when systemd is PID 1 and DESTDIR is empty: daemon-reload, enable
# memcached-rs.service and (re)start it, so an upgrade runs the new binary.
# --uninstall stops and disables memcached-rs and every memcached-rs@PORT, removes
# the files, and keeps $SYSCONFDIR/default/memcached-rs* unless --purge.
# Same files as the .deb (`cargo deb`): use one or the other on a host.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
bindir=$PREFIX/bin
docdir=$PREFIX/share/doc/memcached-rs
datadir=$PREFIX/share/memcached-rs
mandir=$PREFIX/share/man

mode=install build=yes start=yes purge=no binary=$root/target/release/memcached-rs
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --uninstall) mode=uninstall ;;
    --purge) purge=yes ;;
    --no-build) build=no ;;
    --binary)
        [[ $# -ge 2 ]] || { usage >&2; exit 2; }
        binary=$2 build=no
        shift
        ;;
    --no-start) start=no ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

# systemctl only on the live system: not when staging into DESTDIR, not without
# systemd as PID 1 (containers, chroots, build hosts).
if [[ -z $DESTDIR && -d /run/systemd/system ]]; then
    systemd=yes
else
    systemd=no
fi

units=(memcached-rs.service memcached-rs@.service)
files=(
    "$bindir/memcached-rs"
    "$bindir/memcached-rs-tool"
    "$datadir/memcached-rs-wrapper"
    "$mandir/man1/memcached-rs.1.gz"
    "$UNITDIR/memcached-rs.service"
    "$UNITDIR/memcached-rs@.service"
    "$docdir/README.md"
    "$datadir/healthcheck.sh"
)

if [[ $mode == uninstall ]]; then
    if [[ $systemd == yes ]]; then
        systemctl disable --now memcached-rs.service || true
        systemctl stop 'memcached-rs@*.service' || true
    else
        say "systemd is not PID 1 here (or DESTDIR is set): not stopping services"
    fi
    # `systemctl enable memcached-rs@PORT` links; dangling once the template is gone.
    if [[ -d $DESTDIR$SYSCONFDIR/systemd/system ]]; then
        find "$DESTDIR$SYSCONFDIR/systemd/system" -type l \
            \( -name 'memcached-rs.service' -o -name 'memcached-rs@*.service' \) \
            -print -delete
    fi
    for f in "${files[@]}"; do
        if [[ -e $DESTDIR$f ]]; then
            rm -f "$DESTDIR$f"
            say "removed $DESTDIR$f"
        fi
    done
    rmdir "$DESTDIR$docdir" "$DESTDIR$datadir" 2>/dev/null || true
    if [[ $purge == yes ]]; then
        rm -fv "$DESTDIR$SYSCONFDIR"/default/memcached-rs "$DESTDIR$SYSCONFDIR"/default/memcached-rs.dist \
            "$DESTDIR$SYSCONFDIR"/default/memcached-rs@* "$DESTDIR$SYSCONFDIR"/memcached-rs.conf \
            "$DESTDIR$SYSCONFDIR"/memcached-rs.conf.dist
    else
        say "kept $DESTDIR$SYSCONFDIR/default/memcached-rs* and memcached-rs.conf (--purge removes them)"
    fi
    [[ $systemd == yes ]] && systemctl daemon-reload
    say "uninstalled"
    exit 0
fi

if [[ $build == yes ]]; then
    command -v cargo >/dev/null ||
        die "cargo not found (under sudo? build first as yourself: cargo build --release, then sudo $0 --no-build)"
    say "building: cargo build --release --locked"
    (cd "$root" && cargo build --release --locked)
fi
[[ -x $binary ]] || die "no binary at $binary"

install -D -m 0755 "$binary" "$DESTDIR$bindir/memcached-rs"
# The units and the wrapper say /usr/bin/memcached-rs and /usr/share/memcached-rs;
# follow PREFIX.
paths() { sed -e "s|/usr/bin/memcached-rs|$bindir/memcached-rs|g" -e "s|/usr/share/memcached-rs/|$datadir/|g" "$1"; }
for u in "${units[@]}"; do
    paths "$root/deploy/systemd/$u" | install -D -m 0644 /dev/stdin "$DESTDIR$UNITDIR/$u"
done
paths "$root/deploy/conf/memcached-rs-wrapper" | install -D -m 0755 /dev/stdin "$DESTDIR$datadir/memcached-rs-wrapper"
install -D -m 0755 "$root/deploy/memcached-rs-tool" "$DESTDIR$bindir/memcached-rs-tool"
gzip -9n <"$root/deploy/memcached-rs.1" | install -D -m 0644 /dev/stdin "$DESTDIR$mandir/man1/memcached-rs.1.gz"
install -D -m 0644 "$root/deploy/README.md" "$DESTDIR$docdir/README.md"
install -D -m 0755 "$root/scripts/healthcheck.sh" "$DESTDIR$datadir/healthcheck.sh"
# Configuration: an existing file is the admin's; the shipped one goes beside it.
config() { # shipped installed
    local shipped=$1 conf=$DESTDIR$2
    if [[ -e $conf ]]; then
        if ! cmp -s "$shipped" "$conf"; then
            install -m 0644 "$shipped" "$conf.dist"
            say "kept your $conf; the shipped one is $conf.dist"
        fi
    else
        install -D -m 0644 "$shipped" "$conf"
    fi
}
config "$root/deploy/default/memcached-rs" "$SYSCONFDIR/default/memcached-rs"
config "$root/deploy/conf/memcached-rs.conf" "$SYSCONFDIR/memcached-rs.conf"
say "installed into ${DESTDIR:-/} (binary $bindir/memcached-rs, units in $UNITDIR)"

if [[ $systemd == no ]]; then
    say "systemd is not PID 1 here (or DESTDIR is set): skipped daemon-reload/enable/start"
    exit 0
fi
systemctl daemon-reload
if [[ $start == yes ]]; then
    systemctl enable memcached-rs.service
    # restart, not start: an upgrade must replace the running binary.
    systemctl restart memcached-rs.service
    systemctl try-restart 'memcached-rs@*.service' || true
    systemctl --no-pager --lines=0 status memcached-rs.service || true
else
    say "--no-start: enable with systemctl enable --now memcached-rs"
fi
