"""Every choice the disentanglement metrics make, in one dataclass (``DisentangleSettings``).

The defaults are the ``quick`` preset: fewer samples than disentanglement_lib uses, so that
all six metrics of a convolutional model on 64x64 images run in minutes on a laptop's CPU.
``DisentangleSettings.preset("paper")`` gives disentanglement_lib's counts
(``config/unsupervised_study_v1/metric_configs/*.gin``: 10,000 training and 5,000 evaluation
points, votes of 64 images, 20 histogram bins).  Imports neither numpy nor torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config import BATCH_MAX, INT_MAX, field_problems, setting
from ..errors import VaelabError

DCI_MODELS = ("forest", "boosting")
SAP_CLASSIFIERS = ("svm", "tree")

# disentanglement_lib's sample counts (unsupervised_study_v1); "quick" is the dataclass defaults.
PAPER = {
    "beta_vae_train": 10_000,
    "beta_vae_eval": 5_000,
    "factor_vae_variance": 10_000,
    "factor_vae_train": 10_000,
    "factor_vae_eval": 5_000,
    "code_train": 10_000,
    "code_test": 5_000,
}
# A few samples of each: to check that a pipeline runs end to end, never to report.
CHECK = {
    "vote_batch": 8,
    "beta_vae_train": 20,
    "beta_vae_eval": 20,
    "factor_vae_variance": 200,
    "factor_vae_train": 20,
    "factor_vae_eval": 20,
    "code_train": 200,
    "code_test": 100,
    "dci_trees": 10,
}
PRESETS = {"quick": {}, "paper": PAPER, "check": CHECK}


@dataclass(frozen=True)
class DisentangleSettings:
    """Sample counts, classifiers and the seed of the six metrics.

    ``vote_batch``: images per BetaVAE training point (pairs) and per FactorVAE vote.
    ``code_train`` / ``code_test``: images whose codes the MIG, DCI, SAP and modularity fit
    (and, all but the MIG, score on); each metric draws its own.  ``dci_model``: the per-factor
    classifier whose feature importances make DCI's importance matrix: ``boosting`` is
    disentanglement_lib's (sklearn's GradientBoostingClassifier, 100 trees per class), too
    slow for factors of 32-40 values (docs/disentanglement.md), so the default is a random
    forest of ``dci_trees`` trees of depth ``dci_depth`` at most, which Eastwood & Williams
    (2018) themselves use.
    ``sap_classifier``: ``svm`` is disentanglement_lib's (LinearSVC, C = 0.01, balanced
    classes) on one unit; ``tree`` a decision tree on one unit, which can cut a unit into
    intervals where a linear classifier cannot."""

    vote_batch: int = setting(64, "images per BetaVAE point and FactorVAE vote", low=2, high=4096)
    beta_vae_train: int = setting(100, "BetaVAE: training points of its classifier", low=2)
    beta_vae_eval: int = setting(100, "BetaVAE: points it is scored on", low=1)
    factor_vae_variance: int = setting(
        2000, "FactorVAE: images whose codes give each unit's scale", low=2
    )
    factor_vae_train: int = setting(200, "FactorVAE: votes of its majority classifier", low=1)
    factor_vae_eval: int = setting(100, "FactorVAE: votes it is scored on", low=1)
    factor_vae_threshold: float = setting(
        0.05, "FactorVAE: units whose standard deviation is below this are left out", low=0.0
    )
    code_train: int = setting(2000, "MIG, DCI, SAP, modularity: images they fit on", low=10)
    code_test: int = setting(1000, "DCI, SAP, explicitness: held-out images they score", low=10)
    bins: int = setting(
        20, "histogram bins per unit for the mutual information", low=2, high=10_000
    )
    dci_model: str = setting("forest", "DCI's classifier per factor", choices=DCI_MODELS)
    dci_trees: int = setting(50, "trees of DCI's random forest", low=1, high=10_000)
    dci_depth: int = setting(8, "depth limit of the forest's trees", low=1, high=64)
    sap_classifier: str = setting("svm", "SAP's classifier on one unit", choices=SAP_CLASSIFIERS)
    batch: int = setting(1000, "images encoded at a time", low=1, high=BATCH_MAX)
    seed: int = setting(0, "seed of the factor draws and the classifiers", low=0, high=INT_MAX)

    def __post_init__(self) -> None:
        problems = field_problems(self)
        if self.dci_model not in DCI_MODELS:
            problems.append(f"dci_model must be one of {', '.join(DCI_MODELS)}")
        if self.sap_classifier not in SAP_CLASSIFIERS:
            problems.append(f"sap_classifier must be one of {', '.join(SAP_CLASSIFIERS)}")
        if problems:
            raise VaelabError("; ".join(problems))

    @classmethod
    def preset(cls, name: str, **over: Any) -> DisentangleSettings:
        """The ``quick`` (the defaults), ``paper`` (disentanglement_lib's counts) or ``check``
        (a few samples: pipeline checks, numbers not to report) settings, with the fields
        ``over`` on top."""
        if name not in PRESETS:
            raise VaelabError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return replace(cls(), **PRESETS[name], **over)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
