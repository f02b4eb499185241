"""Annealed importance sampling (AIS, Neal 2001) with Hamiltonian Monte Carlo transitions, as
Wu et al. 2017 ("On the quantitative analysis of decoder-based generative models") apply it to
decoders, and bidirectional Monte Carlo (BDMC, Grosse et al. 2015), which brackets log p(x)
from both sides on data simulated from the model.

The path runs from the prior to the posterior along geometric averages,

    f_t(z) = p(z) p(x|z)^beta_t,   0 = beta_0 < beta_1 < ... < beta_T = 1,

with Wu et al.'s sigmoid schedule (``sigmoid_schedule``).  Forward AIS draws z_0 ~ p(z) and, for
t = 1 .. T, adds log f_t(z) - log f_{t-1}(z) = (beta_t - beta_{t-1}) log p(x|z) to the log-weight
and moves z by one HMC transition that leaves f_t invariant.  exp(log-weight) is an unbiased
estimate of p(x) (Neal 2001, eq. 13), so the log-mean-exp over C independent chains is a
stochastic lower bound on log p(x) (its expectation is below, by Jensen's inequality).

Reverse AIS runs the same loop with the schedule reversed, starting from an exact posterior
sample: its weights estimate 1 / p(x) without bias, so minus their log-mean-exp is a stochastic
upper bound.  The exact posterior sample is known only for data simulated from the model
(z ~ p(z), x ~ p(x|z): z is an exact draw from p(z|x)), which is what BDMC does: the gap between
the reverse and forward bounds bounds the error of either on such data (Grosse et al. 2015,
section 4).

HMC (Neal 2011): momentum p ~ N(0, I), ``leapfrog`` steps of size eps, a Metropolis accept or
reject per chain.  The step size is one number per image, shared by its chains, and adapted
after every transition: multiplied by ``grow`` (1.02) when the image's acceptance rate over its
chains is above ``target_accept``, divided by it otherwise, kept in [1e-4, 1] (the rule of Wu
et al.'s code).  Adapting from past acceptances makes each transition depend on the other
chains, a small departure from the exact AIS construction that Wu et al. also make.

All numbers are in nats per image.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from .errors import VaelabError
from .models.abilities import Conditional
from .models.helpers import eval_mode

LogDensity = Callable[[torch.Tensor], torch.Tensor]  # z (C, B, D) -> (C, B), nats
STEP_RANGE = (1e-4, 1.0)  # the adapted step size stays in this range
GROW = 1.02  # step-size factor per transition (Wu et al.'s code)
SIGMOID_DELTA = 4.0  # steepness of the sigmoid schedule (Wu et al. 2017)


@dataclass(frozen=True)
class AISSettings:
    """``steps`` T intermediate distributions, ``chains`` C independent chains per image,
    ``leapfrog`` L leapfrog steps per HMC transition, ``step_size`` the initial leapfrog step,
    ``target_accept`` the acceptance rate the step size is adapted towards, ``seed`` of the
    draws (None: continue the global RNG)."""

    steps: int = 500
    chains: int = 16
    leapfrog: int = 10
    step_size: float = 0.05
    target_accept: float = 0.65
    seed: int | None = 0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be >= 1, got {getattr(self, name)}"
            for name in ("steps", "chains", "leapfrog")
            if getattr(self, name) < 1
        ]
        if not self.step_size > 0:
            problems.append(f"step_size must be > 0, got {self.step_size}")
        if not 0 < self.target_accept < 1:
            problems.append(f"target_accept must be in (0, 1), got {self.target_accept}")
        if problems:
            raise VaelabError("AIS settings: " + "; ".join(problems))


@dataclass(frozen=True)
class Target:
    """The unnormalised posterior of B images: ``log_prior`` log p(z) and ``log_lik``
    log p(x|z), each from z (C, B, D) to (C, B); ``sample_prior(c)`` draws (c, B, D) codes."""

    log_prior: LogDensity
    log_lik: LogDensity
    sample_prior: Callable[[int], torch.Tensor]


@runtime_checkable
class LatentJoint(Protocol):
    """What AIS needs of a model: a prior density and sampler over flat codes and a decoder
    p(x|z) (``models.vae.VAE`` and its kinds)."""

    def log_prior(self, z: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None): ...

    def sample_codes(self, n: int, generator=None, y=None) -> torch.Tensor: ...


def sigmoid_schedule(steps: int, delta: float = SIGMOID_DELTA) -> torch.Tensor:
    """beta_0 .. beta_T (T + 1 values, float64): sigmoid(delta (2t/T - 1)) rescaled to run from
    exactly 0 to 1 (Grosse et al. 2015, Wu et al. 2017): small steps at both ends, where the
    intermediate distributions change fastest."""
    s = torch.sigmoid(delta * (2 * torch.arange(steps + 1, dtype=torch.float64) / steps - 1))
    return (s - s[0]) / (s[-1] - s[0])


def model_target(model, x: torch.Tensor) -> Target:
    """The posterior of a VAE-like model (``LatentJoint``) for the images ``x`` (B, C*H*W)."""
    check_model(model)

    def log_lik(z: torch.Tensor) -> torch.Tensor:
        c, b, d = z.shape
        return model.decode(z.reshape(c * b, d)).reshape(c, b, -1).log_prob(x)

    def sample_prior(c: int) -> torch.Tensor:
        z = model.sample_codes(c * len(x))
        return z.reshape(c, len(x), -1)

    return Target(model.log_prior, log_lik, sample_prior)


def check_model(model) -> None:
    """A one-line refusal of a model AIS cannot run on."""
    if not isinstance(model, LatentJoint):
        raise VaelabError(
            f"AIS needs a prior density over flat codes and a decoder p(x|z); a "
            f"{type(model).__name__} has no log_prior(z)"
        )
    if isinstance(model, Conditional):
        raise VaelabError("AIS here estimates log p(x); a conditional model models p(x|y)")


def _grad(target: Target, beta: torch.Tensor, z: torch.Tensor):
    """log f_beta(z) (C, B) and its gradient in z."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lik = target.log_lik(z)
        logf = target.log_prior(z) + beta * lik
        (g,) = torch.autograd.grad(logf.sum(), z)
    return logf.detach(), lik.detach(), g


