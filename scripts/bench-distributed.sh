#!/usr/bin/env bash
# Data-parallel throughput on one machine (docs/PERFORMANCE.md, "Data-parallel training"):
# for resnet_nano and vit_nano, global batch 64,
#   Patchwork 1 process x 2 threads, Patchwork 2 ranks x 1 thread (mpirun),
#   PyTorch 1 process x 2 threads, PyTorch DDP (gloo) 2 processes x 1 thread,
# interleaved per model. Patchwork's figure is `patchwork train`'s img/s (optimizer steps only,
# the loader's thread runs beside them) over one epoch of IMAGES ShapeTex images; the rank-0
# allreduce share is the trainer's own line. PyTorch's is scripts/reference/ddp_bench.py on
# random tensors (no loader). Needs torch 2.15.0 and timm 1.0.31 in PYTHON (default python3).
#   scripts/bench-distributed.sh [IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-1920}
steps=$((images / 64))
python=${PYTHON:-python3}
bin=.build/release/patchwork
tmp=$(mktemp -d "${TMPDIR:-/tmp}/patchwork-bench-distributed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
for model in resnet_nano vit_nano; do
    train=(train --model "$model" --data "shapetex:train=$images,test=64" --batch-size 64 --epochs 1 --seed 1)
    OMP_NUM_THREADS=2 "$bin" "${train[@]}" --out "$tmp/$model-1x2" > "$tmp/$model-1x2.log"
    echo "$model patchwork ranks=1 threads=2: $(sed -n 's/.*"images_per_second" : \([0-9.]*\).*/\1/p' "$tmp/$model-1x2/summary.json") img/s"
    OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -np 2 \
        "$bin" "${train[@]}" --out "$tmp/$model-2x1" > "$tmp/$model-2x1.log"
    echo "$model patchwork ranks=2 threads=1: $(sed -n 's/.*"images_per_second" : \([0-9.]*\).*/\1/p' "$tmp/$model-2x1/summary.json") img/s;$(grep -a "allreduce" "$tmp/$model-2x1.log" | tail -n 1)"
    "$python" scripts/reference/ddp_bench.py "$model" 1 2 "$steps"
    "$python" scripts/reference/ddp_bench.py "$model" 2 1 "$steps"
done
