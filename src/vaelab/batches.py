"""In-memory splits and batches: pixels as float tensors, binarization, shuffled batches.

The whole split lives in one tensor (MNIST's 50,000 training images are 157 MB as float32);
a batch is an index into a permutation, so an epoch costs little more than its matmuls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .errors import VaelabError

BINARIZE = ("none", "dynamic")


@dataclass
class DataConfig:
    """Which data and how it is presented.

    ``binarize="none"``: grayscale pixels byte/255 in [0, 1] (a Bernoulli loss on them is a
    loss, not a likelihood).  ``"dynamic"``: each training image is re-binarized every time it
    is used (pixel = 1 when a uniform draw falls below its intensity, Burda et al. 2016);
    validation and test images are binarized once with ``binarize_seed``.
    ``data_dir`` reads MNIST from a folder or .npz instead of the cache; ``verify=False``
    accepts files that are not the canonical MNIST (another 28x28 data set).
    ``train_limit`` keeps the first N training images (quick runs, tests).
    """

    binarize: str = "none"
    binarize_seed: int = 0
    data_dir: str | None = None
    verify: bool = True
    train_limit: int | None = None

    def __post_init__(self) -> None:
        if self.binarize not in BINARIZE:
            raise VaelabError(f"unknown binarization {self.binarize!r}; choose from none, dynamic")
        if self.train_limit is not None and self.train_limit < 1:
            raise VaelabError(f"train_limit must be >= 1, got {self.train_limit}")

    def describe(self) -> str:
        if self.binarize == "none":
            return "grayscale pixels in [0, 1]"
        return f"dynamically binarized (val/test binarized once with seed {self.binarize_seed})"


@dataclass
class Split:
    x: torch.Tensor  # (N, 784) float32, in [0, 1] (or {0, 1} once binarized)
    y: torch.Tensor  # (N,) int64 labels

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


def binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed binarization of ``x``: the same seed gives the same bits on any machine (CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(x.cpu(), generator=g).to(x.device)


def load_splits(cfg: DataConfig, log=print) -> dict[str, Split]:
    """Train / val / test as float tensors on the CPU, val and test binarized if asked."""
    from .data import load_mnist, split

    mnist = load_mnist(cfg.data_dir, verify=cfg.verify, log=log)
    out: dict[str, Split] = {}
    for name, (images, labels) in split(mnist).items():
        x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        if name == "train" and cfg.train_limit is not None:
            x, y = x[: cfg.train_limit], y[: cfg.train_limit]
        if name != "train" and cfg.binarize == "dynamic":
            x = binarize_once(x, cfg.binarize_seed)
        out[name] = Split(x, y)
    return out


def batches(
    x: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    dynamic_binarize: bool = False,
) -> Iterator[torch.Tensor]:
    """Batches (b, 784) of ``x`` in a random order drawn from ``generator`` (CPU).

    With ``dynamic_binarize`` each batch is freshly binarized from the same generator, so a
    seed fixes the whole stream of data a training run sees.
    """
    n = len(x)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(x.device)
    for start in range(0, n, batch_size):
        xb = x[order[start : start + batch_size]]
        if dynamic_binarize:
            u = torch.rand(xb.shape, generator=generator).to(xb.device)
            xb = (u < xb).to(xb.dtype)
        yield xb
