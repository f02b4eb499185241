"""What the metrics share: images of factors encoded in batches, the histogram discretiser,
discrete mutual information and entropy, and the normalised entropy DCI weighs with.

A representation is a function ``represent(images uint8 (N, C*H*W)) -> codes (N, D)``; the
metrics call it on at most ``batch`` images at a time.  Mutual information and entropy are
in nats, estimated from counts (the plug-in estimate of sklearn's ``mutual_info_score``,
which disentanglement_lib uses).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.factors import FactorGrid
from ..errors import VaelabError

Represent = Callable[[np.ndarray], np.ndarray]


def encode(grid: FactorGrid, represent: Represent, factors: np.ndarray, batch: int) -> np.ndarray:
    """The codes (N, D) float64 of the images of factor indices (N, F), ``batch`` at a time."""
    parts = []
    for start in range(0, len(factors), batch):
        chunk = factors[start : start + batch]
        codes = np.asarray(represent(grid.images(chunk)), dtype=np.float64)
        if codes.ndim != 2 or len(codes) != len(chunk):
            raise VaelabError(
                f"a representation must give (N, D) codes of N images, got {codes.shape} "
                f"for {len(chunk)}"
            )
        parts.append(codes)
    codes = np.concatenate(parts) if parts else np.zeros((0, 0))
    if not np.isfinite(codes).all():
        raise VaelabError("the representation gave codes that are not finite (NaN or inf)")
    return codes


def sample_codes(
    grid: FactorGrid, represent: Represent, n: int, rng: np.random.Generator, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with independent uniform factors: (codes (n, D), factors (n, F))."""
    factors = grid.sample_factors(n, rng)
    return encode(grid, represent, factors, batch), factors


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """Each unit's values (N, D) as the index of their bin among ``bins`` equal-width bins
    spanning the unit's range (disentanglement_lib's histogram discretiser)."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins)[1]
        out[:, d] = np.digitize(codes[:, d], edges[:-1])
    return out


def _labels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values as 0 .. k-1 and k."""
    uniq, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1), len(uniq)


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """The plug-in mutual information (nats) of two discrete variables (N,), from counts."""
    ia, ka = _labels(a)
    ib, kb = _labels(b)
    joint = np.bincount(ia * kb + ib, minlength=ka * kb).reshape(ka, kb) / len(ia)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum(), 0.0))


def mutual_info_matrix(discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code unit d; factor f) in nats, (D, F)."""
    return np.array(
        [[mutual_info(discrete[:, d], factors[:, f]) for f in range(factors.shape[1])]
         for d in range(discrete.shape[1])]
    )  # fmt: skip


def entropies(factors: np.ndarray) -> np.ndarray:
    """H(factor f) in nats, (F,), from the sample's counts."""
    return np.array([mutual_info(factors[:, f], factors[:, f]) for f in range(factors.shape[1])])


def normalized_entropy(weights: np.ndarray, axis: int) -> np.ndarray:
    """The entropy of ``weights`` normalised along ``axis`` (1e-11 added, as disentanglement_lib
    does), in base ``weights.shape[axis]``: 0 when all weight is on one entry, 1 when spread
    evenly.  One entry: 0."""
    k = weights.shape[axis]
    if k < 2:
        return np.zeros(weights.shape[1 - axis])
    p = weights + 1e-11
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(k)


def seed_of(rng: np.random.Generator) -> int:
    """An integer seed for a scikit-learn estimator, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))
