#!/usr/bin/env bash
# Measures the edge Worker (a benchmark, not a test):
#   - wrk req/s of cached GET /status on kiln's Rust Worker ÷ a minimal hand-written JS
#     Worker (edge/bench/js-worker.js) serving the same bytes, each under `wrangler dev`
#     on loopback with the same settings; runs alternate (rust, js, rust, js, …) and the
#     best of each side counts, so background load on the machine hits both alike;
#   - the gzip size of the Worker's wasm.
# Targets: ratio >= 1.0, wasm <= 150 KB gzip.
#
#   scripts/bench-edge.sh [seconds per run, default 10] [connections, default 32] [rounds, default 2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
DURATION="${1:-10}"
CONNS="${2:-32}"
ROUNDS="${3:-2}"
SECRET="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")"

for tool in wrk wrangler openssl python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/setup.sh installs wrk and wrangler)" >&2; exit 1; }
done

bash "$ROOT/scripts/build-edge.sh" | tail -1
WASM="$ROOT/edge/build/index_bg.wasm"
GZ=$(gzip -9 -c "$WASM" | wc -c)

WORK="$(mktemp -d)"
PID=""
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_wrangler <config> <env-file>: runs wrangler dev in its own process group.
start_wrangler() {
  PORT=$(free_port)
  setsid wrangler dev --config "$1" --env-file "$2" --ip 127.0.0.1 --port "$PORT" \
    --inspector-port "$(free_port)" --persist-to "$WORK/persist-$PORT" \
    --show-interactive-dev-session=false >"$WORK/wrangler-$PORT.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 240); do
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && return 0
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/status" 2>/dev/null | grep -q '^[2-5]' && return 0
    sleep 0.25
  done
  echo "bench: wrangler dev did not start; log:" >&2
  cat "$WORK/wrangler-$PORT.log" >&2
  exit 1
}

# wrk_rps <url>: prints requests/s.
wrk_rps() { wrk -t2 -c"$CONNS" -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}'; }

# --- kiln's Worker, snapshot pushed through /ingest, TTL long enough to stay cached ----
cat >"$WORK/edge.env" <<VARS
ORIGIN_URL=http://127.0.0.1:9
ORIGIN_SECRET=$SECRET
CACHE_TTL_SECS=3600
VARS
start_wrangler "$ROOT/edge/wrangler.toml" "$WORK/edge.env"
EDGE="http://127.0.0.1:$PORT"
python3 - "$WORK/report.json" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
presets = [
    {"name": n, "status": "ready", "amiId": a, "updatedAt": now, "architecture": arch,
     "amis": {"us-east-1": a, "eu-west-1": a[:-1] + "e"}}
    for n, a, arch in [("linux-x64", "ami-0a1b2c3d4e5f60001", "x86_64"),
                       ("linux-arm64", "ami-0f9e8d7c6b5a40002", "arm64"),
                       ("gpu-x64", "ami-0123456789abc0003", "x86_64")]
]
json.dump({"status": "ready", "message": "All 3 presets ready", "presets": presets,
           "generatedAt": now, "stale": False}, open(sys.argv[1], "w"), separators=(",", ":"))
PY
TS=$(date +%s)
SIG="v1=$( { printf '%s\nPOST\n/ingest\n' "$TS"; cat "$WORK/report.json"; } | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
code=$(curl -s -o "$WORK/ingest.out" -w '%{http_code}' -X POST --data-binary @"$WORK/report.json" \
  -H "x-kiln-timestamp: $TS" -H "x-kiln-signature: $SIG" "$EDGE/ingest")
[ "$code" = 202 ] || { echo "bench: ingest failed ($code): $(cat "$WORK/ingest.out")" >&2; exit 1; }
curl -fs -D "$WORK/headers" -o "$WORK/body" "$EDGE/status"

# --- the JS baseline, serving those exact bytes and headers -------------------------------
mkdir -p "$WORK/js"
cp "$ROOT/edge/bench/js-worker.js" "$WORK/js/"
python3 - "$WORK/body" "$WORK/headers" "$WORK/js/snapshot.js" <<'PY'
import json, sys
body = open(sys.argv[1]).read()
headers = {}
for line in open(sys.argv[2]):
    if ":" in line:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
with open(sys.argv[3], "w") as f:
    f.write(f"export const BODY = {json.dumps(body)};\n")
    f.write(f"export const ETAG = {json.dumps(headers['etag'])};\n")
    f.write(f"export const CACHE_CONTROL = {json.dumps(headers['cache-control'])};\n")
PY
cat >"$WORK/js/wrangler.toml" <<'TOML'
name = "kiln-edge-bench-js"
main = "js-worker.js"
compatibility_date = "2025-09-01"
TOML
: >"$WORK/js.env"
start_wrangler "$WORK/js/wrangler.toml" "$WORK/js.env"
JS="http://127.0.0.1:$PORT"
cmp -s <(curl -fs "$JS/status") "$WORK/body" || { echo "bench: JS worker body differs" >&2; exit 1; }

# Warm both (JIT, wasm instantiation), then alternate.
wrk -t2 -c"$CONNS" -d2s "$EDGE/status" >/dev/null
wrk -t2 -c"$CONNS" -d2s "$JS/status" >/dev/null
RUST_RPS=0
JS_RPS=0
best() { awk -v a="$1" -v b="$2" 'BEGIN{print (a > b ? a : b)}'; }
for round in $(seq 1 "$ROUNDS"); do
  r=$(wrk_rps "$EDGE/status"); j=$(wrk_rps "$JS/status")
  echo "bench: round $round: rust $r req/s, js $j req/s"
  RUST_RPS=$(best "$RUST_RPS" "$r"); JS_RPS=$(best "$JS_RPS" "$j")
done

python3 - "$RUST_RPS" "$JS_RPS" "$GZ" "$DURATION" "$CONNS" <<'PY'
import sys
rust, js, gz, dur, conns = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ratio = rust / js if js else 0.0
print(f"bench: cached GET /status, wrk -t2 -c{conns} -d{dur}s, wrangler dev on loopback")
print(f"bench:   rust worker {rust:10.0f} req/s (best round)")
print(f"bench:   js worker   {js:10.0f} req/s (best round)")
print(f"bench:   ratio rust/js = {ratio:.2f} (target >= 1.0)")
print(f"bench: wasm gzip = {gz} bytes = {gz/1024:.1f} KB (target <= 150 KB)")
PY
