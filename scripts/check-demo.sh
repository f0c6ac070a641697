#!/usr/bin/env bash
# The main job end to end, small: `patchwork demo --quick` (2 seeds, every model to a low target
# accuracy, small analyses), then checks what it must write: every claim with its seeds, mean, std,
# interval, baseline and verdict; training.json with every run; the report. A smoke test of the
# pipeline, not a result (the quick models are barely trained). Takes a few minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release/patchwork"
[ -x "$bin" ] || { echo "error: build first (swift build -c release)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/patchwork-demo.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$bin" demo --quick --out "$out/demo"
for f in claims.json training.json report.html data-spectrum/data-spectrum.json; do
    [ -s "$out/demo/$f" ] || { echo "error: the demo wrote no $f" >&2; exit 1; }
done
claims=$(grep -c '"claim" :' "$out/demo/claims.json" || true)
for key in '"seeds" :' '"mean" :' '"std" :' '"interval" :' '"baseline" :' '"verdict" :'; do
    n=$(grep -c "$key" "$out/demo/claims.json" || true)
    [ "$n" -ge "$claims" ] || { echo "error: claims.json: $claims claims but $n with $key" >&2; exit 1; }
done
[ "$claims" -ge 8 ] || { echo "error: claims.json has $claims claims, expected at least 8" >&2; exit 1; }
grep -q "The claims, checked" "$out/demo/report.html" || { echo "error: report.html has no claims table" >&2; exit 1; }
echo "demo --quick: $claims claims, each with seeds, spread, interval, baseline and verdict; report written"
