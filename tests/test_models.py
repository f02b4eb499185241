import itertools

import pytest
import torch

from vaelab.errors import VaelabError
from vaelab.models import MODELS, build_model
from vaelab.models.abilities import Conditional, HasBound, flatten_codes
from vaelab.runs import load_weights, save_weights

ARCHS = ["mlp", "linear", "conv", "resnet"]
LIKELIHOODS = ["bernoulli", "gaussian", "cbernoulli"]
# every model with every net and likelihood, but a VQ-VAE's nets are convolutional (its config
# refuses mlp and linear, tested in test_vqvae.py)
COMBOS = [
    (name, arch, lik)
    for name, arch, lik in itertools.product(sorted(MODELS), ARCHS, LIKELIHOODS)
    if not (name == "vqvae" and arch in ("mlp", "linear"))
]


def small(name: str, **kw):
    """A small model of the family ``name``; conditional models keep an MLP encoder."""
    cfg = {"hidden": [32], "latent_dim": 3, **kw}
    if name == "hvae":
        cfg |= {"z1_dim": 4, "z1_hidden": [8]}
    if name == "vqvae":
        cfg |= {"res_layers": 0, "num_codes": 16, "prior_channels": 8, "prior_layers": 1}
    model = build_model(name, **cfg)
    return model


def labels_for(model, n):
    return torch.arange(n) % model.num_classes if isinstance(model, Conditional) else None


@pytest.mark.parametrize("name,arch,lik", COMBOS)
def test_every_model_net_and_likelihood_steps_and_round_trips(name, arch, lik, tmp_path):
    enc = "mlp" if name == "cvae" and arch in ("conv", "resnet") else arch  # cvae: see config
    model = small(name, encoder=enc, decoder=arch, likelihood=lik)
    torch.manual_seed(0)
    x = torch.rand(5, 784)
    y = labels_for(model, 5)
    z = model.code(x, y)
    assert flatten_codes(model, z).shape == (5, model.latent_dim)
    px = model.decode(z, y)
    assert px.mean.shape == (5, 784) and px.log_prob(x).shape == (5,)
    assert all(v.shape == (5,) for v in model.terms(x, y).values())
    # one Adam step moves the weights and every parameter gets a gradient
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model.loss(x, y)["loss"]
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the checkpoint round-trips bit-exactly through safetensors and the saved config
    save_weights(model, tmp_path / "w.safetensors")
    clone = build_model(name, **model.config)
    load_weights(clone, tmp_path / "w.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, clone.state_dict()[k]), k
    model.eval(), clone.eval()
    torch.testing.assert_close(clone.reconstruct(x, y), model.reconstruct(x, y), rtol=0, atol=0)
    assert model.sample(4).shape == (4, 784)
    if isinstance(model, HasBound):
        assert model.log_importance_weights(x, 3, y).shape == (3, 5)
    if lik != "gaussian":  # decoder means are pixel intensities
        r = model.reconstruct(x, y)
        assert 0 <= r.min() and r.max() <= 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_rebuilds_the_same_model(name):
    model = small(name, hidden=[16, 8], activation="tanh")
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
    model = small(name, hidden=[64], latent_dim=8)
    y = labels_for(model, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x, y)["recon"].item()
    for _ in range(400):
        opt.zero_grad()
        model.loss(x, y)["loss"].backward()
        opt.step()
    with torch.no_grad():
        last = model.loss(x, y)["recon"].item()
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
        ("vae", {"encoder": "rnn"}, "unknown architecture 'rnn'"),
        ("vae", {"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
        ("vae", {"prior": "flow"}, "unknown prior 'flow'"),
        ("iwae", {"k": 0}, "k must be >= 1"),
        ("iwae", {"k": 5, "beta": 2.0}, "beta != 1"),
        ("vae", {"free_bits": 0.5, "prior": "vamp"}, "free_bits needs"),
        ("cvae", {"encoder": "conv"}, "mlp or linear encoder"),
        ("hvae", {"free_bits": 0.1}, "free_bits needs"),
        ("vae", {"beta": -1.0}, "beta must be >= 0"),
        ("ae", {"beta": 2.0}, "bad configuration for model 'ae'"),
        ("vae", {"activation": "swish"}, "unknown activation 'swish'"),
    ],
)
def test_bad_configurations_raise_clear_errors(name, kwargs, match):
    with pytest.raises(VaelabError, match=match):
        build_model(name, **kwargs)


def test_conv_nets_take_a_stage_per_halving_and_keep_mnist_nets():
    from torch import nn

    from vaelab.nets import ConvDecoder, ConvEncoder, conv_stages

    assert [conv_stages((1, s, s)) for s in (28, 32, 64, 128)] == [2, 2, 3, 4]
    assert conv_stages((3, 12, 20)) == 2
    with pytest.raises(VaelabError, match="multiples of 4"):
        conv_stages((1, 30, 30))
    # MNIST's nets as they always were: 1 -> 32 (14x14) -> 64 (7x7), 3,136 features
    enc = ConvEncoder(20, [256], shape=(1, 28, 28))
    convs = [m for m in enc.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 64)]
    assert enc.head[0].in_features == 64 * 7 * 7
    dec = ConvDecoder(20, [256], shape=(1, 28, 28))
    assert dec.start == (64, 7, 7)
    # 64x64 RGB: three stages to 128 x 8 x 8, and back to 3 x 64 x 64
    enc = ConvEncoder(20, [], shape=(3, 64, 64))
    convs = [m for m in enc.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 64), (64, 128)]
    assert enc(torch.rand(2, 3 * 64 * 64)).shape == (2, 20)
    assert ConvDecoder(20, [], shape=(3, 64, 64))(torch.randn(2, 20)).shape == (2, 3 * 64 * 64)


@pytest.mark.parametrize("arch", ["mlp", "conv", "resnet"])
@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 12, 20)])
def test_models_take_the_image_shape(arch, shape):
    import math

    model = build_model("vae", encoder=arch, decoder=arch, hidden=[16], latent_dim=3,
                        image_shape=list(shape))  # fmt: skip
    dims = math.prod(shape)
    x = torch.rand(4, dims)
    assert model.image_shape == shape
    assert model.terms(x)["loss"].shape == (4,)
    assert model.reconstruct(x).shape == (4, dims)
    assert model.sample(5).shape == (5, dims)
    with pytest.raises(Exception):  # noqa: B017 - images of another size do not fit
        model.terms(torch.rand(4, dims + 4))


def test_a_bad_image_shape_is_refused_in_one_line():
    with pytest.raises(VaelabError, match="image_shape"):
        build_model("vae", image_shape=[28, 28])
    with pytest.raises(VaelabError, match="each of image_shape must be >= 1 and <= 65,536"):
        build_model("vae", image_shape=[3, 100_000, 100_000])
    with pytest.raises(VaelabError, match="parameters"):
        build_model("vae", image_shape=[3, 60_000, 60_000])