def hmc_step(target: Target, beta, z, eps, leapfrog: int):
    """One HMC transition leaving f_beta invariant: ``leapfrog`` steps of size ``eps``
    (1, B, 1), then accept or reject each chain.  Returns the new z and the acceptance
    indicator (C, B)."""
    logf0, _, g = _grad(target, beta, z)
    p0 = torch.randn_like(z)
    p = p0 + 0.5 * eps * g
    zn = z
    for i in range(leapfrog):
        zn = zn + eps * p
        logf, _, g = _grad(target, beta, zn)
        p = p + (eps if i < leapfrog - 1 else 0.5 * eps) * g
    log_accept = (logf - 0.5 * (p**2).sum(-1)) - (logf0 - 0.5 * (p0**2).sum(-1))
    accept = torch.log(torch.rand_like(log_accept)) < log_accept.nan_to_num(-math.inf)
    return torch.where(accept[..., None], zn.detach(), z), accept


def anneal(target: Target, z: torch.Tensor, betas: torch.Tensor, s: AISSettings):
    """AIS along ``betas`` from z (C, B, D), an exact draw from f_{betas[0]}: the log-weights
    (C, B, float64) and the mean acceptance rate over all transitions."""
    c, b, _ = z.shape
    logw = torch.zeros(c, b, dtype=torch.float64, device=z.device)
    eps = torch.full((1, b, 1), s.step_size, device=z.device, dtype=z.dtype)
    accepted = 0.0
    with torch.no_grad():
        lik = target.log_lik(z)
    for t in range(1, len(betas)):
        logw += (betas[t] - betas[t - 1]) * lik.double()
        beta = float(betas[t])
        z, acc = hmc_step(target, beta, z, eps, s.leapfrog)
        rate = acc.float().mean(0)[None, :, None]  # per image, over its chains
        eps = torch.where(rate > s.target_accept, eps * GROW, eps / GROW).clamp(*STEP_RANGE)
        accepted += acc.float().mean().item()
        with torch.no_grad():
            lik = target.log_lik(z)
    return logw, accepted / max(1, len(betas) - 1)


