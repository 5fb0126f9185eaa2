#!/usr/bin/env bash
# Runs every test of memcached-rs: the unit and integration tests of the workspace
# (the integration tests start the real server binary on free ports), then the
# client-compatibility checks of scripts/compat.sh (real Python clients and
# libmemcached-tools against the real server). Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# One release build serves both the tests and the compatibility checks.
cargo build --release --workspace
cargo test --release --workspace

scripts/compat.sh target/release/memcached-rs
