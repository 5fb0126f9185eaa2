#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time (FUZZ_SECONDS, default 60 s
# each) and reports executions and crashes. Exits non-zero if any target crashed; the
# crashing input is then in fuzz/artifacts/<target>/ (reproduce it with
# `cargo +nightly fuzz run <target> <file>`, then keep it as a regression test).
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh parse
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); installs
# cargo-fuzz when missing. The parser and the store have no unsafe code, so the
# targets are built without a sanitizer by default (several times more executions per
# second); FUZZ_SANITIZER=address turns ASan on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse meta store_model store_small)

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

cargo +nightly fuzz build -O --debug-assertions --sanitizer "$sanitizer" 2>&1 \
    | grep -E '^(error|Finished)|Finished' || true
mkdir -p logs
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    [ -d "seeds/$target" ] && cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    args=(-max_total_time="$seconds" -print_final_stats=1)
    case "$target" in
        parse | meta) args+=(-dict=dict/protocol.dict -max_len=16384) ;;
        *) args+=(-max_len=8192) ;;
    esac
    log="logs/$target.log"
    echo "== $target: ${seconds}s (log: fuzz/$log)"
    if cargo +nightly fuzz run -O --debug-assertions --sanitizer "$sanitizer" "$target" \
        "corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed=1
    fi
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
    corpus=$(find "corpus/$target" -type f | wc -l)
    echo "   $status: $execs execs ($rate/s), coverage $cov edges, corpus $corpus inputs"
    if [ "$status" = CRASH ]; then
        grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 | sed 's/^/   /'
    fi
done
exit "$failed"
