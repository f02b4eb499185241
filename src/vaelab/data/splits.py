"""Splits and batches: the hold-out of validation images, pixels as tensors, binarization,
shuffled batches.

The whole split lives in one tensor of pixel bytes (MNIST's 50,000 training images are 39 MB;
100,000 64x64 RGB images 1.2 GB; the 717,280 training images of ``sprites`` 2.9 GB), scaled to
[0, 1] batch by batch; a batch is an index into a permutation, so an epoch costs little more
than its matmuls.  Loaded splits are cached per (frozen) ``DataConfig``: every caller asks
``load_splits(cfg)`` and the data are read once per process.  Data made from known factors (a
catalogue entry's ``grid``) are rendered, only the images of each split, and carry their
factors.  ``use_splits`` puts splits of your own (synthetic data, a slice) under a
configuration, so that everything reading that configuration sees them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import DataConfig
from ..errors import VaelabError
from .catalogue import DIGITS, MNIST_DATASET, KnownDataset, dataset_entry, default_val_size
from .factors import FactorGrid, grid_split, ground_truth
from .fetch import load_dataset
from .formats import BUDGET_VARIABLE, MNIST, DataError, data_budget
from .images import Images, load_images

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1]: bytes are divided by 255; floats are returned as they are."""
    if pixels.dtype == torch.uint8:
        return pixels.to(torch.float32) / 255.0
    return pixels


