"""The MMD estimator (vaelab.mmd) and the two MMD auto-encoders: InfoVAE / MMD-VAE (Zhao et
al.) and WAE-MMD (Tolstikhin et al.).  The estimator is checked against its expectation
(about 0 for one distribution), the exact V - U identity, positive semi-definite Gram
matrices and a closed form between Gaussians; the models' losses against their formulas
recomputed by hand; then tiny runs go through every command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run, tiny_run

import vaelab
from vaelab.mmd import KERNELS, gram, kernel_scale, mmd2
from vaelab.models import build_model
from vaelab.models.abilities import HasBound, LatentPictures, Samples


def normal(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- the estimator ------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_u_statistic_is_about_zero_for_one_distribution_and_can_be_negative(kernel):
    # 200 pairs of samples (n = 30, d = 3) from N(0, I): the U-statistic's mean is MMD^2 = 0
    values = torch.stack(
        [mmd2(normal(30, 3, 2 * i), normal(30, 3, 2 * i + 1), kernel) for i in range(200)]
    )
    sem = values.std() / 200**0.5
    assert abs(values.mean()) < 4 * sem
    assert (values < 0).any() and (values > 0).any()
    # the V-statistic is positive and biased upwards on the same samples
    v = torch.stack(
        [mmd2(normal(30, 3, 2 * i), normal(30, 3, 2 * i + 1), kernel, estimator="biased")
         for i in range(200)]
    )  # fmt: skip
    assert (v > 0).all() and v.mean() > values.mean() + 10 * sem


@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd_grows_monotonically_with_a_mean_shift(kernel):
    x, y = normal(400, 4, 0), normal(400, 4, 1)
    e1 = torch.zeros(4, dtype=torch.float64)
    e1[0] = 1
    values = [mmd2(x, y + t * e1, kernel).item() for t in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values
    assert abs(values[0]) < 0.05 * values[-1]


def bias_formula(x, y, kernel, scale):
    """(D_X - O_X) / n + (D_Y - O_Y) / m: the diagonal's mean minus the off-diagonal's mean
    of each sample's Gram matrix, over its size (the vaelab.mmd docstring)."""
    out = 0.0
    for s in (x, y):
        k = gram(s, s, kernel, scale)
        n = len(s)
        diag = k.diagonal().mean()
        off = (k.sum() - k.diagonal().sum()) / (n * (n - 1))
        out = out + (diag - off) / n
    return out


@pytest.mark.parametrize("kernel", KERNELS)
def test_v_minus_u_is_the_stated_bias_exactly(kernel):
    x, y = normal(7, 3, 0) + 0.5, normal(11, 3, 1) * 1.5  # samples of unequal size
    c = kernel_scale(3)
    v = mmd2(x, y, kernel, c, "biased")
    u = mmd2(x, y, kernel, c, "unbiased")
    torch.testing.assert_close(v - u, bias_formula(x, y, kernel, c), rtol=1e-12, atol=1e-14)
    # translation-invariant kernels: D = k(a, a) = 1 (rbf) or 7 (imq, seven scales)
    assert torch.allclose(gram(x, x, kernel, c).diagonal(), torch.tensor(1.0 if kernel ==
                          "rbf" else 7.0, dtype=torch.float64))  # fmt: skip


@pytest.mark.parametrize("kernel", KERNELS)
def test_both_kernels_give_positive_semi_definite_gram_matrices(kernel):
    z = torch.cat([normal(60, 3, 0), normal(20, 3, 1) * 5, normal(5, 3, 2)[:1].repeat(4, 1)])
    for scale in (0.1, kernel_scale(3), 100.0):
        k = gram(z, z, kernel, scale)
        torch.testing.assert_close(k, k.T, rtol=0, atol=0)
        eig = torch.linalg.eigvalsh(k)
        assert eig.min() > -1e-10 * eig.max(), (scale, eig.min())


def rbf_mmd2_gaussians(mu1, var1, mu2, var2, scale):
    """Closed form of MMD^2 under k(a, b) = exp(-||a - b||^2 / C) between N(mu1, var1 I) and
    N(mu2, var2 I): a - b ~ N(m_a - m_b, (v_a + v_b) I), and per coordinate
    E exp(-u^2 / C) = sqrt(C / (C + 2 v)) exp(-m^2 / (C + 2 v)) for u ~ N(m, v)."""
    d = len(mu1)

    def ek(ma, va, mb, vb):
        w = scale + 2 * (va + vb)
        return (scale / w) ** (d / 2) * torch.exp(-(ma - mb).square().sum() / w)

    return ek(mu1, var1, mu1, var1) + ek(mu2, var2, mu2, var2) - 2 * ek(mu1, var1, mu2, var2)


