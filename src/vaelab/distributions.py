"""Probability distributions over images and latents.

Every ``log_prob`` here is summed over the event dimensions (pixels or latent units) and
returns one number per example, in nats: shape ``x.shape[:-1]``.  Reductions over the batch
are left to the caller, who must say which one it uses.

Parameters that arrive as 16-bit floats (from layers under ``torch.autocast``, see
``precision``) are taken up to float32 first: a log-probability summed over 784 pixels in
bfloat16 would be off by nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .precision import at_least_fp32

LOG_2PI = math.log(2 * math.pi)

# How ``Normal.from_log_var`` reads a network's raw scale output s as log sigma.  "log_var"
# (s = log sigma^2) is what every model and saved run uses; "softplus" (sigma = softplus(s) +
# 1e-6, a scale that grows linearly, not exponentially, with s) is there to compare against it,
# for the code inside ``scale_parameterisation("softplus")`` only: it is not saved with a run.
SCALE_PARAMETERISATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log_var": lambda s: 0.5 * s,
    "softplus": lambda s: (F.softplus(s) + 1e-6).log(),
}
_scale_parameterisation = "log_var"


@contextmanager
def scale_parameterisation(name: str) -> Iterator[None]:
    """Inside the block, ``Normal.from_log_var`` reads its second argument the ``name`` way
    (a key of ``SCALE_PARAMETERISATIONS``); the default comes back after it."""
    global _scale_parameterisation
    if name not in SCALE_PARAMETERISATIONS:
        raise ValueError(
            f"unknown scale parameterisation {name!r}: {sorted(SCALE_PARAMETERISATIONS)}"
        )
    before, _scale_parameterisation = _scale_parameterisation, name
    try:
        yield
    finally:
        _scale_parameterisation = before


class Bernoulli:
    """Independent Bernoulli pixels, parameterised by logits (never by sigmoid outputs).

    ``log_prob(x) = sum_d [x_d * l_d - softplus(l_d)]``, which is minus the binary cross-entropy
    with logits, computed stably.  For ``x`` in {0, 1} this is a log-probability; for grayscale
    ``x`` in [0, 1] it is only a loss and must not be reported as a likelihood.
    """

    def __init__(self, logits: torch.Tensor):
        self.logits = at_least_fp32(logits)

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def reshape(self, *shape: int) -> Bernoulli:
        return Bernoulli(self.logits.reshape(*shape))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        # -BCE(x, sigmoid(l)) = sum x*l - sum softplus(l).  x . l as one dot product per row
        # (no K x B x 784 temporaries for x*l and the difference): faster on the
        # importance-sampled estimate's logits (docs/performance.md), equal up to fp32
        # summation order.
        return torch.linalg.vecdot(self.logits, x.to(self.logits.dtype)) - F.softplus(
            self.logits
        ).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.mean.detach()
        return torch.bernoulli(p.cpu(), generator=generator).to(p.device)


def cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(l) of the continuous Bernoulli with logits l (Loaiza-Ganem & Cunningham 2019).

    With lambda = sigmoid(l): C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2),
    an even function of l with C(0) = 2.  Near 0 the Taylor series log 2 + l^2 / 12 - 7 l^4 / 1440
    replaces the 0/0 form: with x = l / 2, x / tanh(x) = 1 + x^2 / 3 - x^4 / 45 + O(x^6), and
    log(1 + a) = a - a^2 / 2 + ... gives x^2 / 3 - (1/45 + 1/18) x^4 = x^2 / 3 - 7 x^4 / 90.
    """
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)  # keep both branches finite
    exact = torch.log(safe.abs()) - torch.log(torch.tanh(safe.abs() / 2))
    l2 = logits.square()
    series = math.log(2.0) + l2 / 12 - 7 * l2.square() / 1440
    return torch.where(small, series, exact)


class ContinuousBernoulli:
    """Independent continuous Bernoulli pixels on [0, 1], parameterised by logits.

    ``p(x | l) = C(l) * lambda^x * (1 - lambda)^(1 - x)`` with lambda = sigmoid(l): a proper
    density on [0, 1] (Loaiza-Ganem & Cunningham 2019), so its ``log_prob`` of grayscale pixels
    is a log-likelihood (a density in nats), unlike the Bernoulli's.
    """

    def __init__(self, logits: torch.Tensor):
        self.logits = at_least_fp32(logits)

    def reshape(self, *shape: int) -> ContinuousBernoulli:
        return ContinuousBernoulli(self.logits.reshape(*shape))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.logits - F.softplus(self.logits) + cb_log_norm(self.logits)).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[x] = lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)), in logits
        sigmoid(l) / tanh(l / 2) - 1 / l (1/2 + l / 12 near l = 0)."""
        small = self.logits.abs() < 1e-3
        safe = torch.where(small, torch.ones_like(self.logits), self.logits)
        exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
        return torch.where(small, 0.5 + self.logits / 12, exact)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inverse-CDF draw: x = log(1 + u (e^l - 1)) / l, u ~ U(0, 1) (x = u at l = 0)."""
        logits = self.logits.detach().clamp(-60, 60)
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).to(logits.device)
        small = logits.abs() < 1e-4
        safe = torch.where(small, torch.ones_like(logits), logits)
        x = torch.log1p(u * torch.expm1(safe)) / safe
        return torch.where(small, u, x).clamp(0, 1)


class Normal:
    """Diagonal Gaussian ``N(mean, exp(log_scale)^2)``; ``log_scale`` broadcasts to ``mean``."""

    def __init__(self, mean: torch.Tensor, log_scale: torch.Tensor):
        self.loc = at_least_fp32(mean)
        self.log_scale = at_least_fp32(log_scale)

    @classmethod
    def from_log_var(cls, mean: torch.Tensor, log_var: torch.Tensor) -> Normal:
        """``N(mean, exp(log_var))``; inside ``scale_parameterisation(name)``, ``log_var`` is read
        that way instead (``SCALE_PARAMETERISATIONS``)."""
        return cls(mean, SCALE_PARAMETERISATIONS[_scale_parameterisation](log_var))

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def reshape(self, *shape: int) -> Normal:
        return Normal(self.loc.reshape(*shape), self.log_scale.expand_as(self.loc).reshape(*shape))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density in nats, summed over the last dimension."""
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * z.square() - self.log_scale - 0.5 * LOG_2PI).sum(-1)

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Reparameterised draw ``mean + scale * eps``, eps ~ N(0, I): differentiable in both."""
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(self.loc.shape, dtype=self.loc.dtype, generator=generator)
        return (self.loc + self.scale * eps.to(self.loc.device)).detach()


def standard_normal_like(z: torch.Tensor) -> Normal:
    """The prior ``p(z) = N(0, I)`` with the event shape of ``z``'s last dimension."""
    zeros = torch.zeros(z.shape[-1], dtype=z.dtype, device=z.device)
    return Normal(zeros, zeros)
