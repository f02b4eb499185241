"""Properties of the sample-quality metrics: FD closed forms, precision/recall on known
geometries, the cached feature classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaelab import quality
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.quality import (
    DigitNet,
    digit_features,
    feature_net_path,
    frechet_distance,
    load_feature_net,
    precision_recall,
    reference_floor,
    sample_quality,
)


def exact_moments(n: int, mean: np.ndarray, var: np.ndarray, seed: int) -> np.ndarray:
    """n points whose sample mean is exactly ``mean`` and sample covariance exactly diag(var)."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # covariance -> I
    return mean + z * np.sqrt(var)


def clusters(centres: np.ndarray, per: int, seed: int) -> np.ndarray:
    """``per`` points around each centre, spread 0.1 (the centres are ~10 apart)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.1 * rng.standard_normal((per, centres.shape[1])) for c in centres])


def test_frechet_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).standard_normal((500, 20))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_matches_the_closed_form_for_diagonal_gaussians():
    # FD = |m1 - m2|^2 + sum_d (sqrt(v1_d) - sqrt(v2_d))^2 when both covariances are diagonal
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.2, 3, size=8), rng.uniform(0.2, 3, size=8)
    a, b = exact_moments(400, m1, v1, seed=2), exact_moments(300, m2, v2, seed=3)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # a common rotation makes both covariances full but leaves the distance unchanged
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert frechet_distance(a @ q, b @ q) == pytest.approx(expected, rel=1e-9)


def test_frechet_is_symmetric_and_accepts_tensors():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((300, 16))
    b = rng.standard_normal((200, 16)) @ rng.normal(size=(16, 16))
    ab = frechet_distance(torch.from_numpy(a).float(), b)
    assert ab == pytest.approx(frechet_distance(b, torch.from_numpy(a).float()), rel=1e-6)
    assert ab > 0


def test_shifting_one_set_by_d_adds_its_squared_length():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((300, 10))
    b = 2 * rng.standard_normal((400, 10))
    a, b = a - a.mean(0), b - b.mean(0)  # equal means, so the cross term 2 d.(mu_b - mu_a) is 0
    d = rng.normal(size=10)
    assert frechet_distance(a, b + d) == pytest.approx(frechet_distance(a, b) + d @ d, rel=1e-9)
    assert frechet_distance(a, a + d) == pytest.approx(d @ d, rel=1e-9)


def test_frechet_refuses_mismatched_or_too_few_rows():
    with pytest.raises(VaelabError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(VaelabError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_precision_recall_identical_sets_and_far_away_sets():
    real = np.random.default_rng(6).standard_normal((700, 8))
    assert precision_recall(real, real, batch_size=128) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0, batch_size=128) == (0.0, 0.0)


def test_precision_recall_of_a_mode_collapsed_set():
    centres = 10 * np.random.default_rng(7).standard_normal((10, 3))
    real = clusters(centres, 100, seed=8)
    fake = clusters(centres[:5], 200, seed=9)  # the same count of points, half the modes
    precision, recall = precision_recall(real, fake, k=3, batch_size=256)
    assert precision > 0.9
    assert 0.4 < recall <= 0.5


def test_chunking_does_not_change_precision_recall():
    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((300, 5)), 0.7 * rng.standard_normal((250, 5)) + 0.3
    assert precision_recall(real, fake, batch_size=1000) == precision_recall(
        real, fake, batch_size=37
    )


def test_digit_net_shapes():
    net = DigitNet()
    x = torch.rand(5, 784)
    assert net(x).shape == (5, 10)
    f = digit_features(net, x, batch_size=2)
    assert f.shape == (5, 128) and f.dtype == torch.float32
    torch.testing.assert_close(f, net.features(x).detach())


def test_feature_net_trains_once_then_loads_bit_exactly(tmp_path, tiny_splits, monkeypatch):
    path = feature_net_path(tmp_path)
    assert path == tmp_path / "classifier" / "digitnet-v1.safetensors"
    with pytest.raises(VaelabError, match="no feature classifier"):
        load_feature_net(tmp_path, train_if_missing=False)
    net = load_feature_net(tmp_path, splits=tiny_splits, epochs=1)
    assert path.exists() and not net.training
    assert net.metadata["version"] == "digitnet-v1" and net.metadata["epochs"] == "1"
    acc = float(net.metadata["test_accuracy"])
    assert acc > 0.5  # ten well-separated synthetic prototypes

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(quality, "train_digit_net", no_training)
    again = load_feature_net(tmp_path, splits=tiny_splits)
    for (name, p), q in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert again.metadata == net.metadata
    assert quality.describe_net(again) == f"digitnet-v1 (test accuracy {acc:.4f})"


def test_corrupt_feature_net_file_is_a_one_line_error(tmp_path):
    path = feature_net_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(VaelabError, match="delete it to retrain") as err:
        load_feature_net(tmp_path)
    assert "\n" not in str(err.value)


def test_sample_quality_and_floor_on_tiny_models(tiny_splits):
    torch.manual_seed(0)
    net = DigitNet().eval()  # untrained: enough for the plumbing
    model = build_model("vae", hidden=[16], latent_dim=2)
    out = sample_quality(model, tiny_splits["test"].x, n=150, net=net)
    assert set(out) >= {"fd", "precision", "recall", "n", "k", "feature_net", "reference", "what"}
    assert out["n"] == 150 and out["k"] == 3 and "not FID" in out["what"]
    assert math.isfinite(out["fd"]) and out["fd"] >= 0
    assert 0 <= out["precision"] <= 1 and 0 <= out["recall"] <= 1
    assert model.training  # the model's mode is given back
    again = sample_quality(model, tiny_splits["test"].x, n=150, net=net)
    assert again["fd"] == out["fd"]  # seeded samples
    floor = reference_floor(tiny_splits["train"].x, tiny_splits["test"].x, n=128, net=net)
    assert floor["fd"] < out["fd"]


@pytest.mark.mnist
def test_real_classifier_is_accurate_and_separates_real_from_noise():
    from vaelab.config import DataConfig
    from vaelab.data import load_splits

    net = load_feature_net()  # trained once into the user's cache, then reused
    assert float(net.metadata["test_accuracy"]) > 0.98
    splits = load_splits(DataConfig())
    test_x = splits["test"].x
    floor = reference_floor(splits["train"].x, test_x, net=net)
    noise = torch.rand(10000, 784, generator=torch.Generator().manual_seed(0))
    noise_fd = frechet_distance(digit_features(net, test_x), digit_features(net, noise))
    assert floor["fd"] < noise_fd / 50
    assert floor["precision"] > 0.6 and floor["recall"] > 0.6