def log_mean_exp(logw: torch.Tensor) -> torch.Tensor:
    """log (1/C) sum_c exp(logw_c) over the first dimension."""
    return torch.logsumexp(logw, 0) - math.log(len(logw))


@dataclass
class AISResult:
    """Per image (B,): ``log_px`` the bound (nats), with the mean HMC acceptance rate and the
    seconds taken."""

    log_px: torch.Tensor
    acceptance: float
    seconds: float


def forward_ais(target: Target, batch: int, s: AISSettings) -> AISResult:
    """Forward AIS from the prior: a stochastic lower bound on log p(x) per image."""
    t0 = time.perf_counter()
    z = target.sample_prior(s.chains).detach()
    logw, acc = anneal(target, z, sigmoid_schedule(s.steps), s)
    return AISResult(log_mean_exp(logw).cpu(), acc, time.perf_counter() - t0)


def reverse_ais(target: Target, z_post: torch.Tensor, s: AISSettings) -> AISResult:
    """Reverse AIS from exact posterior draws ``z_post`` (B, D), shared by the chains: a
    stochastic upper bound on log p(x) per image."""
    t0 = time.perf_counter()
    z = z_post.detach()[None].expand(s.chains, -1, -1).contiguous()
    logw, acc = anneal(target, z, sigmoid_schedule(s.steps).flip(0), s)
    return AISResult(-log_mean_exp(logw).cpu(), acc, time.perf_counter() - t0)


def seed_draws(s: AISSettings, offset: int = 0) -> None:
    """Reseed the global RNG from ``s.seed`` and ``offset`` (a batch's first image; -1, -2,
    -3 for BDMC's simulation, forward and reverse runs); nothing without a seed."""
    if s.seed is not None:
        torch.manual_seed(s.seed * 1_000_003 + offset)


def ais_log_likelihood(model, x: torch.Tensor, s: AISSettings, batch: int = 100) -> AISResult:
    """Forward AIS bounds for the images ``x`` of a VAE-like model, ``batch`` images at a time
    (each batch reseeded from ``s.seed`` and its first image)."""
    check_model(model)
    t0, parts, accs = time.perf_counter(), [], []
    with eval_mode(model):
        for start in range(0, len(x), batch):
            seed_draws(s, start)
            xb = x[start : start + batch]
            r = forward_ais(model_target(model, xb), len(xb), s)
            parts.append(r.log_px)
            accs.append(r.acceptance * len(xb))
    return AISResult(torch.cat(parts), sum(accs) / len(x), time.perf_counter() - t0)


@torch.no_grad()
def simulate(model, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images drawn from the model itself: z ~ p(z), x ~ p(x|z); returns (x, z), z being an
    exact draw from p(z|x)."""
    z = model.sample_codes(n)
    return model.decode(z).sample(), z


def bdmc(model, n: int, s: AISSettings) -> dict[str, float]:
    """BDMC on ``n`` images simulated from the model: the mean forward (lower) and reverse
    (upper) bounds on log p(x), their gap, and the seconds each took; nats per image."""
    check_model(model)
    with eval_mode(model):
        seed_draws(s, -1)
        x, z = simulate(model, n)
        target = model_target(model, x)
        seed_draws(s, -2)
        lower = forward_ais(target, n, s)
        seed_draws(s, -3)
        upper = reverse_ais(target, z, s)
    gap = upper.log_px - lower.log_px
    return {
        "bdmc_images": n,
        "bdmc_lower": lower.log_px.mean().item(),
        "bdmc_upper": upper.log_px.mean().item(),
        "bdmc_gap": gap.mean().item(),
        "bdmc_gap_sem": gap.std().item() / math.sqrt(n) if n > 1 else float("nan"),
        "bdmc_seconds_forward": lower.seconds,
        "bdmc_seconds_reverse": upper.seconds,
        "bdmc_acceptance": (lower.acceptance + upper.acceptance) / 2,
    }
