"""The inference gap's two parts (Cremer et al. 2018) where they are known in closed form."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from helpers import synthetic

from tests.test_nll import data_from, linear_gaussian_vae
from vaelab.errors import VaelabError
from vaelab.eval_config import EvalConfig
from vaelab.evaluate import evaluate_run, format_result
from vaelab.gaps import GapSettings, elbos, summary
from vaelab.paired import read_per_image
from vaelab.train import TrainConfig, train

QUICK = GapSettings(steps=200, lr=0.05, samples=10, eval_samples=500)


def test_an_optimal_encoder_has_no_gaps():
    """Linear-Gaussian model whose encoder is the exact posterior: ELBO(q_phi) = log p(x)
    exactly, and q* stays there (the held-log-q gradient is zero at the optimum): both gaps
    within 1e-3 nats of 0 on every image."""
    model, exact = linear_gaussian_vae()
    x = data_from(exact, n=4)
    phi, star = elbos(model, x, how=replace(QUICK, steps=50))
    truth = exact.log_prob(x).double()
    torch.testing.assert_close(phi, truth, rtol=0, atol=1e-6)
    assert (star - phi).abs().max().item() < 1e-3
    s = summary(truth, phi, star)
    assert abs(s["gap_amortisation"]) < 1e-3 and abs(s["gap_approximation"]) < 1e-3


def test_amortisation_gap_is_the_encoders_kl_from_the_exact_posterior():
    """Encoder off the exact posterior by 0.7 s.d. in the mean and 1.6x in the scale: the
    amortisation gap is KL(q_phi || p(z|x)) = D (-ln 1.6 + (1.6^2 + 0.7^2)/2 - 1/2) = 1.110
    nats (D = 2), and q* reaches the exact posterior (a Gaussian): approximation gap 0.
    Tolerances: 0.02 nats on the mean over 8 images (the ELBO draws' noise, s.d. about 0.1
    per image at 500 draws), 1e-3 on the approximation gap."""
    model, exact = linear_gaussian_vae(posterior_scale=1.6, mean_shift=0.7)
    x = data_from(exact, n=8)
    phi, star = elbos(model, x, how=QUICK)
    s = summary(exact.log_prob(x).double(), phi, star)
    kl = 2 * (-math.log(1.6) + (1.6**2 + 0.7**2) / 2 - 0.5)
    assert s["gap_amortisation"] == pytest.approx(kl, abs=0.02)
    assert abs(s["gap_approximation"]) < 1e-3


def test_gaps_of_a_tiny_vae_from_evaluate(tmp_path, tiny_splits):
    """A tiny trained VAE: q* improves on the encoder on average (amortisation gap >= 0 up to
    0.05 nats of noise), and the gaps are printed and kept per image."""
    run = tmp_path / "vae"
    small = {"hidden": [16], "latent_dim": 2}
    data = synthetic(tiny_splits, binarize="dynamic")
    train(run, "vae", small, TrainConfig(epochs=1), data, progress=False)
    cfg = EvalConfig(nll_samples=50, limit=10, gaps=True, gap_steps=50, gap_eval_samples=200)
    r = evaluate_run(run, cfg, progress=False, device="cpu")
    g = r["gaps"]
    assert g["gap_amortisation"] > -0.05
    assert g["gap_inference"] == pytest.approx(g["gap_amortisation"] + g["gap_approximation"])
    assert "amortisation  ELBO(q*) - ELBO(q_phi)" in format_result(r)
    saved = read_per_image(run)
    assert saved["test[:10]/elbo_q_star"].shape == (10,)


def test_gaps_need_a_likelihood_estimate():
    with pytest.raises(VaelabError, match="--nll-samples"):
        EvalConfig(gaps=True)
