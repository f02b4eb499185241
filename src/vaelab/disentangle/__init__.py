"""Disentanglement metrics: how well a model's codes separate the known factors of its data.

Six scores, each as its paper and disentanglement_lib (Locatello et al. 2019) define it:

- ``beta_vae.py``: the BetaVAE score (Higgins et al. 2017);
- ``factor_vae.py``: the FactorVAE score (Kim & Mnih 2018);
- ``mig.py``: the Mutual Information Gap (Chen et al. 2018);
- ``dci.py``: DCI disentanglement, completeness, informativeness (Eastwood & Williams 2018);
- ``sap.py``: the SAP score (Kumar et al. 2018);
- ``modularity.py``: modularity and explicitness (Ridgeway & Mozer 2018);

``common.py`` holds what they share (drawing images of factors and encoding them, the
histogram discretiser, discrete mutual information), ``settings.py`` every choice
(``DisentangleSettings``), ``suite.py`` runs all six, and ``known.py`` builds a grid whose
answers are known, for tests.  This file imports only the settings (no numpy), so the
command line can read the presets without loading the metrics.
"""

from .settings import PRESETS, DisentangleSettings

__all__ = ["PRESETS", "DisentangleSettings"]
