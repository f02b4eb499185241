import json
import math

import pytest
import torch
from helpers import synthetic
from safetensors.torch import load_file

import vaelab
from vaelab.data import Split, batches
from vaelab.errors import VaelabError
from vaelab.models.vae import VAE
from vaelab.plots import all_figures
from vaelab.runs import atomic_write, load_checkpoint
from vaelab.train import TrainConfig, TrainingDiverged, train

SMALL = {"hidden": [32], "latent_dim": 4}


def _train(out, splits, epochs, resume=False, **kw):
    if resume:
        return train(
            out,
            resume=True,
            epochs=epochs,
            progress=False,
        )
    return train(
        out,
        "vae",
        dict(SMALL),
        TrainConfig(epochs=epochs, batch_size=64, seed=3, **kw),
        synthetic(splits, binarize="dynamic"),
        progress=False,
    )


def test_run_folder_contents_and_units(tmp_path, tiny_splits):
    out = tmp_path / "run"
    summary = train(
        out,
        "vae",
        dict(SMALL),
        TrainConfig(epochs=2, batch_size=64),
        synthetic(tiny_splits),
        progress=False,
    )
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.json",
        "best.safetensors",
        "last.safetensors",
        "checkpoint.pt",
        "metrics.jsonl",
        ".lock",  # held while a process trains into the folder (flock; kept, empty of meaning)
    }  # training writes no figures: the caller draws them
    figures = {"reconstructions.png", "samples.png", "latents.png", "interpolation.png",
               "traversals.png", "means-draws.png", "kl-per-unit.png"}  # fmt: skip
    drawn = {p.name for p in all_figures(out)}
    assert {p.name for p in (out / "figures").iterdir()} == drawn == figures | {"curves.png"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "vae" and cfg["model_config"]["latent_dim"] == 4
    assert cfg["train"]["epochs"] == 2 and "nats per image" in cfg["units"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["val_neg_elbo"] == pytest.approx(r["val_recon"] + r["val_kl"])
        assert r["seconds"] > 0
    # learning happened: the second epoch beats the first
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert summary["best_val_loss"] == min(r["val_loss"] for r in rows)
    # no temporary files are left behind
    assert not [p for p in out.rglob("*.tmp")]


def test_checkpoint_round_trip_is_bit_exact(tmp_path, tiny_splits):
    out = tmp_path / "run"
    _train(out, tiny_splits, 1)
    model = vaelab.load_run(out, which="last")
    ckpt = load_checkpoint(out / "checkpoint.pt")
    saved = load_file(str(out / "last.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]) and torch.equal(v, ckpt["model"][k])
    x = tiny_splits["test"].x[:8]
    assert torch.equal(model.reconstruct(x), vaelab.load_run(out, which="last").reconstruct(x))


def test_resume_gives_the_same_weights_as_training_straight(tmp_path, tiny_splits):
    a, b = tmp_path / "a", tmp_path / "b"
    _train(a, tiny_splits, 4)
    _train(b, tiny_splits, 2)
    _train(b, tiny_splits, 4, resume=True)
    wa, wb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ma = (a / "metrics.jsonl").read_text().splitlines()
    mb = (b / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in ma]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in mb]


def test_resume_of_a_run_stopped_in_its_first_epoch_starts_it_over(tmp_path, tiny_splits):
    """Killed after its config (and even its first metrics row) but before any checkpoint:
    a resume has nothing to continue, so it runs from epoch 0, giving the straight run."""
    a, b = tmp_path / "a", tmp_path / "b"
    _train(a, tiny_splits, 3)
    _train(b, tiny_splits, 1)
    (b / "checkpoint.pt").unlink()  # as if killed between the metrics and the checkpoint
    _train(b, tiny_splits, 3, resume=True)
    wa, wb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [json.loads(x)["epoch"] for x in (b / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]


def test_resume_without_a_checkpoint_after_several_epochs_is_refused(tmp_path, tiny_splits):
    """With epochs recorded, a missing checkpoint is an error, never a silent restart over
    the trained weights."""
    b = tmp_path / "b"
    _train(b, tiny_splits, 2)
    (b / "checkpoint.pt").unlink()
    before = (b / "last.safetensors").read_bytes()
    with pytest.raises(VaelabError, match="no checkpoint at"):
        _train(b, tiny_splits, 3, resume=True)
    assert (b / "last.safetensors").read_bytes() == before


def test_a_different_seed_gives_different_weights(tmp_path, tiny_splits):
    _train(tmp_path / "a", tiny_splits, 1)
    train(
        tmp_path / "b",
        "vae",
        dict(SMALL),
        TrainConfig(epochs=1, batch_size=64, seed=4),
        synthetic(tiny_splits, binarize="dynamic"),
        progress=False,
    )
    wa = load_file(str(tmp_path / "a" / "last.safetensors"))
    wb = load_file(str(tmp_path / "b" / "last.safetensors"))
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)


def test_existing_run_is_not_overwritten(tmp_path, tiny_splits):
    out = tmp_path / "run"
    _train(out, tiny_splits, 1)
    before = (out / "last.safetensors").read_bytes()
    with pytest.raises(VaelabError, match="already holds a run"):
        _train(out, tiny_splits, 1)
    assert (out / "last.safetensors").read_bytes() == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_splits, monkeypatch):
    out = tmp_path / "run"
    _train(out, tiny_splits, 1)
    before = {
        p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "config.json"
    }
    original = VAE.loss

    def poisoned(self, x, y=None, kl_weight=1.0):
        t = original(self, x, y, kl_weight)
        return t | {"loss": t["loss"] * math.nan}

    monkeypatch.setattr(VAE, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became nan in epoch 2"):
        _train(out, tiny_splits, 3, resume=True)
    after = {
        p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "config.json"
    }
    assert after == before


def test_ctrl_c_keeps_a_resumable_checkpoint(tmp_path, tiny_splits, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    original = VAE.loss

    def interrupt_in_second_epoch(self, x, y=None, kl_weight=1.0):
        calls["n"] += 1
        if calls["n"] == 12:  # 8 training batches per epoch: step 4 of epoch 2
            raise KeyboardInterrupt
        return original(self, x, y, kl_weight)

    monkeypatch.setattr(VAE, "loss", interrupt_in_second_epoch)
    summary = _train(out, tiny_splits, 3)
    assert summary["interrupted"] and load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(VAE, "loss", original)
    _train(out, tiny_splits, 3, resume=True)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("good")

    def failing(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_resume_rejects_an_incompatible_checkpoint(tmp_path, tiny_splits):
    out = tmp_path / "run"
    _train(out, tiny_splits, 1)
    with pytest.raises(VaelabError, match="cannot resume .* with latent_dim=5"):
        train(
            out,
            model_config={**SMALL, "latent_dim": 5, "hidden": [32]},
            resume=True,
            progress=False,
        )


def test_dynamic_binarization_is_fresh_each_pass_and_seeded():
    x = Split(torch.full((256, 784), 0.3), torch.zeros(256, dtype=torch.long))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = torch.cat([xb for xb, _ in batches(x, 64, g1, dynamic_binarize=True)])
    b = torch.cat([xb for xb, _ in batches(x, 64, g1, dynamic_binarize=True)])
    c = torch.cat([xb for xb, _ in batches(x, 64, g2, dynamic_binarize=True)])
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.01
    assert not torch.equal(a, b)  # redrawn every time an image is used
    assert torch.equal(a, c)  # the seed fixes the stream


def test_batches_cover_every_image_once():
    data = Split(torch.arange(10.0).unsqueeze(1), torch.arange(10))
    pairs = list(batches(data, 3, torch.Generator().manual_seed(0)))
    seen = torch.cat([xb for xb, _ in pairs]).squeeze(1)
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(torch.cat([yb for _, yb in pairs]).float(), seen)  # labels travel along


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"lr": 0}, "lr must be > 0"),
        ({"lr_schedule": "linear"}, "unknown lr_schedule"),
    ],
)
def test_bad_training_settings(kwargs, match):
    with pytest.raises(VaelabError, match=match):
        TrainConfig(**kwargs)


def test_runs_saved_by_the_previous_layout_still_load(tmp_path, tiny_splits):
    """vaelab 0.1.0 kept a learned Gaussian scale as ``log_sigma`` on the model itself."""
    from safetensors.torch import save_file

    from vaelab.models import build_model
    from vaelab.runs import load_weights

    model = build_model("vae", hidden=[8], latent_dim=2, likelihood="gaussian", scale="learned")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["log_sigma"] = state.pop("likelihood.log_sigma") + 0.5
    save_file(state, str(tmp_path / "old.safetensors"))
    clone = build_model("vae", hidden=[8], latent_dim=2, likelihood="gaussian", scale="learned")
    load_weights(clone, tmp_path / "old.safetensors")
    assert clone.likelihood.log_sigma.item() == pytest.approx(state["log_sigma"].item())


def test_fused_adam_matches_the_plain_update(tiny_splits):
    """vaelab's optimizer (one fused Adam kernel on the CPU) takes the same steps as
    torch.optim.Adam's per-parameter loop, up to floating-point rounding."""
    from vaelab.models import build_model
    from vaelab.train import make_optimizer, train_step

    x = tiny_splits["train"].x[:256]
    models, opts = [], []
    for fused in (True, False):
        torch.manual_seed(0)
        model = build_model("vae", hidden=[64], latent_dim=4)
        cfg = TrainConfig(lr=3e-3, weight_decay=1e-4)
        opt = (
            make_optimizer(model, cfg, torch.device("cpu"))
            if fused
            else torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4, foreach=False)
        )
        models.append(model)
        opts.append(opt)
    assert opts[0].param_groups[0]["fused"] is True
    for step in range(20):
        xb = x[(step * 32) % 256 :][:32]
        for model, opt in zip(models, opts, strict=True):
            torch.manual_seed(step)  # the same reparameterisation noise for both
            train_step(model, opt, xb, None)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    start = build_model("vae", hidden=[64], latent_dim=4)  # the weights both started from
    pairs = zip(models[0].parameters(), start.parameters(), strict=True)
    moved = [(a - b).abs().max().item() for a, b in pairs]
    assert min(moved) > 1e-3  # 20 steps moved every parameter: the comparison is not vacuous
