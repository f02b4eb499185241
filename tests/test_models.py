import itertools

import pytest
import torch

from vaelab.errors import VaelabError
from vaelab.models import MODELS, build_model

ARCHS = ["mlp", "conv", "linear"]
COMBOS = list(itertools.product(sorted(MODELS), ARCHS, ARCHS, ["bernoulli", "gaussian"]))


@pytest.mark.parametrize("name,enc,dec,lik", COMBOS)
def test_shapes_for_every_model_arch_and_likelihood(name, enc, dec, lik):
    model = build_model(name, encoder=enc, decoder=dec, likelihood=lik, hidden=[32], latent_dim=3)
    x = torch.rand(5, 784)
    z = model.latent_mean(x)
    assert z.shape == (5, 3)
    px = model.decode(z)
    assert px.mean.shape == (5, 784)
    assert px.log_prob(x).shape == (5,)
    terms = model.terms(x)
    assert all(v.shape == (5,) for v in terms.values())
    loss = model.loss(x)["loss"]
    assert loss.shape == ()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.sample(4).shape == (4, 784)
    assert model.reconstruct(x).shape == (5, 784)
    if lik == "bernoulli":  # decoder means are probabilities
        assert 0 <= model.reconstruct(x).min() and model.reconstruct(x).max() <= 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_rebuilds_the_same_model(name):
    model = build_model(name, hidden=[16, 8], latent_dim=2, activation="tanh")
    clone = build_model(name, **model.config)
    assert clone.config == model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_loss_is_summed_over_pixels_and_averaged_over_images():
    torch.manual_seed(0)
    model = build_model("vae", hidden=[16], latent_dim=2).eval()
    x = torch.rand(1, 784).round()
    # with the encoder's variance ~0 the single-sample terms are deterministic
    with torch.no_grad():
        for p in model.encoder[-1].parameters():
            p.zero_()
        model.encoder[-1].bias[2:] = -40.0  # log-variance -> sigma ~ 2e-9
        one = model.loss(x)
        many = model.loss(x.repeat(10, 1))
        q = model.encode(x)
        px = model.decode(q.mean)
    # averaging over images: a batch of 10 copies has the same loss as one copy
    torch.testing.assert_close(one["loss"], many["loss"])
    # summing over pixels: recon equals the summed per-pixel BCE, ~784 * O(1) nats
    bce = torch.nn.functional.binary_cross_entropy_with_logits(px.logits, x, reduction="sum")
    torch.testing.assert_close(one["recon"], bce, rtol=1e-4, atol=1e-3)
    assert one["loss"] == pytest.approx((one["recon"] + one["kl"]).item(), rel=1e-6)


def test_beta_weighs_only_the_kl_term():
    torch.manual_seed(0)
    model = build_model("vae", hidden=[16], latent_dim=2, beta=4.0)
    x = torch.rand(8, 784)
    torch.manual_seed(1)
    t = model.terms(x)
    torch.testing.assert_close(t["loss"], t["recon"] + 4.0 * t["kl"])
    torch.testing.assert_close(t["neg_elbo"], t["recon"] + t["kl"])


def test_ae_squared_error_loss():
    model = build_model("ae", likelihood="gaussian", hidden=[8], latent_dim=2)
    x = torch.rand(3, 784)
    expected = (model.reconstruct(x) - x).square().sum(-1)
    torch.testing.assert_close(model.terms(x)["recon"], expected)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_model_overfits_one_batch(name):
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(16, 784, generator=torch.Generator().manual_seed(0)))
    model = build_model(name, hidden=[64], latent_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x)["recon"].item()
    for _ in range(400):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    with torch.no_grad():
        last = model.loss(x)["recon"].item()
    # random pixels cost ~ 784 * log 2 = 543 nats; a memorised batch costs far less
    assert first > 500
    assert last < 0.2 * first


def test_ae_samples_follow_the_fitted_code_gaussian():
    model = build_model("ae", hidden=[8], latent_dim=2)
    codes = torch.randn(5000, 2) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0])
    model.fit_latent_gaussian(codes)
    torch.testing.assert_close(model.code_mean, codes.mean(0))
    cov = model.code_chol @ model.code_chol.T
    torch.testing.assert_close(cov, torch.cov(codes.T), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("gan", {}, "unknown model 'gan'"),
        ("vae", {"latent_dim": 0}, "latent_dim must be >= 1"),
        ("vae", {"encoder": "rnn"}, "unknown encoder 'rnn'"),
        ("vae", {"beta": -1.0}, "beta must be >= 0"),
        ("ae", {"beta": 2.0}, "bad configuration for model 'ae'"),
        ("vae", {"activation": "swish"}, "unknown activation 'swish'"),
    ],
)
def test_bad_configurations_raise_clear_errors(name, kwargs, match):
    with pytest.raises(VaelabError, match=match):
        build_model(name, **kwargs)
