"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising"): the VAE's objective plus gamma
times the total correlation of the aggregate posterior, TC(z) = KL(q(z) ‖ prod_j q(z_j))
(eq. 2), estimated by a discriminator D through the density-ratio trick (eq. 3):

    TC(z) ≈ E_q(z) [log D(z) / (1 - D(z))],

where D(z) is D's probability that z is a sample of q(z) (the "joint") rather than of
prod_j q(z_j) (the "permuted").  D has two outputs (logits): index 0 is "joint", index 1
"permuted", so log D / (1 - D) = logit_0 - logit_1.  Samples of prod_j q(z_j) are made by
permuting each dimension of a batch of codes across the batch (``permute_dims``, Algorithm 1).

Algorithm 2 draws two batches per step: codes of the first give the VAE's loss and D's "joint"
samples, codes of the second, permuted, D's "permuted" samples.  Here one batch serves: the
VAE's loss is taken on every image; D's "joint" samples are the codes of the batch's first
half (ceil(B/2) images) and its "permuted" samples the second half's codes, permuted.

The two updates are one optimizer step.  Per image,

    loss = recon + beta * kl + gamma * tc + w * (disc_loss - disc_loss.detach()),

where ``tc`` = logit_0 - logit_1 at a z ~ q(z|x), computed with D's parameters detached (so
the TC term trains the encoder only), and ``disc_loss`` is D's cross-entropy on its detached
sample (so it trains D only); w = B / (2 * half size) makes the batch mean of the last term
D's loss of the paper, 1/2 (joint mean + permuted mean).  The last term is zero in value:
``loss`` is the VAE's objective, and its gradient also carries D's.  D's parameters form their
own optimizer group (``parameter_groups``) with the paper's Adam rate and betas; Adam keeps
its state per parameter, so the step is the one two separate Adams would take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import SIZE_MAX, setting
from .abilities import ParameterGroups
from .base import About
from .vae import VAE, VAEConfig

JOINT, PERMUTED = 0, 1  # the discriminator's outputs: logits of "z ~ q(z)" and "z ~ prod q(z_j)"


@dataclass
class FactorVAEConfig(VAEConfig):
    """The VAE's settings, ``gamma`` (the TC weight) and the discriminator's: ``disc_hidden``
    (the paper's six layers of 1000 units with leaky ReLU 0.2) and its Adam settings
    (``disc_lr`` 1e-4, betas (0.5, 0.9): the paper's Appendix).  The VAE's own Adam takes the
    run's ``--lr`` (the paper: 1e-4, betas (0.9, 0.999), Adam's defaults) and schedule; the
    schedule scales ``disc_lr`` alike.  ``gamma`` = 6.4, the 2D Shapes (dSprites) value of the
    public reimplementations; the paper's sweeps go from 10 to 100."""

    gamma: float = setting(6.4, "weight of the total correlation term", low=0.0)
    disc_hidden: Sequence[int] = setting(
        [1000] * 6, "discriminator hidden sizes (leaky ReLU 0.2)", metavar="N", low=1,
        high=SIZE_MAX,
    )  # fmt: skip
    disc_lr: float = setting(1e-4, "discriminator's Adam learning rate", low=0.0)
    disc_beta1: float = setting(0.5, "discriminator's Adam beta1", low=0.0, high=1.0)
    disc_beta2: float = setting(0.9, "discriminator's Adam beta2", low=0.0, high=1.0)

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.disc_lr > 0:
            problems.append(f"disc_lr must be > 0, got {self.disc_lr}")
        for name in ("disc_beta1", "disc_beta2"):
            if not getattr(self, name) < 1:
                problems.append(f"{name} must be < 1, got {getattr(self, name)}")
        if not self.disc_hidden:
            problems.append("disc_hidden needs at least one layer")
        return problems


