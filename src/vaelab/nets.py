"""Encoder and decoder networks.  Inputs and outputs are flat: (B, 784) images, (B, D) codes.

Each architecture (``registry.ARCHS``) is a class with two static builders, ``encoder`` and
``decoder``; ``build_encoder`` / ``build_decoder`` pick one by name.

Encoder and decoder are built independently, so any pairing works (a convolutional encoder
with an MLP decoder, a linear encoder with a conv decoder, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import VaelabError
from .registry import ACTIVATIONS as ACTIVATION_NAMES
from .registry import ARCHS, resolve

IMAGE_SHAPE = (1, 28, 28)
IMAGE_DIM = 28 * 28

ACTIVATIONS: dict[str, type[nn.Module]] = {  # the names of registry.ACTIVATIONS
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


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


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))): two 3x3 convolutions that keep the shape (He et al. 2016)."""

    def __init__(self, channels: int, activation: str):
        super().__init__()
        self.body = nn.Sequential(
            _activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
            _activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResEncoder(ConvEncoder):
    """The conv encoder with a residual block after each downsampling convolution."""

    def __init__(self, out_dim: int, hidden: Sequence[int] = (), activation: str = "relu"):
        super().__init__(out_dim, hidden, activation)
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1),  # (B, 32, 14, 14)
            ResBlock(32, activation),
            _activation(activation),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # (B, 64, 7, 7)
            ResBlock(64, activation),
            _activation(activation),
            nn.Flatten(),
        )


class ResDecoder(ConvDecoder):
    """The transposed-conv decoder with a residual block before each upsampling step."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (), activation: str = "relu"):
        super().__init__(in_dim, hidden, activation)
        self.deconv = nn.Sequential(
            ResBlock(64, activation),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # (B, 32, 14, 14)
            ResBlock(32, activation),
            _activation(activation),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )


def _images_only(arch: str, dim: int, side: str) -> None:
    if dim != IMAGE_DIM:
        raise VaelabError(
            f"a {arch} {side} works on 28x28 images only ({IMAGE_DIM} values), not {dim}; "
            "use mlp or linear"
        )


class MLPNet:
    """Fully connected layers, ``activation`` between them."""

    @staticmethod
    def encoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        return mlp([in_dim, *hidden, out_dim], activation)

    @staticmethod
    def decoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        return mlp([in_dim, *hidden, out_dim], activation)


class LinearNet:
    """One linear map (hidden sizes are ignored): with squared error, the PCA twin."""

    @staticmethod
    def encoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        return nn.Linear(in_dim, out_dim)

    decoder = encoder


class ConvNet:
    """Two stride-2 convolutions (28 -> 14 -> 7), mirrored by transposed convolutions."""

    @staticmethod
    def encoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        _images_only("conv", in_dim, "encoder")
        return ConvEncoder(out_dim, hidden, activation)

    @staticmethod
    def decoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        _images_only("conv", out_dim, "decoder")
        return ConvDecoder(in_dim, hidden, activation)


class ResNet:
    """The conv nets with residual blocks at each resolution."""

    @staticmethod
    def encoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        _images_only("resnet", in_dim, "encoder")
        return ResEncoder(out_dim, hidden, activation)

    @staticmethod
    def decoder(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> nn.Module:
        _images_only("resnet", out_dim, "decoder")
        return ResDecoder(in_dim, hidden, activation)


@torch.no_grad()
def init_output_bias(decoder: nn.Module, mean_image: torch.Tensor, to_output) -> bool:
    """Set the bias of the decoder's last layer to ``to_output(mean_image)``, the outputs whose
    pixel means are the data's (per pixel; a conv decoder's single output channel gets the
    mean over pixels).  Returns whether such a bias was found."""
    last = [m for m in decoder.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    if not last or last[-1].bias is None:
        return False
    bias = last[-1].bias
    if bias.numel() == mean_image.numel():
        bias.copy_(to_output(mean_image).to(bias).reshape(-1))
    elif bias.numel() == 1:
        bias.copy_(to_output(mean_image.mean().reshape(1)).to(bias))
    else:
        return False
    return True


def build_encoder(
    arch: str, out_dim: int, hidden: Sequence[int], activation: str, in_dim: int = IMAGE_DIM
) -> nn.Module:
    """An encoder from inputs (B, in_dim) to (B, out_dim) unconstrained outputs."""
    return resolve("architecture", arch).encoder(in_dim, out_dim, hidden, activation)


def build_decoder(
    arch: str, in_dim: int, hidden: Sequence[int], activation: str, out_dim: int = IMAGE_DIM
) -> nn.Module:
    """A decoder from codes (B, in_dim) to (B, out_dim) unconstrained outputs (logits or means)."""
    return resolve("architecture", arch).decoder(in_dim, out_dim, hidden, activation)


assert set(ACTIVATIONS) == set(ACTIVATION_NAMES)
__all__ = ["ARCHS", "ACTIVATIONS", "build_encoder", "build_decoder", "mlp"]
