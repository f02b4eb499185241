"""Encoder and decoder networks.  Inputs and outputs are flat: (B, C*H*W) images (channels
first: MNIST's (1, 28, 28) is 784 values), (B, D) codes.

Each architecture (``registry.ARCHS``) is a class with two static builders, ``encoder`` and
``decoder``; ``build_encoder`` / ``build_decoder`` pick one by name.

Encoder and decoder are built independently, so any pairing works (a convolutional encoder
with an MLP decoder, a linear encoder with a conv decoder, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .errors import VaelabError
from .registry import ACTIVATIONS as ACTIVATION_NAMES
from .registry import ARCHS, resolve

IMAGE_SHAPE = (1, 28, 28)  # MNIST's (channels, height, width): the default shape
IMAGE_DIM = 28 * 28
MAX_CHANNELS = 256

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


def conv_stages(shape: Sequence[int]) -> int:
    """How many stride-2 stages a conv net takes for images ``shape`` (C, H, W): two, then one
    more while both sides stay even and the smaller one above 8 (28 -> 14 -> 7; 32 -> 16 -> 8;
    64 -> 32 -> 16 -> 8).  Sides must be multiples of 4."""
    _, h, w = shape
    if h % 4 or w % 4:
        raise VaelabError(
            f"conv nets need image sides that are multiples of 4, not {h}x{w}; "
            "use --image-size to resize, or an mlp encoder and decoder"
        )
    stages = 2
    while (h >> stages) % 2 == 0 and (w >> stages) % 2 == 0 and min(h, w) >> stages > 8:
        stages += 1
    return stages


def _channels(stage: int) -> int:
    return min(32 * 2**stage, MAX_CHANNELS)  # 32, 64, 128, 256, 256 ...


class ConvEncoder(nn.Module):
    """(B, C*H*W) -> stride-2 convolutions (32, 64, ... channels; MNIST: 14x14, 7x7) ->
    [hidden] -> (B, out_dim)."""

    def __init__(
        self,
        out_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        shape: Sequence[int] = IMAGE_SHAPE,
        residual: bool = False,
    ):
        super().__init__()
        self.shape = tuple(shape)
        stages = conv_stages(self.shape)
        layers: list[nn.Module] = []
        channels = self.shape[0]
        for i in range(stages):
            layers.append(nn.Conv2d(channels, _channels(i), 4, stride=2, padding=1))
            channels = _channels(i)
            if residual:
                layers.append(ResBlock(channels, activation))
            layers.append(_activation(activation))
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        side = (self.shape[1] >> stages) * (self.shape[2] >> stages)
        self.head = mlp([channels * side, *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(-1, *self.shape)))


class ConvDecoder(nn.Module):
    """(B, D) -> [hidden] -> the encoder's last feature map (MNIST: 64x7x7) -> transposed
    convolutions, halving the channels, up to (C, H, W) -> (B, C*H*W) outputs."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        shape: Sequence[int] = IMAGE_SHAPE,
        residual: bool = False,
    ):
        super().__init__()
        self.shape = tuple(shape)
        stages = conv_stages(self.shape)
        top = _channels(stages - 1)
        self.start = (top, self.shape[1] >> stages, self.shape[2] >> stages)
        self.project = nn.Sequential(
            mlp([in_dim, *hidden, math.prod(self.start)], activation), _activation(activation)
        )
        layers: list[nn.Module] = []
        for i in reversed(range(stages)):
            channels = _channels(i)
            if residual:  # pre-activation blocks; one activation before the last layer
                layers += [ResBlock(channels, activation)] + ([_activation(activation)] * (i == 0))
            out = self.shape[0] if i == 0 else _channels(i - 1)
            layers.append(nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1))
            if i > 0 and not residual:
                layers.append(_activation(activation))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(-1, *self.start)
        return self.deconv(h).reshape(-1, math.prod(self.shape))


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


def _images_only(arch: str, dim: int, side: str, shape: Sequence[int]) -> None:
    if dim != math.prod(shape):
        raise VaelabError(
            f"a {arch} {side} works on whole images ({'x'.join(map(str, shape))} = "
            f"{math.prod(shape)} values), not {dim} values; use mlp or linear"
        )


