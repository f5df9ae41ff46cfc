#!/usr/bin/env bash
# Builds the edge Worker into edge/build (worker-build --release, offline: local esbuild and
# wasm-bindgen; then binaryen's wasm-opt from the pinned npm `binaryen` package) and prints
# the wasm size. Does nothing when no input changed.
# Concurrent callers (parallel tests) serialise on a lock; the second finds it built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
kiln_wasm_env

OUT="$ROOT/edge/build"
WASM="$OUT/index_bg.wasm"
STAMP="$OUT/.kiln-stamp"
mkdir -p "$ROOT/target"

inputs_hash() {
  # Sources of the Worker and everything it links, the lockfile and the build settings.
  {
    find "$ROOT/edge/src" "$ROOT/edge/tools" "$ROOT/web/src" "$ROOT/shared/src" -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum "$ROOT/Cargo.lock" "$ROOT/Cargo.toml" "$ROOT/edge/Cargo.toml" "$ROOT/web/Cargo.toml" \
      "$ROOT/shared/Cargo.toml" "$ROOT/scripts/build-edge.sh"
    echo "rustup-wasm=${RUSTUP_TOOLCHAIN:-default}"
  } | sha256sum | cut -c1-32
}

report_size() {
  local raw gz
  raw=$(stat -c %s "$WASM")
  gz=$(gzip -9 -c "$WASM" | wc -c)
  printf 'edge: wasm %s bytes raw, %s bytes gzip (%.1f KB)\n' "$raw" "$gz" "$(awk -v b="$gz" 'BEGIN{print b/1024}')"
}

exec 9>"$ROOT/target/.kiln-edge-build.lock"
flock 9

want=$(inputs_hash)
if [ -f "$WASM" ] && [ -f "$OUT/index.js" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "edge: build is up to date"
  report_size
  exit 0
fi

# worker-build downloads esbuild/wasm-bindgen unless told where local ones are.
esbuild="$ROOT/tools/node/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$esbuild" ] || esbuild="$(command -v esbuild)"
export ESBUILD_BIN="$esbuild"
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
for tool in worker-build wasm-bindgen "$ESBUILD_BIN"; do
  command -v "$tool" >/dev/null || { echo "edge: $tool not found: run scripts/setup.sh" >&2; exit 1; }
done

echo "edge: worker-build --release (cold: several minutes; incremental: seconds)"
(cd "$ROOT/edge" && worker-build --release --no-opt)
[ -f "$WASM" ] || { echo "edge: worker-build produced no $WASM" >&2; exit 1; }
# Debug names are a third of the module and never read at run time.
python3 "$ROOT/edge/tools/strip_names.py" "$WASM"
# Two -O1 rounds: measured on this module, the smallest *gzip* result (what the 150 KB
# budget counts). -Oz/-Os shrink the raw bytes more but compress worse (+2-3 KB gzip).
# Features as wasm-bindgen emits them (exception handling for the JS glue's catch).
wasm_opt="$ROOT/tools/node/node_modules/binaryen/bin/wasm-opt"
[ -x "$wasm_opt" ] || { echo "edge: $wasm_opt not found: run scripts/setup.sh" >&2; exit 1; }
"$wasm_opt" --enable-exception-handling --enable-reference-types --enable-bulk-memory \
  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-multivalue \
  -O1 -O1 "$WASM" -o "$WASM.opt"
mv "$WASM.opt" "$WASM"
echo "$want" >"$STAMP"
report_size
