"""Error bars from importance weights, on weights whose answers are known."""

import math

import pytest
import torch

from tests.test_nll import data_from, linear_gaussian_vae, same_draws
from vaelab.nll import EstimateSettings, diagnose, importance_sampled
from vaelab.weight_stats import (
    jackknife,
    k_gap_bias,
    leave_one_out,
    mc_standard_error,
    pareto_khat,
    tail_length,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [0.3, 0.5, 0.8])
def test_khat_recovers_the_tail_index_of_pareto_weights(shape):
    """Pareto weights with P(W > w) = w^(-1/k): log W ~ Exponential(1/k), GPD tail shape k.
    Mean over 100 images of K = 2000 draws; one image's k-hat has s.d. about 0.1, so the
    mean is within 0.05 of k."""
    u = torch.rand(2000, 100, generator=gen(0), dtype=torch.float64)
    khat = pareto_khat(-torch.log(u) * shape)
    assert khat.mean().item() == pytest.approx(shape, abs=0.05)


def test_khat_of_light_tailed_weights_is_below_half():
    """Log-normal weights with s.d. 0.3 of the logs have every moment: k-hat well under 0.5."""
    lw = 0.3 * torch.randn(2000, 50, generator=gen(1), dtype=torch.float64)
    assert pareto_khat(lw).max().item() < 0.5


def test_khat_needs_a_tail_of_five():
    assert tail_length(5000) == math.ceil(3 * math.sqrt(5000))
    assert torch.isnan(pareto_khat(torch.zeros(20, 3, dtype=torch.float64))).all()


def test_jackknife_removes_the_one_over_k_bias():
    """Log-normal weights, log w ~ N(0, 1): log E[w] = 1/2, and the K = 20 estimate is low
    by about (e - 1)/(2K) = 0.043 nats.  Over 40,000 images (s.e. of the mean 0.0015) the
    jackknife's bias is under a quarter of it."""
    k, s = 20, 1.0
    lw = s * torch.randn(k, 40_000, generator=gen(2), dtype=torch.float64)
    truth = s * s / 2
    plain = (torch.logsumexp(lw, 0) - math.log(k)).mean().item() - truth
    jack = jackknife(lw).mean().item() - truth
    assert plain == pytest.approx(-(math.e - 1) / (2 * k), abs=0.01)
    assert abs(jack) < 0.25 * abs(plain)


def test_leave_one_out_equals_a_direct_sum_even_with_a_dominant_weight():
    lw = torch.randn(7, 3, generator=gen(3), dtype=torch.float64)
    lw[2, 1] = 60.0  # one weight carries all but e^-60 of the sum
    direct = torch.stack(
        [torch.logsumexp(torch.cat([lw[:i], lw[i + 1 :]]), 0) - math.log(6) for i in range(7)]
    )
    torch.testing.assert_close(leave_one_out(lw), direct, rtol=0, atol=1e-9)


def test_mc_standard_error_matches_the_spread_of_repeated_estimates():
    """2,000 repeats of the same image's K = 1000 estimate: the spread of the estimates and
    the mean of their Monte Carlo s.e. agree within 10% (the s.e. from 10 groups scatters by
    about 1/sqrt(2 * 9) = 24% per image, 0.5% on the mean)."""
    lw = 0.5 * torch.randn(1000, 2000, generator=gen(4), dtype=torch.float64)
    estimates = torch.logsumexp(lw, 0) - math.log(1000)
    spread = estimates.std().item()
    assert mc_standard_error(lw).mean().item() == pytest.approx(spread, rel=0.1)


def test_k_gap_bias_under_one_over_k():
    """Bias c/K: the K/5 estimate is 5c/K low, the gap 4c/K, so the bias is the gap / 4."""
    c, k = 3.0, 5000
    assert k_gap_bias(c / 1000 - c / k, k, 1000) == pytest.approx(c / k)


@pytest.mark.parametrize("budget", [None, 10 * 30_000])
def test_the_estimate_carries_error_bars_of_its_own_draws(budget):
    """``importance_sampled`` fills the per-image error bars from the same draws as the
    estimate, chunked or not (the draws rebuilt here in the same RNG order)."""
    model, exact = linear_gaussian_vae(posterior_scale=1.6, mean_shift=0.7)
    x = data_from(exact, n=4)
    k = 300
    torch.manual_seed(5)
    est = importance_sampled(
        model, x, k, progress=False, settings=EstimateSettings(memory_bytes=budget)
    )
    lw = same_draws(model, x, k, budget, seed=5)
    torch.testing.assert_close(est.mc_se, mc_standard_error(lw), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(est.log_px_jackknife, jackknife(lw), rtol=0, atol=1e-8)
    torch.testing.assert_close(est.khat, pareto_khat(lw), rtol=0, atol=1e-8)
    d = diagnose(est)
    assert d["nll_jackknife"] == pytest.approx(-jackknife(lw).mean().item(), abs=1e-8)
    assert d["nll_mc_se_groups"] == 10 and 0 < d["nll_mc_se_image"] < 1
    assert 0 <= d["khat_share_over"] <= 1


def test_an_exact_posterior_has_no_monte_carlo_error():
    model, exact = linear_gaussian_vae()
    est = importance_sampled(model, data_from(exact), 100, progress=False)
    assert est.mc_se.abs().max().item() < 1e-9
    torch.testing.assert_close(est.log_px_jackknife, est.log_px, rtol=0, atol=1e-8)
