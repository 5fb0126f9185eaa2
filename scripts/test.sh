#!/usr/bin/env bash
# Runs every test of memcached-rs: the unit and integration tests of the workspace
# (the integration tests start the real server binary on free ports), the
# client-compatibility checks of scripts/compat.sh (real Python clients and
# libmemcached-tools against the real server), and the deployment checks of
# scripts/deploy-check.sh. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real memcached is the reference some tests compare against (and mcbench's end-to-end
# test drives); libmemcached-tools, nc and python3-venv serve scripts/compat.sh;
# sasl2-bin's saslpasswd2 builds the Cyrus sasldb of tests/cases/sasl.txt; prometheus
# gives tests/metrics.rs promtool and a real Prometheus server to scrape -o metrics.
packages=(memcached libmemcached-tools netcat-openbsd python3-venv sasl2-bin prometheus)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y "${missing[@]}" >/dev/null; }
fi

# One release build serves both the tests and the compatibility checks.
cargo build --release --workspace
# Tests that skip themselves (a feature only ours has, run against memcached; two CPUs
# needed) list themselves here; cargo shows them as passed, so say it.
skipped=target/tmp/skipped-tests.txt
rm -f "$skipped"
cargo test --release --workspace
if [ -s "$skipped" ]; then
    echo "skipped tests ($(wc -l < "$skipped")):"
    sed 's/^/  /' "$skipped"
fi

scripts/compat.sh target/release/memcached-rs
scripts/compat-memcached-tool.sh target/release/memcached-rs

# Deployment: systemd units (systemd-analyze verify, a live run under systemd in private
# namespaces), install/uninstall, graceful stop mid-pipeline, twemproxy cluster, Docker
# seccomp profile, health check: all against the real server.
DEPLOY_CHECK_SERVER=target/release/memcached-rs \
DEPLOY_CHECK_SYSTEMD_SERVER=target/release/memcached-rs \
    scripts/deploy-check.sh
