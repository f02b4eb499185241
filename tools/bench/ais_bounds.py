"""Importance sampling against AIS against the BDMC gap on one run, with the time each takes:
the numbers of docs/ais.md.

- IS: ``importance_sampled`` with K samples per image on the first N test images (and K = 1,
  the one-sample ELBO estimate, on the same images);
- AIS: ``ais.ais_log_likelihood`` (forward, from the prior) on the same images, and the
  per-image paired difference AIS - IS with its standard error over images;
- BDMC: ``ais.bdmc`` on N images simulated from the model: forward and reverse bounds and
  their gap, and IS with K samples on the same simulated images (where the bounds say how far
  it is from log p(x)).

All in nats per image (log p(x), higher is better; the printed NLLs are minus them).

    python -m tools.bench.ais_bounds RUN [--images 100] [--k 1000] [--steps 300] [--chains 16]
        [--leapfrog 10]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from vaelab.ais import AISSettings, ais_log_likelihood, bdmc, seed_draws, simulate
from vaelab.models.helpers import eval_mode
from vaelab.nll import importance_sampled
from vaelab.runs import Run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--leapfrog", type=int, default=10)
    a = p.parse_args()
    run = Run.load(a.run)
    model = run.model("best", torch.device("cpu"))
    x = run.splits()["test"].head(a.images).x
    root = math.sqrt(a.images)
    s = AISSettings(steps=a.steps, chains=a.chains, leapfrog=a.leapfrog, seed=0)
    t0 = time.perf_counter()
    est = importance_sampled(model, x, a.k, seed=0, progress=False).log_px
    print(f"IS K={a.k}: NLL {-est.mean():.3f} nats/image (s.e. over images "
          f"{est.std() / root:.3f}), {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
    elbo = importance_sampled(model, x, 1, seed=0, progress=False).log_px
    print(f"IS K=1 (one-sample ELBO): NLL {-elbo.mean():.3f} nats/image", flush=True)
    r = ais_log_likelihood(model, x, s)
    d = r.log_px - est
    print(f"AIS T={a.steps} C={a.chains} L={a.leapfrog}: NLL {-r.log_px.mean():.3f} nats/image, "
          f"{r.seconds:.1f} s, HMC acceptance {r.acceptance:.3f}; AIS - IS per image: mean "
          f"{d.mean():.3f} nats (paired s.e. {d.std() / root:.3f})", flush=True)  # fmt: skip
    b = bdmc(model, a.images, s)
    print(f"BDMC on {a.images} simulated images: lower {b['bdmc_lower']:.3f}, upper "
          f"{b['bdmc_upper']:.3f} log p(x) nats/image, gap {b['bdmc_gap']:.3f} (s.e. "
          f"{b['bdmc_gap_sem']:.3f}); forward {b['bdmc_seconds_forward']:.1f} s, reverse "
          f"{b['bdmc_seconds_reverse']:.1f} s, acceptance {b['bdmc_acceptance']:.3f}")  # fmt: skip
    with eval_mode(model):
        seed_draws(s, -1)  # the same simulated images as bdmc's
        xs, _ = simulate(model, a.images)
    sim = importance_sampled(model, xs, a.k, seed=0, progress=False).log_px
    print(f"IS K={a.k} on the same simulated images: log p(x) {sim.mean():.3f} nats/image")


if __name__ == "__main__":
    main()
