"""The model contract: the loss derived from the terms, abilities asked and refused in one
line, one convention for input shapes, and a model from outside the package (tests/toy_model.py:
shaped codes, a setting of its own, a per-step hook) going through every caller."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run, synthetic

from vaelab import registry
from vaelab.config import TrainConfig
from vaelab.errors import VaelabError
from vaelab.models import MODELS, build_model, model_class
from vaelab.models.abilities import (
    Conditional,
    Diagnostics,
    HasBound,
    ParameterGroups,
    Samples,
    ShapedCodes,
    StepHook,
    flatten_codes,
    require,
    shape_codes,
)
from vaelab.objectives import free_bits_kl, free_bits_kl_per_image
from vaelab.settings import resolve_settings

TESTS = Path(__file__).parent


def small(name: str, **kw):
    cfg = {"hidden": [16], "latent_dim": 3, **kw}
    if name == "hvae":
        cfg |= {"z1_dim": 4, "z1_hidden": [8]}
    if name == "vqvae":
        cfg |= {"res_layers": 0, "num_codes": 16, "prior_channels": 8, "prior_layers": 1}
    cfg |= {"disc_hidden": [8]} if name == "factorvae" else {}
    return build_model(name, **cfg)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_loss_is_the_batch_mean_of_the_terms(name, kl_weight):
    model = small(name, **({"free_bits": 0.2} if name in ("vae", "cvae") else {}))
    x, y = torch.rand(6, 784), torch.arange(6) % 3
    if kl_weight != 1.0 and getattr(model.cfg, "k", 1) > 1:
        # a KL weight has no meaning inside the importance-weighted bound: refused
        with pytest.raises(VaelabError, match="takes no KL weight"):
            model.loss(x, y, kl_weight)
        return
    torch.manual_seed(0)
    loss = model.loss(x, y, kl_weight)
    torch.manual_seed(0)
    terms = model.terms(x, y, kl_weight)
    assert set(loss) == set(terms) and "loss" in loss
    for key, value in terms.items():
        assert value.shape == (6,)
        torch.testing.assert_close(loss[key], value.mean(), rtol=0, atol=0)


def test_no_model_overrides_loss():
    for name in MODELS:
        assert "loss" not in vars(model_class(name)), name


def test_free_bits_per_image_has_the_batch_formula_s_mean_and_gradient():
    torch.manual_seed(0)
    units = (torch.rand(16, 5) * torch.tensor([0.1, 0.3, 0.6, 1.0, 2.0])).requires_grad_()
    old = free_bits_kl(units, 0.5)
    (g_old,) = torch.autograd.grad(old, units)
    new = free_bits_kl_per_image(units, 0.5)
    assert new.shape == (16,)
    (g_new,) = torch.autograd.grad(new.mean(), units)
    torch.testing.assert_close(new.mean(), old, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_new, g_old, rtol=0, atol=0)


def test_free_bits_vae_loss_equals_the_batch_formula():
    model = small("vae", free_bits=0.3, beta=2.0)
    x = torch.rand(8, 784)
    torch.manual_seed(1)
    loss = model.loss(x, kl_weight=0.5)["loss"]
    torch.manual_seed(1)
    q = model.encode(x)
    recon = -model.decode(q.rsample()).log_prob(x)
    old = recon.mean() + 2.0 * 0.5 * free_bits_kl(model.prior.kl_units(q), 0.3)
    torch.testing.assert_close(loss, old)


def test_a_missing_ability_is_refused_in_one_line():
    ae = small("ae")
    with pytest.raises(VaelabError) as e:
        require(ae, HasBound, "importance sampling")
    message = str(e.value)
    assert "\n" not in message and "'ae'" in message and "importance sampling needs" in message
    with pytest.raises(VaelabError, match="needs labels"):
        require(model_class("vae"), Conditional, "--digit")  # asked of a class too
    require(small("cvae"), Conditional, "--digit")  # has it: no error


def test_abilities_are_askable_on_classes_and_instances():
    assert issubclass(model_class("vae"), HasBound) and isinstance(small("vae"), HasBound)
    assert issubclass(model_class("cvae"), Conditional)
    assert not issubclass(model_class("ae"), HasBound)
    assert issubclass(model_class("ae"), Samples)
    with pytest.raises(VaelabError, match="--protocol paper needs a model"):
        resolve_settings({"protocol": "paper", "model": "ae"})


@pytest.mark.parametrize("arch", ["mlp", "conv", "linear", "resnet"])
@pytest.mark.parametrize("name", ["ae", "vae"])
def test_images_and_flat_images_give_the_same_codes(name, arch):
    model = small(name, encoder=arch, decoder=arch)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model.code(x), model.code(x.reshape(3, -1)), rtol=0, atol=0)
    torch.manual_seed(0)
    a = model.loss(x)["loss"]
    torch.manual_seed(0)
    b = model.loss(x.reshape(3, -1))["loss"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_images_of_another_size_and_flat_inputs_give_the_same_codes():
    model = small("vae", image_shape=[1, 20, 20])  # an MLP on 400 values
    x = torch.rand(2, 1, 20, 20)
    torch.testing.assert_close(model.code(x), model.code(x.reshape(2, 400)), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 783), (2, 1, 20, 20), (784,), (2, 3, 28, 28)])
def test_a_wrong_shape_is_a_one_line_error(shape):
    model = small("vae")
    with pytest.raises(VaelabError) as e:
        model.encode(torch.rand(*shape))
    assert "\n" not in str(e.value)
    assert "(B, 1, 28, 28) or (B, 784)" in str(e.value) and str(tuple(shape)) in str(e.value)


def test_settings_are_documented_fields():
    from dataclasses import fields

    for name in MODELS:
        for f in fields(model_class(name).config_class):
            assert f.metadata.get("help"), (name, f.name)
            assert "default" not in f.metadata["help"], (name, f.name)
    image_shape = {f.name: f for f in fields(model_class("vae").config_class)}["image_shape"]
    assert image_shape.metadata["cli"] is False


# --- a model from outside: shaped codes, a setting of its own, a per-step hook ------------


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setitem(registry.MODELS, "toy", "toy_model:Toy")


def test_the_toy_model_declares_its_abilities(toy):
    model = build_model("toy", gamma=0.5)
    assert isinstance(model, ShapedCodes) and isinstance(model, StepHook)
    assert not isinstance(model, Samples)
    x = torch.rand(3, 784)
    z = model.code(x)
    assert z.shape == (3, 4, 7, 7) and model.latent_dim == 196
    flat = flatten_codes(model, z)
    assert flat.shape == (3, 196) and torch.equal(shape_codes(model, flat), z)
    assert model.decode(z).mean.shape == (3, 784)
    with pytest.raises(VaelabError, match="gamma must be >= 0"):
        build_model("toy", gamma=-1.0)


def test_the_toy_model_goes_through_every_caller(toy, tmp_path, tiny_splits, capsys):
    from vaelab.evaluate import evaluate_run
    from vaelab.plots import all_figures
    from vaelab.report import write_report
    from vaelab.runs import load_run
    from vaelab.train import train

    out = tmp_path / "toy"
    cfg = TrainConfig(epochs=2, batch_size=100)
    train(out, "toy", {"gamma": 0.1}, cfg, synthetic(tiny_splits), progress=False)
    model = load_run(out, which="last")
    steps = cfg.epochs * math.ceil(len(tiny_splits["train"]) / cfg.batch_size)
    assert int(model.steps) == steps  # the hook ran once per optimizer step
    assert model.cfg.gamma == 0.1

    r = evaluate_run(out, progress=False)
    assert r["latent_dim"] == 196 and r["recon"] > 0 and not r["has_elbo"]
    names = {p.name for p in all_figures(out)}
    assert {"reconstructions.png", "latents.png", "traversals.png", "interpolation.png"} <= names
    assert "samples.png" not in names  # a toy draws no codes
    assert write_report(out).exists()

    code, stdout, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0, err
    assert np.load(tmp_path / "z.npz")["z"].shape == (len(tiny_splits["test"]), 196)
    code, _, err = run(capsys, "sample", out, "-o", tmp_path / "s.png")
    assert code == 1 and err.count("\n") == 1 and "sampling needs a way to draw codes" in err
    code, _, err = run(capsys, "evaluate", out, "--nll-samples", 10)
    assert code == 1 and err.count("\n") == 1 and "needs a bound on log p(x)" in err


# --- abilities that reach the optimizer and the epoch's metrics ----------------------------


class _GroupedAE(model_class("ae"), ParameterGroups, Diagnostics):
    """An AE whose decoder has an Adam rate and betas of its own, and which reports the mean
    code size over a split."""

    def parameter_groups(self, lr):
        return [
            {"params": list(self.encoder.parameters())},
            {"params": list(self.decoder.parameters()), "lr": lr / 10, "betas": (0.5, 0.9)},
            {"params": [b for b in self.parameters() if not any(
                b is p for p in [*self.encoder.parameters(), *self.decoder.parameters()])]},
        ]  # fmt: skip

    def diagnostics(self, x, y=None):
        return {"code_size": self.code(x).norm(dim=1).mean().item(), "images": len(x)}

    @property
    def diagnostics_about(self):
        return {"code_size": "mean Euclidean norm of the codes", "images": "images seen"}


def test_parameter_groups_give_each_part_its_own_adam(monkeypatch, tmp_path, tiny_splits):
    from vaelab.train import make_optimizer, train_step

    monkeypatch.setitem(registry.MODELS, "grouped", f"{__name__}:_GroupedAE")
    model = build_model("grouped", hidden=[8], latent_dim=2)
    opt = make_optimizer(model, TrainConfig(lr=1e-2), torch.device("cpu"))
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-3, 1e-2]
    assert opt.param_groups[1]["betas"] == (0.5, 0.9)
    # the decoder's step is the one a separate Adam with its settings takes
    ref = torch.optim.Adam(
        [p.clone().detach().requires_grad_() for p in model.decoder.parameters()],
        lr=1e-3, betas=(0.5, 0.9),
    )  # fmt: skip
    x = torch.rand(5, 784)
    torch.manual_seed(0)
    model.zero_grad()
    model.loss(x)["loss"].backward()
    for p, q in zip(model.decoder.parameters(), ref.param_groups[0]["params"], strict=True):
        q.grad = p.grad.clone()
    ref.step()
    torch.manual_seed(0)
    train_step(model, opt, x, torch.zeros(5, dtype=torch.long))
    for p, q in zip(model.decoder.parameters(), ref.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(p, q)

    from vaelab.runs import Run
    from vaelab.train import train

    out = tmp_path / "grouped"
    train(out, "grouped", {"hidden": [8], "latent_dim": 2}, TrainConfig(epochs=2),
          synthetic(tiny_splits), progress=False)  # fmt: skip
    rows = Run.load(out).metrics()
    assert [r["val_images"] for r in rows] == [len(tiny_splits["val"])] * 2
    assert all(r["val_code_size"] > 0 for r in rows)
    from vaelab.evaluate import evaluate_run, format_result

    r = evaluate_run(out, progress=False)
    assert r["diagnostics"]["images"] == len(tiny_splits["test"])
    assert "mean Euclidean norm of the codes" in format_result(r)
