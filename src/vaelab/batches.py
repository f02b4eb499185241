"""In-memory splits and batches: pixels as float tensors, binarization, shuffled batches.

The whole split lives in one tensor (MNIST's 50,000 training images are 157 MB as float32);
a batch is an index into a permutation, so an epoch costs little more than its matmuls.
Loaded splits are cached per (frozen) ``DataConfig``: every caller asks ``load_splits(cfg)``
and the data are read once per process.  ``use_splits`` puts splits of your own (synthetic
data, a slice) under a configuration, so that everything reading that configuration sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .config import BINARIZE, DataConfig  # noqa: F401  (DataConfig is re-exported here)
from .errors import VaelabError

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: torch.Tensor  # (N, 784) float32, in [0, 1] (or {0, 1} once binarized)
    y: torch.Tensor  # (N,) int64 labels

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def head(self, n: int | None) -> Split:
        """The first ``n`` images (all when ``n`` is None)."""
        return self if n is None else Split(self.x[:n], self.y[:n])


_CACHE: dict[DataConfig, dict[str, Split]] = {}


def binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed binarization of ``x``: the same seed gives the same bits on any machine (CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(x.cpu(), generator=g).to(x.device)


def load_splits(cfg: DataConfig | None = None) -> dict[str, Split]:
    """Train / val / test as float tensors on the CPU, val and test binarized if asked.

    Cached per configuration: the second call with an equal ``cfg`` costs nothing.  The
    returned tensors are shared; do not modify them in place.
    """
    cfg = cfg or DataConfig()
    if cfg not in _CACHE:
        _CACHE[cfg] = _read_splits(cfg)
    return _CACHE[cfg]


def _read_splits(cfg: DataConfig) -> dict[str, Split]:
    from .data import load_dataset, split

    mnist = load_dataset(cfg.dataset, cfg.data_dir, verify=cfg.verify)
    out: dict[str, Split] = {}
    for name, (images, labels) in split(mnist, cfg.val_size).items():
        x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        if name == "train" and cfg.train_limit is not None:
            x, y = x[: cfg.train_limit], y[: cfg.train_limit]
        if name != "train" and cfg.binarize == "dynamic":
            x = binarize_once(x, cfg.binarize_seed)
        out[name] = Split(x, y)
    return out


@contextmanager
def use_splits(cfg: DataConfig, splits: dict[str, Split]) -> Iterator[DataConfig]:
    """Within the block, ``load_splits(cfg)`` returns ``splits`` (given as they are: no
    binarization is applied).  For synthetic data, slices and tests."""
    saved = _CACHE.get(cfg)
    put_splits(cfg, splits)
    try:
        yield cfg
    finally:
        if saved is None:
            _CACHE.pop(cfg, None)
        else:
            _CACHE[cfg] = saved


def put_splits(cfg: DataConfig, splits: dict[str, Split]) -> DataConfig:
    """From now on ``load_splits(cfg)`` returns ``splits`` (as they are: no binarization)."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise VaelabError(f"splits lack {', '.join(missing)}")
    _CACHE[cfg] = splits
    return cfg


def clear_cache() -> None:
    """Forget every loaded split."""
    _CACHE.clear()


def batches(
    split: Split,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    dynamic_binarize: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(x (b, 784), y (b,))`` of ``split`` in a random order drawn from ``generator``.

    With ``dynamic_binarize`` each batch is freshly binarized from the same generator (on the
    CPU), so a seed fixes the whole stream of data a training run sees.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(split.x.device)
    noise = None
    if dynamic_binarize and split.x.device.type != "cpu":
        # the epoch's noise in one draw and one copy (the same numbers as batch by batch:
        # the CPU generator's stream is sequential), so no step waits on a host-to-device copy
        noise = torch.rand(split.x.shape, generator=generator).to(split.x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = split.x[idx]
        if dynamic_binarize:
            if noise is None:
                u = torch.rand(xb.shape, generator=generator)
            else:
                u = noise[start : start + batch_size]
            xb = (u < xb).to(xb.dtype)
        yield xb, split.y[idx]
