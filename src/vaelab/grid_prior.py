"""An autoregressive prior over a grid of discrete codes: a PixelCNN (van den Oord et al. 2016,
"Pixel Recurrent Neural Networks", section 3.5) as the VQ-VAE's prior (van den Oord et al.
2017, section 3.3).

For an h x w grid of code indices z in {0 .. K-1}, in raster order (row by row, left to right)

    log p(z) = sum_p log p(z_p | z_<p)                                          (PixelRNN eq. 1)

Each conditional is a K-way softmax over logits computed by masked convolutions: the first
(type A) hides the centre and everything after it, the later ones (type B) hide only what comes
after the centre, so the logits at position p see the indices at positions < p only (tested).
The input is the indices through an embedding.  Plain masked convolutions leave a blind spot
(above-right positions beyond the kernel's reach) that the gated PixelCNN removes; on a 7 x 7
grid, a few 3 x 3 layers after a 5 x 5 first layer see most of the past.  Sampling is ancestral:
h * w passes, each drawing one position from its conditional.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A same-size 2-D convolution whose kernel sees only positions before the centre in
    raster order (type A) or before and at the centre (type B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, kind: str):
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        c = kernel // 2
        mask = torch.ones(kernel, kernel)
        mask[c, c + (kind == "B") :] = 0  # the centre row: the centre (A) and what follows it
        mask[c + 1 :] = 0  # every row below the centre
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class MaskedResBlock(nn.Module):
    """x + conv1x1(relu(conv_B(relu(x)))): a type-B masked residual block (the 1x1 keeps the
    mask's ordering)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, "B")
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class PixelCNNPrior(nn.Module):
    """p(z) over (h, w) grids of indices into a codebook of ``num_codes`` entries."""

    def __init__(self, num_codes: int, grid: tuple[int, int], channels: int, layers: int):
        super().__init__()
        self.num_codes, self.grid = num_codes, tuple(grid)
        self.embed = nn.Embedding(num_codes, channels)
        self.first = MaskedConv2d(channels, channels, 5, "A")
        self.blocks = nn.Sequential(*[MaskedResBlock(channels) for _ in range(layers)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, num_codes, 1))

    description = "PixelCNN over the code grid"

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> logits (B, K, h, w) of each position given the ones before it."""
        e = self.embed(z).permute(0, 3, 1, 2)  # (B, C, h, w)
        return self.out(self.blocks(self.first(e)))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = sum_p log p(z_p | z_<p), nats per grid: (B,)."""
        logp = F.log_softmax(self.logits(z), dim=1)  # (B, K, h, w)
        return logp.gather(1, z.unsqueeze(1)).flatten(1).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n grids (n, h, w) drawn position by position in raster order (ancestral sampling);
        the draws use ``generator`` on the CPU, so a seed gives the same grids on any device."""
        h, w = self.grid
        device = self.embed.weight.device
        z = torch.zeros(n, h, w, dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                probs = F.softmax(self.logits(z)[:, :, i, j].double(), dim=1).cpu()
                z[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
        return z
