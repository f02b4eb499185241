"""FactorVAE (Kim & Mnih 2018): the discriminator's and the VAE's updates are the paper's,
permute_dims breaks the joint and keeps the marginals, gamma = 0 is the VAE, the
discriminator estimates a known total correlation, and a run goes through every command."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run, synthetic

import vaelab
from vaelab.cli import main
from vaelab.models import build_model
from vaelab.models.factorvae import JOINT, PERMUTED, permute_dims
from vaelab.runs import Run, load_run
from vaelab.train import NonFinite, TrainConfig, make_optimizer, train, train_step

SMALL = {"hidden": [16], "latent_dim": 3, "disc_hidden": [12, 12]}


def small(**kw):
    torch.manual_seed(0)
    return build_model("factorvae", **(SMALL | kw))


def split_parameters(model):
    disc = list(model.discriminator.parameters())
    vae = [p for p in model.parameters() if not any(p is q for q in disc)]
    return vae, disc


def test_each_loss_reaches_only_its_own_part():
    model = small()
    vae, disc = split_parameters(model)
    t = model.terms(torch.rand(8, 784))
    d_grads = torch.autograd.grad(t["disc_loss"].mean(), vae + disc, allow_unused=True,
                                  retain_graph=True)  # fmt: skip
    assert all(g is None for g in d_grads[: len(vae)])  # D's loss: no encoder/decoder weight
    assert all(g is not None and g.abs().sum() > 0 for g in d_grads[len(vae) :])
    vae_loss = (t["recon"] + t["kl"] + model.cfg.gamma * t["tc"]).mean()
    v_grads = torch.autograd.grad(vae_loss, vae + disc, allow_unused=True, retain_graph=True)
    assert all(g is None for g in v_grads[len(vae) :])  # the TC term: no discriminator weight
    (enc,) = torch.autograd.grad(t["tc"].mean(), [model.encoder[0].weight])
    assert enc.abs().sum() > 0  # ... but it reaches the encoder
    # the loss is the VAE's objective in value (D's part adds exactly zero)
    torch.testing.assert_close(t["loss"], t["recon"] + t["kl"] + 6.4 * t["tc"], rtol=0, atol=0)


def test_an_odd_batch_weighs_the_halves_as_the_paper_does():
    model = small()
    vae, disc = split_parameters(model)
    torch.manual_seed(1)
    t = model.terms(torch.rand(7, 784))  # halves of 4 (joint) and 3 (permuted)
    ce = t["disc_loss"]
    paper = 0.5 * (ce[:4].mean() + ce[4:].mean())
    ours = torch.autograd.grad(t["loss"].mean(), disc, retain_graph=True)
    want = torch.autograd.grad(paper, disc)
    for a, b in zip(ours, want, strict=True):
        torch.testing.assert_close(a, b)


def test_one_step_is_two_separate_adams():
    """After one ``train_step`` with vaelab's one Adam (two groups), D's weights are what
    Adam(disc_lr, (0.5, 0.9)) gives on D's loss alone, the VAE's what Adam(lr) gives on the
    VAE's loss alone."""
    model = small(gamma=3.0)
    ref = small(gamma=3.0)
    ref.load_state_dict(model.state_dict())
    x, y = torch.rand(8, 784), torch.zeros(8, dtype=torch.long)
    cfg = TrainConfig(lr=1e-3)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-4]
    assert [g["betas"] for g in opt.param_groups] == [(0.9, 0.999), (0.5, 0.9)]

    vae, disc = split_parameters(ref)
    torch.manual_seed(5)
    t = ref.terms(x)
    vae_loss = (t["recon"] + t["kl"] + 3.0 * t["tc"]).mean()
    d_loss = 0.5 * (t["disc_loss"][:4].mean() + t["disc_loss"][4:].mean())  # Algorithm 2
    g_vae = torch.autograd.grad(vae_loss, vae, retain_graph=True)
    g_disc = torch.autograd.grad(d_loss, disc)
    adam_vae = torch.optim.Adam(vae, lr=1e-3, betas=(0.9, 0.999), eps=cfg.adam_eps)
    adam_disc = torch.optim.Adam(disc, lr=1e-4, betas=(0.5, 0.9), eps=cfg.adam_eps)
    for params, grads in [(vae, g_vae), (disc, g_disc)]:
        for p, g in zip(params, grads, strict=True):
            p.grad = g
    adam_vae.step()
    adam_disc.step()

    torch.manual_seed(5)
    parts = train_step(model, opt, x, y)
    torch.testing.assert_close(parts["loss"], vae_loss.detach(), rtol=0, atol=0)
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    assert not torch.equal(model.discriminator[0].weight, small().discriminator[0].weight)


