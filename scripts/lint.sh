#!/usr/bin/env bash
# fmt and clippy, shared by `make check` and `make test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

printf '\n\033[1m== %s\033[0m\n' "cargo fmt --check"
cargo fmt --all --check

printf '\n\033[1m== %s\033[0m\n' "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
