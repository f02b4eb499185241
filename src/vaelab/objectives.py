"""Objectives as pure functions, shared by training and evaluation so they cannot drift.

Units: every function returns nats *per image* (one value per example, summed over pixels or
latent units).  Averaging over the batch happens in the model's ``loss`` and is stated there.
"""

from __future__ import annotations

import math

import torch

from .distributions import Normal
from .errors import VaelabError


def kl_normal_std_normal_units(q: Normal) -> torch.Tensor:
    """KL(q || N(0, I)) per latent unit in closed form, shape ``q.mean.shape``.

    For q = N(mu, sigma^2): KL_j = 1/2 * (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    (Kingma & Welling 2014, appendix B).
    """
    log_var = 2 * q.log_scale
    return 0.5 * (q.mean.square() + log_var.exp() - 1.0 - log_var)


def kl_normal_std_normal(q: Normal) -> torch.Tensor:
    """KL(q || N(0, I)) summed over latent units, shape ``q.mean.shape[:-1]``."""
    return kl_normal_std_normal_units(q).sum(-1)


def free_bits_kl(kl_units: torch.Tensor, free_bits: float) -> torch.Tensor:
    """sum_j max(lambda, mean over the batch of KL_j): the free-bits KL term of Kingma et al.
    (2016, eq. 15), a scalar in nats per image.  ``kl_units`` is (B, D)."""
    return kl_units.mean(0).clamp_min(free_bits).sum()


def free_bits_kl_per_image(kl_units: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Per image (B,), the free-bits KL term whose batch mean and its gradient are those of
    ``free_bits_kl``: sum_j KL_ij where the batch mean m_j of unit j exceeds ``free_bits``,
    else ``free_bits`` (a constant, no gradient).  The mask comes from the detached batch
    means, so it is the same for every image of the batch."""
    above = kl_units.detach().mean(0) > free_bits  # (D,)
    return torch.where(above, kl_units, torch.full_like(kl_units, free_bits)).sum(-1)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``log (1/k) sum_i w_i`` from log-weights of shape (k, B): the k-sample bound on log p(x).

    Burda et al. 2016, eq. 8.  With k = 1 it is a one-sample estimate of the ELBO.
    """
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def sample_terms(
    recon: torch.Tensor, kl: torch.Tensor, beta: float = 1.0, kl_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Per-image terms (B,) from k joint draws: ``recon`` = -log p(x|z_i) and ``kl`` =
    log q(z_i|x) - log p(z_i), both (k, B), nats.

    ``loss`` is recon + beta * kl_weight * kl for k = 1 (the ELBO, ``kl_weight`` the warm-up),
    and for k > 1 minus the k-sample bound, which has no separate KL term: beta and the warm-up
    weight must be 1 there (refused earlier with a one-line message by ``VAEConfig.problems``
    and ``config.warmup_problems``).  ``recon``, ``kl`` and ``neg_elbo`` are averaged over the
    k draws, and ``neg_iwae_k<k>`` is the bound.
    """
    k = recon.shape[0]
    if k > 1 and (beta != 1 or kl_weight != 1):
        raise VaelabError(
            f"the importance-weighted bound (k = {k}) takes no KL weight: got beta {beta}, "
            f"warm-up weight {kl_weight}"
        )
    if k == 1:
        loss = recon[0] + beta * kl_weight * kl[0]
    else:
        loss = -iwae_bound(-recon - kl)
    out = {"loss": loss, "recon": recon.mean(0), "kl": kl.mean(0), "neg_elbo": (recon + kl).mean(0)}
    if k > 1:
        out[f"neg_iwae_k{k}"] = loss
    return out
