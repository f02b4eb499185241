"""The SAP score (Kumar et al. 2018, Sec. 3; disentanglement_lib ``sap_score.py``, discrete
factors).

For every unit and factor a classifier predicts the factor from that unit alone (fitted on
``code_train`` images, scored on ``code_test`` others); per factor, the gap between the two
best units' accuracies, averaged over factors.  1: each factor is predicted perfectly from
one unit and at chance (0 accuracy in the limit of many values) from every other; 0: no unit
predicts any factor better than the second-best unit does.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from ..data.factors import FactorGrid
from .common import Represent, sample_codes, seed_of
from .settings import DisentangleSettings


def _classifier(kind: str, values: int, seed: int):
    if kind == "tree":  # intervals of one unit: at most twice as many leaves as values
        return DecisionTreeClassifier(max_leaf_nodes=2 * values, random_state=seed)
    return LinearSVC(C=0.01, class_weight="balanced", random_state=seed)


def score_matrix(train, test, s: DisentangleSettings, rng: np.random.Generator) -> np.ndarray:
    """Held-out accuracy (D, F) of each unit alone predicting each factor."""
    (x, y), (x_test, y_test) = train, test
    out = np.zeros((x.shape[1], y.shape[1]))
    for f in range(y.shape[1]):
        values = len(np.unique(y[:, f]))
        for d in range(x.shape[1]):
            if values < 2:
                out[d, f] = float(np.mean(y_test[:, f] == y[0, f]))
                continue
            model = _classifier(s.sap_classifier, values, seed_of(rng))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[:, d : d + 1], y[:, f])
            out[d, f] = model.score(x_test[:, d : d + 1], y_test[:, f])
    return out


def sap_score(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``sap``: the mean over factors of the top-two accuracy gap; what it used: the matrix."""
    train = sample_codes(grid, represent, s.code_train, rng, s.batch)
    test = sample_codes(grid, represent, s.code_test, rng, s.batch)
    scores = score_matrix(train, test, s, rng)
    ordered = np.sort(scores, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(scores.shape[1])
    return {"sap": float(np.mean(ordered[0] - second))}, {"scores": scores.round(4).tolist()}
