"""Throughput of the K = 5000 importance-sampled log-likelihood: vaelab against the floor and
two straightforward estimators, in images per second, measured in one process.

Contenders, all computing the same K-sample estimate of log p(x) for the same model and images:

- **floor**: the decoder's products on K rows per image, the encoder's once per image, and one
  softplus-and-sum pass over the K x 784 logits, each timed at its shape (tools/bench/floor.py);
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

    python -m tools.bench.nll_speed [--preset burda | pytorch-examples] [--run RUN] [--images 40]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

import vaelab
from tools.bench.floor import nll_floor
from vaelab.models import build_model
from vaelab.nll import EstimateSettings, importance_sampled, plan_chunks
from vaelab.runs import Run
from vaelab.settings import preset_config


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


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="burda", help="burda or pytorch-examples")
    ap.add_argument("--run", help="a trained run folder instead of fresh weights")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (best)")
    return ap.parse_args()


def model_and_images(args: argparse.Namespace):
    """The trained run's model and test images, or fresh weights and random binary images."""
    if args.run:
        model = vaelab.load_run(args.run)
        x = Run.load(args.run).splits()["test"].x[: args.images]
    else:
        model = build_model("vae", **preset_config(args.preset)).eval()
        g = torch.Generator().manual_seed(0)
        x = torch.bernoulli(torch.rand(args.images, 784, generator=g))
    return model, x


def contenders_of(model, x: torch.Tensor, k: int) -> dict:
    """The four estimators, each a function of nothing that returns log p(x) per image."""

    def eager():
        return importance_sampled(
            model, x, k, progress=False, seed=0, settings=EstimateSettings(compile=False)
        ).log_px

    def compiled():
        return importance_sampled(
            model, x, k, progress=False, seed=0, settings=EstimateSettings(compile=True)
        ).log_px

    return {
        "per-image loop": lambda: per_image_loop(model, x, k),
        "straightforward batched": lambda: straightforward(model, x, k),
        "vaelab": eager,
        "vaelab, compiled": compiled,
    }


def timed_rounds(contenders: dict, rounds: int, floor_of) -> tuple[dict, dict, list[float]]:
    """Each contender's seconds per round and its last mean log p(x), and the floor's seconds
    per image, timed each round like the contenders."""
    for f in contenders.values():  # warm-up
        f()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    means: dict[str, float] = {}
    floor_s = []
    for _ in range(rounds):
        floor_s.append(floor_of())
        for name, f in contenders.items():
            t0 = time.perf_counter()
            est = f()
            times[name].append(time.perf_counter() - t0)
            means[name] = est.mean().item()
    return times, means, floor_s


def print_table(times: dict, means: dict, floor_s: list[float], n_images: int) -> None:
    rate = {name: n_images / min(t) for name, t in times.items()}
    floor = 1 / min(floor_s)
    base = rate["straightforward batched"]
    print()
    print("| contender | images/s | x the floor (time) | speed-up over straightforward | "
          "mean log p(x), nats (agreement check) |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| floor | {floor:.1f} | 1.00 | {floor / base:.2f} | |")
    for name, r in rate.items():
        print(f"| {name} | {r:.1f} | {floor / r:.2f} | {r / base:.2f} | {means[name]:.3f} |")


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    model, x = model_and_images(args)
    k = args.k
    plan = plan_chunks(model, k, len(x))
    print(f"model: {model.describe()}")
    untrained = "fresh (untrained), images: random binary: a timing run, not a result"
    print(f"weights: {args.run or untrained}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={k}, {len(x)} "
          f"images; vaelab's chunks: {plan.batch} image(s) x {plan.k_chunk} samples")  # fmt: skip
    t0 = time.perf_counter()
    importance_sampled(
        model, x[:2], k, progress=False, seed=0, settings=EstimateSettings(compile=True)
    )  # compiles
    compile_s = time.perf_counter() - t0
    times, means, floor_s = timed_rounds(
        contenders_of(model, x, k),
        args.rounds,
        lambda: nll_floor(model, k, plan.batch, plan.batch * plan.k_chunk),
    )
    print_table(times, means, floor_s, len(x))
    gap = means["vaelab, compiled"] - means["vaelab"]
    print(f"\ntorch.compile: {compile_s:.1f} s to compile (the first call), apart; "
          f"vaelab compiled - eager: {gap:+.2e} nats")  # fmt: skip


if __name__ == "__main__":
    main()
