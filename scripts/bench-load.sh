#!/usr/bin/env bash
# Times reading a ~100 MB torch checkpoint against the same weights as safetensors
# (`patchwork bench load`, best of repeats; the target is the .pth at most 2x the safetensors).
#
#   scripts/bench-load.sh [PYTHON]
#
# PYTHON (default: python3) needs torch and safetensors; it writes the two files
# (25 M float32 parameters in 40 tensors, saved as a training checkpoint
# {"model": ..., "epoch": ...}) to a temporary folder, which is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
"$python" - "$folder" <<'PY'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
sd = {f"blocks.{i}.weight": torch.randn(625, 1000, generator=g) for i in range(40)}
torch.save({"model": sd, "epoch": 1}, f"{sys.argv[1]}/weights.pth")
save_file(sd, f"{sys.argv[1]}/weights.safetensors")
PY
swift build -c release --product patchwork >/dev/null
.build/release/patchwork bench load "$folder/weights.safetensors" "$folder/weights.pth"
