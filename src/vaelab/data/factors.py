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
known factors.  This module imports numpy only.
"""

from __future__ import annotations

import math

import numpy as np


class FactorGrid:
    """Every combination of ``sizes`` discrete factors, and the images they make.

    Subclasses set ``names``, ``sizes``, ``values`` and ``shape`` and implement ``render``."""

    title: str = ""
    names: tuple[str, ...] = ()  # one per factor, e.g. ("shape", "scale", ...)
    sizes: tuple[int, ...] = ()  # how many values each factor takes
    values: tuple[np.ndarray, ...] = ()  # per factor: the value of each index (float64)
    shape: tuple[int, int, int] = (1, 64, 64)  # the images' (C, H, W)
    classes: tuple[str, ...] | None = None  # names of the first factor's values (the labels)

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


# Placeholder until the data sets with known factors land: no data set has a grid yet.
def ground_truth(cfg) -> FactorGrid | None:
    """The factor grid of a run's data settings ``cfg`` (a DataConfig), or None when its
    data have no known factors."""
    return None
