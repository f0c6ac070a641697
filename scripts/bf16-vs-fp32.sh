#!/usr/bin/env bash
# The same ShapeTex training run in fp32 and in bf16 (--precision bf16: bf16 matrix products,
# fp32 weights, optimizer, norms and losses), same seed, one after the other; prints both test
# accuracies and their difference, which issue 17 asks to be within 1 point.
#
#   scripts/bf16-vs-fp32.sh [--model NAME] [--epochs N] [--seed S] [--out DIR] [--eval-count N] [-- TRAIN OPTIONS...]
#
# Defaults: resnet_nano, 6 epochs (train's default for shapetex), seed 0, runs/bf16-vs-fp32.
# Each run takes about 4 minutes for resnet_nano on 2 quiet cores. PATCHWORK=path/to/patchwork
# uses that binary instead of building one.
# Both runs' weights are then evaluated in fp32 on the first N ShapeTex test images (default 20000;
# 0 skips it). The run's own 2000-image test split makes the difference of two models' accuracies
# uncertain by about 0.9 points from the choice of images alone (docs/PERFORMANCE.md, "bf16's
# accuracy on 20 000 test images"); 20 000 images bring that to about 0.3.
set -euo pipefail
cd "$(dirname "$0")/.."

model=resnet_nano epochs=6 seed=0 out=runs/bf16-vs-fp32 eval_count=20000 extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        --epochs) epochs="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --eval-count) eval_count="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
# Checked before the runs, not after them: 0 (no evaluation) or a ShapeTex test count, 1 to 10^8.
[[ "$eval_count" =~ ^[0-9]{1,9}$ ]] && [ "$eval_count" -le 100000000 ] \
    || { echo "--eval-count $eval_count: not a count of test images from 0 to 100000000" >&2; exit 2; }

patchwork="${PATCHWORK:-}"
if [ -z "$patchwork" ]; then
    swift build -c release --product patchwork >/dev/null
    patchwork=.build/release/patchwork
fi
for precision in fp32 bf16; do
    rm -rf "$out/$precision"
    $patchwork train --model "$model" --data shapetex --epochs "$epochs" --seed "$seed" --precision "$precision" \
        --out "$out/$precision" "${extra[@]}" | tail -1 | sed "s/^/$precision: /"
    if [ "$eval_count" -gt 0 ]; then
        log="$out/$precision/eval-$eval_count.log"
        $patchwork eval --model "$model" --weights "$out/$precision/weights.safetensors" \
            --data "shapetex:test=$eval_count" 2>"$log" > "$out/$precision/eval-$eval_count.txt" \
            || { cat "$log" >&2; exit 1; }
        tail -1 "$out/$precision/eval-$eval_count.txt" | sed "s/^/$precision: /"
    fi
done
python3 - "$out" "$eval_count" <<'PY'
import json, re, sys
out, eval_count = sys.argv[1], int(sys.argv[2])
acc = {p: json.load(open(f"{out}/{p}/summary.json"))["test_accuracy"] * 100 for p in ("fp32", "bf16")}
loss = {p: json.load(open(f"{out}/{p}/summary.json"))["test_loss"] for p in ("fp32", "bf16")}
d = acc["bf16"] - acc["fp32"]
print(f"test accuracy fp32 {acc['fp32']:.2f} %, bf16 {acc['bf16']:.2f} %: bf16 - fp32 = {d:+.2f} points "
      f"({'within' if abs(d) <= 1 else 'NOT within'} 1 point); test loss fp32 {loss['fp32']:.4f}, bf16 {loss['bf16']:.4f}")
if eval_count > 0:
    big = {}
    for p in ("fp32", "bf16"):
        lines = open(f"{out}/{p}/eval-{eval_count}.txt").read().strip().splitlines()
        line = lines[-1] if lines else ""
        found = re.search(r"loss ([0-9.]+)\s+top-1 ([0-9.]+)%", line)
        if not found:
            sys.exit(f"error: no accuracy in {out}/{p}/eval-{eval_count}.txt: {line!r}")
        big[p] = (float(found.group(2)), float(found.group(1)))
    d = big["bf16"][0] - big["fp32"][0]
    print(f"on {eval_count} test images: fp32 {big['fp32'][0]:.2f} %, bf16 {big['bf16'][0]:.2f} %: bf16 - fp32 = {d:+.2f} points "
          f"({'within' if abs(d) <= 1 else 'NOT within'} 1 point); test loss fp32 {big['fp32'][1]:.4f}, bf16 {big['bf16'][1]:.4f}")
PY
