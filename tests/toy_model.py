"""A model from outside the package, for the tests: one file, one registry line.

Convolutional codes of shape (B, 4, H/4, W/4) (no flattening), a deterministic decoder, a
setting of its own (``gamma``) and a per-step hook that counts the optimizer's steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from vaelab.config import setting
from vaelab.models.abilities import ShapedCodes, StepHook
from vaelab.models.base import About, Model, ModelConfig


@dataclass
class ToyConfig(ModelConfig):
    """Shared settings plus the weight of the codes' squared size in the loss."""

    gamma: float = setting(0.01, "weight of the codes' squared size in the loss")

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.gamma >= 0:
            problems.append(f"gamma must be >= 0, got {self.gamma}")
        return problems


class Toy(Model, ShapedCodes, StepHook):
    """x -> two stride-2 convolutions -> codes (B, 4, H/4, W/4) -> two transposed ones."""

    config_class = ToyConfig

    def __init__(self, **config):
        cfg = ToyConfig(**config)
        super().__init__(cfg)
        c = cfg.image_shape[0]
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 8, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 4, 2, 1)
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(8, c, 4, stride=2, padding=1),
            nn.Flatten(),
        )
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def code_shape(self) -> tuple[int, ...]:
        _, h, w = self.image_shape
        return (4, h // 4, w // 4)

    @property
    def about(self) -> About:
        return replace(
            super().about, loss_unit=self.likelihood.recon_unit, codes="conv codes (4 channels)"
        )

    def encode(self, x, y=None):
        return self.encoder(x.reshape(-1, *self.image_shape))  # (B, 4, H/4, W/4)

    code = encode

    def terms(self, x, y=None, kl_weight=1.0):
        z = self.encode(x)
        recon = self.likelihood.recon_loss(self.decoder(z), x)
        size = z.square().sum((1, 2, 3))
        return {"loss": recon + self.cfg.gamma * size, "recon": recon, "size": size}

    def on_train_step(self, step, losses):
        self.steps += 1
