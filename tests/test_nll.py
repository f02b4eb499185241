"""The importance-sampled likelihood against a model whose log p(x) is known in closed form."""

import math

import pytest
import torch

from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.nll import (
    ChunkPlan,
    EstimateSettings,
    diagnose,
    importance_sampled,
    log_likelihood_estimates,
    plan_chunks,
    summarize,
)

D, SIGMA = 2, 0.5


def linear_gaussian_vae(posterior_scale: float = 1.0, mean_shift: float = 0.0):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns of W, so that the
    true posterior N(M^-1 W^T (x - b), s^2 M^-1), M = W^T W + s^2 I, is diagonal and the
    encoder can represent it exactly (posterior_scale=1, mean_shift=0) or approximately."""
    g = torch.Generator().manual_seed(0)
    model = build_model(
        "vae", encoder="linear", decoder="linear", likelihood="gaussian", sigma=SIGMA, latent_dim=D
    ).double()
    q, _ = torch.linalg.qr(torch.randn(784, D, generator=g, dtype=torch.float64))
    w = q * torch.tensor([1.5, 0.8], dtype=torch.float64)  # (784, D), orthogonal columns
    b = 0.1 * torch.randn(784, generator=g, dtype=torch.float64)
    m_diag = (w * w).sum(0) + SIGMA**2  # diagonal of M
    a = (w / m_diag).T  # (D, 784) = M^-1 W^T
    with torch.no_grad():
        model.decoder.weight.copy_(w)
        model.decoder.bias.copy_(b)
        model.encoder.weight.zero_()
        model.encoder.weight[:D] = a
        post_std = SIGMA / m_diag.sqrt()
        model.encoder.bias[:D] = -a @ b + mean_shift * post_std
        model.encoder.bias[D:] = 2 * torch.log(posterior_scale * post_std)
    noise = torch.full((784,), SIGMA**2, dtype=torch.float64)
    exact = torch.distributions.LowRankMultivariateNormal(b, w, noise)
    return model, exact


def data_from(exact, n=6):
    torch.manual_seed(1)
    return exact.sample((n,))


def test_exact_posterior_gives_the_exact_likelihood_with_any_k():
    model, exact = linear_gaussian_vae()
    x = data_from(exact)
    truth = exact.log_prob(x)
    for k in (1, 7):
        est = log_likelihood_estimates(model, x, k, progress=False)
        torch.testing.assert_close(est, truth, rtol=0, atol=1e-6)


def test_estimate_converges_to_the_closed_form_and_grows_with_k():
    model, exact = linear_gaussian_vae(posterior_scale=1.6, mean_shift=0.7)
    x = data_from(exact)
    truth = exact.log_prob(x)
    torch.manual_seed(0)
    means = {k: log_likelihood_estimates(model, x, k, progress=False) for k in (1, 10, 5000)}
    gaps = {k: (truth - v).mean().item() for k, v in means.items()}
    # a lower bound in expectation that tightens as K grows, reaching log p(x) at K = 5000
    assert gaps[1] > gaps[10] > gaps[5000]
    assert gaps[1] > 0.1
    assert abs(gaps[5000]) < 0.01


def test_k1_equals_the_elbo_in_expectation():
    model, exact = linear_gaussian_vae(posterior_scale=1.6, mean_shift=0.7)
    x = data_from(exact, n=3)
    torch.manual_seed(0)
    with torch.no_grad():
        k1 = model.log_importance_weights(x, 4000)  # (4000, 3): 4000 estimates with K = 1
        elbo = -model.terms(x.repeat(4000, 1))["neg_elbo"].reshape(4000, 3)
    one = log_likelihood_estimates(model, x, 1, progress=False)
    assert one.shape == (3,)
    # two Monte Carlo means of the same quantity agree within a few standard errors
    se = (k1.std(0) / math.sqrt(4000)).max().item()
    assert (k1.mean(0) - elbo.mean(0)).abs().max().item() < 5 * se + 1e-3
    assert (one - k1.mean(0)).abs().max().item() < 6 * k1.std(0).max().item()


def test_chunking_does_not_change_the_estimate():
    budget = 10 * 30_000  # a tiny memory budget: one image per batch, small K chunks
    model, exact = linear_gaussian_vae()
    x = data_from(exact, n=5)
    small = plan_chunks(model, 64, 5, memory_bytes=budget)
    assert small.batch == 1 and small.k_chunk < 64
    # with exact weights every chunking must reproduce log p(x) to float precision
    chunked = log_likelihood_estimates(
        model, x, 64, progress=False, settings=EstimateSettings(memory_bytes=budget)
    )
    torch.testing.assert_close(chunked, exact.log_prob(x), rtol=0, atol=1e-6)
    # with noisy weights, chunked and whole estimates are equally close to the truth
    model, exact = linear_gaussian_vae(posterior_scale=1.3)
    truth = exact.log_prob(x)
    torch.manual_seed(3)
    whole = log_likelihood_estimates(model, x, 1000, progress=False)
    chunked = log_likelihood_estimates(
        model, x, 1000, progress=False, settings=EstimateSettings(memory_bytes=budget)
    )
    assert (whole - truth).abs().max().item() < 0.1
    assert (chunked - truth).abs().max().item() < 0.1


def test_plan_prefers_whole_k_and_many_images():
    model = build_model("vae", hidden=[400], latent_dim=20)
    plan = plan_chunks(model, 5000, 10_000, memory_bytes=512 * 2**20)
    assert plan.k_chunk == 5000 and plan.batch >= 1
    assert plan == ChunkPlan(plan.batch, 5000)


def test_summary_units():
    s = summarize(torch.tensor([-80.0, -100.0]))
    assert s["nll"] == 90.0
    assert s["bits_per_dim"] == pytest.approx(90.0 / (784 * math.log(2)))
    assert s["nll_sem"] == pytest.approx(torch.tensor([80.0, 100.0]).std().item() / math.sqrt(2))


def test_ae_and_bad_k_are_refused():
    with pytest.raises(VaelabError, match="importance sampling needs a bound on log p\\(x\\)"):
        log_likelihood_estimates(build_model("ae", hidden=[8]), torch.rand(2, 784), 10)
    with pytest.raises(VaelabError, match=">= 1"):
        log_likelihood_estimates(build_model("vae", hidden=[8]), torch.rand(2, 784), 0)


def test_diagnostics_with_an_exact_posterior_are_perfect():
    model, exact = linear_gaussian_vae()
    x = data_from(exact)
    est = importance_sampled(model, x, 50, progress=False)
    torch.testing.assert_close(est.ess, torch.full((6,), 50.0, dtype=torch.float64))
    d = diagnose(est)  # all weights equal: ESS = K, and 10 samples already give log p(x)
    assert d["nll_k_sub"] == 10 and abs(d["nll_k_gap"]) < 1e-6
    assert d["ess_median"] == pytest.approx(50) and d["ess_p5"] == pytest.approx(50)


def same_draws(model, x, k: int, budget, seed: int) -> torch.Tensor:
    """The log-weights (K, N) that an unseeded ``importance_sampled`` drew after
    ``torch.manual_seed(seed)``, rebuilt in the same RNG order: the chunks of the memory plan
    follow one another in the stream."""
    torch.manual_seed(seed)
    plan = plan_chunks(model, k, len(x), memory_bytes=budget)
    rows = []
    for i in range(0, len(x), plan.batch):
        xb = x[i : i + plan.batch]
        rows.append(torch.cat([model.log_importance_weights(xb, min(plan.k_chunk, k - d))
                               for d in range(0, k, plan.k_chunk)]))  # fmt: skip
    return torch.cat(rows, dim=1)


@pytest.mark.parametrize("budget", [None, 10 * 30_000])
def test_diagnostics_equal_a_direct_computation_on_the_same_draws(budget):
    model, exact = linear_gaussian_vae(posterior_scale=1.6, mean_shift=0.7)
    x = data_from(exact, n=4)
    k = 300
    torch.manual_seed(5)
    est = importance_sampled(
        model, x, k, progress=False, settings=EstimateSettings(memory_bytes=budget)
    )
    lw = same_draws(model, x, k, budget, seed=5)  # (K, N)
    w = torch.softmax(lw, 0)
    torch.testing.assert_close(est.ess, 1 / w.square().sum(0), rtol=1e-9, atol=1e-9)
    sub = torch.logsumexp(lw[:60], 0) - math.log(60)
    torch.testing.assert_close(est.log_px_sub, sub, rtol=0, atol=1e-9)
    assert (est.ess < k).all() and (est.ess >= 1).all()


def test_per_image_seeds_make_each_image_independent_of_its_neighbours():
    """With a seed, an image's draws depend on its index only: scoring the first image alone
    gives the same number as scoring the whole set (what lets processes share the images)."""
    torch.manual_seed(0)
    model = build_model("vae", hidden=[32], latent_dim=4).eval()
    x = torch.bernoulli(torch.rand(6, 784, generator=torch.Generator().manual_seed(2)))
    plan = dict(
        settings=EstimateSettings(memory_bytes=1)
    )  # one image per batch, so every index starts a batch
    whole = importance_sampled(model, x, 20, seed=3, progress=False, **plan)
    again = importance_sampled(model, x, 20, seed=3, progress=False, **plan)
    other = importance_sampled(model, x, 20, seed=4, progress=False, **plan)
    torch.testing.assert_close(whole.log_px, again.log_px, rtol=0, atol=0)
    assert not torch.equal(whole.log_px, other.log_px)
    first = importance_sampled(model, x[:1], 20, seed=3, progress=False, **plan)
    assert first.log_px[0] == whole.log_px[0]


def test_compiled_estimate_equals_the_plain_one():
    """torch.compile fuses the estimate's element-wise work; the draws are the same RNG
    calls, so the numbers agree to floating-point order (also the diagnostics)."""
    from vaelab.nll import compiler_available

    if not compiler_available():
        pytest.skip("no C++ compiler for torch.compile")
    torch.manual_seed(0)
    model = build_model("vae", hidden=[32], latent_dim=4).eval()
    x = torch.bernoulli(torch.rand(5, 784, generator=torch.Generator().manual_seed(2)))
    plain = importance_sampled(
        model, x, 30, seed=1, progress=False, settings=EstimateSettings(compile=False)
    )
    fast = importance_sampled(
        model, x, 30, seed=1, progress=False, settings=EstimateSettings(compile=True)
    )
    for a, b in [(plain.log_px, fast.log_px), (plain.log_px_sub, fast.log_px_sub),
                 (plain.ess, fast.ess)]:  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
