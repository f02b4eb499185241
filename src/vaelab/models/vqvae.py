"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning") with a PixelCNN
prior over its grid of codes, trained in one run.

The networks.  A conv encoder maps an image (C, H, W) to a grid z_e(x) of D-dimensional vectors
(two stride-2 convolutions, then plain 3x3 layers or residual blocks: (D, H/4, W/4), 7 x 7 for
MNIST).  Each vector is replaced by its nearest codebook entry (K entries e_1 .. e_K in R^D):

    k_p(x) = argmin_j ||z_e(x)_p - e_j||,   z_q(x)_p = e_{k_p(x)}                      (eq. 1-2)

and a conv decoder (transposed convolutions) maps z_q to the likelihood's outputs (Bernoulli
logits for binary pixels).  Gradients pass the quantiser straight through:
z_q = z_e + sg[e - z_e], so d loss / d z_e = d loss / d z_q.

The objective (eq. 3), per image, summed over pixels and over the h*w*D code values:

    recon     = -log p(x | z_q(x))                          nats
    commit    = beta * ||z_e(x) - sg[e]||^2                 squared code units (beta = 0.25)
    codebook  = ||sg[z_e(x)] - e||^2                        only with codebook_update = loss
    kl        = -log p_prior(k(x))                          nats (the PixelCNN, on sg[k(x)])
    loss      = recon + commit (+ codebook) + kl

