"""The FactorVAE score (Kim & Mnih 2018, Sec. 4; disentanglement_lib ``factor_vae.py``).

Each unit's scale is its standard deviation over ``factor_vae_variance`` images; units below
``factor_vae_threshold`` are inactive and left out.  One vote: pick a factor k, draw
``vote_batch`` images sharing factor k, divide each active unit's variance over them by its
scale squared, and vote (unit with the least variance, k).  A majority-vote classifier maps
each unit to the factor it was most often voted with; the score is its accuracy on fresh
votes.  1: holding any factor fixed always quietens a unit of its own; the floor is about
1 / F (no unit answers to one factor more than another); 0 when no unit is active.
"""

from __future__ import annotations

import numpy as np

from ..data.factors import FactorGrid
from .common import Represent, encode, sample_codes
from .settings import DisentangleSettings


def votes(
    grid: FactorGrid,
    represent: Represent,
    n: int,
    rng: np.random.Generator,
    s: DisentangleSettings,
    scale: np.ndarray,
) -> np.ndarray:
    """``n`` votes as counts (F, D): how often fixing factor f made unit d the quietest."""
    active = np.flatnonzero(scale >= s.factor_vae_threshold)
    k = rng.integers(0, grid.num_factors, size=n)
    factors = grid.sample_factors(n * s.vote_batch, rng).reshape(n, s.vote_batch, -1)
    rows = np.arange(n)
    factors[rows, :, k] = factors[rows, :1, k]
    codes = encode(grid, represent, factors.reshape(-1, grid.num_factors), s.batch)
    codes = codes.reshape(n, s.vote_batch, -1)[:, :, active]
    local = codes.var(axis=1, ddof=1) / scale[active] ** 2
    quietest = active[np.argmin(local, axis=1)]
    counts = np.zeros((grid.num_factors, len(scale)), dtype=np.int64)
    np.add.at(counts, (k, quietest), 1)
    return counts


def factor_vae_score(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``factor_vae``: the majority vote's accuracy on ``factor_vae_eval`` fresh votes;
    ``factor_vae_train``: on its ``factor_vae_train`` votes."""
    codes, _ = sample_codes(grid, represent, s.factor_vae_variance, rng, s.batch)
    scale = codes.std(axis=0, ddof=1)
    active = int((scale >= s.factor_vae_threshold).sum())
    used = {"active_units": active, "chance": 1.0 / grid.num_factors}
    if active == 0:
        return {"factor_vae": 0.0, "factor_vae_train": 0.0}, used
    train = votes(grid, represent, s.factor_vae_train, rng, s, scale)
    classifier = np.argmax(train, axis=0)  # per unit: the factor it was most voted with
    test = votes(grid, represent, s.factor_vae_eval, rng, s, scale)
    units = np.arange(train.shape[1])
    score = float(test[classifier, units].sum() / test.sum())
    return {
        "factor_vae": score,
        "factor_vae_train": float(train[classifier, units].sum() / train.sum()),
    }, used
