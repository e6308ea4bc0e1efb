#!/usr/bin/env bash
# Runs every test of clonewire, installing what a fresh machine lacks first.
# Usage: scripts/test.sh        (CI runs exactly this, from .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh

step "toolchain and system packages"
ensure_apt libzmq3-dev pkg-config
ensure_wasm_target
ensure_wasm_bindgen_cli

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "core on wasm32: the hash vectors under wasm-bindgen-test (node)"
cargo test -p clonewire-core --target wasm32-unknown-unknown --test vectors

step "benchmarks compile and run briefly (figures, never pass/fail on timing)"
cargo bench -p clonewire-core --bench model -- --quick

step "every Rust test in the workspace"
cargo nextest run --workspace --no-fail-fast
