#!/bin/bash
# Where the time of benchmark rows goes: `perf record` over one `patchwork bench` run per row, reduced
# to the shares per object (oneDNN's JIT GEMM code, Patchwork, libgomp, libc, ...) and the top symbols.
#
#   scripts/profile-rows.sh OUTDIR "CASE MODE PRECISION" ...
#   e.g. scripts/profile-rows.sh runs/profiles "vit-s train fp32" "swin-s train bf16"
#
# Needs `perf` (linux-perf) and a release build of patchwork (swift build -c release --product patchwork).
# Writes OUTDIR/CASE-MODE-PRECISION.txt; the perf data itself is deleted.
set -eu
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then sed -n 2,9p "$0" | sed 's/^# \{0,1\}//'; exit 64; fi
command -v perf > /dev/null || { echo "profile-rows.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 69; }
PATCHWORK=${PATCHWORK:-.build/release/patchwork}
[ -x "$PATCHWORK" ] || { echo "profile-rows.sh: $PATCHWORK not found; build it first" >&2; exit 66; }
out=$1; shift
mkdir -p "$out"
for spec in "$@"; do
  read -r name mode precision <<< "$spec"
  [ -n "${precision:-}" ] || { echo "profile-rows.sh: '$spec' is not \"CASE MODE PRECISION\"" >&2; exit 64; }
  base="$out/$name-$mode-$precision"
  if ! perf record -q -F 999 -g -o "$base.data" "$PATCHWORK" bench "$name" --mode "$mode" --precision "$precision" \
       > "$base.bench" 2>&1; then
    echo "profile-rows.sh: '$spec' failed:" >&2; cat "$base.bench" >&2
    rm -f "$base.data" "$base.data.old" "$base.bench"; exit 1
  fi
  {
    echo "== $name $mode $precision"; grep img/s "$base.bench"
    echo "-- by object"
    perf report -i "$base.data" --no-children --sort dso -g none 2>/dev/null | grep -v "^#" | grep "%" | head -8
    echo "-- top symbols"
    perf report -i "$base.data" --no-children --sort symbol -g none 2>/dev/null | grep -v "^#" | grep "%" \
      | grep -v "\] 0x0000" | head -25 | cut -c1-170
  } > "$base.txt"
  rm -f "$base.data" "$base.data.old" "$base.bench"
  echo "wrote $base.txt"
done
