#!/usr/bin/env bash
# The edge's cost per hour (a benchmark, not a test; counts, not time): origin pulls
# (status-origin Lambda invocations), KV writes and reads, Cache API traffic, for
# N colos x I isolates x M req/s over a simulated hour while the origin changes K times,
# beside the ideal (pulls <= 1 per TTL per colo, KV writes <= K + 1). The same model is
# asserted by `cargo nextest run -p kiln-edge sim::`. Run by scripts/bench.sh.
#
#   COST_COLOS=3 COST_ISOLATES=4 COST_RPS=1,10,100 COST_CHANGES=6 scripts/bench-edge-cost.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"
cargo run --quiet --release -p kiln-edge --example cost
