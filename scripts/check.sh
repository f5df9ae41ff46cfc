#!/usr/bin/env bash
# `make check`: the fast inner loop. fmt, clippy, unit tests and the tidy/IAM-contract
# tests; no emulators, no browser, no tool installs (only the Rust toolchain).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/lint.sh
source scripts/env.sh

printf '\n\033[1m== %s\033[0m\n' "unit, tidy and IAM contract tests"
cargo test --workspace --locked --lib --quiet
cargo test --locked -p kiln-tests --test tidy --test iam_contract --quiet
