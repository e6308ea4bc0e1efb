# Shared by scripts/run.sh and scripts/test.sh: install what a fresh machine lacks.
# Each function checks first, so a second run installs nothing.

step() { printf '\n==> %s\n' "$*"; }

apt_updated=0
# ensure_apt PKG...: install Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
}

# The version of the wasm-bindgen crate in Cargo.lock.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock
}

# The wasm-bindgen CLI must be exactly the version of the wasm-bindgen crate.
ensure_wasm_bindgen_cli() {
  local want
  want=$(wasm_bindgen_version)
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    cargo install -q --force wasm-bindgen-cli --version "$want"
  fi
}

# ensure_pip MODULE:PACKAGE...: install Python packages whose module is missing.
ensure_pip() {
  local missing=()
  for pair in "$@"; do
    python3 -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] || python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

# The npm devDependencies, exactly as locked.
ensure_npm() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

# The Cylc version the Cylc tests run against (see docs/cylc.md).
CYLC_FLOW_VERSION=8.5.4
# ensure_cylc: a venv with cylc-flow, at target/cylc-venv (or $CLONEWIRE_CYLC_VENV),
# made only when it lacks that version. Its workflows need Debian's rsync.
ensure_cylc() {
  local venv=${CLONEWIRE_CYLC_VENV:-target/cylc-venv}
  if ! "$venv/bin/cylc" version 2>/dev/null | grep -qx "$CYLC_FLOW_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "cylc-flow==$CYLC_FLOW_VERSION"
  fi
  export CLONEWIRE_CYLC_VENV
  CLONEWIRE_CYLC_VENV=$(cd "$venv" && pwd)
}
