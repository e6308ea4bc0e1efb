#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20). Exits non-zero when
# a target crashes (the input is saved under fuzz/artifacts/TARGET/). Prints each
# target's executions. Needs cargo-fuzz; stable Rust works with RUSTC_BOOTSTRAP=1.
#   fuzz/run.sh 20            # every target, 20 s each
#   fuzz/run.sh 600 patch     # one target
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(subscription patch client_message suite_message)
fi
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    log="$(mktemp)"
    # -rss_limit_mb bounds memory; -max_len lets deep nesting and big queries in.
    if cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 || true
    fi
    runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1)"
    printf 'fuzz %-15s %-5s %12s executions in %ss\n' "$target" "$result" "${runs:-?}" "$seconds"
    rm -f "$log"
done
exit "$status"
