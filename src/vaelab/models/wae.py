"""Wasserstein auto-encoder with the MMD penalty (Tolstikhin, Bousquet, Gelly & Schoelkopf
2018, "Wasserstein Auto-Encoders", ICLR; Algorithm 2, WAE-MMD).

A deterministic encoder z = Q(x) and decoder G(z) minimise, per batch of n images,

    (1/n) sum_i c(x_i, G(Q(x_i))) + lambda MMD^2({Q(x_i)}, {z_i ~ p_Z})

(their eq. 4 with D_Z = MMD, estimated by the U-statistic as in Algorithm 2), with the prior
p_Z = N(0, sigma_z^2 I).  Matching the aggregate of the codes to p_Z makes prior draws
decodable, so the WAE samples without a density q(z|x) and without a bound on log p(x).

The paper's MNIST setting: d_z = 8, lambda = 10, a standard normal prior, Adam with
learning rate 1e-3 and batch 100, squared-error cost (``vaelab train --model wae --likelihood
gaussian --batch-size 100 --lr 1e-3``); their nets are convolutional (``--encoder conv
--decoder conv`` is the nearest here), the default is an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import SIZE_MAX, setting
from ..mmd import ESTIMATORS, KERNELS, SPLIT_IMAGES, kernel_scale, mmd2
from ..nets import build_decoder, build_encoder
from .abilities import Diagnostics, EpochHooks, LatentPictures, Samples
from .base import About, Model, ModelConfig
from .helpers import start_at_mean_image


@dataclass
class WAEConfig(ModelConfig):
    """Tolstikhin et al.'s MNIST defaults: an 8-D code, lambda = 10, sigma_z = 1, the IMQ
    kernel (summed over scales, ``vaelab.mmd``) and the U-statistic.  The cost c(x, x_hat) is
    the likelihood's reconstruction loss: ``bernoulli`` (the default, as for every vaelab
    model) gives the BCE on the decoder's logits, the natural cost for binarized pixels, which
    keeps reconstructions in [0, 1] and the WAE comparable with the AE and VAE on the same
    data; ``gaussian`` gives the squared error ||x - x_hat||^2 summed over pixels, the paper's
    cost, against which lambda = 10 was set (the BCE is several times larger per image, so
    the same lambda weighs the MMD less)."""

    latent_dim: int = setting(8, "latent size", low=1, high=SIZE_MAX)
    mmd_weight: float = setting(10.0, "lambda: weight of MMD^2 in the loss", low=0.0)
    prior_scale: float = setting(1.0, "sigma_z of the prior N(0, sigma_z^2 I)", low=1e-6)
    kernel: str = setting("imq", "MMD kernel on the codes", choices=KERNELS)
    estimator: str = setting("unbiased", "MMD^2 estimator: U- or V-statistic", choices=ESTIMATORS)

    def problems(self) -> list[str]:
        problems = super().problems()
        for name, value, allowed in [
            ("kernel", self.kernel, KERNELS),
            ("estimator", self.estimator, ESTIMATORS),
        ]:
            if value not in allowed:
                problems.append(f"unknown {name} {value!r} (choose from {', '.join(allowed)})")
        return problems


class WAE(Model, Samples, LatentPictures, EpochHooks, Diagnostics):
    """Deterministic codes z = Q(x) (B, D), p(x|z) from the likelihood, prior N(0, sigma_z^2 I).

    ``terms(x)`` per image (B,): ``recon`` = the cost c(x, G(Q(x))) summed over pixels (the
    likelihood's ``recon_unit``); ``mmd`` = the batch's MMD^2 between the codes and B draws
    from the prior, in the kernel's units (not nats), the same value for every image of the
    batch (so it depends on the batch size); ``loss`` = recon + lambda mmd.  There is no
    density q(z|x), so no ELBO and no importance-sampled log p(x): the WAE does not declare
    ``HasBound``; it ``Samples`` codes from the prior, which the MMD term matches.
    """

    config_class = WAEConfig

    def __init__(self, **config):
        cfg = self.config_class(**config)
        super().__init__(cfg)
        d, shape = cfg.latent_dim, cfg.image_shape
        self.encoder = build_encoder(cfg.encoder, d, cfg.hidden, cfg.activation, shape)
        self.decoder = build_decoder(cfg.decoder, d, cfg.decoder_sizes, cfg.activation, shape)

    @property
    def about(self) -> About:
        cfg = self.cfg
        sz = f"N(0, {cfg.prior_scale:g}² I)"
        base = super().about
        return replace(
            base,
            summary=f"{base.summary}, lambda={cfg.mmd_weight:g}, {cfg.kernel} MMD to {sz}",
            loss_unit=f"{self.likelihood.recon_unit}, plus lambda x MMD^2 (kernel units)",
            loss_parts=(
                ("recon", f"cost c(x, x̂): {self.likelihood.recon_unit}"),
                ("mmd", f"MMD² of the codes to {sz}, per batch (kernel units, not nats)"),
            ),
            codes="codes z = Q(x)",
            samples=f"samples: mean of p(x|z), z ~ {sz}, the prior the MMD term matches",
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, D) for images (B, C*H*W)."""
        return self.encoder(x)

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x)

    def sample_codes(self, n, generator=None, y=None) -> torch.Tensor:
        """n codes z ~ N(0, sigma_z^2 I), (n, D)."""
        eps = torch.randn(n, self.cfg.latent_dim, generator=generator)
        return (self.cfg.prior_scale * eps).to(self.device())

    def mmd_to_prior(self, z: torch.Tensor, generator=None) -> torch.Tensor:
        """MMD^2 between codes z (B, D) and B prior draws, with C = 2 d sigma_z^2: a scalar."""
        cfg = self.cfg
        scale = kernel_scale(z.shape[-1], cfg.prior_scale**2)
        p = self.sample_codes(len(z), generator).to(z)
        return mmd2(z, p, cfg.kernel, scale, cfg.estimator)

    def diagnostics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """MMD^2 between the codes of the first ``SPLIT_IMAGES`` images and as many prior
        draws (seed 0): the same number for the same weights."""
        g = torch.Generator().manual_seed(0)
        return {"mmd_1k": self.mmd_to_prior(self.encoder(x[:SPLIT_IMAGES]), g).item()}

    @property
    def diagnostics_about(self) -> dict[str, str]:
        return {
            "mmd_1k": f"MMD² ({self.cfg.estimator}) of the codes of the first {SPLIT_IMAGES} "
            f"images to as many N(0, {self.cfg.prior_scale:g}² I) draws (seed 0), kernel units"
        }

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per image (B,): the cost, the batch's MMD^2 and their sum; no KL, so no weight."""
        z = self.encoder(x)  # (B, D)
        recon = self.likelihood.recon_loss(self.decoder(z), x)  # (B,)
        mmd = self.mmd_to_prior(z).expand(len(x))
        return {"loss": recon + self.cfg.mmd_weight * mmd, "recon": recon, "mmd": mmd}

    def numbers_mean(self, binary: bool) -> dict:
        return {
            "kind": "loss",
            "is_likelihood": False,
            "meaning": f"WAE cost ({self.likelihood.recon_unit}) plus lambda x MMD^2; a WAE "
            "defines no density q(z|x), so no likelihood bound",
        }

    def on_train_start(self, train) -> None:
        start_at_mean_image(self, train)

    def latent_grid(self, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        z1, z2, how = super().latent_grid(n)
        s = self.cfg.prior_scale
        return s * z1, s * z2, f"{how}, times sigma_z = {s:g}"
