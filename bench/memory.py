"""Peak memory of training and of the K-sample likelihood estimate, each in a fresh process.

Every measurement runs in its own Python process and reports the growth of the peak resident
set size (``ru_maxrss``) over the process's size once the model and data are built, so that
what is measured is the work itself: a training epoch's steps (no checkpoint), or the
importance-sampled estimate of a few images.

The estimate's memory is bounded by its chunk budget, not by K: with the default CPU budget
(64 MB of chunk rows) K = 500, 5,000 and 50,000 must peak alike, and a larger budget must
peak higher.  Training's memory grows with the batch, not with the number of images.

    python bench/memory.py [--preset burda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
from vaelab.models import build_model
from vaelab.registry import preset_config
kind, preset, n, budget_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
torch.manual_seed(0)
model = build_model("vae", **preset_config(preset))
x = torch.bernoulli(torch.rand(max(n, 4), 784))
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
if kind == "nll":
    from vaelab.nll import importance_sampled
    model.eval()
    x = x[:4]
    importance_sampled(model, x[:1], 2, progress=False, compile=False)  # libraries loaded
    before = peak_mb()
    importance_sampled(model, x, n, progress=False, compile=False,
                       memory_bytes=int(budget_mb * 2**20))
else:
    from vaelab.config import TrainConfig
    from vaelab.train import make_optimizer, train_step
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    train_step(model, opt, x[:2], None)  # optimizer state and libraries allocated
    data = torch.bernoulli(torch.rand(8 * n, 784))
    before = peak_mb()
    for xb in data.split(n):
        train_step(model, opt, xb, None)
print(json.dumps({"before_mb": before, "growth_mb": peak_mb() - before}))
"""


def measure(kind: str, preset: str, n: int, budget_mb: float = 64) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, preset, str(n), str(budget_mb)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="burda")
    args = ap.parse_args()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
    print(f"model preset: {args.preset}; peak resident memory growth of the work, MB")
    print()
    print("| likelihood estimate, 4 images | chunk budget | peak growth, MB |")
    print("|---|---|---|")
    for k in (500, 5000, 50_000):
        r = measure("nll", args.preset, k)
        print(f"| K = {k:,} | 64 MB (default on a CPU) | {r['growth_mb']:.0f} |")
    for budget in (16, 256):
        r = measure("nll", args.preset, 5000, budget)
        print(f"| K = 5,000 | {budget} MB | {r['growth_mb']:.0f} |")
    print()
    print("| training, 8 steps | batch | peak growth, MB |")
    print("|---|---|---|")
    for batch in (100, 1000, 10_000):
        r = measure("train", args.preset, batch)
        print(f"| Adam steps | {batch:,} | {r['growth_mb']:.0f} |")


if __name__ == "__main__":
    main()
