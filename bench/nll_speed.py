"""Throughput of vaelab's importance-sampled log-likelihood against a per-image loop.

Both compute the same K-sample estimate of log p(x) for the same VAE and images: vaelab folds
(k_chunk, B) log-weight tensors with logsumexp over many images at once; the baseline loops over
the images one at a time, drawing all K samples of an image in one batch (the straightforward
way, as in most VAE code bases).  Prints images per second for both, the ratio, and the mean
estimates (which must agree within Monte Carlo error).

    python bench/nll_speed.py [--run RUN] [--k 5000] [--images 200]

Without --run it uses a freshly initialised 784-400-20 VAE (speed does not depend on training).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from vaelab.models import build_model
from vaelab.nll import log_likelihood_estimates, plan_chunks


@torch.no_grad()
def per_image_loop(model, x: torch.Tensor, k: int) -> torch.Tensor:
    out = []
    for i in range(len(x)):
        lw = model.log_importance_weights(x[i : i + 1], k)  # (k, 1)
        out.append(torch.logsumexp(lw.double(), 0) - math.log(k))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a run folder (default: an untrained 784-400-20 VAE)")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (median)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.run:
        import vaelab

        model = vaelab.load_run(args.run)
    else:
        model = build_model("vae", hidden=[400], latent_dim=20).eval()
    x = torch.bernoulli(torch.rand(args.images, 784, generator=torch.Generator().manual_seed(0)))
    plan = plan_chunks(model, args.k, len(x))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={args.k}, "
        f"{len(x)} images; vaelab chunks: {plan.batch} images x {plan.k_chunk} samples"
    )
    log_likelihood_estimates(model, x[:2], args.k, progress=False)  # warm-up
    per_image_loop(model, x[:2], args.k)
    t_ours, t_base = [], []
    for _ in range(args.rounds):  # alternate, so that neither gains from the machine's state
        t0 = time.perf_counter()
        ours = log_likelihood_estimates(model, x, args.k, progress=False)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base = per_image_loop(model, x, args.k)
        t_base.append(time.perf_counter() - t0)
    t_ours, t_base = statistics.median(t_ours), statistics.median(t_base)
    print(f"vaelab      {len(x) / t_ours:9.1f} images/s   mean log p(x) {ours.mean():.3f} nats")
    print(f"per-image   {len(x) / t_base:9.1f} images/s   mean log p(x) {base.mean():.3f} nats")
    print(f"ratio vaelab / per-image loop (throughput): {t_base / t_ours:.2f}")


if __name__ == "__main__":
    main()
