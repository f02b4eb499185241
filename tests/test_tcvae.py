"""beta-TCVAE (Chen et al. 2018): the decomposition of the KL term adds up, the minibatch
estimators of q(z) find the total correlation of a known Gaussian, the stratified weights are
the paper's, the ELBO's weights give the VAE back, and a run goes through every command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import run, tiny_run

import vaelab
from vaelab.distributions import Normal
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.models.tcvae import (
    aggregate_log_densities,
    log_density_matrix,
    mss_log_weights,
    mws_log_weights,
)


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, 784, generator=g) * 0.6, generator=g)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_three_terms_add_up_to_log_q_minus_log_p_and_average_to_the_kl(estimator):
    torch.manual_seed(0)
    model = build_model("tcvae", hidden=[32], latent_dim=4, estimator=estimator).eval()
    model.dataset_size.fill_(1000)
    x = images(8)
    with torch.no_grad():
        torch.manual_seed(1)
        t = model.terms(x)
        torch.manual_seed(1)
        q = model.encode(x)
        z = q.rsample()  # the draw terms made
        exact = q.log_prob(z) - model.log_prior(z)
        # per image, at the same z: the aggregate terms cancel
        torch.testing.assert_close(t["mi"] + t["tc"] + t["dim_kl"], exact, rtol=0, atol=1e-5)
        # over many draws the sum averages to the closed-form KL (within 4 standard errors)
        draws = torch.stack([sum(model.decomposed(q, q.rsample()).values()) for _ in range(2000)])
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert ((mean - t["kl"]).abs() < 4 * se + 1e-3).all(), (mean, t["kl"], se)
    # so with alpha = beta = gamma = 1 the loss is the negative ELBO in expectation too
    torch.testing.assert_close(t["neg_elbo"], t["recon"] + t["kl"], rtol=0, atol=0)


def tc_closed(sigma: torch.Tensor) -> float:
    """Total correlation of N(0, Sigma): 0.5 * (sum_j log Sigma_jj - log det Sigma), nats."""
    return 0.5 * (sigma.diagonal().log().sum() - torch.logdet(sigma)).item()


def tc_estimates(sigma: torch.Tensor, batches=(64, 256, 1024, 2048), eps=0.1, n=1 << 16):
    """A data set of n posteriors q(z|n) = N(mu_n, eps^2 I), mu_n ~ N(0, Sigma): its aggregate
    q(z) is N(0, Sigma + eps^2 I) as n grows.  The mean TC estimate over batches of each size
    (two batches each), per estimator."""
    g = torch.Generator().manual_seed(0)
    d = len(sigma)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(sigma).T
    out = {"mws": [], "mss": []}
    for m in batches:
        sums = dict.fromkeys(out, 0.0)
        for _ in range(2):
            idx = torch.randperm(n, generator=g)[:m]
            q = Normal(mu[idx], torch.full((m, d), math.log(eps), dtype=torch.float64))
            z = q.mean + eps * torch.randn(m, d, generator=g, dtype=torch.float64)
            log_q = log_density_matrix(q, z)  # (m, m, d)
            for name, weights in (("mws", mws_log_weights), ("mss", mss_log_weights)):
                log_qz, log_marginals = aggregate_log_densities(log_q, weights(m, n))
                sums[name] += (log_qz - log_marginals).mean().item() / 2
        for name in out:
            out[name].append(sums[name])
    return out


@pytest.mark.parametrize("rho", [0.8, 0.0])
def test_the_tc_estimators_approach_the_gaussian_total_correlation(rho):
    sigma = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    aggregate = sigma + 0.01 * torch.eye(2, dtype=torch.float64)  # eps = 0.1
    truth = tc_closed(aggregate)
    assert abs(truth - tc_closed(sigma)) < 0.02  # the narrow posteriors barely blur Sigma
    for name, values in tc_estimates(sigma).items():
        errors = [abs(v - truth) for v in values]
        assert errors == sorted(errors, reverse=True), (name, values, truth)  # shrinking in M
        assert errors[-1] < 0.08, (name, values, truth)  # at M = 2048
    if rho:
        assert truth > 0.45  # 0.5 * -log(1 - rho^2) = 0.51 nats
    else:
        assert truth == 0.0


def test_the_paper_s_mws_weights_shift_the_terms_by_constants():
    """1/(N M) instead of 1/M: log q(z) and each log q(z_j) lower by log N exactly."""
    torch.manual_seed(0)
    q = Normal(torch.randn(5, 3), torch.randn(5, 3) * 0.3)
    log_q = log_density_matrix(q, q.rsample())
    ours = aggregate_log_densities(log_q, mws_log_weights(5, 100))
    paper = aggregate_log_densities(log_q, torch.full((5, 5), -math.log(100 * 5)))
    torch.testing.assert_close(paper[0], ours[0] - math.log(100))
    torch.testing.assert_close(paper[1], ours[1] - 3 * math.log(100))


def test_the_density_matrix_is_each_posterior_at_each_draw():
    torch.manual_seed(0)
    q = Normal(torch.randn(4, 3), torch.randn(4, 3) * 0.3)
    z = q.rsample()
    log_q = log_density_matrix(q, z)
    for i in range(4):
        for j in range(4):
            one = Normal(q.mean[j], q.log_scale[j])
            torch.testing.assert_close(log_q[i, j].sum(), one.log_prob(z[i]))


def test_mss_weights_are_the_stratified_weights_of_appendix_c2():
    # B = 4 images, N = 10: M = 3 others; own 1/N, the next (N - M)/(N M) = 7/30, others 1/M
    w = mss_log_weights(4, 10).exp()
    a, s, o = 1 / 10, 7 / 30, 1 / 3
    hand = torch.tensor(
        [[a, s, o, o], [o, a, s, o], [o, o, a, s], [s, o, o, a]], dtype=torch.float64
    )
    torch.testing.assert_close(w, hand, rtol=1e-12, atol=0)
    torch.testing.assert_close(w.sum(1), torch.ones(4, dtype=torch.float64))
    for b, n in [(2, 2), (5, 5), (128, 60_000)]:  # each row sums to one
        torch.testing.assert_close(
            mss_log_weights(b, n).exp().sum(1), torch.ones(b, dtype=torch.float64)
        )
    assert mss_log_weights(1, 50).exp().item() == pytest.approx(1 / 50)
    # unbiased for q(z) = (1/N) sum_n q(z|n): with every other image in a stratum of its own
    # (N = B), the weights are 1/N on the own posterior and (N - 1)/N spread over the others
    torch.testing.assert_close(mss_log_weights(3, 3).exp()[0, 0], torch.tensor(1 / 3).double())


@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_with_unit_weights_the_loss_is_the_vae_s_exactly(kl_weight, estimator):
    torch.manual_seed(0)
    vae = build_model("vae", hidden=[32], latent_dim=4)
    torch.manual_seed(0)
    tc = build_model("tcvae", hidden=[32], latent_dim=4, beta=1.0, estimator=estimator)
    x = images(16)
    torch.manual_seed(3)
    a = vae.terms(x, kl_weight=kl_weight)
    torch.manual_seed(3)
    b = tc.terms(x, kl_weight=kl_weight)
    for key in ("loss", "recon", "kl", "neg_elbo"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # and beta = 6 adds 5 * TC, with the warm-up weight on the whole KL term
    tc6 = build_model("tcvae", hidden=[32], latent_dim=4, estimator=estimator)
    tc6.load_state_dict(tc.state_dict())
    torch.manual_seed(3)
    c = tc6.terms(x, kl_weight=kl_weight)
    torch.testing.assert_close(c["loss"], b["loss"] + kl_weight * 5 * b["tc"])


def test_alpha_and_gamma_weigh_their_terms():
    torch.manual_seed(0)
    model = build_model("tcvae", hidden=[16], latent_dim=3, alpha=0.0, beta=2.0, gamma=3.0)
    torch.manual_seed(1)
    t = model.terms(images(8))
    extra = -t["mi"] + t["tc"] + 2 * t["dim_kl"]
    torch.testing.assert_close(t["loss"], t["recon"] + t["kl"] + extra)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"k": 2}, "k must be 1"),
        ({"prior": "vamp"}, "needs the standard prior"),
        ({"free_bits": 0.5}, "no free bits"),
        ({"estimator": "exact"}, "unknown estimator 'exact'"),
        ({"posterior": "iaf"}, "needs the gaussian posterior"),
        ({"gamma": -1.0}, "gamma must be >= 0"),
    ],
)
def test_settings_that_make_no_sense_are_refused_in_one_line(bad, message):
    with pytest.raises(VaelabError, match=message) as e:
        build_model("tcvae", **bad)
    assert "\n" not in str(e.value)


def test_an_unset_data_set_size_counts_the_batch_as_the_data():
    torch.manual_seed(0)
    model = build_model("tcvae", hidden=[16], latent_dim=3, estimator="mss")
    assert int(model.dataset_size) == 0
    x = images(10)
    torch.manual_seed(1)
    unset = model.terms(x)
    model.dataset_size.fill_(10)
    torch.manual_seed(1)
    torch.testing.assert_close(model.terms(x)["tc"], unset["tc"], rtol=0, atol=0)
    model.dataset_size.fill_(60_000)
    torch.manual_seed(1)
    assert not torch.equal(model.terms(x)["tc"], unset["tc"])


def test_a_run_goes_through_every_command(tmp_path, tiny_splits, capsys):
    from vaelab.evaluate import evaluate_run
    from vaelab.plots import all_figures
    from vaelab.report import write_report

    out = tiny_run(tmp_path / "tc", tiny_splits, "tcvae", estimator="mss")
    model = vaelab.load_run(out, "last")
    assert int(model.dataset_size) == len(tiny_splits["train"])  # kept in the checkpoint
    r = evaluate_run(out, progress=False)
    assert r["has_elbo"] and r["neg_elbo"] > 0
    assert set(r["other_terms"]) == {"mi", "tc", "dim_kl"}  # the KL's parts, in evaluate too
    total = sum(r["other_terms"].values())
    assert total == pytest.approx(r["kl"], abs=1.0)  # one draw per image: an estimate of it
    code, stdout, err = run(capsys, "evaluate", out, "--nll-samples", 10)
    assert code == 0, err
    assert "total correlation" in stdout and "training loss" in stdout
    names = {p.name for p in all_figures(out)}
    assert {"samples.png", "reconstructions.png", "latents.png"} <= names
    assert write_report(out).exists()
    code, _, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0 and np.load(tmp_path / "z.npz")["z"].shape == (len(tiny_splits["test"]), 2)
    for command in ("sample", "reconstruct"):
        code, _, err = run(capsys, command, out, "-o", tmp_path / f"{command}.png")
        assert code == 0 and (tmp_path / f"{command}.png").exists(), err
    other = tiny_run(tmp_path / "vae", tiny_splits, "vae")
    code, stdout, err = run(capsys, "compare", out, other)
    assert code == 0 and "tcvae" in stdout.lower(), err
    code, _, err = run(capsys, "export", out, tmp_path / "e")
    assert code == 0, err
    loaded = vaelab.from_pretrained(tmp_path / "e")
    assert int(loaded.dataset_size) == len(tiny_splits["train"])
    x = tiny_splits["test"].x[:5]
    torch.testing.assert_close(loaded.encode(x).mean, vaelab.load_run(out).encode(x).mean)
    code, stdout, err = run(capsys, "explore", out)
    assert code == 0 and (out / "explorer.html").exists(), err
