#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time: `make fuzz`.
#
#   FUZZ_SECONDS=60            time per target (default 60)
#   FUZZ_TARGETS="event_parse preset_parse"   a subset (default: every target)
#   FUZZ_SANITIZER=address     default none: kiln-shared forbids unsafe code, so ASan
#                              costs ~2x speed and finds nothing the panics do not
#   FUZZ_TOOLCHAIN=stable      force the stable-toolchain path (see below)
#   FUZZ_ARGS="-jobs=1 …"      extra libFuzzer flags
#
# Inputs that grow coverage go to fuzz/corpus/<target> (kept between runs, gitignored);
# the committed seeds in fuzz/seeds/<target> are read, never written. A finding leaves
# its input in fuzz/artifacts/<target>/ and makes the script exit 1 after all targets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
source scripts/env.sh

CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
say() { printf '\033[1mfuzz:\033[0m %s\n' "$*"; }

# --- cargo-fuzz at the pinned version (a few minutes to build, once) ------------------
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION (takes minutes, once)"
  RUSTUP_TOOLCHAIN=stable cargo install --quiet --locked cargo-fuzz --version "=$CARGO_FUZZ_VERSION"
fi

# --- toolchain: cargo-fuzz passes nightly-only -Z flags ---------------------------------
# Prefer an installed nightly; otherwise RUSTC_BOOTSTRAP=1 lets stable accept them.
want="${FUZZ_TOOLCHAIN:-}"
if [ -z "$want" ] && rustup run nightly rustc --version >/dev/null 2>&1; then
  want=nightly
fi
if [ "$want" = nightly ]; then
  export RUSTUP_TOOLCHAIN=nightly
else
  [ -n "$want" ] && export RUSTUP_TOOLCHAIN="$want"
  export RUSTC_BOOTSTRAP=1
fi
# fuzz/ is its own workspace with its own target dir, whatever the caller set.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
say "toolchain: $(rustc --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}, sanitizer: $SANITIZER, ${SECONDS_EACH}s per target"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
# Debug assertions on: integer overflow is a finding, as it is in `cargo test`.
flags=(-a -s "$SANITIZER")
mkdir -p fuzz/artifacts/logs
summary=()
failed=0
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/artifacts/logs/$t.log"
  say "$t: building and running for ${SECONDS_EACH}s (log: $log)"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -print_final_stats=1 \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    verdict=ok
  else
    failed=1
    verdict="FAILED (exit $rc)"
    grep -E "panicked at|^Error|error(\[E[0-9]+\])?:" "$log" | head -5 || true
    grep -E "Test unit written to|artifact_prefix" "$log" | tail -2 || true
  fi
  summary+=("$(printf '%-16s %-18s %10s runs %8s/s  cov %-6s corpus %-5s %4ss' \
    "$t" "$verdict" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$(($(date +%s) - start))")")
done

printf '\n'
say "summary"
printf '  %s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  say "a target failed: reproduce with 'cargo fuzz run ${flags[*]} <target> <artifact>', fix, and"
  say "commit the (minimised: cargo fuzz tmin) input to fuzz/seeds/<target>/ as a regression"
  exit 1
fi
