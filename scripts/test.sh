#!/usr/bin/env bash
# The whole test suite: what `make test` and CI run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
# Tests that need an external tool fail (rather than skip) when it is missing.
export KILN_REQUIRE_TOOLS=1

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/lint.sh

step "wasm32 build check: shared, web"
( kiln_wasm_env; cargo build --locked --target wasm32-unknown-unknown -p kiln-shared -p kiln-web )

if [ -x scripts/build-edge.sh ]; then
  step "edge: worker-build (wasm)"
  bash scripts/build-edge.sh
fi

step "build binaries (Lambdas, kiln, test Lambdas)"
cargo build --workspace --bins --locked

step "cargo test"
if command -v cargo-nextest >/dev/null 2>&1; then
  # Doctests first (nextest does not run them), so the run ends with nextest's summary.
  cargo test --workspace --locked --doc
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
