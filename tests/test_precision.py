"""The number format of the networks' products (``--precision``): only the layers change
format; log-probabilities, the VampPrior's mixture and the estimate's sums stay exact."""

import json
from contextlib import nullcontext

import pytest
import torch
from helpers import run, synthetic

from vaelab import priors
from vaelab.compare import split_evaluation
from vaelab.config import TrainConfig
from vaelab.distributions import Bernoulli, Normal
from vaelab.errors import VaelabError
from vaelab.evaluate import evaluate_run, format_result
from vaelab.models import build_model
from vaelab.models.abilities import Conditional
from vaelab.nll import EstimateSettings, importance_sampled
from vaelab.precision import check_precision, products_in
from vaelab.train import train, train_step


def binary(n: int, seed: int = 0) -> torch.Tensor:
    return torch.bernoulli(torch.rand(n, 784, generator=torch.Generator().manual_seed(seed)))


def test_16_bit_parameters_give_float32_log_probabilities():
    """A bf16 logit row summed over 784 pixels in bf16 would be off by nats: the
    distributions take their parameters up to float32 first."""
    logits = (4 * torch.randn(3, 784, generator=torch.Generator().manual_seed(0))).bfloat16()
    x = binary(3)
    got = Bernoulli(logits).log_prob(x)
    exact = Bernoulli(logits.double()).log_prob(x.double())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, rtol=1e-6, atol=1e-3)
    in_bf16 = (x.bfloat16() * logits - torch.nn.functional.softplus(logits)).sum(-1)
    assert (in_bf16.double() - exact).abs().max() > 0.05  # what the cast avoids
    q = Normal(torch.zeros(2, 5, dtype=torch.bfloat16), torch.zeros(2, 5, dtype=torch.float16))
    assert q.log_prob(torch.randn(2, 5)).dtype == torch.float32


def test_bf16_estimate_is_close_to_fp32_but_not_equal():
    torch.manual_seed(0)
    model = build_model("vae", hidden=[64], latent_dim=4).eval()
    x = binary(6, seed=1)
    fp32 = importance_sampled(
        model, x, 200, seed=3, progress=False, settings=EstimateSettings(compile=False)
    )
    again = importance_sampled(
        model, x, 200, seed=3, progress=False, settings=EstimateSettings(precision="fp32")
    )
    bf16 = importance_sampled(
        model, x, 200, seed=3, progress=False, settings=EstimateSettings(precision="bf16")
    )
    assert torch.equal(fp32.log_px, again.log_px)  # fp32 is the plain path
    assert bf16.log_px.dtype == torch.float64
    shift = (bf16.log_px - fp32.log_px).abs()
    assert shift.max() < 0.5 and shift.max() > 0  # the products did change format


FAMILY = [
    ("vae", {"hidden": [32], "latent_dim": 3}),
    ("iwae", {"hidden": [32], "latent_dim": 3, "k": 3}),
    ("hvae", {"hidden": [32], "latent_dim": 3, "z1_dim": 4, "z1_hidden": [16]}),
    ("cvae", {"hidden": [32], "latent_dim": 3}),
    ("vae", {"encoder": "conv", "decoder": "conv", "hidden": [32], "latent_dim": 3}),
    ("vae", {"hidden": [32], "latent_dim": 3, "likelihood": "cbernoulli"}),
    ("vae", {"hidden": [32], "latent_dim": 3, "likelihood": "gaussian", "scale": "learned"}),
]


