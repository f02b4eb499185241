"""Deterministic auto-encoder: x -> z = f(x) -> x_hat = g(z)."""

from __future__ import annotations

import torch

from . import register
from .base import AutoEncoderBase, ModelConfig


@register("ae")
class AE(AutoEncoderBase):
    """Auto-encoder trained on a reconstruction loss, summed over pixels, per image.

    ``likelihood="bernoulli"``: binary cross-entropy on the decoder's logits;
    ``likelihood="gaussian"``: squared error ``sum_d (x_d - x_hat_d)^2`` (what PCA minimises).
    An AE has no prior; ``sample`` draws codes from a Gaussian fitted to the training codes
    (``fit_latent_gaussian``), which is stated wherever such samples are shown.
    """

    def __init__(self, **config):
        cfg = ModelConfig(**config)
        super().__init__(cfg.latent_dim, cfg)
        d = cfg.latent_dim
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_chol", torch.eye(d))

    @property
    def loss_unit(self) -> str:
        kind = "BCE" if self.cfg.likelihood == "bernoulli" else "squared error"
        return f"{kind} per image, summed over pixels"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, D) for images (B, 784)."""
        return self.encoder(x)

    latent_mean = encode

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image reconstruction loss (B,), summed over pixels."""
        px = self.decode(self.encode(x))
        if self.cfg.likelihood == "bernoulli":
            recon = -px.log_prob(x)  # BCE with logits, summed over pixels
        else:
            recon = (x - px.mean).square().sum(-1)
        return {"loss": recon, "recon": recon}

    @torch.no_grad()
    def fit_latent_gaussian(self, codes: torch.Tensor) -> None:
        """Fit N(m, C) to training codes (N, D) so that ``sample`` draws plausible codes."""
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / max(len(codes) - 1, 1)
        cov = cov + 1e-5 * cov.diagonal().mean().clamp_min(1e-8) * torch.eye(len(mean))
        self.code_mean.copy_(mean)
        self.code_chol.copy_(torch.linalg.cholesky(cov))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 784): means of p(x|z) at codes from the fitted code Gaussian."""
        eps = torch.randn(n, self.latent_dim, generator=generator).to(self.code_mean)
        z = self.code_mean + eps @ self.code_chol.T
        return self.decode(z).mean
