"""The VQ-VAE's maths (van den Oord et al. 2017): nearest-code quantisation, straight-through
gradients, the EMA codebook of appendix A.1, dead-code restarts, a causal PixelCNN prior, the
two training phases, and every caller on a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import run, synthetic

import vaelab
from vaelab.errors import VaelabError
from vaelab.grid_prior import PixelCNNPrior
from vaelab.models import build_model
from vaelab.models.vqvae import (
    LAPLACE_EPS,
    ema_step,
    nearest_codes,
    restart_dead_codes,
    smoothed_codebook,
)
from vaelab.runs import load_run
from vaelab.train import TrainConfig, train

TINY = {"hidden": [8], "latent_dim": 3, "num_codes": 8, "res_layers": 1, "prior_channels": 8,
        "prior_layers": 1}  # fmt: skip


def tiny(**kw):
    return build_model("vqvae", **(TINY | kw))


def test_the_quantiser_picks_the_nearest_code_and_passes_gradients_straight_through():
    g = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(500, 6, generator=g), torch.randn(40, 6, generator=g)
    brute = ((z[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(nearest_codes(z, codebook), brute)
    # the model's grid: z_q holds the nearest codebook vector at every position
    model = tiny()
    x = torch.rand(4, 784)
    z_e = model.encode_continuous(x)
    idx, e = model.quantise(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.equal(idx.reshape(-1), nearest_codes(flat, model.codebook.detach()))
    assert torch.equal(model.code(x), model.codebook.detach()[idx].permute(0, 3, 1, 2))
    # d recon / d z_e (through the straight-through estimator) = d recon / d z_q at z_q = e
    z_e = z_e.detach().requires_grad_()
    z_q = z_e + (e.detach() - z_e).detach()
    recon = -model.decode(z_q).log_prob(x).sum()
    (g_e,) = torch.autograd.grad(recon, z_e)
    leaf = e.detach().clone().requires_grad_()
    (g_q,) = torch.autograd.grad(-model.decode(leaf).log_prob(x).sum(), leaf)
    torch.testing.assert_close(g_e, g_q, rtol=1e-5, atol=1e-6)
    # and the model's terms route the reconstruction's gradient through z_q to the encoder
    model.zero_grad()
    model.terms(x)["recon"].sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0 and model.codebook.grad is None


def test_ema_updates_follow_the_paper_s_formulas_on_a_hand_made_batch():
    count = torch.tensor([4.0, 1.0, 0.0])
    total = torch.tensor([[4.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    idx = torch.tensor([0, 0, 2])
    n, m = ema_step(count, total, z, idx, gamma=0.9)
    # N_i <- 0.9 N_i + 0.1 n_i with n = (2, 0, 1); m_i <- 0.9 m_i + 0.1 sum of its vectors
    torch.testing.assert_close(n, torch.tensor([3.8, 0.9, 0.1]))
    torch.testing.assert_close(m, torch.tensor([[3.6 + 0.4, 0.0], [0.0, 0.9], [0.0, 0.2]]))
    # e_i = m_i / N~_i, N~_i = (N_i + eps) / (4.8 + 3 eps) * 4.8
    eps = LAPLACE_EPS
    smooth = [(v + eps) / (4.8 + 3 * eps) * 4.8 for v in (3.8, 0.9, 0.1)]
    hand = torch.tensor([[4.0 / smooth[0], 0.0], [0.0, 0.9 / smooth[1]], [0.0, 0.2 / smooth[2]]])
    torch.testing.assert_close(smoothed_codebook(n, m), hand)
    # the model applies them after each optimizer step, from the batch's encoder outputs
    model = tiny(dead_threshold=0.0)
    model.ema_count.fill_(2.0)
    model.ema_sum.copy_(torch.randn(8, 3))
    count0, total0 = model.ema_count.clone(), model.ema_sum.clone()
    x = torch.rand(5, 784)
    model.terms(x)
    z_e = model.encode_continuous(x).detach().permute(0, 2, 3, 1).reshape(-1, 3)
    idx = nearest_codes(z_e, model.codebook.detach())
    model.on_train_step(0, {})
    n, m = ema_step(count0, total0, z_e, idx, gamma=0.99)
    torch.testing.assert_close(model.ema_count, n)
    torch.testing.assert_close(model.codebook.detach(), smoothed_codebook(n, m))


def test_dead_code_restarts_replace_exactly_the_unused_codes_with_encoder_outputs():
    model = tiny(num_codes=4, dead_threshold=0.01)
    model.ema_count.copy_(torch.tensor([5.0, 0.001, 3.0, 0.0]))
    model.ema_sum.copy_(torch.randn(4, 3))
    before = model.codebook.detach().clone(), model.ema_sum.clone()
    z = torch.randn(20, 3)
    torch.manual_seed(0)
    dead = restart_dead_codes(model, z)
    assert dead.tolist() == [False, True, False, True]
    cb = model.codebook.detach()
    for j in (0, 2):  # used codes: untouched, bit for bit
        assert torch.equal(cb[j], before[0][j]) and torch.equal(model.ema_sum[j], before[1][j])
    for j in (1, 3):  # dead codes: an encoder output of the batch, with m_j = it and N_j = 1
        assert any(torch.equal(cb[j], row) for row in z)
        assert torch.equal(model.ema_sum[j], cb[j]) and model.ema_count[j] == 1
    again = tiny(num_codes=4, dead_threshold=0.01)  # the same seed picks the same vectors
    again.ema_count.copy_(torch.tensor([5.0, 0.001, 3.0, 0.0]))
    torch.manual_seed(0)
    restart_dead_codes(again, z)
    assert torch.equal(again.codebook.detach()[[1, 3]], cb[[1, 3]])


def _prior(k=5, grid=(3, 4)):
    torch.manual_seed(0)
    return PixelCNNPrior(k, grid, channels=8, layers=2)


def test_the_pixelcnn_is_causal_in_raster_order():
    prior = _prior()
    g = torch.Generator().manual_seed(1)
    z = torch.randint(5, (2, 3, 4), generator=g)
    base = prior.logits(z)
    h, w = 3, 4
    for p in range(h * w):
        later = z.clone().reshape(2, -1)
        later[:, p:] = torch.randint(5, (2, h * w - p), generator=g)  # positions >= p redrawn
        moved = prior.logits(later.reshape(2, h, w))
        i, j = divmod(p, w)
        assert torch.equal(moved[:, :, i, j], base[:, :, i, j]), p
    # and a position sees the one just before it (the masks hide no more than they should)
    earlier = z.clone()
    earlier[:, 1, 1] = (earlier[:, 1, 1] + 1) % 5
    assert not torch.equal(prior.logits(earlier)[:, :, 1, 2], base[:, :, 1, 2])


def test_the_pixelcnn_log_probability_sums_its_conditionals_over_positions():
    prior = _prior()
    z = torch.randint(5, (3, 3, 4), generator=torch.Generator().manual_seed(2))
    logp = F.log_softmax(prior.logits(z), 1)
    by_hand = sum(logp[b, z[b, i, j], i, j] for b in [0] for i in range(3) for j in range(4))
    torch.testing.assert_close(prior.log_prob(z)[0], by_hand)
    # a prior that knows nothing gives every grid K^-(h*w)
    flat = _prior()
    torch.nn.init.zeros_(flat.out[1].weight), torch.nn.init.zeros_(flat.out[1].bias)
    torch.testing.assert_close(flat.log_prob(z), torch.full((3,), -12 * math.log(5)))


def test_sampling_draws_from_the_pixelcnn():
    prior = _prior(k=3, grid=(2, 2))
    p = torch.tensor([0.5, 0.3, 0.2])
    with torch.no_grad():  # logits that ignore the input: every position ~ p
        prior.out[1].weight.zero_()
        prior.out[1].bias.copy_(p.log())
    z = prior.sample(4000, torch.Generator().manual_seed(0))
    freq = torch.bincount(z.reshape(-1), minlength=3) / z.numel()
    torch.testing.assert_close(freq, p, rtol=0, atol=0.02)  # 16,000 draws: sd <= 0.004
    # a prior whose position (0, 1) copies (0, 0): the draws keep the dependence
    with torch.no_grad():
        prior.first.weight.zero_(), prior.first.bias.zero_()
        prior.out[1].bias.zero_()
        for b in prior.blocks:
            b.conv.weight.zero_(), b.mix.weight.zero_(), b.conv.bias.zero_(), b.mix.bias.zero_()
        prior.embed.weight.copy_(torch.eye(3, 8) * 20)  # one channel per code
        prior.first.weight[:3, :3, 2, 1] = torch.eye(3)  # the left neighbour's channel
        prior.out[1].weight[:, :3, 0, 0] = torch.eye(3)
    z = prior.sample(200, torch.Generator().manual_seed(1))
    assert torch.equal(z[:, 0, 1], z[:, 0, 0])


def test_the_loss_is_recon_commitment_and_the_prior_s_nll_and_the_bound_is_point_mass():
    model = tiny(codebook_update="loss").eval()
    x = torch.rand(4, 784).round()
    t = model.terms(x)
    torch.testing.assert_close(t["loss"], t["recon"] + t["commit"] + t["codebook"] + t["kl"])
    torch.testing.assert_close(t["neg_elbo"], t["recon"] + t["kl"])
    torch.testing.assert_close(t["commit"], 0.25 * t["codebook"])  # same distance, beta apart
    idx = model.code_indices(x)
    torch.testing.assert_close(t["kl"], -model.prior.log_prob(idx))
    w = model.log_importance_weights(x, 5)
    assert w.shape == (5, 4) and torch.equal(w[0], w[4])
    torch.testing.assert_close(w[0], -t["neg_elbo"])
    model.train()
    model.zero_grad()
    model.loss(x)["loss"].backward()
    assert model.codebook.grad is not None  # the codebook loss reaches the codebook


def _train(out, splits, epochs, resume=False, **data):
    if resume:
        return train(out, resume=True, epochs=epochs, progress=False)
    cfg = TrainConfig(epochs=epochs, batch_size=128)
    model = {**TINY, "vq_epochs": 1}
    return train(out, "vqvae", model, cfg, synthetic(splits, **data), progress=False)


def test_after_vq_epochs_only_the_prior_trains_and_resume_keeps_the_phase(tmp_path, tiny_splits):
    _train(tmp_path / "a", tiny_splits, 1)
    first = load_run(tmp_path / "a", which="last").state_dict()
    assert int(first["epochs_done"]) == 1
    _train(tmp_path / "a", tiny_splits, 2, resume=True)  # across the phase boundary
    second = load_run(tmp_path / "a", which="last")
    assert second.frozen
    state = second.state_dict()
    vq = [k for k in state if not k.startswith("prior.") and k != "epochs_done"]
    assert "codebook" in vq and "ema_count" in vq and any(k.startswith("encoder.") for k in vq)
    assert all(torch.equal(state[k], first[k]) for k in vq)  # frozen bit for bit
    assert any(not torch.equal(state[k], first[k]) for k in state if k.startswith("prior."))
    _train(tmp_path / "b", tiny_splits, 2)  # straight through: the same weights
    straight = load_run(tmp_path / "b", which="last").state_dict()
    assert all(torch.equal(straight[k], v) for k, v in state.items())


def test_a_tiny_vqvae_goes_through_every_caller(tmp_path, tiny_splits, capsys):
    out = tmp_path / "vq"
    _train(out, tiny_splits, 2, binarize="dynamic")
    code, stdout, err = run(capsys, "evaluate", out, "--nll-samples", 4)
    assert code == 0, err
    assert "codebook_usage" in stdout and "prior_bits_per_code" in stdout
    saved = json.loads((out / "evaluation.json").read_text())["test"]
    assert saved["nll"] == pytest.approx(saved["neg_elbo"], rel=1e-5)  # a point mass q
    code, _, err = run(capsys, "plot", out)
    assert code == 0, err
    names = {p.name for p in out.rglob("*.png")}
    assert {"samples.png", "reconstructions.png"} <= names, names
    code, _, err = run(capsys, "report", out)
    assert code == 0, err
    code, _, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0, err
    assert np.load(tmp_path / "z.npz")["z"].shape == (len(tiny_splits["test"]), 3 * 7 * 7)
    for argv in (["sample", out, "-o", tmp_path / "s.png"],
                 ["reconstruct", out, "-o", tmp_path / "r.png"],
                 ["compare", out, out]):  # fmt: skip
        code, _, err = run(capsys, *argv)
        assert code == 0, (argv, err)
    code, _, err = run(capsys, "explore", out, "-o", tmp_path / "e.html")
    assert code == 1 and err.count("\n") == 1 and "explorer needs" in err
    code, _, err = run(capsys, "export", out, tmp_path / "e", "--which", "last")
    assert code == 0, err
    loaded, trained = vaelab.from_pretrained(tmp_path / "e"), load_run(out, which="last")
    x = tiny_splits["test"].x[:5]
    assert loaded.frozen and torch.equal(loaded.code_indices(x), trained.code_indices(x))
    torch.testing.assert_close(
        loaded.prior.log_prob(loaded.code_indices(x)),
        trained.prior.log_prob(trained.code_indices(x)),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"encoder": "mlp"}, "a vqvae encoder is conv or resnet, not 'mlp'"),
        ({"decoder": "linear"}, "a vqvae decoder is conv or resnet, not 'linear'"),
        ({"image_shape": [1, 30, 30]}, "multiples of 4"),
        ({"ema_decay": 1.0}, "ema_decay must be < 1"),
    ],
)
def test_settings_a_vqvae_cannot_take_are_refused_in_one_line(bad, message):
    with pytest.raises(VaelabError, match=message) as e:
        tiny(**bad)
    assert "\n" not in str(e.value)
