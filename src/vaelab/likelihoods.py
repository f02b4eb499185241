"""p(x | z): what a decoder's outputs parameterise, and what its numbers mean.

A likelihood is a small module (it may own a learned scale) that turns the decoder's raw
outputs (B, 784) into a distribution over pixels whose ``log_prob`` is summed over pixels, in
nats per image.  It also says which kind of number ``-log p(x|z)`` is on the pixels at hand:

- ``likelihood``: a log-probability of discrete data (Bernoulli on binarized pixels),
  comparable with published MNIST NLLs;
- ``density``: a log-density of continuous pixels (Gaussian, continuous Bernoulli): a real
  likelihood, but in other units than the discrete one, so not comparable with those tables;
- ``loss``: not a likelihood at all (Bernoulli on grayscale pixels).

Registered by name in ``registry.LIKELIHOODS``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .distributions import Bernoulli, ContinuousBernoulli, Normal
from .registry import resolve

SCALES = ("fixed", "learned")


class Likelihood(nn.Module):
    """Base: ``forward(out) -> distribution``; ``kind(binary)``; ``recon_loss`` for an AE."""

    name = "likelihood"
    output = "identity"  # how the browser explorer turns outputs into pixel means

    def kind(self, binary: bool) -> str:
        return "density"

    def meaning(self, binary: bool) -> str:
        return "negative ELBO of a density on continuous pixels, in nats per image"

    def recon_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """An AE's per-image reconstruction loss: -log p(x | decoder output), (B,)."""
        return -self(out).log_prob(x)

    recon_unit = "nats per image, summed over pixels"

    def output_for_mean(self, mean: torch.Tensor) -> torch.Tensor:
        """The decoder output whose distribution has pixel means ``mean`` (for initialising
        the decoder's output bias at the data's mean image)."""
        return mean


class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels on logits: ``-log p`` is the binary cross-entropy."""

    name = "bernoulli"
    output = "sigmoid"
    recon_unit = "BCE per image, summed over pixels"

    def __init__(self, **_: object):
        super().__init__()

    def forward(self, out: torch.Tensor) -> Bernoulli:
        return Bernoulli(out)

    def output_for_mean(self, mean: torch.Tensor) -> torch.Tensor:
        p = mean.clamp(1e-4, 1 - 1e-4)
        return torch.log(p) - torch.log1p(-p)  # the logit

    def kind(self, binary: bool) -> str:
        return "likelihood" if binary else "loss"

    def meaning(self, binary: bool) -> str:
        if binary:
            return "negative ELBO: an upper bound on -log p(x) of the binary images, in nats"
        return (
            "Bernoulli loss on grayscale pixels: a loss, not a log-likelihood; "
            "not comparable to published MNIST NLLs"
        )


class GaussianLikelihood(Likelihood):
    """N(out, sigma^2) per pixel, one scalar sigma, fixed or learned (``scale``).

    sigma trades reconstruction against the KL term (Doersch 2016, section 2.4.3).  For an AE
    the loss is the squared error ``sum_d (x_d - out_d)^2`` (what PCA minimises).
    """

    name = "gaussian"

    def __init__(self, scale: str = "fixed", sigma: float = 1.0, **_: object):
        super().__init__()
        log_sigma = torch.tensor(math.log(sigma))
        if scale == "learned":
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def forward(self, out: torch.Tensor) -> Normal:
        return Normal(out, self.log_sigma.expand_as(out))

    def meaning(self, binary: bool) -> str:
        return (
            "negative ELBO of a Gaussian density on the pixels, in nats per image: "
            "not comparable to NLLs of binarized MNIST"
        )

    def recon_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x - out).square().sum(-1)

    recon_unit = "squared error per image, summed over pixels"


class ContinuousBernoulliLikelihood(Likelihood):
    """Continuous Bernoulli on logits (Loaiza-Ganem & Cunningham 2019): a normalised density
    on [0, 1], the honest likelihood for grayscale pixels."""

    name = "cbernoulli"
    output = "cb_mean"

    def __init__(self, **_: object):
        super().__init__()

    def forward(self, out: torch.Tensor) -> ContinuousBernoulli:
        return ContinuousBernoulli(out)

    def output_for_mean(self, mean: torch.Tensor) -> torch.Tensor:
        """Logits whose continuous-Bernoulli mean is ``mean``: the mean rises monotonically
        with the logit, so bisection on [-40, 40] finds them (60 halvings: ~1e-16)."""
        target = mean.clamp(1e-3, 1 - 1e-3).double()
        lo, hi = torch.full_like(target, -40.0), torch.full_like(target, 40.0)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = ContinuousBernoulli(mid).mean > target
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
        return ((lo + hi) / 2).to(mean.dtype)

    def meaning(self, binary: bool) -> str:
        return (
            "negative ELBO of a continuous-Bernoulli density on pixels in [0, 1], in nats per "
            "image: a likelihood, but not comparable to NLLs of binarized MNIST"
        )


def build_likelihood(name: str, **options: object) -> Likelihood:
    return resolve("likelihood", name)(**options)
