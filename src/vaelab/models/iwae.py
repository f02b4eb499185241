"""Importance-weighted auto-encoder (Burda et al. 2016): the VAE's networks, trained on the
k-sample bound ``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, which is tighter than the ELBO for
k > 1 and equal to it at k = 1.  Everything else (prior, likelihood, evaluation) is the VAE's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import K_MAX, setting
from .vae import VAE, VAEConfig


@dataclass
class IWAEConfig(VAEConfig):
    """The VAE's settings with ``k = 5`` importance samples by default."""

    k: int = setting(5, "importance samples of the training bound (1: the ELBO)", low=1, high=K_MAX)


class IWAE(VAE):
    config_class = IWAEConfig
