#!/usr/bin/env bash
# `make bench`: the criterion benches of every workspace crate that has a benches/
# directory (kiln-shared: state machine, aggregation, parsing, HMAC, SSM merge), then a
# compact table of this run's figures and ratios against baselines measured in the same
# run, then any scripts/bench-*.sh (edge size/latency, Lambda AWS-call counts).
#
#   BENCH_ARGS="--measurement-time 5"   extra criterion flags (default: 1 s warm-up, 2 s
#                                       measurement per bench, set in each bench's config)
#   BENCH_FILTER=state                  only benches whose id matches
# Figures, never timed assertions: this script fails only if a bench fails to run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=env.sh
source scripts/env.sh
say() { printf '\033[1mbench:\033[0m %s\n' "$*"; }

target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT

for manifest in */Cargo.toml; do
  crate_dir=$(dirname "$manifest")
  compgen -G "$crate_dir/benches/*.rs" >/dev/null || continue
  pkg=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
  say "cargo bench -p $pkg"
  # shellcheck disable=SC2086 # BENCH_ARGS and BENCH_FILTER are word lists
  cargo bench -p "$pkg" --benches -- ${BENCH_FILTER:-} ${BENCH_ARGS:-}
done

say "summary (criterion mean; ratios against same-run baselines)"
python3 - "$target_dir/criterion" "$marker" <<'PY'
import json, os, sys

root, marker = sys.argv[1], sys.argv[2]
since = os.path.getmtime(marker)
rows = {}
for dirpath, _, files in os.walk(root):
    if "estimates.json" in files and os.path.basename(dirpath) == "new":
        path = os.path.join(dirpath, "estimates.json")
        if os.path.getmtime(path) < since:
            continue  # a bench of an earlier run
        bench = os.path.dirname(dirpath)
        with open(os.path.join(bench, "new", "benchmark.json")) as f:
            meta = json.load(f)
        with open(path) as f:
            est = json.load(f)
        rows[meta["full_id"]] = (est["mean"]["point_estimate"], meta.get("throughput"))

def human(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.1f} ns"

def rate(ns, tp):
    if not tp:
        return ""
    (kind, n), = tp.items()
    per_s = n / (ns / 1e9)
    if kind == "Bytes":
        return f"{per_s / 2**20:.0f} MiB/s"
    return f"{per_s:,.0f} elem/s"

if not rows:
    print("  (no criterion results from this run)")
    sys.exit(0)
width = max(len(k) for k in rows)
for name in sorted(rows):
    ns, tp = rows[name]
    print(f"  {name:<{width}}  {human(ns):>10}  {rate(ns, tp)}")

ratios = [
    ("state step (apply, rebuild) / clone of the record", "state/apply_building", "state/clone_record"),
    ("state step (apply, AVAILABLE) / clone of the record", "state/apply_available", "state/clone_record"),
    ("HMAC verify 4 KiB / SHA-256 of the same bytes", "hmac_4k/verify", "hmac_4k/sha256"),
    ("HMAC sign+verify 4 KiB / SHA-256 of the same bytes", "hmac_4k/sign_verify", "hmac_4k/sha256"),
    ("event parse / serde_json::Value of the same text", "event_parse/image_state_change", "event_parse/json_value"),
    ("preset parse_all / serde_yaml::Value of the same files", "preset_parse/parse_all", "preset_parse/yaml_value"),
    ("status for 1000 presets / for 100 (linear = 10)", "status_build/1000", "status_build/100"),
    ("SSR page / JSON of the same report, 10 presets", "ssr/page/10", "ssr/json/10"),
    ("SSR page / JSON of the same report, 1000 presets", "ssr/page/1000", "ssr/json/1000"),
    ("SSR page for 1000 presets / for 100 (linear = 10)", "ssr/page/1000", "ssr/page/100"),
    ("SSR page with full history / without, 100 presets (budget: <= 5 ms)", "ssr/page_with_history/100", "ssr/page/100"),
    ("history section render (origin) / SSR page, 100 presets", "ssr/history/100", "ssr/page/100"),
]
shown = [(label, rows[a][0] / rows[b][0]) for label, a, b in ratios if a in rows and b in rows]
page, section = rows.get("ssr/page_with_history/100"), rows.get("ssr/history/100")
if page and section:
    total = page[0] + section[0]
    print(f"\n  page SSR, 100 presets with full history: {human(page[0])} at the edge + "
          f"{human(section[0])} for the history section at the origin = {human(total)} "
          f"(budget <= 5 ms: {'within' if total <= 5e6 else 'OVER'})")
if shown:
    print()
    w = max(len(l) for l, _ in shown)
    for label, r in shown:
        print(f"  {label:<{w}}  {r:6.2f}x")
PY

for extra in scripts/bench-*.sh; do
  [ -f "$extra" ] || continue
  say "$extra"
  bash "$extra"
done
