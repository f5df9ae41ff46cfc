#!/usr/bin/env bash
# `make dev`: install what is missing, build the Lambdas, the CLI and the Worker, then run
# the whole system locally with `kiln dev` (Ctrl-C stops everything).
# Extra flags for kiln dev: `make dev ARGS="--fail linux-arm64 --build-seconds 20"`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
echo "dev: building the Lambdas and the kiln CLI"
# The same build as `make test`, so dev after test reuses every artifact.
cargo build --quiet --workspace --bins --locked
echo "dev: building the Worker"
bash scripts/build-edge.sh
# shellcheck disable=SC2086
exec "$ROOT/target/debug/kiln" dev --presets "$ROOT/presets" ${ARGS:-}
