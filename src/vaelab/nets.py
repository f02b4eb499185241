"""Encoder and decoder networks.  Inputs and outputs are flat: (B, 784) images, (B, D) codes.

Encoder and decoder are built independently, so any pairing works (a convolutional encoder
with an MLP decoder, a linear encoder with a conv decoder, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import VaelabError

IMAGE_SHAPE = (1, 28, 28)
IMAGE_DIM = 28 * 28

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}
ARCHS = ("mlp", "conv", "linear")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise VaelabError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, ``activation`` between them (none last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """(B, 784) -> conv 32 (14x14) -> conv 64 (7x7) -> [hidden] -> (B, out_dim)."""

    def __init__(self, out_dim: int, hidden: Sequence[int] = (), activation: str = "relu"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1),  # (B, 32, 14, 14)
            _activation(activation),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # (B, 64, 7, 7)
            _activation(activation),
            nn.Flatten(),
        )
        self.head = mlp([64 * 7 * 7, *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(-1, *IMAGE_SHAPE)))


class ConvDecoder(nn.Module):
    """(B, D) -> [hidden] -> 64x7x7 -> deconv 32 (14x14) -> deconv 1 (28x28) -> (B, 784) logits."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (), activation: str = "relu"):
        super().__init__()
        self.project = nn.Sequential(
            mlp([in_dim, *hidden, 64 * 7 * 7], activation), _activation(activation)
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # (B, 32, 14, 14)
            _activation(activation),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(-1, 64, 7, 7)
        return self.deconv(h).reshape(-1, IMAGE_DIM)


def build_encoder(
    arch: str, out_dim: int, hidden: Sequence[int], activation: str, in_dim: int = IMAGE_DIM
) -> nn.Module:
    """An encoder from images (B, in_dim) to (B, out_dim) unconstrained outputs."""
    if arch == "mlp":
        return mlp([in_dim, *hidden, out_dim], activation)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim)
    if arch == "conv":
        return ConvEncoder(out_dim, hidden, activation)
    raise VaelabError(f"unknown encoder architecture {arch!r}; choose from {', '.join(ARCHS)}")


def build_decoder(
    arch: str, in_dim: int, hidden: Sequence[int], activation: str, out_dim: int = IMAGE_DIM
) -> nn.Module:
    """A decoder from codes (B, in_dim) to (B, out_dim) unconstrained outputs (logits or means)."""
    if arch == "mlp":
        return mlp([in_dim, *hidden, out_dim], activation)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim)
    if arch == "conv":
        return ConvDecoder(in_dim, hidden, activation)
    raise VaelabError(f"unknown decoder architecture {arch!r}; choose from {', '.join(ARCHS)}")