def test_a_non_finite_step_leaves_both_parts_as_they_were():
    model = small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    x = torch.rand(6, 784)
    x[2, 5] = math.nan
    with pytest.raises(NonFinite):
        train_step(model, opt, x, torch.zeros(6, dtype=torch.long), check=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_permute_dims_keeps_the_marginals_and_breaks_the_joint():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, generator=g)
    z = torch.stack([a, a + 0.1 * torch.randn(2000, generator=g), -a], 1)  # (2000, 3)
    torch.manual_seed(0)
    p = permute_dims(z)
    for j in range(3):  # each column is a permutation of the batch's values
        assert torch.equal(p[:, j].sort().values, z[:, j].sort().values)
    assert torch.corrcoef(z.T)[0, 1] > 0.99 and torch.corrcoef(z.T)[0, 2] < -0.99
    corr = torch.corrcoef(p.T)
    off = corr[~torch.eye(3, dtype=torch.bool)]
    assert off.abs().max() < 0.1  # ~N(0, 1/2000): 0.1 is 4.5 standard deviations
    assert not torch.equal(p[:, 0], z[:, 0])


def test_gamma_zero_is_the_vae():
    fvae = small(gamma=0.0)
    vae = build_model("vae", hidden=[16], latent_dim=3)
    vae.load_state_dict({k: v for k, v in fvae.state_dict().items() if "discriminator" not in k})
    x = torch.rand(9, 784)
    torch.manual_seed(3)
    ours = fvae.terms(x)
    torch.manual_seed(3)
    theirs = vae.terms(x)
    for key in ("loss", "recon", "kl", "neg_elbo"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
    fvae.cfg.gamma = 2.5  # the same draws: the loss moves by exactly gamma * tc
    torch.manual_seed(3)
    moved = fvae.terms(x)
    torch.testing.assert_close(moved["loss"], theirs["loss"] + 2.5 * moved["tc"])


def test_the_discriminator_estimates_a_known_total_correlation():
    """z ~ N(0, Sigma), 2-D, rho = 0.8: TC = 0.5 (sum_j log Sigma_jj - log det Sigma)
    = -0.5 log(1 - rho^2) = 0.511 nats.  D trained on joint vs permuted samples with the
    model's own loss recovers it within 0.1 nats (seeds 0-2 give errors of 0.02-0.04)."""
    rho = 0.8
    sigma = torch.tensor([[1.0, rho], [rho, 1.0]])
    tc = 0.5 * (sigma.diag().log().sum() - torch.logdet(sigma)).item()
    chol = torch.linalg.cholesky(sigma)
    torch.manual_seed(0)
    model = build_model("factorvae", hidden=[8], latent_dim=2, disc_hidden=[64, 64])
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=3e-3)
    for _ in range(300):
        d = model.discriminator_terms(torch.randn(256, 2) @ chol.T)
        loss = (d["disc_loss"] * d["weight"]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model.tc_logits(torch.randn(20000, 2) @ chol.T)
        estimate = (logits[:, JOINT] - logits[:, PERMUTED]).mean().item()
    assert abs(estimate - tc) < 0.1, (estimate, tc)


# --- a tiny run through every command --------------------------------------------------------


@pytest.fixture
def trained(tmp_path, tiny_splits):
    out = tmp_path / "fvae"
    cfg = {"hidden": [32], "latent_dim": 3, "disc_hidden": [16, 16]}
    train(out, "factorvae", cfg, TrainConfig(epochs=2, batch_size=64),
          synthetic(tiny_splits), progress=False)  # fmt: skip
    return out


def test_a_run_records_tc_and_accuracy_and_goes_through_every_command(trained, tmp_path, capsys):
    from vaelab.evaluate import evaluate_run
    from vaelab.plots import all_figures
    from vaelab.report import write_report

    rows = Run.load(trained).metrics()
    for row in rows:
        assert 0 <= row["val_disc_acc"] <= 1 and math.isfinite(row["val_tc"])
        assert row["val_disc_loss"] > 0
    r = evaluate_run(trained, progress=False)
    assert r["has_elbo"] and r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"])
    assert set(r["other_terms"]) >= {"tc", "disc_acc"}
    code, out, err = run(capsys, "evaluate", trained, "--nll-samples", 20)
    assert code == 0 and "NLL" in out, err
    assert "disc_acc" in out
    names = {p.name for p in all_figures(trained)}
    assert {"curves.png", "samples.png", "reconstructions.png", "traversals.png"} <= names
    assert write_report(trained).exists()
    code, _, err = run(capsys, "encode", trained, "-o", tmp_path / "z.npz")
    assert code == 0 and np.load(tmp_path / "z.npz")["z"].shape[1] == 3, err
    for cmd in ("sample", "reconstruct"):
        code, _, err = run(capsys, cmd, trained, "-o", tmp_path / f"{cmd}.png")
        assert code == 0 and (tmp_path / f"{cmd}.png").exists(), err
    code, _, err = run(capsys, "compare", trained)
    assert code == 0, err
    assert main(["export", str(trained), str(tmp_path / "e"), "--which", "last"]) == 0
    loaded = vaelab.from_pretrained(tmp_path / "e")
    last = load_run(trained, "last")
    assert type(loaded) is type(last)
    for (k, a), b in zip(loaded.state_dict().items(), last.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_resume_gives_the_uninterrupted_run(tmp_path, tiny_splits):
    """One optimizer state holds both parts' Adam moments: 1 epoch then a resume to 2 gives
    the weights (VAE and discriminator) of 2 epochs straight."""
    cfg = {"hidden": [16], "latent_dim": 3, "disc_hidden": [8]}
    data = synthetic(tiny_splits)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, "factorvae", cfg, TrainConfig(epochs=2, batch_size=100), data, progress=False)
    train(resumed, "factorvae", cfg, TrainConfig(epochs=1, batch_size=100), data, progress=False)
    train(resumed, resume=True, epochs=2, progress=False)
    a, b = load_run(straight, "last").state_dict(), load_run(resumed, "last").state_dict()
    assert any("discriminator" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_processes_train_both_parts(tmp_path, idx_dir):
    """Under DistributedDataParallel (two CPU processes, gloo) every parameter gets its
    gradient from the one loss (D's through its zero-valued term): the run trains, then
    resumes, and the discriminator has moved from its initial weights."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
              "2", "-m", "vaelab", "train", "--no-figures", "--no-progress"]  # fmt: skip
    first = ["--model", "factorvae", "--hidden", "16", "--latent-dim", "3", "--disc-hidden", "8",
             "--data-dir", str(idx_dir), "--no-verify", "--out", str(tmp_path / "two"),
             "--epochs", "1"]  # fmt: skip
    for more in (first, ["--resume", str(tmp_path / "two"), "--epochs", "2"]):
        p = subprocess.run([*launch, *more], capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stderr[-3000:]
    rows = Run.load(tmp_path / "two").metrics()
    assert len(rows) == 2 and all(0 <= r["val_disc_acc"] <= 1 for r in rows)
    trained = load_run(tmp_path / "two", "last").discriminator[0].weight
    torch.manual_seed(0)  # the initial weights: the run's seed
    fresh = build_model("factorvae", hidden=[16], latent_dim=3, disc_hidden=[8])
    assert not torch.equal(trained, fresh.discriminator[0].weight)


@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_the_tc_term_is_taken_at_the_z_of_the_reconstruction(posterior):
    """Algorithm 2: one z ~ q(z|x) per image serves the reconstruction and the TC term (with
    an inverse autoregressive flow too: z is the flow's output)."""
    model = small(posterior=posterior, flow_hidden=[8], flow_context=4)
    x = torch.rand(6, 784)
    torch.manual_seed(4)
    t = model.terms(x)
    torch.manual_seed(4)
    z, _ = model.posterior.rsample(model.encode(x))  # the draw the VAE's terms make first
    logits = model.tc_logits(z)
    torch.testing.assert_close(t["tc"], logits[:, JOINT] - logits[:, PERMUTED], rtol=0, atol=0)
    torch.testing.assert_close(t["recon"], -model.decode(z).log_prob(x), rtol=0, atol=0)