@dataclass
class Split:
    """One split's images and labels.

    ``pixels`` (N, C*H*W), channels first: uint8 bytes (scaled to [0, 1] when read: ``x``,
    ``rows``) or float32 in [0, 1] (or {0, 1} once binarized).  ``y`` (N,) int64 labels, -1
    for unlabelled images.  ``shape`` the images' (C, H, W); ``classes`` the labels' names
    (None when the data have no labels).  Data made from known factors (``data/factors.py``)
    also carry each image's ``factors`` (N, F) int64 indices, named by ``factor_names``."""

    pixels: torch.Tensor
    y: torch.Tensor
    shape: tuple[int, int, int] = MNIST_DATASET.image_shape
    classes: tuple[str, ...] | None = DIGITS
    factors: torch.Tensor | None = None
    factor_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def x(self) -> torch.Tensor:
        """Every image as float32 (N, C*H*W) in [0, 1] (a new tensor when stored as bytes)."""
        return to_unit(self.pixels)

    def rows(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """The images ``idx`` as float32 in [0, 1]."""
        return to_unit(self.pixels[idx])

    @property
    def labelled(self) -> bool:
        """Whether every image has a label."""
        return self.classes is not None and bool(len(self.y)) and int(self.y.min()) >= 0

    def to(self, device: torch.device | str) -> Split:
        factors = None if self.factors is None else self.factors.to(device)
        return replace(self, pixels=self.pixels.to(device), y=self.y.to(device), factors=factors)

    @property
    def has_factors(self) -> bool:
        """Whether every image comes with the factors that made it."""
        return self.factors is not None and self.factor_names is not None

    def head(self, n: int | None) -> Split:
        """The first ``n`` images (all when ``n`` is None)."""
        return self if n is None else self.take(slice(0, n))

    def take(self, idx: torch.Tensor | slice) -> Split:
        """The images ``idx`` (an index or a slice) with their labels (and factors)."""
        factors = None if self.factors is None else self.factors[idx]
        return replace(self, pixels=self.pixels[idx], y=self.y[idx], factors=factors)


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
    grid, names = ground_truth(cfg), None
    if grid is not None:
        parts, shape, classes, names = grid_parts(grid, cfg), grid.shape, grid.classes, grid.names
    elif cfg.data is not None:
        images = load_images(cfg.data, cfg.image_size)
        parts, shape, classes = split_images(images, cfg.val_size), images.shape, images.classes
    else:
        entry = dataset_entry(cfg.dataset)
        data_set = load_dataset(cfg.dataset, cfg.data_dir, verify=cfg.verify)
        parts = split(data_set, cfg.val_size, entry)
        shape, classes = entry.image_shape, entry.classes
    out: dict[str, Split] = {}
    for name, (images, labels, *factors) in parts.items():
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        f = torch.from_numpy(factors[0]) if factors else None
        if name == "train" and cfg.train_limit is not None:
            x, y = x[: cfg.train_limit], y[: cfg.train_limit]
            f = None if f is None else f[: cfg.train_limit]
        pixels = (
            binarize_once(to_unit(x), cfg.binarize_seed)
            if (name != "train" and cfg.binarize == "dynamic")
            else x
        )
        out[name] = Split(pixels, y, shape, classes, f, names)
    return out


def grid_parts(grid: FactorGrid, cfg: DataConfig) -> dict[str, tuple[np.ndarray, ...]]:
    """A grid's "train", "val", "test" (``factors.grid_split``; val_size default: the
    catalogue entry's): (images uint8 (N, C*H*W), labels int64 (N,) = the label factor,
    factors int64 (N, F)).  Only these images are rendered; a split larger than the data
    budget (``formats.data_budget``) is refused in one line before it is rendered."""
    n_val = cfg.val_size or dataset_entry(cfg.dataset).val_size
    out = {}
    for name, index in grid_split(len(grid), n_val, cfg.train_limit).items():
        need = len(index) * math.prod(grid.shape)
        if need > data_budget():
            raise DataError(
                f"{cfg.dataset}: the {name} split ({len(index):,} images) needs {need:,} bytes, "
                f"over the data budget of {data_budget():,}; use --train-limit N (or set "
                f"{BUDGET_VARIABLE})"
            )
        factors = grid.factors_of(index)
        out[name] = (grid.images(factors), factors[:, grid.label_factor], factors)
    return out


def split(
    data_set: MNIST, n_val: int | None = None, entry: KnownDataset = MNIST_DATASET
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split into "train", "val", "test": (images uint8 [N, 784], labels int64 [N]), fresh copies.

    Validation is the LAST ``n_val`` training images (default: ``default_val_size``, the
    share of ``entry``: 10,000 of MNIST's 60,000, at least one), so MNIST gives
    50,000 / 10,000 / 10,000.
    """
    n = len(data_set.train_images)
    if n_val is None:
        n_val = default_val_size(n, entry)
    labels = data_set.train_labels.astype(np.int64), data_set.test_labels.astype(np.int64)
    train = (data_set.train_images.reshape(n, 784).astype(np.uint8), labels[0])
    test = (data_set.test_images.reshape(-1, 784).astype(np.uint8), labels[1])
    return hold_out(train, test, n_val)


def hold_out(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], n_val: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ "train", "val", "test", where "val" is the last ``n_val`` rows of ``train``."""
    x, y = train
    if not 1 <= n_val < len(x):
        raise DataError(
            f"val_size={n_val} must be between 1 and {len(x) - 1} (training part of {len(x)})"
        )
    return {"train": (x[:-n_val], y[:-n_val]), "val": (x[-n_val:], y[-n_val:]), "test": test}


def split_images(
    images: Images, n_val: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Your ``Images`` as "train", "val", "test": flat bytes and labels.  Validation is the
    last ``n_val`` of the training part (default: ``default_val_size`` of your own images, a
    ninth: a tenth of the whole without a given split)."""
    train, test = images.parts()
    return hold_out(train, test, default_val_size(len(train[0])) if n_val is None else n_val)


def data_facts(cfg: DataConfig) -> dict:
    """What a model must know of the data ``cfg`` before it is built: ``image_shape`` (C, H, W)
    and ``num_classes`` (None when unlabelled).  The named data sets need no reading."""
    if cfg.data is None:
        entry = dataset_entry(cfg.dataset)
        return {"image_shape": list(entry.image_shape), "num_classes": len(entry.classes)}
    train = load_splits(cfg)["train"]
    return {
        "image_shape": list(train.shape),
        "num_classes": len(train.classes) if train.classes else None,
    }


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
    """Batches ``(x (b, C*H*W) float32 in [0, 1], y (b,))`` of ``split`` in a random order
    drawn from ``generator``.

    With ``dynamic_binarize`` each batch is freshly binarized from the same generator (on the
    CPU), so a seed fixes the whole stream of data a training run sees.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    pixels = split.pixels
    order = order.to(pixels.device)
    noise = None
    if dynamic_binarize and pixels.device.type != "cpu":
        # the epoch's noise in one draw and one copy (the same numbers as batch by batch:
        # the CPU generator's stream is sequential), so no step waits on a host-to-device copy
        noise = torch.rand(pixels.shape, generator=generator).to(pixels.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = to_unit(pixels[idx])
        if dynamic_binarize:
            if noise is None:
                u = torch.rand(xb.shape, generator=generator)
            else:
                u = noise[start : start + batch_size]
            xb = (u < xb).to(xb.dtype)
        yield xb, split.y[idx]
