"""unit_factor_information: which latent unit follows which factor of the data."""

from __future__ import annotations

import numpy as np
import pytest

from vaelab.analysis import discretise, unit_factor_information
from vaelab.disentangle.common import mutual_info as mutual_information
from vaelab.errors import VaelabError


def test_a_unit_equal_to_a_factor_scores_one_and_an_independent_unit_zero():
    rng = np.random.default_rng(0)
    n = 5000
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 6, n), rng.integers(0, 10, n)], 1)
    codes = np.stack(
        [
            factors[:, 2] + rng.normal(0, 0.01, n),  # follows factor 2
            rng.normal(size=n),  # follows nothing
            -3.0 * factors[:, 1] + rng.normal(0, 0.01, n),  # follows factor 1, reversed
        ],
        1,
    )
    info = unit_factor_information(codes, factors)
    assert info.shape == (3, 3)
    # each value of the factor lands in its own bin: the code determines the factor
    assert info[0, 2] == pytest.approx(1.0, abs=1e-9)
    assert info[2, 1] == pytest.approx(1.0, abs=1e-9)
    # independent: only the plug-in estimate's bias, about (20-1)(k-1)/2N nats, is left
    assert np.all(info[1] < 0.02)
    assert info[0, 0] < 0.02 and info[0, 1] < 0.02 and info[2, 0] < 0.02
    assert np.all((info >= 0) & (info <= 1 + 1e-12))


def test_a_constant_factor_scores_zero_and_bad_shapes_are_refused():
    codes = np.arange(10.0)[:, None]
    info = unit_factor_information(codes, np.zeros((10, 1), dtype=np.int64))
    assert info.tolist() == [[0.0]]
    with pytest.raises(VaelabError, match="must be"):
        unit_factor_information(codes, np.zeros((9, 1)))


def test_discretise_makes_twenty_equal_width_bins():
    bins = discretise(np.linspace(-1, 1, 200), 20)
    assert bins.min() == 0 and bins.max() == 19
    assert np.bincount(bins).tolist() == [10] * 20
    assert discretise(np.full(5, 3.0)).tolist() == [0] * 5


def test_mutual_information_is_sklearns_mutual_info_score():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 7, 500)
    b = (a + rng.integers(0, 3, 500)) % 5
    assert mutual_information(a, b) == pytest.approx(metrics.mutual_info_score(a, b), rel=1e-10)
    # I(a; a) is the entropy of a, in nats
    p = np.bincount(a) / len(a)
    assert mutual_information(a, a) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-10)
