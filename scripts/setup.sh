#!/usr/bin/env bash
# Installs, idempotently and at pinned versions, everything kiln's tests and local stack
# need on a fresh Debian 12 machine. A second run with everything present takes seconds.
#
#   scripts/setup.sh            everything
#   scripts/setup.sh --quiet    same, one line per step that did work
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../tools/versions.env
source "$ROOT/tools/versions.env"
TOOLS_HOME="${KILN_TOOLS_HOME:-$HOME/.cache/kiln}"
mkdir -p "$TOOLS_HOME"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# --- Debian packages --------------------------------------------------------------
wasm_target_from_rustup() { have rustup && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; }

# rustup's wasm32 target is the fast path; its download is not guaranteed here, so fall
# back to Debian's rustc-web when it cannot be had.
if have rustup && ! wasm_target_from_rustup && [ "${KILN_WASM_FROM_DEBIAN:-0}" != 1 ]; then
  say "rustup target add wasm32-unknown-unknown"
  timeout 300 rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || say "rustup target unavailable; using Debian rustc-web"
fi
use_rustup_wasm() { [ "${KILN_WASM_FROM_DEBIAN:-0}" != 1 ] && wasm_target_from_rustup; }

apt_wanted=(chromium chromium-driver wrk)
use_rustup_wasm || apt_wanted+=(rustc-web cargo-web rust-web-src lld-19)
# javac too: DynamoDB Local runs behind a small loopback launcher compiled on first use.
have javac || apt_wanted+=(openjdk-17-jdk-headless)
missing=()
for p in "${apt_wanted[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- wasm32 toolchain ---------------------------------------------------------------
# Prefer rustup's own target; otherwise link a toolchain around Debian's rustc-web so
# that `rustc --print target-libdir` (which worker-build checks) resolves. See TOOLCHAIN.md.
if ! use_rustup_wasm; then
  tc="$TOOLS_HOME/wasm-toolchain"
  if ! rustup toolchain list 2>/dev/null | grep -q '^kiln-wasm' || [ ! -x "$tc/bin/rustc" ]; then
    say "linking rustup toolchain kiln-wasm -> Debian rustc-web"
    rm -rf "$tc"
    mkdir -p "$tc/bin" "$tc/lib/rustlib/wasm32-unknown-unknown/lib"
    printf '#!/bin/sh\nexec /usr/bin/rustc --sysroot %s "$@"\n' "$tc" >"$tc/bin/rustc"
    chmod +x "$tc/bin/rustc"
    ln -s /usr/bin/cargo "$tc/bin/cargo"
    [ -x /usr/bin/rustdoc ] && ln -s /usr/bin/rustdoc "$tc/bin/rustdoc"
    for d in x86_64-unknown-linux-gnu src etc; do
      [ -e "/usr/lib/rustlib/$d" ] && ln -s "/usr/lib/rustlib/$d" "$tc/lib/rustlib/$d"
    done
    rustup toolchain link kiln-wasm "$tc"
  fi
fi

# --- cargo-installed binaries (slow to build: skipped when the pinned version is there)
cargo_install() { # crate version binary [extra args]
  local crate=$1 version=$2 bin=$3; shift 3
  if have "$bin" && "$bin" --version 2>/dev/null | grep -q "$version"; then return; fi
  say "cargo install $crate@$version (takes minutes, once)"
  # Install with the host toolchain even when the caller selected another one.
  RUSTUP_TOOLCHAIN=stable cargo install --quiet "$crate" --version "=$version" "$@"
}
cargo_install wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
cargo_install worker-build "$WORKER_BUILD_VERSION" worker-build
cargo_install cfn-guard "$CFN_GUARD_VERSION" cfn-guard --locked

# --- Node tooling (wrangler, Node 22, DynamoDB Local) from the lockfile ----------------
node_dir="$ROOT/tools/node"
want=$(hash_of "$node_dir/package-lock.json")
if ! stamp_ok "$node_dir/node_modules/.kiln-stamp" "$want"; then
  say "npm install (wrangler, node 22, DynamoDB Local)"
  # `npm ci` trips over workerd's other-platform optional deps missing from the lock
  # (npm 11); install --no-save installs exactly the locked versions instead.
  (cd "$node_dir" && npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" >"$node_dir/node_modules/.kiln-stamp"
fi

# --- Python tools in a project-local venv -----------------------------------------------
venv="$ROOT/.venv"
want=$(hash_of "$ROOT/tools/requirements.txt")
if ! stamp_ok "$venv/.kiln-stamp" "$want"; then
  say "python venv (moto, cfn-lint, cargo-lambda, boto3, awscli)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tools/requirements.txt"
  echo "$want" >"$venv/.kiln-stamp"
fi

say "ready"
