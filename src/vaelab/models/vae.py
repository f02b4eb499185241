"""Variational auto-encoder (Kingma & Welling 2014) with a Gaussian encoder and N(0, I) prior."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributions import Normal
from ..errors import VaelabError
from ..objectives import kl_normal_std_normal
from . import register
from .base import AutoEncoderBase, ModelConfig


@dataclass
class VAEConfig(ModelConfig):
    """``beta`` weighs the KL term in the training loss (beta = 1 is the VAE's negative ELBO)."""

    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.beta >= 0:
            raise VaelabError(f"beta must be >= 0, got {self.beta}")


@register("vae")
class VAE(AutoEncoderBase):
    """q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) Bernoulli or Gaussian.

    ``terms(x)`` gives per-image values in nats (summed over pixels / latent units):
    ``recon = -log p(x|z)`` at one reparameterised z ~ q(z|x), ``kl = KL(q(z|x) || p(z))``
    in closed form, ``neg_elbo = recon + kl`` and ``loss = recon + beta * kl``.
    """

    config_class = VAEConfig

    def __init__(self, **config):
        cfg = VAEConfig(**config)
        super().__init__(2 * cfg.latent_dim, cfg)

    loss_unit = "nats per image, summed over pixels"

    def encode(self, x: torch.Tensor) -> Normal:
        """q(z | x) for images (B, 784): a diagonal Gaussian over (B, D)."""
        mean, log_var = self.encoder(x).chunk(2, dim=-1)  # (B, D) each
        return Normal.from_log_var(mean, log_var)

    def latent_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).mean

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.encode(x)
        z = q.rsample()  # reparameterisation: z = mu + sigma * eps, eps ~ N(0, I)
        recon = -self.decode(z).log_prob(x)  # (B,)
        kl = kl_normal_std_normal(q)  # (B,)
        return {
            "loss": recon + self.cfg.beta * kl,
            "recon": recon,
            "kl": kl,
            "neg_elbo": recon + kl,
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 784): means of p(x|z) at z ~ N(0, I)."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator).to(p)
        return self.decode(z).mean
