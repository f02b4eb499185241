"""Objectives as pure functions, shared by training and evaluation so they cannot drift.

Units: every function returns nats *per image* (one value per example, summed over pixels or
latent units).  Averaging over the batch happens in the model's ``loss`` and is stated there.
"""

from __future__ import annotations

import math

import torch

from .distributions import Normal, standard_normal_like


def kl_normal_std_normal(q: Normal) -> torch.Tensor:
    """KL(q || N(0, I)) in closed form, summed over latent units, shape ``q.mean.shape[:-1]``.

    For q = N(mu, sigma^2): KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    (Kingma & Welling 2014, appendix B).
    """
    log_var = 2 * q.log_scale
    return 0.5 * (q.mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)


def log_importance_weights(model, x: torch.Tensor, k: int) -> torch.Tensor:
    """``log p(x, z_i) - log q(z_i | x)`` for k draws z_i ~ q(z|x): shape (k, B), nats.

    ``model`` must provide ``encode(x) -> Normal`` and ``decode(z) -> distribution over x``.
    """
    q = model.encode(x)
    z = q.rsample((k,))  # (k, B, D)
    px = model.decode(z.reshape(-1, z.shape[-1])).reshape(k, len(x), -1)  # over (k, B, 784)
    log_px_z = px.log_prob(x)  # x broadcasts over the k samples: (k, B)
    log_pz = standard_normal_like(z).log_prob(z)  # (k, B)
    log_qz = q.log_prob(z)  # (k, B)
    return log_px_z + log_pz - log_qz


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``log (1/k) sum_i w_i`` from log-weights of shape (k, B): the k-sample bound on log p(x).

    Burda et al. 2016, eq. 8.  With k = 1 it is a one-sample estimate of the ELBO.
    """
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