With ``codebook_update = ema`` (the default, the paper's appendix A.1) the codebook follows
exponential moving averages after every optimizer step, over the batch's n_j vectors assigned
to code j and their sum s_j:

    N_j <- gamma N_j + (1 - gamma) n_j,   m_j <- gamma m_j + (1 - gamma) s_j,   e_j = m_j / N~_j

with N~_j = (N_j + eps) / (n + K eps) * n, n = sum_j N_j (Laplace smoothing, eps = 1e-5), so that
an unused code is not divided by zero.  The counts N_j are kept in both modes: they are the
codes' usage.  Dead codes: after every optimizer step of the first phase (``on_train_step``,
after the EMA update), every code whose N_j is below ``dead_threshold`` (vectors per batch) is
reset to an encoder output of that batch drawn uniformly with the device's global generator
(seeded by the run's seed and saved in its checkpoint: deterministic, and resumed exactly), with
m_j = that vector and N_j = 1.  The counts start at 0, so the first step sets every code that
the first batch did not use to one of its encoder outputs (a data-dependent start).  With the
threshold at 1 (one vector per batch on the moving average), a restarted code that no vector
picks at the next step falls to N_j = gamma < 1 and is restarted again, at another encoder
output, until one does; on MNIST this keeps several times more codes in use early in training
than a threshold of 0.01 (docs/families.md).

The prior and the two phases.  The paper trains the VQ-VAE, then a PixelCNN on its codes.
Here one ``vaelab train`` run does both: for the first ``vq_epochs`` epochs the prior trains
alongside on the detached code indices (its gradient never reaches the codes), then
(``on_epoch_end``) the VQ-VAE is frozen (encoder, decoder, codebook and likelihood:
requires_grad off, no EMA, no restarts) and only the prior trains, on the codes of the final
VQ-VAE.  The buffer ``epochs_done`` counts finished epochs, so the phase comes back with the
weights (``vaelab train --resume``).

The bound.  The encoder is deterministic: q(z|x) is a point mass on the index grid k(x), so
KL(q || p_prior) = -log p_prior(k(x)) and

    log p(x) >= log p(x | z_q(x)) + log p_prior(k(x)) = -(recon + kl) = -neg_elbo.

Importance sampling cannot tighten a point mass: every draw is k(x), so
``log_importance_weights`` is that ELBO repeated k times and the k-sample estimate equals it.
``kl_weight`` (warm-up) is ignored: the prior's term never shapes the codes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SIZE_MAX, setting
from ..grid_prior import PixelCNNPrior
from ..nets import ACTIVATIONS, ResBlock
from .abilities import Diagnostics, EpochHooks, HasBound, ShapedCodes, StepHook
from .base import About, Model, ModelConfig

UPDATES = ("ema", "loss")
LAPLACE_EPS = 1e-5  # the counts' Laplace smoothing (appendix A.1)


@dataclass
class VQVAEConfig(ModelConfig):
    """The shared settings read as: ``latent_dim`` D, the size of each code vector;
    ``encoder`` / ``decoder`` conv (plain 3x3 layers) or resnet (residual blocks) after the
    stride-2 convolutions; ``hidden`` the two stride-2 convolutions' channels (the decoder
    mirrors them).  ``num_codes`` K: 128 rather than the paper's 512, since a 7 x 7 grid of
    128 codes already holds 49 * 7 = 343 bits per image, and fewer codes leave fewer of them
    unused on MNIST and keep the prior's softmax small."""

    latent_dim: int = setting(16, "D: size of each code vector of the grid", low=1, high=SIZE_MAX)
    encoder: str = setting(
        "resnet", "layers after the stride-2 convolutions: conv (plain 3x3) or resnet (residual)",
        choices="architecture",
    )  # fmt: skip
    decoder: str = setting(
        "resnet", "layers before the transposed convolutions: conv or resnet",
        choices="architecture",
    )  # fmt: skip
    hidden: Sequence[int] = setting(
        [32, 64], "channels of the two stride-2 convolutions (one number: both)",
        metavar="N", low=1, high=SIZE_MAX,
    )  # fmt: skip
    num_codes: int = setting(128, "K: codebook entries", low=2, high=65_536)
    res_layers: int = setting(2, "3x3 layers (or residual blocks) at the grid's size", low=0,
                              high=64)  # fmt: skip
    beta: float = setting(0.25, "commitment weight beta", low=0.0)
    codebook_update: str = setting(
        "ema", "ema: moving averages of the assigned vectors; loss: the codebook loss",
        choices=UPDATES,
    )  # fmt: skip
    ema_decay: float = setting(0.99, "gamma of the codebook's moving averages", low=0.0,
                               high=1.0)  # fmt: skip
    dead_threshold: float = setting(
        1.0, "codes whose moving usage (vectors per batch) falls below this are restarted",
        low=0.0,
    )  # fmt: skip
    prior_channels: int = setting(64, "PixelCNN prior channels", low=1, high=SIZE_MAX)
    prior_layers: int = setting(4, "PixelCNN prior masked residual blocks", low=0, high=64)
    vq_epochs: int = setting(10, "epochs before the VQ-VAE is frozen and only the prior trains",
                             low=1)  # fmt: skip

    def problems(self) -> list[str]:
        problems = super().problems()
        for side in ("encoder", "decoder"):
            if getattr(self, side) not in ("conv", "resnet"):
                problems.append(f"a vqvae {side} is conv or resnet, not {getattr(self, side)!r}")
        for name in ("hidden", "decoder_hidden"):
            sizes = getattr(self, name)
            if sizes is not None and len(sizes) not in (1, 2):
                problems.append(f"{name} gives the two stride-2 convolutions' channels: 1 or 2")
        if len(self.image_shape) == 3 and any(s % 4 for s in self.image_shape[1:]):
            problems.append("a vqvae needs image sides that are multiples of 4")
        if self.codebook_update not in UPDATES:
            problems.append(f"codebook_update is one of {', '.join(UPDATES)}")
        if not self.ema_decay < 1:
            problems.append("ema_decay must be < 1")
        return problems


# --- the quantiser's maths (pure functions, tested one by one) -----------------------------


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """argmin_j ||z_n - e_j||^2 for vectors z (N, D) and a codebook (K, D): indices (N,)."""
    d2 = z.square().sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.square().sum(1)
    return d2.argmin(1)


def ema_step(
    count: torch.Tensor, total: torch.Tensor, z: torch.Tensor, idx: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """N_j <- gamma N_j + (1 - gamma) n_j and m_j <- gamma m_j + (1 - gamma) s_j for a batch
    of vectors z (N, D) assigned to codes idx (N,): n_j how many, s_j their sum."""
    onehot = F.one_hot(idx, len(count)).to(z.dtype)  # (N, K)
    count = gamma * count + (1 - gamma) * onehot.sum(0)
    total = gamma * total + (1 - gamma) * onehot.T @ z
    return count, total


def smoothed_codebook(count: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """e_j = m_j / N~_j, N~_j = (N_j + eps) / (n + K eps) * n, n = sum_j N_j."""
    n = count.sum()
    smoothed = (count + LAPLACE_EPS) / (n + len(count) * LAPLACE_EPS) * n
    return total / smoothed[:, None]


def restart_dead_codes(vq: VQVAE, z: torch.Tensor) -> torch.Tensor:
    """Codes whose usage ``ema_count`` is below the threshold become encoder outputs z (N, D)
    drawn uniformly (m_j = z, N_j = 1); which codes were restarted, (K,) bool."""
    dead = vq.ema_count < vq.cfg.dead_threshold
    pick = z[torch.randint(len(z), (len(dead),), device=z.device)]  # (K, D), K draws always
    with torch.no_grad():
        vq.codebook.copy_(torch.where(dead[:, None], pick, vq.codebook))
        vq.ema_sum.copy_(torch.where(dead[:, None], pick, vq.ema_sum))
        vq.ema_count.copy_(torch.where(dead, torch.ones_like(vq.ema_count), vq.ema_count))
    return dead


# --- the networks ----------------------------------------------------------------------------


def _widths(sizes: Sequence[int]) -> tuple[int, int]:
    return (sizes[0], sizes[-1])


def _grid_layers(channels: int, n: int, residual: bool, activation: str) -> list[nn.Module]:
    act = ACTIVATIONS[activation]
    if residual:
        return [ResBlock(channels, activation) for _ in range(n)]
    return [m for _ in range(n) for m in (act(), nn.Conv2d(channels, channels, 3, padding=1))]


def vq_encoder(cfg: VQVAEConfig) -> nn.Sequential:
    """(B, C, H, W) -> (B, D, H/4, W/4): two stride-2 4x4 convolutions, the grid's layers,
    a 1x1 convolution to D channels."""
    (c1, c2), act = _widths(cfg.hidden), ACTIVATIONS[cfg.activation]
    return nn.Sequential(
        nn.Conv2d(cfg.image_shape[0], c1, 4, stride=2, padding=1), act(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1),
        *_grid_layers(c2, cfg.res_layers, cfg.encoder == "resnet", cfg.activation),
        act(), nn.Conv2d(c2, cfg.latent_dim, 1),
    )  # fmt: skip


def vq_decoder(cfg: VQVAEConfig) -> nn.Sequential:
    """(B, D, h, w) -> the likelihood's outputs (B, C*H*W): a 3x3 convolution, the grid's
    layers, two stride-2 transposed convolutions."""
    c2, c1 = _widths(cfg.decoder_sizes)
    act = ACTIVATIONS[cfg.activation]
    return nn.Sequential(
        nn.Conv2d(cfg.latent_dim, c2, 3, padding=1),
        *_grid_layers(c2, cfg.res_layers, cfg.decoder == "resnet", cfg.activation),
        act(), nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), act(),
        nn.ConvTranspose2d(c1, cfg.image_shape[0], 4, stride=2, padding=1), nn.Flatten(),
    )  # fmt: skip


# --- the model -------------------------------------------------------------------------------


class VQVAE(Model, HasBound, ShapedCodes, Diagnostics, EpochHooks, StepHook):
    """Conv encoder, nearest-codebook quantiser, conv decoder, PixelCNN prior over the index
    grid (see the module docstring for the maths and the two training phases)."""

    config_class = VQVAEConfig

    def __init__(self, **config):
        cfg = VQVAEConfig(**config)
        super().__init__(cfg)
        _, h, w = cfg.image_shape
        k, d = cfg.num_codes, cfg.latent_dim
        self.encoder, self.decoder = vq_encoder(cfg), vq_decoder(cfg)
        start = torch.empty(k, d).uniform_(-1 / k, 1 / k)
        self.codebook = nn.Parameter(start, requires_grad=cfg.codebook_update == "loss")
        self.register_buffer("ema_count", torch.zeros(k))  # N_j: vectors per batch
        self.register_buffer("ema_sum", torch.zeros(k, d))  # m_j
        self.register_buffer("epochs_done", torch.zeros((), dtype=torch.long))
        self.prior = PixelCNNPrior(k, (h // 4, w // 4), cfg.prior_channels, cfg.prior_layers)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None  # for on_train_step
        self.register_load_state_dict_post_hook(lambda module, keys: module.set_phase())
        self._freeze(False)

    # --- what it is ---------------------------------------------------------------------------

    @property
    def code_shape(self) -> tuple[int, ...]:
        _, h, w = self.image_shape
        return (self.cfg.latent_dim, h // 4, w // 4)

    @property
    def grid_size(self) -> int:
        return math.prod(self.code_shape[1:])

    @property
    def about(self) -> About:
        cfg = self.cfg
        d, h, w = self.code_shape
        summary = (
            f"VQ-VAE: {cfg.encoder} conv nets {list(cfg.hidden)}, a {h}x{w} grid of "
            f"{cfg.num_codes} "
            f"codes of {d} dims ({cfg.codebook_update} codebook), {cfg.likelihood} p(x|z), "
            f"PixelCNN prior (alone after epoch {cfg.vq_epochs}); q(z|x) is a point mass, so "
            "importance sampling gives back the ELBO"
        )
        return replace(
            super().about,
            label="VQ-VAE",
            summary=summary,
            loss_unit="nats per image, summed over pixels (commitment in squared code units)",
            loss_parts=(
                ("recon", "reconstruction −log p(x|z_q)"),
                ("kl", "−log p_prior(codes): the KL of a point mass q"),
                ("commit", "commitment β‖z_e − sg[e]‖²"),
            ),
            codes="quantised codebook vectors z_q(x), D x h x w",
            samples="samples: mean of p(x|z_q), index grids drawn from the PixelCNN prior",
        )

    @property
    def frozen(self) -> bool:
        """Whether the VQ-VAE is frozen (the second phase: only the prior trains)."""
        return self._frozen

    def set_phase(self) -> None:
        """Freeze the encoder, decoder, codebook and likelihood once ``epochs_done`` reaches
        ``vq_epochs`` (called after every epoch and whenever weights are loaded)."""
        self._freeze(int(self.epochs_done) >= self.cfg.vq_epochs)

    def _freeze(self, frozen: bool) -> None:
        self._frozen = frozen
        loss_mode = self.cfg.codebook_update == "loss"
        for name, p in self.named_parameters():
            if not name.startswith("prior."):
                p.requires_grad_(not frozen and (name != "codebook" or loss_mode))

    # --- codes ---------------------------------------------------------------------------------

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """z_e(x): (B, D, h, w), before quantisation."""
        return self.encoder(x.reshape(-1, *self.image_shape))

    def quantise(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, h, w) of the nearest codes and their vectors e (B, D, h, w)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
        idx = nearest_codes(flat.detach(), self.codebook.detach()).reshape(b, h, w)
        return idx, self.codebook[idx].permute(0, 3, 1, 2)

    def code_indices(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """k(x): the code indices (B, h, w)."""
        return self.quantise(self.encode_continuous(self.images(x)))[0]

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic codes: quantised vectors z_q(x) (B, D, h, w)."""
        return self.quantise(self.encode_continuous(x))[1]

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        return self.likelihood(self.decoder(z.reshape(len(z), *self.code_shape)))

    def sample_codes(self, n, generator=None, y=None) -> torch.Tensor:
        idx = self.prior.sample(n, generator)  # (n, h, w)
        return self.codebook.detach()[idx].permute(0, 3, 1, 2)

    # --- objectives ----------------------------------------------------------------------------

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per-image terms (B,) of the module docstring; ``kl_weight`` is ignored."""
        with torch.no_grad() if self.frozen else nullcontext():
            z_e = self.encode_continuous(x)  # (B, D, h, w)
            idx, e = self.quantise(z_e)
            z_q = z_e + (e - z_e).detach()  # straight-through
            recon = -self.decode(z_q).log_prob(x)
            out = {"recon": recon, "commit": self.cfg.beta * (z_e - e.detach()).square()
                   .sum((1, 2, 3))}  # fmt: skip
            if self.cfg.codebook_update == "loss":
                out["codebook"] = (z_e.detach() - e).square().sum((1, 2, 3))
        kl = -self.prior.log_prob(idx)  # indices carry no gradient: sg[k(x)]
        if self.training and torch.is_grad_enabled() and not self.frozen:
            d = z_e.shape[1]
            self._batch = (z_e.detach().permute(0, 2, 3, 1).reshape(-1, d), idx.reshape(-1))
        loss = recon + kl + sum(v for k, v in out.items() if k != "recon")
        return {"loss": loss, **out, "kl": kl, "neg_elbo": recon + kl}

    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The ELBO -(recon + kl) repeated k times, (k, B) nats: q(z|x) is a point mass on
        k(x), so every draw is the same and the weights are all equal."""
        t = self.terms(x, y)
        return (-t["neg_elbo"]).repeat(k, 1)

    # --- training hooks ------------------------------------------------------------------------

    @torch.no_grad()
    def on_train_step(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        """After the optimizer's step of the first phase: the moving averages (and, with
        ``ema``, the codebook) from the batch's encoder outputs, then dead-code restarts."""
        if self._batch is None:
            return
        z, idx = self._batch
        self._batch = None
        count, total = ema_step(self.ema_count, self.ema_sum, z, idx, self.cfg.ema_decay)
        self.ema_count.copy_(count)
        self.ema_sum.copy_(total)
        if self.cfg.codebook_update == "ema":
            self.codebook.copy_(smoothed_codebook(count, total))
        if self.cfg.dead_threshold > 0:
            restart_dead_codes(self, z)

    def on_epoch_end(self, train) -> None:
        self.epochs_done += 1
        self._batch = None
        self.set_phase()

    # --- diagnostics ---------------------------------------------------------------------------

    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        counts = torch.zeros(self.cfg.num_codes, device=x.device)
        nll = torch.zeros((), dtype=torch.float64, device=x.device)
        for start in range(0, len(x), 1000):
            idx = self.code_indices(x[start : start + 1000])
            counts += torch.bincount(idx.reshape(-1), minlength=len(counts))
            nll += -self.prior.log_prob(idx).double().sum()
        p = counts / counts.sum().clamp_min(1)
        entropy = -(p * p.clamp_min(1e-30).log()).sum()
        return {
            "codebook_usage": float((counts > 0).float().mean()),
            "perplexity": float(entropy.exp()),
            "prior_bits_per_code": float(nll / max(len(x), 1) / self.grid_size / math.log(2)),
        }

    @property
    def diagnostics_about(self) -> dict[str, str]:
        return {
            "codebook_usage": "fraction of the K codes used on the split",
            "perplexity": "exp(entropy) of the split's mean code distribution, in codes",
            "prior_bits_per_code": "the prior's -log p(codes), bits per grid position",
        }
