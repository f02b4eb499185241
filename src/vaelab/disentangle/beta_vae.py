"""The BetaVAE score (Higgins et al. 2017, Sec. 3; disentanglement_lib ``beta_vae.py``).

One training point: pick a factor k uniformly; draw ``vote_batch`` pairs of images that share
factor k (all other factors independent); the point's features are the mean over the pairs of
|code(x1) - code(x2)|, its label k.  A linear classifier (sklearn's LogisticRegression, as
disentanglement_lib) learns k from the features; the score is its accuracy on fresh points.
1: the factor held fixed can always be read off the code differences; the floor is chance,
1 / F for F factors (the features say nothing about which factor was fixed).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from ..data.factors import FactorGrid
from .common import Represent, encode
from .settings import DisentangleSettings


def points(
    grid: FactorGrid, represent: Represent, n: int, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training points: features (n, D) and the factor held fixed (n,)."""
    k = rng.integers(0, grid.num_factors, size=n)
    first = grid.sample_factors(n * s.vote_batch, rng).reshape(n, s.vote_batch, -1)
    second = grid.sample_factors(n * s.vote_batch, rng).reshape(n, s.vote_batch, -1)
    rows = np.arange(n)
    second[rows, :, k] = first[rows, :, k]
    flat = np.concatenate([first, second], axis=1).reshape(-1, grid.num_factors)
    codes = encode(grid, represent, flat, s.batch).reshape(n, 2 * s.vote_batch, -1)
    a, b = codes[:, : s.vote_batch], codes[:, s.vote_batch :]
    return np.abs(a - b).mean(axis=1), k


def beta_vae_score(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``beta_vae``: the classifier's accuracy on ``beta_vae_eval`` fresh points;
    ``beta_vae_train``: on its ``beta_vae_train`` training points."""
    x, y = points(grid, represent, s.beta_vae_train, rng, s)
    x_eval, y_eval = points(grid, represent, s.beta_vae_eval, rng, s)
    if len(np.unique(y)) < 2:  # one factor drawn only: the classifier has nothing to tell
        train = eval_ = float(np.mean(y_eval == y[0]))
    else:
        model = LogisticRegression(max_iter=1000).fit(x, y)
        train, eval_ = float(model.score(x, y)), float(model.score(x_eval, y_eval))
    return {"beta_vae": eval_, "beta_vae_train": train}, {"chance": 1.0 / grid.num_factors}
