#!/usr/bin/env bash
# Patchwork and PyTorch on the benchmark suite (bench/cases.json), side by side:
# for each case and mode, `patchwork bench` then torch_bench.py, each in a fresh
# process (so peak RSS is per case and mode on both sides), then the ratio table
# Patchwork img/s ÷ PyTorch img/s (`patchwork bench compare`).
#
#   scripts/bench-vs-torch.sh [--quick] [--group small|imagenet] [--precision fp32|bf16] [--compile]
#                             [--out DIR] [NAME...]
#
# --precision bf16 runs both sides with bf16 matrix products and fp32 weights (Patchwork's
# Precision.bf16, torch.autocast on PyTorch's side); --compile runs PyTorch's side under
# torch.compile (inductor), Patchwork's side unchanged. The ratio table names the peer. The
# default folder is runs/bench, or runs/bench-bf16, runs/bench-compile, runs/bench-bf16-compile.
#
# The PyTorch side needs torch 2.15.0, timm 1.0.31 and transformers 5.24.0
# (pip install torch==2.15.0 timm==1.0.31 transformers==5.24.0); without them
# only Patchwork is measured. TORCH_BENCH points at torch_bench.py
# (default ../shared/bench/torch_bench.py). Run it on a quiet machine: with 2
# cores any other busy process halves a multi-threaded step.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=() group=() names=() out="" precision=fp32 compile=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick); shift ;;
        --group) group=(--group "$2"); shift 2 ;;
        --precision)
            case "${2:-}" in fp32|bf16) precision="$2" ;; *) echo "--precision must be fp32 or bf16, got '${2:-}'" >&2; exit 2 ;; esac
            shift 2 ;;
        --compile) compile=(--compile); shift ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) names+=("$1"); shift ;;
    esac
done
torch_bench="${TORCH_BENCH:-../shared/bench/torch_bench.py}"
if [ -z "$out" ]; then
    out=runs/bench
    [ "$precision" = bf16 ] && out="$out-bf16"
    [ ${#compile[@]} -gt 0 ] && out="$out-compile"
fi

swift build -c release --product patchwork >/dev/null
patchwork=.build/release/patchwork
mkdir -p "$out"

with_torch=1
if [ ! -f "$torch_bench" ]; then
    echo "PyTorch side skipped: $torch_bench not found (set TORCH_BENCH)." >&2; with_torch=0
elif ! python3 -c "import torch, timm, transformers" 2>/dev/null; then
    echo "PyTorch side skipped: python3 cannot import torch, timm and transformers" \
         "(pip install torch==2.15.0 timm==1.0.31 transformers==5.24.0)." >&2
    with_torch=0
fi

ours=() theirs=()
while read -r name _ _ modes; do
    for mode in ${modes//,/ }; do
        $patchwork bench "${quick[@]}" --precision "$precision" --mode "$mode" "$name" --json "$out/patchwork-$name-$mode.json" | grep "img/s \[" | sed 's/^/patchwork: /'
        ours+=("$out/patchwork-$name-$mode.json")
        if [ $with_torch = 1 ]; then
            python3 "$torch_bench" "${quick[@]}" --precision "$precision" "${compile[@]}" --mode "$mode" "$name" --json "$out/torch-$name-$mode.json" \
                | grep "img/s \[" | sed 's/^/torch: /'
            theirs+=("$out/torch-$name-$mode.json")
        fi
    done
done < <($patchwork bench --list "${group[@]}" "${names[@]}")

echo
if [ $with_torch = 1 ]; then
    $patchwork bench compare --patchwork "${ours[@]}" --torch "${theirs[@]}" --markdown "$out/ratios.md"
else
    $patchwork bench compare --patchwork "${ours[@]}" --markdown "$out/ratios.md"
fi
echo "wrote $out/ratios.md"
