"""A factor grid whose images are its factor indices, and representations of it whose
disentanglement is known: the tests' and ``tools/experiments/known_answers.py``'s ground.

``IndexGrid(sizes)``: every combination of factors of ``sizes`` values; the "image" of factor
indices is the indices themselves as bytes (shape (1, 1, F)).  ``representations(grid,
seed)``: name -> ``represent`` function for the factors themselves (perfect), an invertible
monotone transform per unit, a permutation of the units, a random rotation that mixes them,
pure noise, and the factors without the last factor's unit (missing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.factors import FactorGrid


class IndexGrid(FactorGrid):
    """Factors of ``sizes`` values whose "images" are their indices, one byte each."""

    def __init__(self, sizes: tuple[int, ...] = (4, 5, 6, 8, 10)):
        self.sizes = tuple(int(s) for s in sizes)
        self.names = tuple(f"f{i}" for i in range(len(self.sizes)))
        self.values = tuple(np.arange(s, dtype=np.float64) for s in self.sizes)
        self.shape = (1, 1, len(self.sizes))
        self.title = "factor indices"

    def render(self, factors: np.ndarray) -> np.ndarray:
        return np.asarray(factors, dtype=np.uint8)


def _standard(grid: FactorGrid, images: np.ndarray) -> np.ndarray:
    """Factor indices scaled to [-1, 1]."""
    top = np.maximum(np.array(grid.sizes, dtype=np.float64) - 1, 1.0)
    return 2.0 * images.astype(np.float64) / top - 1.0


def representations(grid: FactorGrid, seed: int = 0) -> dict[str, Callable]:
    """The known representations of ``grid``'s factor-index images."""
    rng = np.random.default_rng(seed)
    f = grid.num_factors
    order = rng.permutation(f)
    q, _ = np.linalg.qr(rng.normal(size=(f, f)))
    noise = np.random.default_rng(seed + 1)
    powers = np.linspace(0.5, 3.0, f)  # a different monotone curve per unit

    return {
        "perfect": lambda x: x.astype(np.float64),
        "monotone": lambda x: np.sign(s := _standard(grid, x)) * np.abs(s) ** powers * 3 + 1,
        "permuted": lambda x: x.astype(np.float64)[:, order],
        "rotated": lambda x: _standard(grid, x) @ q,
        "noise": lambda x: noise.normal(size=(len(x), f)),
        "missing": lambda x: x.astype(np.float64)[:, :-1],
    }
