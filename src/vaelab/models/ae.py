"""Deterministic auto-encoder: x -> z = f(x) -> x_hat = g(z)."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..data import Split
from ..nets import build_decoder, build_encoder
from .abilities import EpochHooks, LatentPictures, Samples
from .base import About, Model, ModelConfig
from .helpers import flat_codes, start_at_mean_image


class AE(Model, Samples, LatentPictures, EpochHooks):
    """Auto-encoder trained on a reconstruction loss, summed over pixels, per image.

    ``likelihood="bernoulli"``: binary cross-entropy on the decoder's logits;
    ``likelihood="gaussian"``: squared error ``sum_d (x_d - x_hat_d)^2`` (what PCA minimises);
    ``likelihood="cbernoulli"``: the continuous Bernoulli's negative log-density.
    An AE has no prior; ``sample`` draws codes from a Gaussian fitted to the training codes
    after every epoch (``on_epoch_end``), and says so.
    """

    def __init__(self, **config):
        cfg = ModelConfig(**config)
        super().__init__(cfg)
        d = cfg.latent_dim
        shape = cfg.image_shape
        self.encoder = build_encoder(cfg.encoder, d, cfg.hidden, cfg.activation, shape)
        self.decoder = build_decoder(cfg.decoder, d, cfg.decoder_sizes, cfg.activation, shape)
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_chol", torch.eye(d))

    @property
    def about(self) -> About:
        return replace(
            super().about,
            loss_unit=self.likelihood.recon_unit,
            codes="codes z = f(x)",
            samples="AE decodings of codes drawn from a Gaussian fitted to the training codes",
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, D) for images (B, C*H*W)."""
        return self.encoder(x)

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x)

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per-image reconstruction loss (B,), summed over pixels; no KL, so no weight."""
        recon = self.likelihood.recon_loss(self.decoder(self.encoder(x)), x)
        return {"loss": recon, "recon": recon}

    def numbers_mean(self, binary: bool) -> dict:
        return {
            "kind": "loss",
            "is_likelihood": False,
            "meaning": f"reconstruction loss ({self.likelihood.recon_unit}); an AE defines no "
            "likelihood",
        }

    @torch.no_grad()
    def fit_latent_gaussian(self, codes: torch.Tensor) -> None:
        """Fit N(m, C) to training codes (N, D) so that ``sample`` draws plausible codes."""
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / max(len(codes) - 1, 1)
        cov = cov + 1e-5 * cov.diagonal().mean().clamp_min(1e-8) * torch.eye(len(mean)).to(cov)
        self.code_mean.copy_(mean)
        self.code_chol.copy_(torch.linalg.cholesky(cov))

    def on_train_start(self, train: Split) -> None:
        start_at_mean_image(self, train)

    def on_epoch_end(self, train: Split) -> None:
        self.fit_latent_gaussian(flat_codes(self, train.x))

    def sample_codes(self, n, generator=None, y=None) -> torch.Tensor:
        eps = torch.randn(n, self.latent_dim, generator=generator).to(self.code_mean)
        return self.code_mean + eps @ self.code_chol.T

    def latent_grid(self, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        # 1st..99th percentile of each coordinate under the Gaussian fitted to the codes
        std = (self.code_chol @ self.code_chol.T).diagonal().sqrt().cpu()
        mean = self.code_mean.cpu()
        lo, hi = mean - 2.3263 * std, mean + 2.3263 * std  # Φ⁻¹(0.01), Φ⁻¹(0.99)
        axes = [torch.linspace(lo[i].item(), hi[i].item(), n) for i in range(2)]
        how = "evenly spaced over the 1st-99th percentiles of the Gaussian fitted to the codes"
        return axes[0], axes[1], how
