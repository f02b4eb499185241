#!/usr/bin/env bash
# fp32 against bf16 products over a whole training: Burda et al.'s 784-200-200-50 VAE under the
# paper protocol (batch 100, lr 3e-3, cosine schedule), 100 epochs from seeds 0 and 1 in each
# format, then the K = 5000 estimate of each (fp32 products) on the first 1,000 test images.
# About 20 minutes on 2 CPU cores; writes tools/bench/results/precision_long.md.
#
#   bash tools/bench/precision_long.sh [--epochs 100] [--device cpu] [--table-only]
# --table-only: only the table, from the runs already in runs/precision-long/.
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=100
device=auto
train=1
while [ $# -gt 0 ]; do
    case $1 in
        --epochs) epochs=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        --table-only) train=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
vaelab=${VAELAB:-.venv/bin/vaelab}
out=runs/precision-long
for seed in $([ "$train" = 1 ] && echo 0 1); do
    for p in fp32 bf16; do
        run=$out/$p-s$seed
        rm -rf "$run"
        "$vaelab" train --protocol paper --batch-size 100 --lr 3e-3 --lr-schedule cosine \
            --epochs "$epochs" --seed "$seed" --precision "$p" --device "$device" --out "$run" \
            --no-progress --no-figures
        "$vaelab" evaluate "$run" --nll-samples 5000 --limit 1000 --device "$device" \
            --no-progress --json >"$run.evaluation.json"
    done
done
python3 - "$out" "$epochs" <<'EOF'
import json, statistics, sys
from pathlib import Path

out, epochs = Path(sys.argv[1]), sys.argv[2]
lines = [
    f"Burda et al.'s 784-200-200-50 VAE, paper protocol, {epochs} epochs (`bash tools/bench/precision_long.sh`):",
    "",
    "| products | seed | s per epoch, median | best validation -ELBO | -log p(x), K=5000, 1,000 test images (fp32 estimate) |",
    "|---|---|---|---|---|",
]
for run in sorted(out.glob("*-s[0-9]"), key=lambda p: (p.name[-1], not p.name.startswith("fp32"))):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ev = json.loads(Path(f"{run}.evaluation.json").read_text())
    seconds = statistics.median(r["seconds"] for r in rows)
    best = min(r["val_loss"] for r in rows)
    precision, seed = run.name.split("-s")
    lines.append(
        f"| {precision} | {seed} | {seconds:.2f} | {best:.2f} | {ev['nll']:.2f} +- {ev['nll_sem']:.2f} |"
    )
Path("tools/bench/results").mkdir(exist_ok=True)
Path("tools/bench/results/precision_long.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
