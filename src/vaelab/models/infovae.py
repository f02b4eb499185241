"""InfoVAE (Zhao, Song & Ermon 2019, "InfoVAE: Balancing Learning and Inference in Variational
Autoencoders", AAAI; arXiv:1706.02262): the VAE's networks and N(0, I) prior, trained on

    loss = E_q[-log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) D(q(z), p(z))

(their eq. 6 with the divergence D = MMD^2 of section 4.1, "MMD-VAE"), where q(z) is the
aggregate posterior, the average of q(z|x) over the data.  alpha = 1 drops the per-image KL
and leaves ``recon + lambda MMD^2``: the MMD-VAE.  alpha = 0, lambda = 1 is the ELBO.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import setting
from ..mmd import ESTIMATORS, KERNELS, SPLIT_IMAGES, kernel_scale, mmd2
from .abilities import Diagnostics
from .base import About
from .vae import VAE, VAEConfig


@dataclass
class InfoVAEConfig(VAEConfig):
    """The VAE's networks with the InfoVAE weights.  ``alpha`` trades the per-image KL for
    the aggregate divergence (1: the MMD-VAE); ``lambd`` is Zhao et al.'s lambda, so the MMD
    term's weight is alpha + lambd - 1 (they require it >= 0).  Zhao et al.'s MNIST code
    weighs a per-pixel mean squared error by 1 against an unweighted MMD, i.e. 784 to 1
    against an error summed over 784 pixels; but their encoder there is deterministic, and
    with a Gaussian q(z|x), which starts near N(0, I), lambda = 1000 holds every q(z|x) at
    the prior (MMD^2 about 0, reconstruction at the mean image's cost) through short runs,
    so the default is 100 (tools/bench/results/plain_mmd.txt has the measurement).
    ``kernel`` and ``estimator``: see ``vaelab.mmd`` (the kernel's
    scale is C = 2 d for the N(0, I) prior).  The training bound stays the ELBO's one sample
    (k = 1), the prior N(0, I), no free bits, beta = 1."""

    alpha: float = setting(
        1.0, "weight 1 - alpha on the KL; 1: the MMD-VAE, 0: the ELBO", low=-100.0, high=1.0
    )
    lambd: float = setting(100.0, "InfoVAE lambda: MMD weight is alpha + lambd - 1", low=0.0)
    kernel: str = setting("rbf", "MMD kernel on the codes", choices=KERNELS)
    estimator: str = setting("unbiased", "MMD^2 estimator: U- or V-statistic", choices=ESTIMATORS)

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.alpha + self.lambd - 1 < 0:
            problems.append("the MMD weight alpha + lambd - 1 must be >= 0")
        if self.k != 1 or self.prior != "standard" or self.free_bits or self.beta != 1:
            problems.append("an infovae keeps k = 1, the standard prior, no free bits, beta = 1")
        if self.posterior != "gaussian":
            problems.append("an infovae needs the gaussian posterior (a KL in closed form)")
        for name, value, allowed in [
            ("kernel", self.kernel, KERNELS),
            ("estimator", self.estimator, ESTIMATORS),
        ]:
            if value not in allowed:
                problems.append(f"unknown {name} {value!r} (choose from {', '.join(allowed)})")
        return problems

    @property
    def mmd_weight(self) -> float:
        """The weight of MMD^2 in the loss: alpha + lambda - 1."""
        return self.alpha + self.lambd - 1


class InfoVAE(VAE, Diagnostics):
    """q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) from the likelihood.

    ``terms(x)`` per image (B,): ``recon`` = -log p(x|z) at one z ~ q(z|x) and ``kl`` =
    KL(q(z|x) || N(0, I)) in closed form (nats); ``neg_elbo`` = recon + kl, reported though
    not what is optimised; ``mmd`` = the batch's MMD^2 between those codes z and B draws from
    N(0, I), in the kernel's units (not nats), the same value for every image of the batch
    (it depends on the batch size); ``loss`` = recon + (1 - alpha) kl_weight kl +
    (alpha + lambda - 1) mmd.  Its ELBO still bounds log p(x), and importance sampling with
    q(z|x) as the proposal estimates log p(x) (valid for any q): ``HasBound`` as for the VAE.
    """

    config_class = InfoVAEConfig

    @property
    def about(self) -> About:
        base = super().about
        cfg = self.cfg
        return replace(
            base,
            summary=f"{base.summary}, alpha={cfg.alpha:g}, lambda={cfg.lambd:g}, "
            f"{cfg.kernel} MMD ({cfg.estimator}); trained on the InfoVAE loss, not the ELBO",
            loss_unit="nats per image plus the weighted MMD^2 (kernel units, per batch)",
            loss_parts=(
                *base.loss_parts,
                ("mmd", "MMD² of the codes to N(0, I), per batch (kernel units, not nats)"),
            ),
        )

    def mmd_to_prior(self, z: torch.Tensor, generator=None) -> torch.Tensor:
        """MMD^2 between codes z (B, D) and B draws from the prior N(0, I): a scalar."""
        cfg = self.cfg
        p = self.sample_codes(len(z), generator).to(z)
        return mmd2(z, p, cfg.kernel, kernel_scale(z.shape[-1]), cfg.estimator)

    def numbers_mean(self, binary: bool) -> dict:
        out = super().numbers_mean(binary)
        out["meaning"] += (
            "; reported for comparison: training minimised the InfoVAE loss recon + "
            "(1 - alpha) KL + (alpha + lambda - 1) MMD^2, not the ELBO"
        )
        return out

    def diagnostics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """MMD^2 between z ~ q(z|x) of the first ``SPLIT_IMAGES`` images and as many prior
        draws, both drawn with seed 0: the same number for the same weights."""
        g = torch.Generator().manual_seed(0)
        q = self.encode(x[:SPLIT_IMAGES])
        z = q.mean + q.scale * torch.randn(q.mean.shape, generator=g).to(q.mean)
        return {"mmd_1k": self.mmd_to_prior(z, g).item()}

    @property
    def diagnostics_about(self) -> dict[str, str]:
        return {
            "mmd_1k": f"MMD² ({self.cfg.estimator}) of z ~ q(z|x) of the first {SPLIT_IMAGES} "
            "images to as many N(0, I) draws (seed 0), kernel units"
        }

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """``kl_weight`` (warm-up) scales the KL term only."""
        q = self.encode(x, y)
        z = q.rsample()  # reparameterisation: z = mu + sigma * eps, eps ~ N(0, I)
        recon = -self.decode(z, y).log_prob(x)  # (B,)
        kl = self.prior.kl_units(q).sum(-1)  # (B,) closed form for N(0, I)
        mmd = self.mmd_to_prior(z).expand(len(x))  # the batch's value for each image
        cfg = self.cfg
        return {
            "loss": recon + (1 - cfg.alpha) * kl_weight * kl + cfg.mmd_weight * mmd,
            "recon": recon,
            "kl": kl,
            "neg_elbo": recon + kl,
            "mmd": mmd,
        }
