"""The Mutual Information Gap (Chen et al. 2018, Eq. 6; disentanglement_lib ``mig.py``).

The codes of ``code_train`` images are discretised (``bins`` equal-width bins per unit) and
the mutual information I(unit; factor) estimated from counts; for each factor, the gap between
its two most informative units, divided by the factor's entropy, averaged over factors.
1: each factor is fully known from one unit and no other unit knows anything of it; 0: no
factor has a unit that knows more of it than the next one (no information, or duplicated).
"""

from __future__ import annotations

import numpy as np

from ..data.factors import FactorGrid
from .common import Represent, entropies, histogram_discretize, mutual_info_matrix, sample_codes
from .settings import DisentangleSettings


def gap(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Per factor: (largest - second largest I(unit; factor)) / H(factor); one unit: its
    I / H.  ``mi`` is (D, F)."""
    ordered = np.sort(mi, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(mi.shape[1])
    return (ordered[0] - second) / np.maximum(entropy, 1e-12)


def mig_score(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``mig``: the mean over factors of the normalised gap; what it used: each factor's gap."""
    codes, factors = sample_codes(grid, represent, s.code_train, rng, s.batch)
    mi = mutual_info_matrix(histogram_discretize(codes, s.bins), factors)
    per_factor = gap(mi, entropies(factors))
    return {"mig": float(np.mean(per_factor))}, {"per_factor": per_factor.round(4).tolist()}
