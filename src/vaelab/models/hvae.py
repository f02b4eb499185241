"""A VAE with two stochastic layers (Burda et al. 2016, section 5; after Rezende et al. 2014).

Generative model  p(z2) p(z1 | z2) p(x | z1);  inference  q(z1 | x) q(z2 | z1).
Burda et al.'s MNIST nets (tanh): x -> 200 -> 200 -> z1 (100) -> 100 -> 100 -> z2 (50), and
the mirror image for the generative side.  Trained on the ELBO (k = 1) or the k-sample
importance-weighted bound; its log-likelihood comes from the same estimator as every model:

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1).

The code of an image is (E[z1|x], E[z2 | z1 = E[z1|x]]) concatenated: the mean of q(z2 | z1)
at z1's mean, not E[z2|x] (which averages q(z2 | z1)'s mean over z1 ~ q(z1|x) and differs where
q(z2|z1) is not linear); it is deterministic and costs one pass.  ``code_shape`` is
``z1_dim + latent_dim``; ``decode`` reads its first ``z1_dim`` values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..config import SIZE_MAX, setting
from ..distributions import Normal
from ..nets import build_decoder, build_encoder, mlp
from ..objectives import sample_terms
from ..priors import build_prior
from .abilities import EpochHooks, HasBound
from .base import About, Model
from .helpers import start_at_mean_image
from .vae import VAEConfig, gaussian


@dataclass
class HVAEConfig(VAEConfig):
    """``latent_dim`` is the top layer z2 (the prior's), ``z1_dim`` the lower one; ``hidden``
    the x <-> z1 nets, ``z1_hidden`` the z1 <-> z2 MLPs.  Defaults: Burda et al.'s."""

    latent_dim: int = setting(
        50, "latent size of the top layer z2 (the prior's)", low=1, high=SIZE_MAX
    )
    hidden: Sequence[int] = setting(
        [200, 200], "hidden sizes of the x <-> z1 nets", low=1, high=SIZE_MAX
    )
    activation: str = setting("tanh", "activation between layers", choices="activation")
    z1_dim: int = setting(100, "hvae: lower latent layer", low=1, high=SIZE_MAX)
    z1_hidden: Sequence[int] = setting(
        [100, 100], "hvae: hidden sizes of the z1-z2 nets", low=1, high=SIZE_MAX
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.free_bits > 0:
            problems.append("free_bits needs a closed-form KL per unit; hvae has none")
        if self.posterior != "gaussian":
            problems.append("hvae: posterior must be gaussian (its q(z1|x), q(z2|z1) are)")
        return problems


class HVAE(Model, HasBound, EpochHooks):
    config_class = HVAEConfig

    def __init__(self, **config):
        cfg = HVAEConfig(**config)
        super().__init__(cfg)
        d1, d2, act = cfg.z1_dim, cfg.latent_dim, cfg.activation
        shape = cfg.image_shape
        self.encoder = build_encoder(cfg.encoder, 2 * d1, cfg.hidden, act, shape)  # q(z1 | x)
        self.encoder2 = mlp([d1, *cfg.z1_hidden, 2 * d2], act)  # q(z2 | z1)
        self.decoder2 = mlp([d2, *cfg.z1_hidden[::-1], 2 * d1], act)  # p(z1 | z2)
        self.decoder = build_decoder(cfg.decoder, d1, cfg.decoder_sizes, act, shape)  # p(x | z1)
        self.prior = build_prior(
            cfg.prior, d2, pseudo_inputs=cfg.pseudo_inputs, input_dim=math.prod(shape)
        )

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.cfg.z1_dim + self.cfg.latent_dim,)

    @property
    def about(self) -> About:
        c = self.cfg
        extra = f", k={c.k}" if c.k > 1 else ""
        return replace(
            super().about,
            summary=(
                f"HVAE: x-{'-'.join(map(str, c.hidden))}-z1 ({c.z1_dim}) "
                f"-{'-'.join(map(str, c.z1_hidden))}-z2 ({c.latent_dim}), {c.activation}, "
                f"{c.likelihood} p(x|z1), prior {self.prior.description}{extra}"
            ),
            loss_parts=(
                ("recon", "reconstruction −log p(x|z1)"),
                ("kl", "KL of both layers, log q(z1,z2|x) − log p(z1,z2)"),
            ),
            codes="(E[z1|x], E[z2 | z1 = E[z1|x]]) concatenated",
            samples=f"samples: mean of p(x|z1), z1 ~ p(z1|z2), z2 ~ {self.prior.description}",
        )

    # --- the four conditionals ---------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Normal:
        """q(z1 | x), the first stochastic layer."""
        return gaussian(self.encoder(x))

    def encode_top(self, z1: torch.Tensor) -> Normal:
        """q(z2 | z1)."""
        return gaussian(self.encoder2(z1))

    def prior_z1(self, z2: torch.Tensor) -> Normal:
        """p(z1 | z2)."""
        return gaussian(self.decoder2(z2))

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        m1 = self.encode(x).mean
        return torch.cat([m1, self.encode_top(m1).mean], -1)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x | z1), reading z1 as the first ``z1_dim`` values of the code."""
        return self.likelihood(self.decoder(z[..., : self.cfg.z1_dim]))

    def _prior_encode(self, u: torch.Tensor) -> Normal:
        return self.encode_top(self.encode(u).mean)  # VampPrior on z2: q(z2 | E[z1 | u])

    def sample_codes(self, n, generator=None, y=None) -> torch.Tensor:
        z2 = self.prior.sample(n, self._prior_encode, generator).to(self.device())
        p1 = self.prior_z1(z2)
        eps = torch.randn(p1.mean.shape, generator=generator).to(z2)
        return torch.cat([p1.mean + p1.scale * eps, z2], -1)

    def on_train_start(self, train) -> None:
        start_at_mean_image(self, train)

    # --- objectives ------------------------------------------------------------------------

    def _log_parts(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-log p(x|z1) and log q(z1, z2 | x) - log p(z1, z2) for k joint draws: (k, B) each."""
        q1 = self.encode(x)
        z1 = q1.rsample((k,))  # (k, B, d1)
        q2 = self.encode_top(z1)
        z2 = q2.rsample()  # (k, B, d2)
        recon = -self.decode(z1.reshape(-1, z1.shape[-1])).reshape(k, len(x), -1).log_prob(x)
        log_p = self.prior_z1(z2).log_prob(z1) + self.prior.log_prob(z2, self._prior_encode)
        kl = q1.log_prob(z1) + q2.log_prob(z2) - log_p
        return recon, kl

    def log_importance_weights(self, x, k, y=None) -> torch.Tensor:
        recon, kl = self._log_parts(x, k)
        return -recon - kl  # (k, B)

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        recon, kl = self._log_parts(x, self.cfg.k)  # (k, B) each
        return sample_terms(recon, kl, self.cfg.beta, kl_weight)
