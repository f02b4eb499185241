#!/usr/bin/env bash
# vaelab's GPU figures in one go, for docs/performance.md: the K = 5000 estimate in each number
# format (and compiled), and training in each format, on the first CUDA GPU.  Needs a Python
# with a CUDA build of torch (and numpy, safetensors, tqdm); vaelab runs from this checkout.
#
#   bash tools/bench/gpu.sh [--data-dir DIR] [RUN ...]
#
# RUN: trained run folders to measure the estimate on (default: the Burda et al. MLP trained
# 5 epochs there).  --data-dir: MNIST's IDX files (raw or .gz), when the cache lacks them.
# Writes gpu.md and gpu.log into $OUT (default logs/gpu/).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-logs/gpu}
mkdir -p "$out"
data=()
if [ "${1:-}" = "--data-dir" ]; then
    data=(--data-dir "$2")
    shift 2
fi
runs=()
for r in "$@"; do runs+=(--run "$r"); done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
{
    "$py" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print("torch", torch.__version__, torch.cuda.get_device_name())' || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    echo
    "$py" -m tools.bench.precision --device cuda --compile --images 2000 --rounds 2 --train-epochs 5 \
        "${data[@]}" "${runs[@]}"
} 2>&1 | tee "$out/gpu.log"
grep -v '^W[0-9]' "$out/gpu.log" >"$out/gpu.md"
echo "wrote $out/gpu.md"
