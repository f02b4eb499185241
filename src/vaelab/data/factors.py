"""Data generated from known factors: the interface the disentanglement metrics read.

A ``FactorGrid`` is a data set made of every combination of a few discrete factors (dSprites:
shape x scale x orientation x x-position x y-position).  It can give the images of any factor
values, so a metric can draw images with one factor held fixed, as the metrics' papers and
disentanglement_lib do.  Factors are indices (0 .. size - 1); ``values`` says what each index
means (a scale of 0.5, an angle in radians).  Image ``i`` of the grid is the one whose factor
indices are ``np.unravel_index(i, sizes)`` (row-major, the last factor fastest), as in the
original dSprites file.

A data set with known factors names its grid in its catalogue entry (``KnownDataset.grid``);
``ground_truth(cfg)`` gives the grid of a run's data settings, or None when its data have no
known factors.  Its splits are ``grid_split``'s: a fixed permutation of the grid positions
(seed ``GRID_SPLIT_SEED``), the first ``GRID_TEST_SIZE`` test, then val, then train.  This
module imports numpy, not torch.
"""

from __future__ import annotations

import importlib
import math
from functools import lru_cache

import numpy as np

from ..config import DataConfig
from ..errors import VaelabError
from .catalogue import dataset_entry

# The split of a grid: a fixed permutation of its positions, drawn from this seed (not from the
# run's seeds, so every run of a data set tests on the same images); the first GRID_TEST_SIZE
# are test, the next val_size validate, the rest train.
GRID_SPLIT_SEED = 20170615
GRID_TEST_SIZE = 10_000


class FactorGrid:
    """Every combination of ``sizes`` discrete factors, and the images they make.

    Subclasses set ``names``, ``sizes``, ``values`` and ``shape`` and implement ``render``."""

    title: str = ""
    names: tuple[str, ...] = ()  # one per factor, e.g. ("shape", "scale", ...)
    sizes: tuple[int, ...] = ()  # how many values each factor takes
    values: tuple[np.ndarray, ...] = ()  # per factor: the value of each index (float64)
    shape: tuple[int, int, int] = (1, 64, 64)  # the images' (C, H, W)
    classes: tuple[str, ...] | None = None  # names of the label factor's values
    label_factor: int = 0  # the factor whose index is an image's label
    source: str = ""  # the file the images are read from; empty when rendered here

    def __len__(self) -> int:
        return math.prod(self.sizes)

    @property
    def num_factors(self) -> int:
        return len(self.sizes)

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """The grid position (N,) of factor indices (N, F)."""
        factors = np.asarray(factors, dtype=np.int64)
        return np.ravel_multi_index(tuple(factors.T), self.sizes).astype(np.int64)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """Factor indices (N, F) int64 of grid positions (N,)."""
        index = np.asarray(index, dtype=np.int64)
        return np.stack(np.unravel_index(index, self.sizes), axis=1).astype(np.int64)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor combinations (n, F) int64, each factor uniform and independent."""
        return np.stack([rng.integers(0, s, size=n) for s in self.sizes], axis=1).astype(np.int64)

    def render(self, factors: np.ndarray) -> np.ndarray:
        """The images of factor indices (N, F): (N, C*H*W) uint8 bytes, channels first."""
        raise NotImplementedError

    def images(self, factors: np.ndarray) -> np.ndarray:
        """``render``, checked: factor indices (N, F) within ``sizes``."""
        factors = np.asarray(factors, dtype=np.int64).reshape(-1, self.num_factors)
        if len(factors) and ((factors < 0).any() or (factors >= np.array(self.sizes)).any()):
            raise ValueError(f"factor indices outside the grid {self.sizes}")
        return self.render(factors)


def grid_split(size: int, n_val: int, train_limit: int | None = None) -> dict[str, np.ndarray]:
    """Grid positions of "train", "val", "test" (int64): a permutation of ``range(size)``
    drawn from ``GRID_SPLIT_SEED``; test is its first ``GRID_TEST_SIZE``, val the next
    ``n_val``, train the rest, of which ``train_limit`` keeps the first N (a uniform random
    subsample, since the order is random)."""
    if not 1 <= n_val < size - GRID_TEST_SIZE:
        raise VaelabError(
            f"val_size={n_val} must be between 1 and {size - GRID_TEST_SIZE - 1} (a grid of "
            f"{size:,} images, {GRID_TEST_SIZE:,} of them test)"
        )
    order = np.random.default_rng(GRID_SPLIT_SEED).permutation(size).astype(np.int64)
    cut = GRID_TEST_SIZE + n_val
    train = order[cut:] if train_limit is None else order[cut : cut + train_limit]
    return {"train": train, "val": order[GRID_TEST_SIZE:cut], "test": order[:GRID_TEST_SIZE]}


@lru_cache(maxsize=4)
def load_grid(grid: str, data_dir: str | None) -> FactorGrid:
    """The grid of a catalogue entry's ``grid`` ("module:attr" of ``(data_dir) -> FactorGrid``),
    made once per process (a grid read from a file holds its images)."""
    module, attr = grid.split(":")
    return getattr(importlib.import_module(module), attr)(data_dir)


def ground_truth(cfg: DataConfig) -> FactorGrid | None:
    """The factor grid of the data ``cfg`` reads, or None when its data have no known factors
    (your own images, MNIST)."""
    if cfg.data is not None:
        return None
    entry = dataset_entry(cfg.dataset)
    return load_grid(entry.grid, cfg.data_dir) if entry.grid else None
