"""AIS and BDMC (``vaelab.ais``) where log p(x) is known: a linear-Gaussian model
z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I_n), whose marginal is N(b, W W^T + sigma^2 I) and
whose posterior is Gaussian in closed form; and on a tiny VAE, that the code runs on vaelab's
decoders and that ``evaluate --ais`` saves its entry."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from helpers import synthetic, tiny_run

from vaelab.ais import (
    AISSettings,
    Target,
    forward_ais,
    log_mean_exp,
    reverse_ais,
    sigmoid_schedule,
)
from vaelab.errors import VaelabError
from vaelab.evaluate import evaluate_run, format_result
from vaelab.train import TrainConfig, train

D, N, SIGMA = 3, 6, 0.5


class LinearGaussian:
    """The model, with its exact log p(x) and posterior."""

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(N, D, generator=g, dtype=torch.float64)
        self.b = torch.randn(N, generator=g, dtype=torch.float64) * 0.3

    def marginal(self) -> torch.distributions.MultivariateNormal:
        cov = self.w @ self.w.T + SIGMA**2 * torch.eye(N, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov)

    def posterior(self, x: torch.Tensor) -> torch.distributions.MultivariateNormal:
        precision = torch.eye(D, dtype=torch.float64) + self.w.T @ self.w / SIGMA**2
        cov = torch.linalg.inv(precision)
        mean = (x - self.b) @ self.w @ cov / SIGMA**2  # (B, D)
        return torch.distributions.MultivariateNormal(mean, cov)

    def log_prior(self, z):
        return -0.5 * (z**2).sum(-1) - 0.5 * D * math.log(2 * math.pi)

    def log_lik_of(self, x):
        def log_lik(z):
            r = x - (z @ self.w.T + self.b)
            return -0.5 * (r**2).sum(-1) / SIGMA**2 - N * math.log(SIGMA * math.sqrt(2 * math.pi))

        return log_lik

    def target(self, x):
        return Target(
            self.log_prior,
            self.log_lik_of(x),
            lambda c: torch.randn(c, len(x), D, dtype=torch.float64),
        )

    def simulate(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, D, generator=g, dtype=torch.float64)
        x = z @ self.w.T + self.b + SIGMA * torch.randn(n, N, generator=g, dtype=torch.float64)
        return x, z


@functools.cache
def errors_at(steps: int, n: int = 40, seed: int = 0):
    """Forward and reverse AIS bounds minus the exact log p(x) on n simulated images."""
    m = LinearGaussian()
    x, z = m.simulate(n, seed=1)
    exact = m.marginal().log_prob(x)
    s = AISSettings(steps=steps, chains=8, leapfrog=5, step_size=0.1, seed=seed)
    torch.manual_seed(seed)
    lower = forward_ais(m.target(x), n, s).log_px - exact
    upper = reverse_ais(m.target(x), z, s).log_px - exact
    return lower, upper


def test_ais_converges_to_the_exact_log_likelihood():
    """As the schedule lengthens (10, 50, 300 steps) the forward bound's bias (its mean error
    over 40 images) and its per-image error (mean |error|) both fall, and at 300 steps the
    bias is under 0.15 nats.  The tolerance: the per-image error has s.d. about 0.25 nats at
    this length (8 chains), so the mean over 40 images has a standard error near 0.04; 0.15
    is about 4 of them."""
    runs = [errors_at(steps)[0] for steps in (10, 50, 300)]
    bias = [abs(e.mean().item()) for e in runs]
    spread = [e.abs().mean().item() for e in runs]
    assert bias[0] > bias[1] > bias[2], bias
    assert spread[0] > spread[1] > spread[2], spread
    assert bias[2] < 0.15, bias


def test_bdmc_sandwich_contains_the_exact_log_likelihood():
    """Forward <= exact <= reverse on the mean over 40 images, up to 3 standard errors of the
    mean difference (the Monte Carlo error of the bounds); at a short schedule (20 steps) the
    sandwich is strict and wide, at 300 steps its width is under 0.5 nats."""
    for steps in (20, 300):
        lower, upper = errors_at(steps)
        se_l, se_u = (t.std().item() / math.sqrt(len(t)) for t in (lower, upper))
        assert lower.mean().item() <= 3 * se_l, (steps, lower.mean(), se_l)
        assert upper.mean().item() >= -3 * se_u, (steps, upper.mean(), se_u)
    short, long_ = errors_at(20), errors_at(300)
    assert (short[1] - short[0]).mean() > 0.5  # strict: the gap is far beyond the errors
    assert (long_[1] - long_[0]).mean() < 0.5


def test_importance_sampling_with_the_exact_posterior_has_zero_variance():
    """log p(x, z) - log p(z|x) = log p(x) for every z: all 1000 weights of an image are equal
    (to 1e-9 nats in float64) and their log-mean-exp is the exact log p(x)."""
    m = LinearGaussian()
    x, _ = m.simulate(10, seed=2)
    post = m.posterior(x)
    z = post.sample((1000,))  # (K, B, D)
    logw = m.log_prior(z) + m.log_lik_of(x)(z) - post.log_prob(z)
    assert (logw.max(0).values - logw.min(0).values).max() < 1e-9
    assert torch.allclose(log_mean_exp(logw), m.marginal().log_prob(x), atol=1e-9)


def test_sigmoid_schedule_runs_from_zero_to_one_in_rising_steps():
    b = sigmoid_schedule(100)
    assert len(b) == 101 and b[0] == 0 and b[-1] == 1
    steps = b.diff()
    assert (steps > 0).all()
    assert steps[0] < steps[50] and steps[-1] < steps[50]  # small steps at both ends


@pytest.mark.parametrize(
    "bad", [{"steps": 0}, {"chains": 0}, {"step_size": 0.0}, {"target_accept": 1.0}]
)
def test_bad_settings_are_refused_in_one_line(bad):
    with pytest.raises(VaelabError, match="AIS settings"):
        AISSettings(**bad)


def tiny_vae(path, splits, likelihood: str, binarize: str):
    """A one-epoch VAE with a 2-D code on ``splits``."""
    cfg = {"hidden": [32], "latent_dim": 2, "likelihood": likelihood}
    data = synthetic(splits, binarize=binarize)
    train(path, "vae", cfg, TrainConfig(epochs=1, batch_size=64), data, progress=False)
    return path


DECODERS = {"bernoulli": "dynamic", "gaussian": "none"}  # decoder: the pixels it models


QUICK = {"ais_steps": 100, "ais_chains": 4, "ais_leapfrog": 5, "limit": 32}


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_ais_on_a_vae_is_above_the_elbo_and_saved(tmp_path, tiny_splits, decoder):
    """On a tiny VAE, the AIS bound on log p(x) (100 steps, 4 chains) is above the one-sample
    importance-sampled bound (K = 1, the ELBO) on the mean over 32 images: AIS is a tighter
    lower bound (the ELBO's gap to log p(x) is the KL from q(z|x) to p(z|x)); and the
    evaluation saved in evaluation.json holds it with its settings and time."""
    run = tiny_vae(tmp_path / decoder, tiny_splits, decoder, DECODERS[decoder])
    r = evaluate_run(run, nll_samples=1, ais=True, progress=False, **QUICK)
    key = "nll" if decoder == "bernoulli" else "nll_density"
    assert r[f"{key}_ais"] < r[key], (r[f"{key}_ais"], r[key])
    saved = json.loads((run / "evaluation.json").read_text())["test[:32]"]
    assert saved[f"{key}_ais"] == pytest.approx(r[f"{key}_ais"])
    assert saved["ais_settings"]["steps"] == 100 and saved["ais_seconds"] > 0
    assert "NLL (AIS)" in format_result(r)


def test_bdmc_on_a_vae_brackets_its_own_samples(tmp_path, tiny_splits):
    """On 16 images simulated from a tiny VAE, the reverse bound is above the forward bound
    on the mean (the gap is >= 0 in expectation; -3 s.e. allowed for Monte Carlo error), and
    ``--bdmc`` reaches the command line's evaluation."""
    run = tiny_vae(tmp_path / "bern", tiny_splits, "bernoulli", "dynamic")
    r = evaluate_run(run, bdmc=16, progress=False, save=False, **QUICK)
    b = r["bdmc"]
    assert b["bdmc_images"] == 16
    assert b["bdmc_gap"] >= -3 * b["bdmc_gap_sem"], b
    assert b["bdmc_upper"] - b["bdmc_lower"] == pytest.approx(b["bdmc_gap"])
    assert "BDMC gap" in format_result(r)


def test_ais_refuses_a_model_without_a_prior_density(tmp_path, tiny_splits):
    """An auto-encoder has no p(z): one line, no traceback."""
    run = tiny_run(tmp_path / "ae", tiny_splits, model="ae")
    with pytest.raises(VaelabError, match="AIS"):
        evaluate_run(run, ais=True, progress=False, save=False, **QUICK)
