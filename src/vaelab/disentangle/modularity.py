"""Modularity and explicitness (Ridgeway & Mozer 2018, Sec. 3; disentanglement_lib
``modularity_explicitness.py``).

Modularity: the mutual information m(unit, factor) of discretised codes (as the MIG's); per
unit, 1 - sum over its non-largest factors of m^2 / (max m^2 (F - 1)), the deviation from an
ideal unit that knows one factor only; averaged over units, a unit that knows nothing scoring
0.  1: every unit knows one factor only (several units may know the same one); 0: every unit
knows all factors alike.
Explicitness: per factor, a logistic regression on all (standardised) units; the mean over the
factor's values of the one-vs-rest ROC AUC of its probabilities on held-out images, averaged
over factors.  1: every factor's values are linearly separable in the codes; 0.5: chance.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ..data.factors import FactorGrid
from .common import Represent, histogram_discretize, mutual_info_matrix, sample_codes
from .settings import DisentangleSettings


def modularity(mi: np.ndarray) -> float:
    """The mean over units of 1 - delta (Eq. 2 of the paper); ``mi`` is (D, F)."""
    squared = mi**2
    largest = squared.max(axis=1)
    if mi.shape[1] < 2:
        return float(np.mean(largest > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - largest) / (largest * (mi.shape[1] - 1))
    per_unit = np.where(largest > 0, 1.0 - delta, 0.0)
    return float(np.mean(per_unit))


def mean_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """The mean one-vs-rest ROC AUC over the values seen both in and out of ``y``."""
    aucs = [
        roc_auc_score(y == c, proba[:, i])
        for i, c in enumerate(classes)
        if 0 < np.sum(y == c) < len(y)
    ]
    return float(np.mean(aucs)) if aucs else 0.5


def explicitness(train, test) -> tuple[float, float]:
    """The mean over factors of the held-out and the training AUC."""
    (x, y), (x_test, y_test) = train, test
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    held_out, fitted = [], []
    for f in range(y.shape[1]):
        if len(np.unique(y[:, f])) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=1000).fit(x, y[:, f])
        held_out.append(mean_auc(y_test[:, f], model.predict_proba(x_test), model.classes_))
        fitted.append(mean_auc(y[:, f], model.predict_proba(x), model.classes_))
    return float(np.mean(held_out or [0.5])), float(np.mean(fitted or [0.5]))


def modularity_scores(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``modularity``, ``explicitness`` (held-out AUC) and ``explicitness_train``."""
    train = sample_codes(grid, represent, s.code_train, rng, s.batch)
    test = sample_codes(grid, represent, s.code_test, rng, s.batch)
    mi = mutual_info_matrix(histogram_discretize(train[0], s.bins), train[1])
    held_out, fitted = explicitness(train, test)
    values = {"modularity": modularity(mi), "explicitness": held_out, "explicitness_train": fitted}
    return values, {"mutual_information": mi.round(4).tolist()}
