"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018, Sec. 3;
disentanglement_lib ``dci.py``).

One classifier per factor predicts it from all units; its feature importances (each
classifier's sum to 1) make the importance matrix R (D units x F factors).
Disentanglement: per unit, 1 - the entropy (base F) of its row, weighted by the unit's share
of all importance: 1 when each unit matters to one factor only, 0 when every unit matters to
all factors alike.  Completeness: per factor, 1 - the entropy (base D) of its column, weighted
by the factor's share: 1 when each factor is read from one unit, 0 when from all alike.
Informativeness: the classifiers' mean accuracy on held-out images (disentanglement_lib's
convention; the paper's error is 1 - it): 1 when every factor is predicted exactly, chance
(1 / a factor's size) when the codes tell nothing.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from ..data.factors import FactorGrid
from .common import Represent, normalized_entropy, sample_codes, seed_of
from .settings import DisentangleSettings


def disentanglement(importance: np.ndarray) -> float:
    """Eq. 2: the importance-weighted mean of 1 - H_F(row) over units; R is (D, F)."""
    per_unit = 1.0 - normalized_entropy(importance, axis=1)
    total = importance.sum()
    weight = importance.sum(axis=1) / total if total > 0 else np.full(len(importance), 1.0)
    return float(np.sum(per_unit * weight))


def completeness(importance: np.ndarray) -> float:
    """Eq. 3: the importance-weighted mean of 1 - H_D(column) over factors."""
    per_factor = 1.0 - normalized_entropy(importance, axis=0)
    total = importance.sum()
    weight = importance.sum(axis=0) / total if total > 0 else np.full(importance.shape[1], 1.0)
    return float(np.sum(per_factor * weight))


def _classifier(s: DisentangleSettings, seed: int):
    if s.dci_model == "boosting":
        return GradientBoostingClassifier(random_state=seed)
    # every unit considered at every split (sklearn's default of sqrt(D) random units would
    # split on units a factor does not depend on, spreading importance that is not there)
    return RandomForestClassifier(
        n_estimators=s.dci_trees,
        max_depth=s.dci_depth,
        max_features=None,
        random_state=seed,
        n_jobs=1,
    )


def importance_matrix(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], s, rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R (D, F) and each factor's accuracy on the training and the held-out images."""
    (x, y), (x_test, y_test) = train, test
    importance = np.zeros((x.shape[1], y.shape[1]))
    acc_train, acc_test = np.zeros(y.shape[1]), np.zeros(y.shape[1])
    for f in range(y.shape[1]):
        if len(np.unique(y[:, f])) < 2:  # a factor seen with one value has nothing to learn
            acc_train[f] = acc_test[f] = float(np.mean(y_test[:, f] == y[0, f]))
            continue
        model = _classifier(s, seed_of(rng)).fit(x, y[:, f])
        importance[:, f] = np.abs(model.feature_importances_)
        acc_train[f] = model.score(x, y[:, f])
        acc_test[f] = model.score(x_test, y_test[:, f])
    return importance, acc_train, acc_test


def dci_scores(
    grid: FactorGrid, represent: Represent, rng: np.random.Generator, s: DisentangleSettings
) -> tuple[dict[str, float], dict]:
    """``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (held-out
    accuracy) and ``dci_informativeness_train``; what it used: R."""
    train = sample_codes(grid, represent, s.code_train, rng, s.batch)
    test = sample_codes(grid, represent, s.code_test, rng, s.batch)
    importance, acc_train, acc_test = importance_matrix(train, test, s, rng)
    values = {
        "dci_disentanglement": disentanglement(importance),
        "dci_completeness": completeness(importance),
        "dci_informativeness": float(acc_test.mean()),
        "dci_informativeness_train": float(acc_train.mean()),
    }
    return values, {"importance": importance.round(4).tolist()}
