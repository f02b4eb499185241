"""Inverse autoregressive flow posteriors (Kingma et al. 2016): the flow's log-determinant, its
autoregressive structure, a normalised log q, the bounds it gives, and every caller."""

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
from vaelab.objectives import iwae_bound
from vaelab.posteriors import IAFPosterior, made_masks
from vaelab.registry import check_choice, names

DTYPE = torch.float64


def _scramble(flow: IAFPosterior, seed: int = 0, scale: float = 0.7) -> IAFPosterior:
    """Random weights far from the near-identity start, so every step does something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return flow


def _flow(d: int, steps: int = 2, context: int = 2, hidden=(7, 5)) -> IAFPosterior:
    torch.manual_seed(0)
    return _scramble(IAFPosterior(d, steps=steps, hidden=list(hidden), context=context).to(DTYPE))


def test_the_posterior_table_answers_like_the_others():
    assert names("posterior") == ("gaussian", "iaf")
    assert check_choice("posterior", "iaf") is None
    assert "unknown posterior 'nf'" in check_choice("posterior", "nf")


@pytest.mark.parametrize("d", [3, 4])
def test_the_log_determinant_is_that_of_the_numerical_jacobian(d):
    flow, h = _flow(d), torch.randn(2, dtype=DTYPE)
    z0 = torch.randn(d, dtype=DTYPE)
    jac = torch.autograd.functional.jacobian(lambda z: flow.flow(z, h)[0], z0)  # (D, D)
    _, log_det = flow.flow(z0, h)
    torch.testing.assert_close(log_det, torch.linalg.slogdet(jac)[1], rtol=0, atol=1e-10)
    assert torch.linalg.slogdet(jac)[0] > 0  # sigmoid gates: an orientation-keeping map


def test_each_step_is_triangular_in_its_own_order_and_the_order_reverses():
    d = 4
    flow, h, z0 = _flow(d), torch.randn(2, dtype=DTYPE), torch.randn(d, dtype=DTYPE)
    for t, step in enumerate(flow.steps):
        jac = torch.autograd.functional.jacobian(
            lambda z, step=step: (lambda m, s: torch.sigmoid(s) * z + (1 - torch.sigmoid(s)) * m)(
                *step(z, h)
            ),
            z0,
        )  # (D, D): d z_t,i / d z_{t-1},j
        order = list(range(d)) if t % 2 == 0 else list(range(d))[::-1]
        permuted = jac[order][:, order]  # the step's variables in its own order
        assert torch.equal(permuted, permuted.tril()), f"step {t} is not autoregressive"
        assert (permuted.diagonal().abs() > 1e-6).all()  # and it does depend on z_i itself
        assert (permuted.tril(-1).abs() > 1e-8).any()  # and on the variables before it
    # m_i and s_i read only earlier variables: the mask of the whole MADE is strictly lower
    masks = made_masks([1, 2, 3, 4], context=2, hidden=[7, 5])
    reach = masks[0]
    for m in masks[1:]:
        reach = (m @ reach).clamp(max=1)
    assert torch.equal(reach[:4, :4], reach[:4, :4].tril(-1)) and reach[:, 4:].all()


def test_log_q_integrates_to_one_in_two_dimensions():
    """exp(log q) of a 2-D IAF (random weights, fixed context), on a 901 x 901 grid over a
    box holding the mass, sums to 1 within 1e-3.  log q at a grid point z_T comes from its
    z_0 = flow^-1(z_T), found by inverting the flow (each step solved unit by unit, in order)."""
    torch.manual_seed(0)
    flow = _scramble(IAFPosterior(2, steps=2, hidden=[16], context=2).to(DTYPE), scale=0.4)
    h = torch.randn(2, dtype=DTYPE)
    base = Normal(torch.tensor([0.3, -0.2], dtype=DTYPE), torch.tensor([-0.4, -0.1], dtype=DTYPE))
    axis = torch.linspace(-7, 7, 901, dtype=DTYPE)
    zt = torch.cartesian_prod(axis, axis)  # (N, 2)
    z = zt.clone()
    for t in reversed(range(len(flow.steps))):
        order = [0, 1] if t % 2 == 0 else [1, 0]
        prev = z.clone()
        for i in order:  # unit i's m, s read only units solved before it
            m, s = flow.steps[t](prev, h)
            g = torch.sigmoid(s[:, i])
            prev[:, i] = (z[:, i] - (1 - g) * m[:, i]) / g
        z = prev
    z0 = z
    forward, log_det = flow.flow(z0, h)
    torch.testing.assert_close(forward, zt, rtol=0, atol=1e-9)  # the inverse is right
    log_q = base.log_prob(z0) - log_det
    mass = log_q.exp().sum() * (axis[1] - axis[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3, mass.item()
    assert log_q.exp()[(zt.abs() > 6.5).any(-1)].max() < 1e-8  # the box holds the mass


def test_log_q_is_the_change_of_variables_value_and_zero_steps_is_the_gaussian():
    torch.manual_seed(1)
    model = build_model(
        "vae", hidden=[16], latent_dim=3, posterior="iaf", flow_hidden=[8], flow_context=4
    ).double()
    x = torch.rand(5, 784, dtype=DTYPE).bernoulli()
    q = model.encode(x)
    torch.manual_seed(2)
    z, log_q = model.posterior.rsample(q, (3,))  # (3, 5, 3), (3, 5)
    torch.manual_seed(2)
    z0 = q.base.rsample((3,))  # the same eps
    for i in range(3):
        for b in range(5):
            jac = torch.autograd.functional.jacobian(
                lambda v, b=b: model.posterior.flow(v, q.context[b])[0], z0[i, b]
            )
            direct = q.base.log_prob(z0[i, b])[b] - torch.linalg.slogdet(jac)[1]
            torch.testing.assert_close(log_q[i, b], direct, rtol=0, atol=1e-10)
    torch.testing.assert_close(z, model.posterior.flow(z0, q.context)[0], rtol=0, atol=0)

    # no flow steps: the IAF's q is the Gaussian q(z_0|x), sample for sample
    flat = build_model("vae", hidden=[16], latent_dim=3, posterior="iaf", flow_steps=0).double()
    q = flat.encode(x)
    torch.manual_seed(3)
    z, log_q = flat.posterior.rsample(q, (4,))
    torch.manual_seed(3)
    torch.testing.assert_close(z, q.base.rsample((4,)), rtol=0, atol=0)
    torch.testing.assert_close(log_q, q.base.log_prob(z), rtol=0, atol=1e-12)
    torch.testing.assert_close(flat.code(x), q.base.mean, rtol=0, atol=0)


def test_the_gaussian_posterior_is_what_it_was():
    """posterior = gaussian draws the same weights and the same numbers as a VAE without the
    setting (the default): same state, same terms under the same noise."""
    torch.manual_seed(0)
    a = build_model("vae", hidden=[16], latent_dim=3)
    torch.manual_seed(0)
    b = build_model("vae", hidden=[16], latent_dim=3, posterior="gaussian", flow_steps=5)
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.rand(4, 784)
    torch.manual_seed(1)
    ta = a.terms(x)
    torch.manual_seed(1)
    tb = b.terms(x)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert a.kl_units(x) is not None and a.about.summary == b.about.summary


@pytest.mark.parametrize("name", ["vae", "iwae"])
def test_the_elbo_lies_below_the_k_sample_bound_with_a_flow(name):
    torch.manual_seed(0)
    model = build_model(
        name, hidden=[32], latent_dim=4, posterior="iaf", flow_hidden=[16], flow_context=8
    )
    _scramble(model.posterior, seed=4)
    x = torch.rand(16, 784).bernoulli()
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 100)  # (100, 16)
    elbo, bound = log_w.mean(0), iwae_bound(log_w)
    assert torch.isfinite(log_w).all() and (bound >= elbo).all()  # Jensen, image by image
    assert (bound - elbo).mean().item() > 0.1  # a flow that is not exact leaves a gap
    with torch.no_grad():  # in expectation (mean over 16 images x 20 repeats): rises with k
        k1 = torch.stack([iwae_bound(model.log_importance_weights(x, 1)) for _ in range(20)])
        k10 = torch.stack([iwae_bound(model.log_importance_weights(x, 10)) for _ in range(20)])
    assert k1.mean() < k10.mean() < bound.mean() + 0.5


def test_the_one_sample_kl_and_the_refusals():
    model = build_model("vae", hidden=[8], latent_dim=2, posterior="iaf", flow_hidden=[4])
    x = torch.rand(3, 784)
    terms = model.terms(x)
    assert set(terms) == {"loss", "recon", "kl", "neg_elbo"} and model.kl_units(x) is None
    torch.testing.assert_close(terms["neg_elbo"], terms["recon"] + terms["kl"])
    assert "IAF" in model.about.summary and "eps = 0" in model.about.codes
    for bad in ({"free_bits": 0.5}, {"prior": "vamp"}):
        with pytest.raises(VaelabError, match="posterior 'iaf' needs free_bits = 0"):
            build_model("vae", posterior="iaf", **bad)
    with pytest.raises(VaelabError, match="hvae: posterior must be gaussian"):
        build_model("hvae", posterior="iaf")
    cvae = build_model("cvae", hidden=[8], posterior="iaf", flow_hidden=[4], flow_context=3)
    assert cvae.terms(x, torch.tensor([0, 1, 2]))["loss"].shape == (3,)


def test_an_iaf_run_goes_through_every_caller(tmp_path, tiny_splits, capsys):
    from vaelab.evaluate import evaluate_run

    out = tmp_path / "iaf"
    flow = {"posterior": "iaf", "flow_steps": 2, "flow_hidden": [16], "flow_context": 4}
    tiny_run(out, tiny_splits, "iwae", **flow)
    r = evaluate_run(out, progress=False, nll_samples=20)
    sampled = r["importance_sampled_loss"]  # grayscale pixels: a loss, not an NLL
    assert r["has_elbo"] and math.isfinite(sampled) and sampled <= r["neg_elbo"] + 1.0
    for argv in (
        ("plot", out),
        ("report", out),
        ("encode", out, "-o", tmp_path / "z.npz"),
        ("sample", out, "-o", tmp_path / "s.png"),
        ("reconstruct", out, "-o", tmp_path / "r.png"),
        ("export", out, tmp_path / "export", "--which", "last"),
        ("explore", out),
        ("compare", out, out),
        ("train", "--resume", out, "--epochs", 2, "--no-progress", "--no-figures"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 0, (argv, err)
    assert np.load(tmp_path / "z.npz")["z"].shape == (len(tiny_splits["test"]), 2)
    loaded = vaelab.from_pretrained(tmp_path / "export")
    assert loaded.cfg.posterior == "iaf" and len(loaded.posterior.steps) == 2
    x = tiny_splits["test"].x[:4].reshape(4, -1)
    assert loaded.code(x).shape == (4, 2) and torch.isfinite(loaded.sample(3)).all()
