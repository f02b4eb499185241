"""Throughput of the K = 5000 importance-sampled log-likelihood: vaelab against the floor and
two straightforward estimators, in images per second, measured in one process.

Contenders, all computing the same K-sample estimate of log p(x) for the same model and images:

- **floor**: the decoder's products on K rows per image, the encoder's once per image, and one
  softplus-and-sum pass over the K x 784 logits, each timed at its shape (bench/floor.py);
- **per-image loop**: one image at a time, its K samples in one batch (as in most VAE code);
- **straightforward batched**: a few images at a time, all K samples at once, the Bernoulli
  log-likelihood as ``binary_cross_entropy_with_logits`` over K x B x 784 then a sum;
- **vaelab**: ``importance_sampled`` as ``vaelab evaluate --nll-samples`` runs it without
  compiling (chunks folded into running logsumexps, x . logits as one dot product per row);
- **vaelab, compiled**: the same through ``torch.compile`` (the default on a CPU for large
  estimates); its compile time is reported apart.

Rounds alternate between the contenders, the floor's timing included; each figure is the best
round (other work on the machine only ever slows a round down).  The estimates
must agree within Monte Carlo error (vaelab's two paths: within floating-point error).

    python bench/nll_speed.py [--preset burda | pytorch-examples] [--run RUN] [--images 40]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor import nll_floor  # noqa: E402  (bench/floor.py)

from vaelab.models import build_model  # noqa: E402
from vaelab.nll import EstimateSettings, importance_sampled, plan_chunks  # noqa: E402
from vaelab.settings import preset_config  # noqa: E402


@torch.no_grad()
def per_image_loop(model, x: torch.Tensor, k: int) -> torch.Tensor:
    out = []
    for i in range(len(x)):
        lw = model.log_importance_weights(x[i : i + 1], k)  # (k, 1)
        out.append(torch.logsumexp(lw.double(), 0) - math.log(k))
    return torch.cat(out)


@torch.no_grad()
def straightforward(model, x: torch.Tensor, k: int, batch: int = 4) -> torch.Tensor:
    """All K samples of ``batch`` images at once, written the obvious way."""
    out = []
    for xb in x.split(batch):
        q = model.encode(xb)
        z = q.mean + q.scale * torch.randn(k, *q.mean.shape)  # (k, B, D)
        logits = model.decoder(z.reshape(-1, z.shape[-1])).reshape(k, len(xb), -1)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits, xb.expand_as(logits), reduction="none"
        ).sum(-1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz = q.log_prob(z)
        out.append(torch.logsumexp((log_px_z + log_pz - log_qz).double(), 0) - math.log(k))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="burda", help="burda or pytorch-examples")
    ap.add_argument("--run", help="a trained run folder instead of fresh weights")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (best)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.run:
        import vaelab

        model = vaelab.load_run(args.run)
        x = vaelab.runs.Run.load(args.run).splits()["test"].x[: args.images]
    else:
        model = build_model("vae", **preset_config(args.preset)).eval()
        g = torch.Generator().manual_seed(0)
        x = torch.bernoulli(torch.rand(args.images, 784, generator=g))
    k = args.k
    plan = plan_chunks(model, k, len(x))
    print(f"model: {model.describe()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={k}, {len(x)} "
          f"images; vaelab's chunks: {plan.batch} image(s) x {plan.k_chunk} samples")  # fmt: skip

    def eager():
        return importance_sampled(
            model, x, k, progress=False, seed=0, settings=EstimateSettings(compile=False)
        ).log_px

    def compiled():
        return importance_sampled(
            model, x, k, progress=False, seed=0, settings=EstimateSettings(compile=True)
        ).log_px

    t0 = time.perf_counter()
    importance_sampled(
        model, x[:2], k, progress=False, seed=0, settings=EstimateSettings(compile=True)
    )  # compiles
    compile_s = time.perf_counter() - t0
    contenders = {
        "per-image loop": lambda: per_image_loop(model, x, k),
        "straightforward batched": lambda: straightforward(model, x, k),
        "vaelab": eager,
        "vaelab, compiled": compiled,
    }
    for f in contenders.values():  # warm-up
        f()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    means: dict[str, float] = {}
    floor_s = []  # seconds per image, timed each round like the contenders (then the best)
    for _ in range(args.rounds):
        floor_s.append(nll_floor(model, k, plan.batch, plan.batch * plan.k_chunk))
        for name, f in contenders.items():
            t0 = time.perf_counter()
            est = f()
            times[name].append(time.perf_counter() - t0)
            means[name] = est.mean().item()
    rate = {name: len(x) / min(t) for name, t in times.items()}
    floor = 1 / min(floor_s)
    base = rate["straightforward batched"]
    print()
    print("| contender | images/s | x the floor (time) | speed-up over straightforward | "
          "mean log p(x), nats |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| floor | {floor:.1f} | 1.00 | {floor / base:.2f} | |")
    for name, r in rate.items():
        print(f"| {name} | {r:.1f} | {floor / r:.2f} | {r / base:.2f} | {means[name]:.3f} |")
    gap = means["vaelab, compiled"] - means["vaelab"]
    print(f"\ntorch.compile: {compile_s:.1f} s to compile (the first call), apart; "
          f"vaelab compiled - eager: {gap:+.2e} nats")  # fmt: skip


if __name__ == "__main__":
    main()
