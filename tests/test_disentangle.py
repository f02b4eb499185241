"""The disentanglement metrics on representations whose answers are known.

A grid of 5 factors (4 to 10 values) whose "images" are the factor indices, and six
representations of it (``vaelab.disentangle.known``): the factors themselves, a monotone
transform per unit, a permutation of the units, a random rotation, noise, and the factors
without the last one's unit.  What must hold follows from the metrics' definitions; the
tolerances allow for the small samples that keep this file fast.  The second part repeats
disentanglement_lib's own tests (10 factors of 10 values, the identity representation, its
sample counts and bounds) and its exact values for hand-made matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaelab.disentangle import DisentangleSettings
from vaelab.disentangle.dci import completeness, disentanglement
from vaelab.disentangle.known import IndexGrid, representations
from vaelab.disentangle.modularity import modularity
from vaelab.disentangle.suite import disentanglement as run_all
from vaelab.errors import VaelabError

SIZES = (4, 5, 6, 8, 10)
SMALL = DisentangleSettings(
    vote_batch=32,
    beta_vae_train=150,
    beta_vae_eval=100,
    factor_vae_variance=500,
    factor_vae_train=150,
    factor_vae_eval=100,
    code_train=600,
    code_test=300,
    dci_trees=20,
)
CHANCE = 1 / len(SIZES)  # BetaVAE / FactorVAE: guessing the fixed factor
INFO_CHANCE = float(np.mean([1 / s for s in SIZES]))  # DCI informativeness of no information


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, float]]:
    grid = IndexGrid(SIZES)
    reps = representations(grid, seed=0)
    return {name: run_all(grid, rep, SMALL)["values"] for name, rep in reps.items()}


def test_every_value_lies_in_0_1(table):
    for name, values in table.items():
        assert len(values) == 13, name
        for key, v in values.items():
            assert 0.0 <= v <= 1.0, (name, key, v)


@pytest.mark.parametrize("name", ["perfect", "permuted", "monotone"])
def test_the_factors_themselves_score_near_the_top(table, name):
    v = table[name]
    assert v["beta_vae"] >= 0.95 and v["factor_vae"] >= 0.95
    assert v["mig"] >= 0.85  # the plug-in MI of 600 images is biased: other units know a little
    assert v["dci_disentanglement"] >= 0.9 and v["dci_completeness"] >= 0.9
    assert v["dci_informativeness"] >= 0.95
    assert v["modularity"] >= 0.95
    assert v["explicitness"] >= 0.95
    assert v["sap"] >= 0.2  # a linear SVM on one unit separates few of a factor's values


def test_a_permutation_of_units_changes_nothing(table):
    for key, v in table["perfect"].items():
        assert abs(v - table["permuted"][key]) <= 0.05, key


def test_noise_sits_at_the_floor(table):
    v = table["noise"]
    assert v["beta_vae"] <= CHANCE + 0.15 and v["factor_vae"] <= CHANCE + 0.15
    assert v["mig"] <= 0.05 and v["sap"] <= 0.05
    assert v["dci_disentanglement"] <= 0.1 and v["dci_completeness"] <= 0.1
    assert v["dci_informativeness"] <= INFO_CHANCE + 0.1
    assert abs(v["explicitness"] - 0.5) <= 0.07
    # Modularity's floor is not 0 here: the plug-in MI's bias grows with a factor's size
    # (4 to 10 values), so noise looks "modular" towards the largest factor.
    assert v["modularity"] <= table["perfect"]["modularity"] - 0.2


def test_a_rotation_mixes_the_units(table):
    p, r = table["perfect"], table["rotated"]
    for key in ("mig", "dci_disentanglement", "dci_completeness"):
        assert r[key] <= p[key] - 0.3, key
    assert r["sap"] <= p["sap"] - 0.1
    assert r["modularity"] <= p["modularity"] - 0.05
    assert r["beta_vae"] <= p["beta_vae"] - 0.03 and r["factor_vae"] <= p["factor_vae"] - 0.03
    assert r["explicitness"] >= 0.95  # a rotation keeps every factor linearly readable


def test_a_missing_factor(table):
    p, m = table["perfect"], table["missing"]
    f = len(SIZES)
    assert abs(m["mig"] - (f - 1) / f * p["mig"]) <= 0.05  # its gap is 0, the others' kept
    assert m["dci_completeness"] <= p["dci_completeness"] - 0.1
    assert m["dci_informativeness"] <= p["dci_informativeness"] - 0.1
    assert m["explicitness"] <= p["explicitness"] - 0.05
    assert m["modularity"] >= 0.95  # each remaining unit still knows one factor only
    assert m["factor_vae"] <= 1 - 0.5 / f  # its votes land on any unit
    # DCI disentanglement drops too: the classifier of the unpredictable factor spreads its
    # importance (which sums to 1) over all units.  Still far above a rotation.
    assert m["dci_disentanglement"] >= table["rotated"]["dci_disentanglement"] + 0.3


def test_the_same_seed_gives_the_same_numbers():
    grid = IndexGrid((3, 4))
    reps = representations(grid)
    settings = DisentangleSettings(**{**SMALL.as_dict(), "code_train": 200, "code_test": 100})
    first = run_all(grid, reps["rotated"], settings)["values"]
    assert run_all(grid, reps["rotated"], settings)["values"] == first


def test_settings_refuse_bad_values():
    with pytest.raises(VaelabError, match="dci_model"):
        DisentangleSettings(dci_model="lasso")
    with pytest.raises(VaelabError, match="preset"):
        DisentangleSettings.preset("huge")
    assert DisentangleSettings.preset("paper").code_train == 10_000


# --- disentanglement_lib's tests: 10 factors of 10 values, the identity representation -------

GRID10 = IndexGrid((10,) * 10)


def identity(x):
    return x.astype(np.float64)


def zeros(x):
    return np.zeros(x.shape)


def duplicated(x):
    return np.hstack([identity(x), identity(x)])


def shuffled(seed=0):
    rng = np.random.default_rng(seed)
    return lambda x: np.array([rng.permutation(row) for row in identity(x)])


def scores(rep, metric, **settings):
    s = DisentangleSettings(**settings)
    return run_all(GRID10, rep, s, only=(metric,))["values"]


def test_beta_vae_as_disentanglement_lib():
    v = scores(identity, "beta_vae", vote_batch=5, beta_vae_train=2000, beta_vae_eval=2000)
    assert 0.9 <= v["beta_vae_train"] <= 1.0 and 0.9 <= v["beta_vae"] <= 1.0


def test_factor_vae_as_disentanglement_lib():
    counts = dict(vote_batch=5, factor_vae_train=3000, factor_vae_eval=2000)
    good = scores(identity, "factor_vae", factor_vae_variance=2500, **counts)
    assert 0.9 <= good["factor_vae"] <= 1.0 and 0.9 <= good["factor_vae_train"] <= 1.0
    bad = scores(zeros, "factor_vae", factor_vae_variance=2500, **counts)
    assert bad["factor_vae"] <= 0.2


def test_mig_as_disentanglement_lib():
    assert 0.9 <= scores(identity, "mig", code_train=3000)["mig"] <= 1.0
    assert scores(zeros, "mig", code_train=3000)["mig"] <= 0.2
    assert scores(duplicated, "mig", code_train=3000)["mig"] <= 0.1


def test_dci_as_disentanglement_lib():
    counts = dict(code_train=1000, code_test=1000, dci_trees=10)
    good = scores(identity, "dci", **counts)
    assert good["dci_disentanglement"] >= 0.9 and good["dci_completeness"] >= 0.9
    bad = scores(shuffled(), "dci", **counts)
    assert bad["dci_disentanglement"] <= 0.2 and bad["dci_completeness"] <= 0.2
    twice = scores(duplicated, "dci", **counts)
    assert twice["dci_disentanglement"] >= 0.9
    assert abs(twice["dci_completeness"] - (1 - math.log(2) / math.log(10))) <= 0.1


def test_sap_of_no_or_duplicated_information():
    assert scores(zeros, "sap", code_train=500, code_test=500)["sap"] <= 0.2
    assert scores(duplicated, "sap", code_train=500, code_test=500)["sap"] <= 0.2


def test_modularity_as_disentanglement_lib():
    assert scores(identity, "modularity", code_train=3000)["modularity"] >= 0.9
    assert scores(duplicated, "modularity", code_train=3000)["modularity"] >= 0.9
    assert scores(shuffled(), "modularity", code_train=20000, code_test=100)["modularity"] <= 0.2


DIAG = np.diag(5.0 * np.ones(5))
EMPTY = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
ONE_MINUS = 1 - math.log(2) / math.log(10)


@pytest.mark.parametrize(
    "matrix, d, c, m",
    [
        (DIAG, 1.0, 1.0, 1.0),
        (EMPTY, 1.0, 1.0, 2 / 3),
        (np.zeros((10, 10)), 0.0, 0.0, 0.0),
        (np.vstack([DIAG, DIAG]), 1.0, ONE_MINUS, 1.0),
        (DIAG[:2], 1.0, 1.0, 1.0),
        (np.hstack([DIAG, DIAG]), ONE_MINUS, 1.0, 1 - 1 / 9),
    ],
    ids=["diagonal", "empty codes", "zero", "redundant codes", "missed factors", "one code two"],
)
def test_matrix_values_of_disentanglement_lib(matrix, d, c, m):
    assert disentanglement(matrix) == pytest.approx(d, abs=1e-7)
    assert completeness(matrix) == pytest.approx(c, abs=1e-7)
    assert modularity(matrix) == pytest.approx(m, abs=1e-7)
