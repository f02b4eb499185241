"""What the AE and the VAE share: configuration, decoder and likelihood."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..distributions import Bernoulli, Normal
from ..errors import VaelabError
from ..nets import ACTIVATIONS, ARCHS, build_decoder, build_encoder

LIKELIHOODS = ("bernoulli", "gaussian")
SCALES = ("fixed", "learned")


@dataclass
class ModelConfig:
    """Architecture of an auto-encoder; these are the model's constructor arguments.

    ``hidden`` lists the encoder's hidden sizes (conv: sizes after the conv stack);
    the decoder mirrors them unless ``decoder_hidden`` is given.
    ``likelihood`` is p(x|z): ``bernoulli`` (decoder outputs logits) or ``gaussian``
    (decoder outputs the mean, scale ``sigma`` fixed or learned, one scalar).
    """

    latent_dim: int = 20
    encoder: str = "mlp"
    decoder: str = "mlp"
    hidden: Sequence[int] = field(default_factory=lambda: [400])
    decoder_hidden: Sequence[int] | None = None
    activation: str = "relu"
    likelihood: str = "bernoulli"
    scale: str = "fixed"
    sigma: float = 1.0

    def __post_init__(self) -> None:
        self.hidden = [int(h) for h in self.hidden]
        if self.decoder_hidden is not None:
            self.decoder_hidden = [int(h) for h in self.decoder_hidden]
        problems = []
        if self.latent_dim < 1:
            problems.append(f"latent_dim must be >= 1, got {self.latent_dim}")
        if any(h < 1 for h in [*self.hidden, *(self.decoder_hidden or [])]):
            problems.append("hidden sizes must be >= 1")
        for name, value, allowed in [
            ("encoder", self.encoder, ARCHS),
            ("decoder", self.decoder, ARCHS),
            ("activation", self.activation, tuple(ACTIVATIONS)),
            ("likelihood", self.likelihood, LIKELIHOODS),
            ("scale", self.scale, SCALES),
        ]:
            if value not in allowed:
                problems.append(f"unknown {name} {value!r} (choose from {', '.join(allowed)})")
        if not self.sigma > 0:
            problems.append(f"sigma must be > 0, got {self.sigma}")
        if problems:
            raise VaelabError("; ".join(problems))


class AutoEncoderBase(nn.Module):
    """An encoder and a decoder; subclasses add encode, latent_mean, terms and sample."""

    name = "base"
    config_class = ModelConfig

    def __init__(self, encoder_out: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        dec_hidden = cfg.decoder_hidden if cfg.decoder_hidden is not None else cfg.hidden[::-1]
        self.encoder = build_encoder(cfg.encoder, encoder_out, cfg.hidden, cfg.activation)
        self.decoder = build_decoder(cfg.decoder, cfg.latent_dim, dec_hidden, cfg.activation)
        if cfg.likelihood == "gaussian":
            log_sigma = torch.tensor(math.log(cfg.sigma))
            if cfg.scale == "learned":
                self.log_sigma = nn.Parameter(log_sigma)
            else:
                self.register_buffer("log_sigma", log_sigma)

    @property
    def config(self) -> dict:
        """The constructor's keyword arguments: ``type(self)(**self.config)`` rebuilds it."""
        return asdict(self.cfg)

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    def decode(self, z: torch.Tensor) -> Bernoulli | Normal:
        """p(x | z) for codes (B, D): Bernoulli over logits or Gaussian over means, (B, 784)."""
        out = self.decoder(z)  # (B, 784)
        if self.cfg.likelihood == "bernoulli":
            return Bernoulli(out)
        return Normal(out, self.log_sigma.expand_as(out))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z) at the encoder's mean code: images (B, 784) in pixel units."""
        return self.decode(self.latent_mean(x)).mean

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch scalars, each the mean over images of a per-image term in nats.

        ``loss`` is what training minimises; the other entries are its parts.
        """
        return {k: v.mean() for k, v in self.terms(x).items()}
