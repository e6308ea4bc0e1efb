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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
}

# The wasm-bindgen CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
ensure_wasm_bindgen_cli() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  if [ -z "$want" ]; then
    cargo generate-lockfile
    want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    cargo install -q wasm-bindgen-cli --version "$want"
  fi
}

# ensure_pip PKG...: install Python packages for the test peers.
ensure_pip() {
  python3 -c "import importlib,sys; [importlib.import_module(m) for m in sys.argv[1:]]" "${@//-/_}" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check "$@"
}
