"""Peak memory of training and of the K-sample likelihood estimate, each in a fresh process.

Every measurement runs in its own Python process (Linux: it reads /proc/self/status, and resets
the peak with /proc/self/clear_refs once the model and data are built) and reports how far the
peak resident size rose above the size at that moment, so that what is measured is the work
itself: four training steps on a batch already in memory, or the importance-sampled estimate
of four images.

The estimate's memory is bounded by its chunk budget, not by K: with the default CPU budget
(64 MB of chunk rows) K = 500, 5,000 and 50,000 must peak alike, and a larger budget must
peak higher.  Training's memory grows with the batch, not with the number of images.

    python -m tools.bench.memory [--preset burda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, torch
from vaelab.models import build_model
from vaelab.settings import preset_config
kind, preset, n, budget_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
def reset_peak():  # Linux: the peak resident size starts again from the current one
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mb("VmRSS")
torch.manual_seed(0)
model = build_model("vae", **preset_config(preset))
if kind == "nll":
    from vaelab.nll import EstimateSettings, importance_sampled
    model.eval()
    x = torch.empty(4, 784).bernoulli_(0.5)
    plain = EstimateSettings(compile=False)
    importance_sampled(model, x[:1], 2, progress=False, settings=plain)  # libraries loaded
    before = reset_peak()
    budget = EstimateSettings(compile=False, memory_bytes=int(budget_mb * 2**20))
    importance_sampled(model, x, n, progress=False, settings=budget)
else:
    from vaelab.config import TrainConfig
    from vaelab.train import make_optimizer, train_step
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    train_step(model, opt, torch.rand(2, 784), None)  # optimizer state, libraries
    xb = torch.empty(n, 784).bernoulli_(0.5)
    before = reset_peak()
    for _ in range(4):
        train_step(model, opt, xb, None)
print(json.dumps({"before_mb": before, "growth_mb": status_mb("VmHWM") - before}))
"""


def measure(kind: str, preset: str, n: int, budget_mb: float = 64) -> dict:
    # glibc keeps freed heap memory for reuse, so the resident size of a long loop drifts up
    # with what it once freed; returning it at once (MALLOC_TRIM_THRESHOLD_=0) leaves what is
    # held.  (Without it: 17, 27 and 45 MB for K = 5,000, 50,000 and 200,000.)
    env = os.environ | {"MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, preset, str(n), str(budget_mb)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="burda")
    args = ap.parse_args()
    print(f"model preset: {args.preset}; peak resident memory growth of the work, MB")
    print()
    print("| likelihood estimate, 4 images | chunk budget | peak growth, MB |")
    print("|---|---|---|")
    for k in (500, 5000, 50_000, 200_000):
        r = measure("nll", args.preset, k)
        print(f"| K = {k:,} | 64 MB (default on a CPU) | {r['growth_mb']:.0f} |")
    for budget in (16, 256):
        r = measure("nll", args.preset, 5000, budget)
        print(f"| K = 5,000 | {budget} MB | {r['growth_mb']:.0f} |")
    print()
    print("| training, 4 steps | batch | peak growth, MB |")
    print("|---|---|---|")
    for batch in (100, 1000, 10_000):
        r = measure("train", args.preset, batch)
        print(f"| Adam steps | {batch:,} | {r['growth_mb']:.0f} |")


if __name__ == "__main__":
    main()
