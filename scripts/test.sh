#!/usr/bin/env bash
# Runs every test of clonewire, installing what a fresh machine lacks first.
# Usage: scripts/test.sh        (CI runs exactly this, from .ci/run)
#        scripts/test.sh --fast (the edit loop: format, lints, in-process Rust tests)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh

case "${1:-}" in
  "") ;;
  --fast)
    # No browsers, npm, benchmarks, fuzzing or heavy process tests: the `fast` profile
    # of .config/nextest.toml leaves out the fault campaign and the tests that start
    # simulators, relays or Python peers.
    if ! cargo nextest --version >/dev/null 2>&1; then
      echo "scripts/test.sh --fast needs cargo-nextest: cargo install cargo-nextest --locked" >&2
      exit 2
    fi
    step "toolchain and packages (installed only when missing)"
    ensure_apt libzmq3-dev pkg-config
    step "format and lints"
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    step "in-process Rust tests"
    cargo nextest run --workspace --profile fast --no-fail-fast
    exit 0
    ;;
  *)
    echo "usage: scripts/test.sh [--fast]" >&2
    exit 2
    ;;
esac

step "toolchain and packages (installed only when missing)"
# nginx: the node test of N relays behind a load balancer (tests/node/failover-nginx.test.mjs).
ensure_apt libzmq3-dev pkg-config chromium chromium-driver rsync python3-venv nginx
ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_pip zmq:pyzmq xxhash:xxhash rfc8785:rfc8785 websockets:websockets
ensure_npm
ensure_cylc

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The relay without its page (`cargo install --path relay --no-default-features`).
cargo clippy -p clonewire-relay --no-default-features --lib --bins --quiet -- -D warnings
cargo clippy -p clonewire-core -p clonewire-wasm --target wasm32-unknown-unknown --quiet -- -D warnings
# Doc comments are read as docs: their links must resolve.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "the npm module: build (cargo → wasm-bindgen → wasm-opt → wasm-client/dist/, and the relay's page in dist/site/)"
npm run --silent build

step "core on wasm32: the hash vectors under wasm-bindgen-test (node)"
cargo test -p clonewire-core --target wasm32-unknown-unknown --test vectors

step "the client binding under wasm-bindgen-test (node, then headless Chromium)"
npm run --silent test:wasm

step "benchmarks run briefly (they print figures and never fail on timing)"
cargo bench -q -p clonewire-core --bench model -- --quick

step "the npm module: node tests (scripted and live relay), types, the packed tarball in a Vite app"
# The failover tests run a simulated suite (clonewire-sim) behind several relays.
cargo build -q -p clonewire-relay -p clonewire-tools
npm test

step "the page in headless Chromium against clonewire-relay --demo, and --cylc-run with one real Cylc workflow"
npm run --silent test:e2e

step "the end-to-end load benchmark, quick form (relay vs bare websocket ceiling vs naive Python relay)"
cargo build -q -p clonewire-relay -p clonewire-tools -p clonewire-bench
target/debug/clonewire-bench --quick

step "the soak benchmark, short form (suites in their own processes, clients in churn; it prints, never fails on a figure)"
target/debug/clonewire-bench-soak --quick

step "fuzzing: each target briefly (query parsing, patch apply, client and suite messages)"
bash fuzz/run.sh 20

step "every Rust test in the workspace, the fault campaign's short form included (last, so its summary closes the run)"
cargo nextest run --workspace --no-fail-fast
