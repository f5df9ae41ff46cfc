#!/usr/bin/env bash
# `make bench` (via scripts/bench.sh): the AWS calls per Image Builder event, per
# `/status` and per reconcile run, counted by kiln-lambdas' call-counting fault wrapper
# around the real SDK clients against DynamoDB Local + moto + the local Image Builder
# (tests/tests/bench_lambdas.rs, an ignored test). Figures, not assertions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
source scripts/env.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! cargo test -q -p kiln-tests --test bench_lambdas -- --ignored --nocapture >"$out" 2>&1; then
  tail -40 "$out" >&2
  echo "bench-lambdas: the counting run failed" >&2
  exit 1
fi
if ! grep '^bench-lambdas:' "$out"; then
  echo "bench-lambdas: no figures printed (emulators missing? run make setup)" >&2
  exit 1
fi
