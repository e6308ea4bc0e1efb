#!/usr/bin/env bash
# Runs the relay with simulated demo suites and serves the page:
#   scripts/run.sh               → http://127.0.0.1:8080/
#   scripts/run.sh --listen 0.0.0.0:9000   (any relay flag may follow)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh

step "toolchain and packages (installed only when missing)"
ensure_apt libzmq3-dev pkg-config
ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_npm

step "build the client module and the relay (the page is built into the binary)"
npm run --silent build
cargo build --release -p clonewire-relay

step "run: open http://127.0.0.1:8080/ (Ctrl-C stops it)"
exec target/release/clonewire-relay --demo "$@"