@pytest.mark.parametrize(("name", "config"), FAMILY)
def test_every_family_estimates_and_trains_with_bf16_products(name, config):
    """No dtype clash anywhere (labels, two stochastic layers, convolutions, learned scales):
    the estimate stays float64 and near fp32's, and a training step leaves float32 weights."""
    torch.manual_seed(0)
    model = build_model(name, **config).eval()
    x, y = binary(4, seed=5), torch.arange(4)
    labels = y if isinstance(model, Conditional) else None
    fp32 = importance_sampled(
        model, x, 50, y=labels, seed=2, progress=False, settings=EstimateSettings(compile=False)
    )
    bf16 = importance_sampled(
        model,
        x,
        50,
        y=labels,
        seed=2,
        progress=False,
        settings=EstimateSettings(compile=False, precision="bf16"),
    )
    assert bf16.log_px.dtype == torch.float64 and torch.isfinite(bf16.log_px).all()
    assert (bf16.log_px - fp32.log_px).abs().max() < 2.0
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    parts = train_step(model, opt, x, labels, precision="bf16")
    assert parts["loss"].dtype == torch.float32 and torch.isfinite(parts["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_vamp_prior_mixture_stays_float32_under_autocast(monkeypatch):
    """z^2 . (1/s^2) - 2 z . (m/s^2) + m^2/s^2 cancels: in bf16 it would be off by nats.  (One
    component per row recomputed from differences, so the others come from the products.)"""
    monkeypatch.setattr(priors, "EXACT_COMPONENTS", 1)
    torch.manual_seed(0)
    model = build_model("vae", hidden=[16], latent_dim=6, prior="vamp", pseudo_inputs=9)
    with torch.no_grad():
        fixed = model.encode(model.prior.inputs())  # float32 components, outside autocast
        z = 3 * torch.randn(40, 6)
        exact = model.prior.log_prob(z, lambda u: fixed)
        with products_in("bf16", "cpu"):
            mixed = model.prior.log_prob(z, lambda u: fixed)
            monkeypatch.setattr(priors, "full_precision", lambda device: nullcontext())
            unguarded = model.prior.log_prob(z, lambda u: fixed)
    torch.testing.assert_close(mixed, exact, rtol=1e-6, atol=1e-5)
    assert (unguarded - exact).abs().max() > 1e-2  # what the guard prevents


def test_bf16_training_step_matches_fp32_closely(tiny_splits):
    x = tiny_splits["train"].x[:64]
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model("vae", hidden=[32], latent_dim=2)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(1)
        losses[precision] = train_step(model, opt, x, None, precision=precision)["loss"]
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses["fp32"] != losses["bf16"]
    torch.testing.assert_close(losses["bf16"], losses["fp32"], rtol=2e-3, atol=0.0)


@pytest.mark.parametrize(
    ("name", "device", "message"),
    [
        ("tf32", "cpu", "tf32 runs on a CUDA GPU's tensor cores, not on cpu"),
        ("fp8", "cpu", "unknown precision 'fp8'"),
    ],
)
def test_refusals_name_the_problem(name, device, message):
    with pytest.raises(VaelabError, match=message):
        check_precision(name, device)
    with pytest.raises(VaelabError, match=message):
        products_in(name, device)


def test_train_config_refuses_fp16():
    with pytest.raises(VaelabError, match="fp16 training needs loss scaling; use bf16"):
        TrainConfig(precision="fp16")


def test_bf16_run_trains_records_its_precision_and_evaluates(tmp_path, tiny_splits, capsys):
    data = synthetic(tiny_splits, binarize="dynamic")
    cfg = TrainConfig(epochs=1, batch_size=64, precision="bf16")
    out = tmp_path / "bf16"
    train(out, "vae", {"hidden": [32], "latent_dim": 2}, cfg, data, progress=False)
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["precision"] == "bf16"
    fp32 = evaluate_run(out, nll_samples=20, limit=8, progress=False)
    assert fp32["nll_precision"] == "fp32" and "products in" not in format_result(fp32)
    result = evaluate_run(out, nll_samples=20, limit=8, progress=False, precision="bf16")
    assert result["nll_precision"] == "bf16" and result["nll"] > 0
    assert "products in bf16 (log-probs in fp32)" in format_result(result)
    saved = json.loads((out / "evaluation.json").read_text())  # beside fp32's, not over it
    assert saved["test[:8]"]["nll"] == fp32["nll"]
    assert saved["test[:8]@bf16"]["nll"] == result["nll"]
    assert split_evaluation(saved, "test")["nll_precision"] == "fp32"
    with pytest.raises(VaelabError, match="bf16 products move it by 0.05 to 0.08"):
        evaluate_run(out, protocol="paper", limit=8, progress=False, precision="bf16")
    capsys.readouterr()  # what the evaluations above logged
    code, _, err = run(capsys, "evaluate", out, "--nll-samples", 5, "--precision", "tf32")
    assert code != 0 and "tf32 runs on a CUDA GPU" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_train_precision_flag(tmp_path, idx_dir, capsys):
    common = ["train", "--hidden", 16, "--latent-dim", 2, "--epochs", 1, "--batch-size", 64]
    common += ["--data-dir", idx_dir, "--no-verify", "--no-progress", "--no-figures"]
    code, _, err = run(capsys, *common, "--out", tmp_path / "a", "--precision", "bf16")
    assert code == 0, err
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["train"]["precision"] == "bf16"
    with pytest.raises(SystemExit) as stop:
        run(capsys, *common, "--out", tmp_path / "b", "--precision", "fp16")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "invalid choice: 'fp16'" in err
    assert not (tmp_path / "b").exists()
