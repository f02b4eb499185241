"""The inference gap split in two (Cremer, Li and Duvenaud 2018, "Inference suboptimality in
variational autoencoders"), per image, in nats:

    log p(x) - ELBO(q_phi) = [log p(x) - ELBO(q*)] + [ELBO(q*) - ELBO(q_phi)]
                               approximation gap      amortisation gap

q_phi(z|x) is the encoder's diagonal Gaussian; q*(z|x) is the best diagonal Gaussian for this
one image, found by optimising its mean and log standard deviation with Adam from the
encoder's (``GapSettings``: steps, learning rate, reparameterised samples per step).  The
amortisation gap is what a per-image optimiser gains over the encoder (>= 0 up to noise and
unfinished optimisation); the approximation gap is what the Gaussian family itself costs.

Both ELBOs are estimated with the same ``eval_samples`` standard-normal draws per image
(common random numbers, so that their difference has little Monte Carlo noise) as the mean of
log p(x|z) + log p(z) - log q(z|x), which has no noise at all where q is the exact
posterior.  log p(x) is the importance-sampled estimate, itself a lower bound, so the
approximation gap is understated by the estimate's own bias (``weight_stats.k_gap_bias``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .distributions import Normal
from .errors import VaelabError
from .models.helpers import model_device


@dataclass(frozen=True)
class GapSettings:
    """How q* is found and the ELBOs estimated: Adam ``steps`` with learning rate ``lr`` on
    the mean and log s.d., ``samples`` draws per step; ``eval_samples`` draws for each final
    ELBO; ``batch`` images optimised together (each image's parameters are its own, so the
    batch changes nothing but speed); ``seed`` of the draws."""

    steps: int = 500
    lr: float = 0.01
    samples: int = 10
    eval_samples: int = 1000
    batch: int = 100
    seed: int = 0


def _gaussian_encoder(model, x: torch.Tensor, y) -> Normal:
    """The encoder's q(z|x) as a diagonal Gaussian, or a one-line refusal."""
    if not callable(getattr(model, "log_prior", None)):
        raise VaelabError(
            f"--gaps needs a single latent layer with a prior density log p(z); a "
            f"{model.about.label} has none"
        )
    with torch.no_grad():
        q = model.encode(x, y)
    if not isinstance(q, Normal):
        raise VaelabError(
            f"--gaps optimises a diagonal Gaussian q(z|x); a {model.about.label}'s q(z|x) is "
            "not one (a flow posterior?)"
        )
    return q


def _log_joint(model, x, y, z: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log p(z) for draws z (S, B, D): (S, B), nats."""
    s, b, d = z.shape
    ys = None if y is None else y.repeat(s)  # sample-major rows, as the model's own
    px = model.decode(z.reshape(-1, d), ys).reshape(s, b, -1)
    return px.log_prob(x) + model.log_prior(z)


def elbo(model, x, y, mu, log_sd, eps: torch.Tensor) -> torch.Tensor:
    """ELBO of q = N(mu, exp(log_sd)^2) (B, D) with the draws z = mu + sd * eps, eps (S, B, D):
    the mean over the draws of log p(x, z) - log q(z), (B,), nats.  log q is taken with the
    parameters held fixed ("sticking the landing", Roeder et al. 2017): the same value, and a
    gradient whose noise vanishes where q is the exact posterior, so an encoder that is
    already optimal is left where it is."""
    z = mu + log_sd.exp() * eps
    held = (z - mu.detach()) / log_sd.detach().exp()
    log_q = (-0.5 * held.square() - log_sd.detach() - 0.5 * math.log(2 * math.pi)).sum(-1)
    return (_log_joint(model, x, y, z) - log_q).mean(0)


def optimise(model, x, y, q: Normal, how: GapSettings, gen: torch.Generator):
    """q*: the mean and log s.d. (B, D) after ``how.steps`` Adam steps on -ELBO from q's."""
    mu = q.mean.detach().clone().requires_grad_(True)
    log_sd = q.log_scale.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sd], lr=how.lr)
    for _ in range(how.steps):
        eps = torch.randn((how.samples, *mu.shape), generator=gen, device=mu.device, dtype=mu.dtype)
        loss = -elbo(model, x, y, mu, log_sd, eps).sum()  # images independent: a sum
        opt.zero_grad()
        mu.grad, log_sd.grad = torch.autograd.grad(loss, [mu, log_sd])
        opt.step()
    return mu.detach(), log_sd.detach()


def elbos(model, x: torch.Tensor, y=None, how: GapSettings | None = None):
    """ELBO(q_phi) and ELBO(q*) per image (N,), float64 nats, on the same draws."""
    how = how or GapSettings()
    device = model_device(model)
    gen = torch.Generator(device).manual_seed(how.seed)
    out_phi, out_star = [], []
    was = model.training
    model.eval()
    try:
        for i in range(0, len(x), how.batch):
            xb, yb = x[i : i + how.batch], None if y is None else y[i : i + how.batch]
            q = _gaussian_encoder(model, xb, yb)
            mu, log_sd = optimise(model, xb, yb, q, how, gen)
            eps = torch.randn(
                (how.eval_samples, *mu.shape), generator=gen, device=device, dtype=mu.dtype
            )
            with torch.no_grad():
                out_phi.append(_chunked(model, xb, yb, q.mean, q.log_scale, eps))
                out_star.append(_chunked(model, xb, yb, mu, log_sd, eps))
    finally:
        model.train(was)
    return torch.cat(out_phi).double().cpu(), torch.cat(out_star).double().cpu()


def _chunked(model, x, y, mu, log_sd, eps, rows: int = 100_000) -> torch.Tensor:
    """``elbo`` over the S draws of ``eps`` in chunks of about ``rows`` (draw, image) rows."""
    step = max(1, rows // len(x))
    parts = [elbo(model, x, y, mu, log_sd, eps[s : s + step]) for s in range(0, len(eps), step)]
    sizes = torch.tensor([len(eps[s : s + step]) for s in range(0, len(eps), step)])
    return (torch.stack(parts) * sizes[:, None].to(parts[0])).sum(0) / len(eps)


def summary(log_px: torch.Tensor, elbo_phi: torch.Tensor, elbo_star: torch.Tensor) -> dict:
    """Mean, standard deviation over images and s.e. of the mean of each gap (nats per image),
    and the three numbers they split."""

    def stats(name: str, v: torch.Tensor) -> dict:
        sd = v.std().item() if len(v) > 1 else float("nan")
        return {name: v.mean().item(), f"{name}_sd": sd, f"{name}_sem": sd / math.sqrt(len(v))}

    return (
        {"elbo_q_phi": elbo_phi.mean().item(), "elbo_q_star": elbo_star.mean().item()}
        | stats("gap_amortisation", elbo_star - elbo_phi)
        | stats("gap_approximation", log_px - elbo_star)
        | stats("gap_inference", log_px - elbo_phi)
    )