class MLPNet:
    """Fully connected layers, ``activation`` between them."""

    @staticmethod
    def encoder(
        in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        return mlp([in_dim, *hidden, out_dim], activation)

    @staticmethod
    def decoder(
        in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        return mlp([in_dim, *hidden, out_dim], activation)


class LinearNet:
    """One linear map (hidden sizes are ignored): with squared error, the PCA twin."""

    takes_hidden = False

    @staticmethod
    def encoder(
        in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        return nn.Linear(in_dim, out_dim)

    decoder = encoder


class ConvNet:
    """Stride-2 convolutions (28 -> 14 -> 7; more stages for larger images, see
    ``conv_stages``), mirrored by transposed convolutions."""

    residual = False
    label = "conv"

    @classmethod
    def encoder(
        cls, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        _images_only(cls.label, in_dim, "encoder", shape)
        return ConvEncoder(out_dim, hidden, activation, shape, residual=cls.residual)

    @classmethod
    def decoder(
        cls, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        _images_only(cls.label, out_dim, "decoder", shape)
        return ConvDecoder(in_dim, hidden, activation, shape, residual=cls.residual)


class ResNet(ConvNet):
    """The conv nets with a residual block at each resolution."""

    residual = True
    label = "resnet"


def _sixteenths(shape: Sequence[int]) -> tuple[int, int]:
    """The (H/16, W/16) feature map at the top of the disentanglement_lib nets, or a one-line
    refusal for sides that are not multiples of 16."""
    _, h, w = shape
    if h % 16 or w % 16:
        raise VaelabError(
            f"the dlconv nets need image sides that are multiples of 16 (64x64 gives 4x4 at "
            f"the top), not {h}x{w}; use --image-size to resize, or the conv nets"
        )
    return h // 16, w // 16


class DLConvEncoder(nn.Module):
    """disentanglement_lib's ``conv_encoder`` (Locatello et al. 2019; beta-VAE, Higgins et al.
    2017, Table 1): convolutions of 32, 32, 64, 64 channels, each stride 2 (kernels 4, 4, 2,
    2 with TensorFlow's "same" padding: 64 -> 32 -> 16 -> 8 -> 4), a 256-unit layer, then the
    output layer (a VAE's means and log-variances together)."""

    def __init__(self, out_dim: int, activation: str = "relu", shape: Sequence[int] = (1, 64, 64)):
        super().__init__()
        self.shape = tuple(shape)
        top = _sixteenths(self.shape)
        layers: list[nn.Module] = []
        channels = self.shape[0]
        for out, kernel, pad in ((32, 4, 1), (32, 4, 1), (64, 2, 0), (64, 2, 0)):
            layers += [nn.Conv2d(channels, out, kernel, stride=2, padding=pad)]
            layers += [_activation(activation)]
            channels = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = mlp([64 * math.prod(top), 256, out_dim], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(-1, *self.shape)))


class DLConvDecoder(nn.Module):
    """disentanglement_lib's ``deconv_decoder``: layers of 256 and 64 * (H/16) * (W/16) units
    (1024 for 64x64), then transposed convolutions of 64, 32, 32 and C channels, each 4x4
    stride 2 (4 -> 8 -> 16 -> 32 -> 64), the activation between them and none at the end."""

    def __init__(self, in_dim: int, activation: str = "relu", shape: Sequence[int] = (1, 64, 64)):
        super().__init__()
        self.shape = tuple(shape)
        self.start = (64, *_sixteenths(self.shape))
        self.project = nn.Sequential(
            mlp([in_dim, 256, math.prod(self.start)], activation), _activation(activation)
        )
        layers: list[nn.Module] = []
        channels = 64
        for out in (64, 32, 32):
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1)]
            layers += [_activation(activation)]
            channels = out
        layers.append(nn.ConvTranspose2d(channels, self.shape[0], 4, stride=2, padding=1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(-1, *self.start)
        return self.deconv(h).reshape(-1, math.prod(self.shape))


class DLConvNet:
    """The conv nets of disentanglement_lib (Locatello et al. 2019), the usual ones of the
    disentanglement literature on 64x64 images; fixed layer sizes (``hidden`` is ignored)."""

    takes_hidden = False

    @staticmethod
    def encoder(
        in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        _images_only("dlconv", in_dim, "encoder", shape)
        return DLConvEncoder(out_dim, activation, shape)

    @staticmethod
    def decoder(
        in_dim: int, out_dim: int, hidden: Sequence[int], activation: str, shape
    ) -> nn.Module:
        _images_only("dlconv", out_dim, "decoder", shape)
        return DLConvDecoder(in_dim, activation, shape)


@torch.no_grad()
def init_output_bias(decoder: nn.Module, mean_image: torch.Tensor, to_output) -> bool:
    """Set the bias of the decoder's last layer to ``to_output(mean_image)``, the outputs whose
    pixel means are the data's (per pixel; a conv decoder's output channels get their means
    over pixels).  Returns whether such a bias was found."""
    last = [m for m in decoder.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    if not last or last[-1].bias is None:
        return False
    bias = last[-1].bias
    if bias.numel() == mean_image.numel():
        bias.copy_(to_output(mean_image).to(bias).reshape(-1))
    elif mean_image.numel() % bias.numel() == 0:  # one bias per channel (channels first)
        bias.copy_(to_output(mean_image.reshape(bias.numel(), -1).mean(1)).to(bias))
    else:
        return False
    return True


def build_encoder(
    arch: str,
    out_dim: int,
    hidden: Sequence[int],
    activation: str,
    shape: Sequence[int] = IMAGE_SHAPE,
    extra: int = 0,
) -> nn.Module:
    """An encoder from images ``shape`` (C, H, W), flat, plus ``extra`` inputs (a one-hot
    label) to (B, out_dim) unconstrained outputs."""
    in_dim = math.prod(shape) + extra
    return resolve("architecture", arch).encoder(in_dim, out_dim, hidden, activation, tuple(shape))


def build_decoder(
    arch: str,
    in_dim: int,
    hidden: Sequence[int],
    activation: str,
    shape: Sequence[int] = IMAGE_SHAPE,
) -> nn.Module:
    """A decoder from codes (B, in_dim) to (B, C*H*W) unconstrained outputs (logits or means)
    for images ``shape``."""
    return resolve("architecture", arch).decoder(
        in_dim, math.prod(shape), hidden, activation, tuple(shape)
    )


assert set(ACTIVATIONS) == set(ACTIVATION_NAMES)
__all__ = ["ARCHS", "ACTIVATIONS", "build_encoder", "build_decoder", "mlp"]