def discriminator(latent_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """z (B, D) -> two logits (B, 2), ``JOINT`` and ``PERMUTED``: linear layers of ``hidden``
    units with leaky ReLU (slope 0.2) between them (the paper's Appendix)."""
    sizes = [latent_dim, *hidden, 2]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers[:-1])


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Algorithm 1: each column of z (B, D) permuted across the batch by a permutation of
    its own.  Each dimension keeps its values (the marginals q(z_j)); the dependence between
    dimensions is broken, so the rows are samples of prod_j q(z_j)."""
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)  # (B, D): D permutations
    return z.gather(0, order)


class FactorVAE(VAE, ParameterGroups):
    """The VAE with a discriminator on its codes (module docstring).

    ``terms(x)`` gives per-image values: the VAE's ``recon``, ``kl``, ``neg_elbo`` (nats);
    ``tc``, the discriminator's estimate log D(z) / (1 - D(z)) at the z ~ q(z|x) of ``recon``
    (Algorithm 2; the RNG is replayed to draw it again; nats; its batch mean estimates TC(z));
    ``disc_loss``, D's cross-entropy on this image's sample (nats: joint for the batch's first
    half, permuted for the second); ``disc_acc``, 1 when D classes that sample right, else 0
    (its mean is D's accuracy); ``loss`` = the VAE's loss + gamma * tc (+ D's loss, zero in value).
    """

    config_class = FactorVAEConfig

    def __init__(self, **config):
        super().__init__(**config)
        self.discriminator = discriminator(self.cfg.latent_dim, self.cfg.disc_hidden)

    @property
    def about(self) -> About:
        base = super().about
        cfg = self.cfg
        return replace(
            base,
            summary=f"{base.summary}, gamma {cfg.gamma:g}, discriminator {list(cfg.disc_hidden)}",
            loss_parts=(
                ("tc", "total correlation, the discriminator's estimate (nats)"),
                ("disc_acc", "discriminator accuracy (fraction of samples, not nats)"),
                *base.loss_parts,
            ),
        )

    def parameter_groups(self, lr: float) -> list[dict]:
        """The VAE's parameters at the run's rate and Adam's betas; the discriminator's at
        ``disc_lr`` and (``disc_beta1``, ``disc_beta2``)."""
        disc = list(self.discriminator.parameters())
        vae = [p for p in self.parameters() if not any(p is q for q in disc)]
        cfg = self.cfg
        return [
            {"params": vae},
            {"params": disc, "lr": cfg.disc_lr, "betas": (cfg.disc_beta1, cfg.disc_beta2)},
        ]

    def tc_logits(self, z: torch.Tensor) -> torch.Tensor:
        """D's logits (B, 2) with its parameters detached: gradients reach z only."""
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, frozen, (z,))

    def discriminator_terms(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's cross-entropy (nats), correctness and loss weight per image (B,) on detached
        codes z (B, D): the first ceil(B/2) rows as joint samples, the rest permuted."""
        z = z.detach()
        half = math.ceil(len(z) / 2)
        samples = torch.cat([z[:half], permute_dims(z[half:])])  # (B, D)
        labels = torch.full((len(z),), PERMUTED, dtype=torch.long, device=z.device)
        labels[:half] = JOINT
        logits = self.discriminator(samples)  # (B, 2)
        cross_entropy = F.cross_entropy(logits, labels, reduction="none")
        correct = (logits.argmax(-1) == labels).to(z.dtype)
        weight = torch.full_like(cross_entropy, len(z) / (2 * max(len(z) - half, 1)))
        weight[:half] = len(z) / (2 * half)  # batch mean: 1/2 (joint mean + permuted mean)
        return {"disc_loss": cross_entropy, "disc_acc": correct, "weight": weight}

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Kim & Mnih 2018, eq. 2 with eq. 3's estimate of TC and D's loss (Algorithm 2)."""
        cuda = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # the RNG comes back to its state before
            parts = super().terms(x, y, kl_weight)
        z, _ = self.posterior.rsample(self.encode(x, y))  # (B, D): the same draw as ``recon``'s
        logits = self.tc_logits(z)
        tc = logits[:, JOINT] - logits[:, PERMUTED]  # log D(z) / (1 - D(z))
        disc = self.discriminator_terms(z)
        d_loss = disc["disc_loss"] * disc.pop("weight")
        loss = parts["loss"] + self.cfg.gamma * tc + (d_loss - d_loss.detach())
        return parts | {"loss": loss, "tc": tc} | disc
