#!/usr/bin/env bash
# `make soak`: the model-based fault suite (tests/tests/model_faults.rs) with many random
# schedules: events lost, duplicated, reordered and delivered concurrently, emulator
# faults, bounded re-delivery, scheduled reconcile; final DynamoDB + SSM state checked
# against the ordered model.
#
#   KILN_MODEL_SCHEDULES=10000   schedules (default here: 10 000)
#   KILN_MODEL_SEED=N            base seed (default here: a fresh one, printed)
#   KILN_MODEL_WORKERS=4         schedules run concurrently
#   KILN_MODEL_REPLAY=SEED       run only that schedule (seeds are printed on failure)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
source scripts/env.sh
export KILN_MODEL_SCHEDULES="${KILN_MODEL_SCHEDULES:-10000}"
export KILN_MODEL_SEED="${KILN_MODEL_SEED:-$(date +%s)}"
export KILN_REQUIRE_TOOLS="${KILN_REQUIRE_TOOLS:-1}"
say() { printf '\033[1msoak:\033[0m %s\n' "$*"; }
say "$KILN_MODEL_SCHEDULES schedules, seed $KILN_MODEL_SEED (replay with KILN_MODEL_SEED=$KILN_MODEL_SEED)"
cargo test -p kiln-tests --test model_faults --no-run
start=$(date +%s.%N)
status=0
cargo test -p kiln-tests --test model_faults -- --nocapture || status=$?
end=$(date +%s.%N)
python3 - "$start" "$end" "$KILN_MODEL_SCHEDULES" <<'PY'
import sys
start, end, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
secs = end - start
print(f"soak: {n} schedules in {secs:.0f} s = {n / secs:.1f} schedules/s (test binary wall time)")
PY
exit "$status"
