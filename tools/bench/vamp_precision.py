"""The VampPrior's float32 log-density against a float64 direct computation, and its speed.

    python -m tools.bench.vamp_precision

The case of the review: 40-D latents, 500 components with means ~ N(0, 1), every unit at scale s,
2,000 points z drawn near a component.  Prints, per s, the mean and largest absolute error in
nats of ``VampPrior.log_prob`` in float32, and of the expanded matmul form
z^2/s^2 - 2 z m/s^2 + m^2/s^2 it replaced; then the time of both on one IWAE-sized batch
(5,000 rows) and their ratio (expanded / now).
"""

from __future__ import annotations

import math
import time

import torch

from tests.test_exactness import _vamp_case
from vaelab.distributions import LOG_2PI


def expanded(z: torch.Tensor, m: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """The former form: three matmul terms that cancel."""
    inv_var = torch.exp(-2 * log_s)
    quad = z.square() @ inv_var.T - 2 * z @ (m * inv_var).T + (m.square() * inv_var).sum(-1)
    comp = -0.5 * quad - log_s.sum(-1) - 0.5 * z.shape[-1] * LOG_2PI
    return torch.logsumexp(comp, -1) - math.log(len(m))


def main() -> None:
    print("s      vaelab now: mean / max error (nats)    expanded form: mean / max error (nats)")
    for scale in (0.1, 0.05, 0.03, 0.01):
        prior, encode, z, truth = _vamp_case(scale, 2000)
        q = encode(None)
        new = (prior.log_prob(z, encode).double() - truth).abs()
        old = (expanded(z, q.mean, q.log_scale).double() - truth).abs()
        print(f"{scale:<6} {new.mean():.2e} / {new.max():.2e}"
              f"                  {old.mean():.2e} / {old.max():.2e}")  # fmt: skip
    prior, encode, _, _ = _vamp_case(0.1, 1)
    z = torch.randn(5000, 40)
    q = encode(None)
    times = {}
    for name, fn in (("now", lambda: prior.log_prob(z, encode)),
                     ("expanded", lambda: expanded(z, q.mean, q.log_scale))):  # fmt: skip
        fn()
        start = time.perf_counter()
        for _ in range(5):
            fn()
        times[name] = (time.perf_counter() - start) / 5
    print(f"5,000 rows x 500 components x 40-D, seconds per call: now {times['now']:.4f}, "
          f"expanded {times['expanded']:.4f}; expanded / now = "
          f"{times['expanded'] / times['now']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
