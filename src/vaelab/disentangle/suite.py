"""All six metrics on one representation: ``disentanglement(grid, represent, settings)``.

Each metric draws its own images from a generator seeded by ``(settings.seed, its index)``,
so the same settings give the same numbers and leaving a metric out changes no other.
Nothing is cached on disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from ..data.factors import FactorGrid
from .beta_vae import beta_vae_score
from .common import Represent
from .dci import dci_scores
from .factor_vae import factor_vae_score
from .mig import mig_score
from .modularity import modularity_scores
from .sap import sap_score
from .settings import DisentangleSettings

logger = logging.getLogger(__name__)

METRICS: dict[str, Callable] = {
    "beta_vae": beta_vae_score,
    "factor_vae": factor_vae_score,
    "mig": mig_score,
    "dci": dci_scores,
    "sap": sap_score,
    "modularity": modularity_scores,
}

# What each number is: what 1 and the floor mean.  Every value lies in [0, 1], higher better.
MEANINGS = {
    "beta_vae": "BetaVAE score: accuracy of telling which factor a pair batch shared from "
    "mean |code differences| (1: always; chance 1/F)",
    "beta_vae_train": "BetaVAE score on its classifier's training points",
    "factor_vae": "FactorVAE score: majority-vote accuracy of the quietest unit when one "
    "factor is fixed (1: each factor has its own unit; about 1/F: none)",
    "factor_vae_train": "FactorVAE score on its training votes",
    "mig": "mutual information gap: (top - second unit's I(unit; factor)) / H(factor), mean "
    "over factors (1: one unit per factor, alone; 0: none or duplicated)",
    "dci_disentanglement": "DCI disentanglement: each unit matters to one factor only (1) or "
    "to all alike (0), weighted by importance",
    "dci_completeness": "DCI completeness: each factor is read from one unit (1) or from all "
    "alike (0), weighted by importance",
    "dci_informativeness": "DCI informativeness: held-out accuracy of predicting each factor "
    "from all units, mean over factors (1: exact; chance: 1/size)",
    "dci_informativeness_train": "DCI informativeness on the classifiers' training images",
    "sap": "SAP: accuracy gap between the two best single units predicting a factor, mean "
    "over factors (1: one unit exact, the rest useless; 0: no unit stands out)",
    "modularity": "modularity: each unit's information is about one factor only (1) or all "
    "alike (0); a unit that knows nothing scores 0",
    "explicitness": "explicitness: held-out one-vs-rest ROC AUC of a linear classifier per "
    "factor on all units (1: linearly separable; 0.5: chance)",
    "explicitness_train": "explicitness on the classifiers' training images",
}


def disentanglement(
    grid: FactorGrid,
    represent: Represent,
    settings: DisentangleSettings | None = None,
    only: tuple[str, ...] | None = None,
) -> dict:
    """The metrics ``only`` (default all six) of ``represent`` on ``grid``: ``values`` (name:
    float in [0, 1]), ``meaning`` (name: what 1 and 0 mean), ``seconds`` (per metric, wall
    clock, encoding included), ``used`` (what each metric found on the way) and
    ``settings``."""
    s = settings or DisentangleSettings()
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    used: dict[str, dict] = {}
    for i, (name, metric) in enumerate(METRICS.items()):
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        got, used[name] = metric(grid, represent, np.random.default_rng([s.seed, i]), s)
        seconds[name] = time.perf_counter() - t0
        values |= {k: float(np.clip(v, 0.0, 1.0)) for k, v in got.items()}
        logger.info(f"{name}: {seconds[name]:.1f} s")
    meaning = {k: MEANINGS[k] for k in values}
    return {
        "values": values,
        "meaning": meaning,
        "seconds": seconds,
        "used": used,
        "settings": s.as_dict(),
    }
