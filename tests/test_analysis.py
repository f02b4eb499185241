"""Properties of vaelab.analysis on synthetic data; the PCA claim on real MNIST (-m mnist)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from vaelab.analysis import (
    PCA,
    active_units,
    fit_pca,
    knn_accuracy,
    latent_codes,
    linear_probe,
    pca_check,
    pca_encode,
    pca_probes,
    pca_reconstruct,
    principal_angles,
    probes,
)
from vaelab.errors import VaelabError
from vaelab.models import build_model

LINEAR_AE = {"encoder": "linear", "decoder": "linear", "likelihood": "gaussian"}


def orthonormal(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """A random orthonormal basis (n, k), float64."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))[0]


def low_rank_data(n: int, scales: list[float], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Images (n, 784) = mean + z diag(scales) B^T whose 1/N covariance is exactly B diag(s^2) B^T.

    The codes z are centred and whitened on the sample itself, so the eigenvalues are known
    exactly (not only in expectation).
    """
    g = torch.Generator().manual_seed(seed)
    k = len(scales)
    basis = orthonormal(784, k, seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(z.T @ z / n)
    z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # z^T z / n = I
    mean = torch.rand(784, generator=g, dtype=torch.float64)
    x = mean + z @ torch.diag(torch.tensor(scales, dtype=torch.float64)) @ basis.T
    return x, basis, mean


def clusters(n: int, d: int = 8, sep: float = 10.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Gaussian clusters (unit variance) around 10 centres drawn with scale ``sep``."""
    g = torch.Generator().manual_seed(seed)
    centres = sep * torch.randn(10, d, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, 10, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


class FirstColumns(nn.Module):
    """A fake model whose code is the first ``d`` pixels."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x[:, : self.d]


# --- PCA ---------------------------------------------------------------------------------------


def test_fit_pca_recovers_a_known_subspace_and_its_eigenvalues():
    scales = [3.0, 2.0, 1.5, 1.0, 0.5]
    x, basis, mean = low_rank_data(1000, scales)
    p = fit_pca(x.float(), k=5)
    assert p.components.shape == (5, 784) and p.eigenvalues.shape == (784,)
    torch.testing.assert_close(p.components @ p.components.T, torch.eye(5, dtype=torch.float64))
    assert principal_angles(p.components.T, basis).max() < 1e-3  # degrees
    # distinct eigenvalues: each component is the matching basis vector, up to sign
    torch.testing.assert_close(
        (p.components @ basis).abs(), torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0
    )
    want = torch.tensor([s**2 for s in scales], dtype=torch.float64)
    torch.testing.assert_close(p.eigenvalues[:5], want, atol=1e-4, rtol=1e-5)  # float32 data
    assert p.eigenvalues[5:].abs().max() < 1e-5
    assert torch.all(p.eigenvalues[:-1] >= p.eigenvalues[1:])
    torch.testing.assert_close(p.mean, mean, atol=1e-6, rtol=0)


def test_pca_train_mse_is_the_discarded_variance_per_pixel():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3000, 784, generator=g) * torch.linspace(0.01, 1.0, 784)  # anisotropic
    x[:, :50] += torch.randn(3000, 3, generator=g) @ torch.randn(3, 50, generator=g)
    full = fit_pca(x, 100, chunk_size=700)
    for k in (1, 20, 100):
        p = PCA(full.mean, full.components[:k], full.eigenvalues)
        mse = (pca_reconstruct(p, x) - x.double()).square().mean().item()
        assert math.isclose(mse, p.eigenvalues[k:].sum().item() / 784, rel_tol=1e-9)
        assert math.isclose(mse, p.discarded_variance(), rel_tol=1e-9)
        assert pca_encode(p, x).shape == (3000, k)


def test_fit_pca_does_not_depend_on_the_chunking():
    x = torch.rand(1000, 64, generator=torch.Generator().manual_seed(2))  # any width D works
    whole, chunked = fit_pca(x, 10, chunk_size=len(x)), fit_pca(x, 10, chunk_size=37)
    torch.testing.assert_close(whole.eigenvalues, chunked.eigenvalues)
    torch.testing.assert_close(whole.components, chunked.components)
    torch.testing.assert_close(whole.mean, chunked.mean)


def test_fit_pca_rejects_bad_k():
    x = torch.rand(50, 784)
    for k in (0, 785):
        with pytest.raises(VaelabError, match="k must be"):
            fit_pca(x, k)


# --- principal angles --------------------------------------------------------------------------


def test_principal_angles_of_a_subspace_with_itself_are_zero():
    a = torch.randn(784, 7, generator=torch.Generator().manual_seed(3))
    theta = principal_angles(a, a)
    assert theta.shape == (7,)
    assert theta.abs().max() < 1e-4


def test_principal_angles_of_orthogonal_subspaces_are_ninety():
    q = orthonormal(784, 10)
    torch.testing.assert_close(
        principal_angles(q[:, :5], q[:, 5:]), torch.full((5,), 90.0, dtype=torch.float64)
    )


def test_principal_angles_known_values_ascending():
    e = torch.eye(784, dtype=torch.float64)
    t1, t2 = math.radians(30.0), math.radians(10.0)
    a = e[:, [0, 1]]
    b = torch.stack(
        [
            math.cos(t1) * e[:, 0] + math.sin(t1) * e[:, 2],
            math.cos(t2) * e[:, 1] + math.sin(t2) * e[:, 3],
        ],
        dim=1,
    )
    torch.testing.assert_close(
        principal_angles(a, b), torch.tensor([10.0, 30.0], dtype=torch.float64)
    )


def test_principal_angles_are_invariant_to_mixing_the_columns():
    """The AE learns the principal subspace, not the components: any invertible mix is equal."""
    g = torch.Generator().manual_seed(4)
    a = torch.randn(784, 6, generator=g, dtype=torch.float64)
    b = torch.randn(784, 6, generator=g, dtype=torch.float64)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64) + 3 * torch.eye(6)
    torch.testing.assert_close(principal_angles(a @ mix, b), principal_angles(a, b))
    assert principal_angles(a @ mix, a).max() < 1e-4


def test_principal_angles_reject_rank_deficient_bases():
    a = torch.randn(784, 3)
    with pytest.raises(VaelabError, match="rank-deficient"):
        principal_angles(torch.cat([a, a[:, :1]], dim=1), a)


# --- pca_check ---------------------------------------------------------------------------------


def pca_solution(model: nn.Module, p: PCA) -> nn.Module:
    """Set a linear AE to the PCA solution: encode z = C (x - m), decode x = C^T z + m."""
    c, m = p.components.float(), p.mean.float()
    with torch.no_grad():
        model.encoder.weight.copy_(c)
        model.encoder.bias.copy_(-(c @ m))
        model.decoder.weight.copy_(c.T)
        model.decoder.bias.copy_(m)
    return model


def test_pca_check_of_the_pca_solution_and_its_keys(tiny_splits):
    model = build_model("ae", latent_dim=4, **LINEAR_AE)
    model = pca_solution(model, fit_pca(tiny_splits["train"].x, 4))
    r = pca_check(model, tiny_splits)
    assert r["k"] == r["latent_dim"] == 4
    assert r["train_images"] == 512 and r["test_images"] == 128
    assert r["discarded_rel_diff"] < 1e-9
    assert math.isclose(r["pca_train_mse"], r["discarded_variance"], rel_tol=1e-9)
    assert abs(r["train_mse_ratio"] - 1) < 1e-4 and abs(r["test_mse_ratio"] - 1) < 1e-4
    assert len(r["angles_deg"]) == 4 and r["max_angle_deg"] < 0.1
    assert r["angles_deg"] == sorted(r["angles_deg"])
    assert 0 < r["explained_variance"] < 1
    assert r["verdict"].startswith("AE train MSE")
    assert "reaches the top-k principal subspace" in r["verdict"]


def test_pca_check_of_an_untrained_ae_is_worse_than_pca(tiny_splits):
    torch.manual_seed(0)
    model = build_model("ae", latent_dim=4, **LINEAR_AE)
    r = pca_check(model, tiny_splits)
    assert r["train_mse_ratio"] > 1.02  # PCA is the best rank-k affine reconstruction
    assert "does not reach the top-k principal subspace" in r["verdict"]


def test_pca_check_needs_a_linear_decoder_for_angles(tiny_splits):
    model = build_model("vae", latent_dim=3, hidden=[16])
    with pytest.raises(VaelabError, match="linear decoder"):
        pca_check(model, tiny_splits)
    r = pca_check(model, tiny_splits, angles=False)
    assert r["angles_deg"] is None and r["max_angle_deg"] is None
    assert r["ae_train_mse"] > 0 and r["pca_train_mse"] > 0
    assert r["verdict"].startswith("VAE train MSE") and "angles not computed" in r["verdict"]


# --- probes ------------------------------------------------------------------------------------


def test_probes_separate_well_separated_clusters():
    z_tr, y_tr = clusters(2000, seed=1)
    z_te, y_te = clusters(1000, seed=2)
    assert linear_probe(z_tr, y_tr, z_te, y_te) > 0.99
    assert knn_accuracy(z_tr, y_tr, z_te, y_te, k=5) > 0.99


def test_probes_on_random_labels_are_at_chance():
    g = torch.Generator().manual_seed(5)
    z_tr, z_te = torch.randn(3000, 8, generator=g), torch.randn(3000, 8, generator=g)
    y_tr, y_te = (
        torch.randint(0, 10, (3000,), generator=g),
        torch.randint(0, 10, (3000,), generator=g),
    )
    assert abs(linear_probe(z_tr, y_tr, z_te, y_te) - 0.1) < 0.03  # 5 standard errors
    assert abs(knn_accuracy(z_tr, y_tr, z_te, y_te, k=5) - 0.1) < 0.03


def test_knn_ties_go_to_the_nearest_and_chunks_do_not_matter():
    z_tr, y_tr = torch.tensor([[0.0], [1.0]]), torch.tensor([3, 7])
    z_te = torch.tensor([[0.1], [0.9]])
    assert knn_accuracy(z_tr, y_tr, z_te, torch.tensor([3, 7]), k=2) == 1.0
    z_tr, y_tr = clusters(500, sep=1.0, seed=6)
    z_te, y_te = clusters(333, sep=1.0, seed=7)
    one = knn_accuracy(z_tr, y_tr, z_te, y_te, k=7, batch_size=1000)
    assert one == knn_accuracy(z_tr, y_tr, z_te, y_te, k=7, batch_size=50)


def test_probes_and_pca_probes_report_accuracies(tiny_splits):
    model = build_model("vae", latent_dim=3, hidden=[16])
    model.train()
    r = probes(model, tiny_splits, knn_k=3)
    assert model.training  # the mode is restored
    assert r["k"] == 3 and r["features"] == "latent means (D=3)" and r["train_images"] == 512
    assert 0 <= r["linear_probe_acc"] <= 1 and 0 <= r["knn_acc"] <= 1
    base = pca_probes(tiny_splits, k=5)
    assert base["features"] == "PCA codes (k=5)"
    # 10 noisy prototypes: PCA codes separate them
    assert base["linear_probe_acc"] > 0.95 and base["knn_acc"] > 0.95


# --- active units ------------------------------------------------------------------------------


def test_active_units_counts_the_units_that_carry_variance():
    x = torch.randn(600, 784, generator=torch.Generator().manual_seed(8))
    x[:, 1] = 0.7  # constant: inactive
    x[:, 3] = -2.0  # constant: inactive
    x[:, 4] *= 0.07  # variance ~0.005 < 0.01: inactive
    r = active_units(FirstColumns(6), x)
    assert r["active_units"] == 3 and r["latent_dim"] == 6 and r["threshold"] == 0.01
    assert len(r["variances"]) == 6 and r["variances"][1] == r["variances"][3] == 0.0
    assert active_units(FirstColumns(6), x, threshold=1e-3)["active_units"] == 4


def test_latent_codes_are_batched_means_without_grad():
    model = build_model("vae", latent_dim=2, hidden=[8])
    x = torch.rand(25, 784)
    z = latent_codes(model, x, batch_size=7)
    assert z.shape == (25, 2) and not z.requires_grad
    torch.testing.assert_close(z, model.encode(x).mean.detach())


# --- the PROTOCOL claim on real MNIST ----------------------------------------------------------


@contextmanager
def threads(n: int):
    """A tiny linear model gains nothing from threads, and on a busy machine they thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.mnist
def test_linear_ae_reaches_the_pca_subspace_on_mnist(tmp_path):
    """Baldi & Hornik (1989): a linear AE on squared error finds the top-k principal subspace.

    10,000 training images, D = 16 (eigengap lambda_16 / lambda_17 ~ 1.2), Adam lr 1e-2 with a
    cosine schedule over 50 epochs of batches of 128 (~10-15 s on one CPU thread).  Measured over
    seeds 0, 3, 4, 5: train MSE ratio 1.0000, largest angle 0.47-0.55 degrees.  Fewer steps are
    fragile (30 epochs: up to 7.5 degrees); lr 1e-3 for 10 epochs leaves an angle near 90.
    """
    from vaelab.config import DataConfig
    from vaelab.data import load_splits
    from vaelab.runs import load_run
    from vaelab.train import TrainConfig, train

    data = DataConfig(train_limit=10_000)
    splits = load_splits(data)
    settings = TrainConfig(epochs=50, batch_size=128, lr=1e-2, lr_schedule="cosine", device="cpu")
    with threads(1):
        train(
            tmp_path / "linear-ae",
            "ae",
            dict(latent_dim=16, **LINEAR_AE),
            settings,
            data,
            progress=False,
        )
        model = load_run(tmp_path / "linear-ae", which="last")
        r = pca_check(model, splits)
    print(r["verdict"], r["angles_deg"])
    assert r["discarded_rel_diff"] < 1e-9
    assert r["train_mse_ratio"] < 1.02
    assert r["test_mse_ratio"] < 1.02
    assert r["max_angle_deg"] < 10.0


def test_probes_of_a_binarized_run_fit_on_binarized_images(tiny_splits):
    from vaelab.config import DataConfig
    from vaelab.evaluate import probe_splits

    same = probe_splits(tiny_splits, DataConfig())
    assert same["train"] is tiny_splits["train"]
    fit_on = probe_splits(tiny_splits, DataConfig(binarize="dynamic"))
    assert set(fit_on["train"].x.unique().tolist()) == {0.0, 1.0}  # like the binarized test set
    assert torch.equal(fit_on["train"].y, tiny_splits["train"].y)
    assert abs(fit_on["train"].x.mean() - tiny_splits["train"].x.mean()) < 0.01
    assert fit_on["test"] is tiny_splits["test"]


def test_pca_of_fewer_rows_than_columns_matches_the_covariance_route():
    import torch

    from vaelab import analysis

    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 8, generator=g) @ torch.rand(8, 300, generator=g)  # rank 8, N < D
    x += 0.01 * torch.rand(40, 300, generator=g)
    fast = analysis.fit_pca(x, 5)  # the Gram route
    mean = x.double().mean(0)
    cov = (x.double() - mean).T @ (x.double() - mean) / len(x)
    evals = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0)
    assert fast.eigenvalues.shape == (300,)
    assert torch.allclose(fast.eigenvalues, evals, atol=1e-10)
    top = torch.linalg.eigh(cov).eigenvectors.flip(1)[:, :5].T
    # the same subspace and, once signs are fixed, the same components
    assert torch.allclose(fast.components @ fast.components.T, torch.eye(5, dtype=torch.float64),
                          atol=1e-9)  # fmt: skip
    assert torch.allclose((fast.components @ top.T).abs(), torch.eye(5, dtype=torch.float64),
                          atol=1e-6)  # fmt: skip
    assert fast.discarded_variance() == pytest.approx(evals[5:].sum().item() / 300, rel=1e-9)