@pytest.mark.parametrize("shift,var2", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (0.0, 2.0), (1.5, 0.5)])
def test_the_rbf_estimate_matches_the_closed_form_between_gaussians(shift, var2):
    d, n, repeats = 3, 800, 10
    c = kernel_scale(d)
    mu2 = torch.full((d,), shift, dtype=torch.float64) / d**0.5
    exact = rbf_mmd2_gaussians(torch.zeros(d, dtype=torch.float64), 1.0, mu2, var2, c)
    est = torch.stack(
        [mmd2(normal(n, d, 2 * i), mu2 + var2**0.5 * normal(n, d, 2 * i + 1), "rbf", c)
         for i in range(repeats)]
    )  # fmt: skip
    # unbiased: the mean of the repeats lies within 4 standard errors of the exact value
    sem = est.std() / repeats**0.5
    assert abs(est.mean() - exact) < 4 * sem + 1e-4, (est.mean().item(), exact.item())
    if shift or var2 != 1:
        assert exact > 10 * sem  # a real difference, resolved


# --- InfoVAE ------------------------------------------------------------------------------


def test_infovae_with_alpha_0_and_lambda_1_is_the_vae_exactly():
    torch.manual_seed(0)
    vae = build_model("vae", hidden=[16], latent_dim=3)
    info = build_model("infovae", hidden=[16], latent_dim=3, alpha=0.0, lambd=1.0)
    info.load_state_dict(vae.state_dict())
    x = torch.bernoulli(torch.rand(8, 784, generator=torch.Generator().manual_seed(1)))
    for kl_weight in (1.0, 0.3):
        torch.manual_seed(2)
        a = vae.loss(x, kl_weight=kl_weight)
        torch.manual_seed(2)
        b = info.loss(x, kl_weight=kl_weight)
        for key in ("loss", "recon", "kl", "neg_elbo"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert isinstance(info, HasBound)
    torch.manual_seed(3)
    lw = info.log_importance_weights(x, 4)
    torch.manual_seed(3)
    torch.testing.assert_close(lw, vae.log_importance_weights(x, 4), rtol=0, atol=0)


@pytest.mark.parametrize("kernel,estimator", [("rbf", "unbiased"), ("imq", "biased")])
def test_the_mmd_vae_loss_is_recon_plus_lambda_mmd(kernel, estimator):
    model = build_model(
        "infovae", hidden=[16], latent_dim=3, lambd=7.0, kernel=kernel, estimator=estimator
    )
    x = torch.rand(10, 784)
    torch.manual_seed(0)
    t = model.terms(x)
    torch.testing.assert_close(t["loss"], t["recon"] + 7.0 * t["mmd"], rtol=0, atol=0)
    assert torch.equal(t["mmd"], t["mmd"][:1].expand(10))  # one batch value per image
    # the MMD term is MMD^2 between the z ~ q(z|x) of the reconstruction and N(0, I) draws
    torch.manual_seed(0)
    z = model.encode(x).rsample()
    prior = torch.randn(10, 3)
    torch.testing.assert_close(t["mmd"][0], mmd2(z, prior, kernel, 6.0, estimator))
    # alpha between 0 and 1 weighs the KL by 1 - alpha and the MMD by alpha + lambda - 1
    mixed = build_model("infovae", hidden=[16], latent_dim=3, alpha=0.25, lambd=2.0)
    torch.manual_seed(0)
    t = mixed.terms(x, kl_weight=0.5)
    torch.testing.assert_close(t["loss"], t["recon"] + 0.75 * 0.5 * t["kl"] + 1.25 * t["mmd"])


def test_infovae_refuses_settings_that_are_not_its_objective():
    from vaelab.errors import VaelabError

    with pytest.raises(VaelabError, match="alpha \\+ lambd - 1 must be >= 0"):
        build_model("infovae", alpha=0.0, lambd=0.5)
    with pytest.raises(VaelabError, match="k = 1"):
        build_model("infovae", k=5)


# --- WAE ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli"])
def test_the_wae_loss_is_cost_plus_lambda_mmd(lik):
    model = build_model("wae", hidden=[16], latent_dim=4, likelihood=lik, prior_scale=2.0)
    x = torch.rand(12, 784)
    torch.manual_seed(0)
    t = model.terms(x)
    torch.testing.assert_close(t["loss"], t["recon"] + 10.0 * t["mmd"], rtol=0, atol=0)
    out = model.decoder(model.encoder(x))
    if lik == "gaussian":  # the paper's cost: squared error summed over pixels
        torch.testing.assert_close(t["recon"], (x - out).square().sum(-1))
    else:  # BCE on logits
        bce = torch.nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none")
        torch.testing.assert_close(t["recon"], bce.sum(-1))
    # the IMQ MMD^2 with C = 2 d sigma_z^2 to N(0, sigma_z^2 I) draws (Tolstikhin et al.)
    torch.manual_seed(0)
    prior = 2.0 * torch.randn(12, 4)
    expected = mmd2(model.encoder(x), prior, "imq", 2 * 4 * 4.0, "unbiased")
    torch.testing.assert_close(t["mmd"][0], expected)


def test_the_wae_has_no_bound_and_samples_its_prior():
    model = build_model("wae", hidden=[16], latent_dim=3, prior_scale=0.5)
    assert isinstance(model, Samples) and isinstance(model, LatentPictures)
    assert not isinstance(model, HasBound)
    z = model.sample_codes(20000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.zeros(3), rtol=0, atol=0.02)
    torch.testing.assert_close(z.std(0), torch.full((3,), 0.5), rtol=0, atol=0.01)
    assert torch.equal(z, model.sample_codes(20000, torch.Generator().manual_seed(0)))
    assert model.sample(4).shape == (4, 784)
    z1, _, how = model.latent_grid(5)
    assert abs(z1[-1] - 0.5 * 1.6449) < 1e-3 and "sigma_z" in how  # Φ⁻¹(0.95) sigma_z


# --- every command ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["infovae", "wae"])
def test_tiny_runs_go_through_every_command(name, tmp_path, tiny_splits, capsys):
    from vaelab.evaluate import evaluate_run
    from vaelab.plots import all_figures
    from vaelab.report import write_report
    from vaelab.runs import Run

    out = tiny_run(tmp_path / name, tiny_splits, name, lambd=10.0) if name == "infovae" else (
        tiny_run(tmp_path / name, tiny_splits, name))  # fmt: skip
    rows = Run.load(out).metrics()
    assert "val_mmd" in rows[-1] and np.isfinite(rows[-1]["val_mmd"])

    r = evaluate_run(out, progress=False)
    assert np.isfinite(r["recon"]) and np.isfinite(r["diagnostics"]["mmd_1k"])
    assert "val_mmd_1k" in rows[-1]
    assert r["has_elbo"] == (name == "infovae")
    capsys.readouterr()  # the training log so far
    code, stdout, err = run(capsys, "evaluate", out, "--nll-samples", 5, "--json")
    if name == "infovae":
        assert code == 0, err
        result = json.loads(stdout)  # grayscale pixels: the bound is a loss, not an NLL
        assert result["importance_sampled_loss"] <= result["neg_elbo"] + 1e-3
    else:
        assert code == 1 and err.count("\n") == 1 and "needs a bound on log p(x)" in err
    names = {p.name for p in all_figures(out)}
    assert {"reconstructions.png", "samples.png", "latents.png", "curves.png"} <= names
    assert write_report(out).exists()
    code, _, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0, err
    assert np.load(tmp_path / "z.npz")["z"].shape == (len(tiny_splits["test"]), 2)
    for cmd in ("sample", "reconstruct"):
        code, _, err = run(capsys, cmd, out, "-o", tmp_path / f"{cmd}.png")
        assert code == 0, err
    code, stdout, err = run(capsys, "compare", out)
    assert code == 0 and name.upper() in stdout, err
    code, stdout, err = run(capsys, "explore", out)
    assert code == 0, err
    assert (out / "explorer.html").exists()
    code, _, err = run(capsys, "export", out, tmp_path / "e")
    assert code == 0, err
    loaded, trained = vaelab.from_pretrained(tmp_path / "e"), vaelab.load_run(out)
    x = torch.rand(5, 784)
    torch.testing.assert_close(loaded.code(x), trained.code(x), rtol=0, atol=0)
