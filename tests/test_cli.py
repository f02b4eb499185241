import json
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import run

from vaelab.cli import main

COMMANDS = ["data", "train", "evaluate", "sample", "reconstruct", "encode"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS], ["data", "fetch"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: vaelab" in capsys.readouterr().out


@pytest.fixture
def trained(tmp_path, idx_dir, capsys):
    out = tmp_path / "vae"
    code, stdout, err = run(
        capsys,
        "train",
        "--model",
        "vae",
        "--hidden",
        32,
        "--latent-dim",
        2,
        "--epochs",
        1,
        "--batch-size",
        64,
        "--data-dir",
        idx_dir,
        "--no-verify",
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    assert "done:" in stdout and "figures" in stdout
    return out


def test_train_one_epoch_then_use_the_run(trained, tmp_path, capsys):
    out = trained
    assert (out / "figures" / "samples.png").stat().st_size > 1000
    code, stdout, _ = run(capsys, "evaluate", out, "--json")
    assert code == 0
    r = json.loads(stdout)
    assert r["model"] == "vae" and r["split"] == "test" and r["n_images"] == 120
    assert r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"])
    assert "not a log-likelihood" in r["meaning"] and r["is_likelihood"] is False
    assert "nats per image" in r["unit"]
    code, text, _ = run(capsys, "evaluate", out, "--split", "val")
    # grayscale pixels: the total is labelled a loss, and no likelihood is claimed
    assert code == 0 and "loss (recon + KL)" in text and "nats per image" in text
    assert "negative ELBO" not in text and "NLL (K=" not in text

    code, stdout, _ = run(capsys, "sample", out, "-n", 16, "-o", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    code, stdout, _ = run(capsys, "reconstruct", out, "-o", tmp_path / "r.png")
    assert code == 0 and (tmp_path / "r.png").exists()
    code, stdout, _ = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0
    z = np.load(tmp_path / "z.npz")
    assert z["z"].shape == (120, 2) and z["labels"].shape == (120,)
    code, stdout, _ = run(capsys, "encode", out, "-o", tmp_path / "z.npy", "--split", "val")
    assert np.load(tmp_path / "z.npy").shape == (100, 2)
    assert np.load(tmp_path / "z_labels.npy").shape == (100,)


def test_resume_to_more_epochs_and_reject_changed_model(trained, capsys):
    code, stdout, _ = run(
        capsys, "train", "--resume", trained, "--epochs", 2, "--no-progress", "--no-figures"
    )
    assert code == 0
    assert len((trained / "metrics.jsonl").read_text().splitlines()) == 2
    code, _, err = run(capsys, "train", "--resume", trained, "--latent-dim", 8)
    assert code == 1 and "latent_dim" in err and len(err.strip().splitlines()) == 1


def test_config_file_then_flags(tmp_path, idx_dir, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: ae\nlatent_dim: 3\nhidden: [16]\nepochs: 1\ndata_dir: {idx_dir}\n"
        "verify: false\nlikelihood: gaussian\n"
    )
    out = tmp_path / "ae"
    code, _, err = run(
        capsys,
        "train",
        "--config",
        cfg,
        "--latent-dim",
        4,
        "--out",
        out,
        "--no-progress",
        "--no-figures",
    )
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "ae" and saved["model_config"]["latent_dim"] == 4
    assert saved["model_config"]["likelihood"] == "gaussian"
    code, stdout, _ = run(capsys, "evaluate", out, "--json")
    r = json.loads(stdout)
    assert r["model"] == "ae" and r["mse_per_pixel"] == pytest.approx(r["recon"] / 784, rel=1e-4)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--model", "gan"], "invalid choice: 'gan'"),
        (["train", "--epochs", "-3"], "epochs must be >= 0"),
        (["evaluate", "/nonexistent/run"], "is not a vaelab run folder"),
        (["sample", "."], "is not a vaelab run folder"),
        (["train", "--config", "/nonexistent.yaml"], "config file /nonexistent.yaml not found"),
        (["train", "--latent-dim", "x"], "invalid int value"),
        (["data", "fetch", "cifar"], "unknown data set 'cifar'"),
    ],
)
def test_bad_input_gets_one_line_and_nonzero_exit(argv, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = subprocess.run(
        [sys.executable, "-m", "vaelab", *argv], capture_output=True, text=True, timeout=120
    )
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("vaelab: error:") and needle in lines[0]
    assert "Traceback" not in p.stderr


def test_corrupt_weights_are_reported(trained, capsys):
    (trained / "best.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = run(capsys, "evaluate", trained)
    assert code == 1 and "cannot read weights" in err and len(err.strip().splitlines()) == 1


def test_corrupt_data_file_is_reported(tmp_path, idx_dir, capsys):
    path = idx_dir / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    code, _, err = run(
        capsys,
        "train",
        "--data-dir",
        idx_dir,
        "--no-verify",
        "--epochs",
        1,
        "--out",
        tmp_path / "x",
        "--no-progress",
    )
    assert code == 1 and "train-images-idx3-ubyte" in err
    assert not (tmp_path / "x").exists()


def train_cli(capsys, idx_dir, out, *extra):
    code, stdout, err = run(
        capsys, "train", *extra, "--hidden", 32, "--epochs", 1, "--batch-size", 64,
        "--data-dir", idx_dir, "--no-verify", "--out", out, "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    return stdout, err


@pytest.mark.parametrize(
    "extra,expect",
    [
        (["--model", "iwae", "--k", 3, "--latent-dim", 2], {"k": 3}),
        (["--model", "vae", "--prior", "vamp", "--pseudo-inputs", 5], {"prior": "vamp"}),
        (["--model", "vae", "--likelihood", "cbernoulli", "--kl-warmup", 2], {}),
        (["--model", "hvae", "--z1-dim", 6, "--z1-hidden", 8, "--latent-dim", 3], {"z1_dim": 6}),
        (["--preset", "conv", "--latent-dim", 4], {"encoder": "conv", "decoder": "conv"}),
        (["--preset", "resnet", "--latent-dim", 4, "--free-bits", 0.1], {"encoder": "resnet"}),
    ],
)
def test_every_family_trains_and_evaluates_from_the_command_line(
    extra, expect, tmp_path, idx_dir, capsys
):
    out = tmp_path / "run"
    stdout, err = train_cli(capsys, idx_dir, out, *extra)
    assert "epoch 1/1" in err and "figures in" in stdout  # progress on stderr, result on stdout
    saved = json.loads((out / "config.json").read_text())
    assert expect.items() <= saved["model_config"].items()
    code, stdout, err = run(capsys, "evaluate", out, "--json", "--nll-samples", 4, "--limit", 50)
    assert code == 0, err
    r = json.loads(stdout)
    assert r["n_images"] == 50 and r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"], rel=1e-5)
    bound = r.get("nll_density", r.get("importance_sampled_loss"))
    assert bound is not None and math.isfinite(bound)


def test_cvae_samples_a_chosen_digit_and_encodes_with_labels(tmp_path, idx_dir, capsys):
    out = tmp_path / "cvae"
    train_cli(capsys, idx_dir, out, "--model", "cvae", "--latent-dim", 2)
    assert (out / "figures" / "styles.png").exists()  # style kept while the label changes
    code, stdout, err = run(capsys, "sample", out, "--digit", 7, "-n", 8, "-o", tmp_path / "7.png")
    assert code == 0 and (tmp_path / "7.png").exists(), err
    code, _, err = run(capsys, "sample", out, "--digit", 12, "-o", tmp_path / "x.png")
    assert code == 1 and "digit must lie in 0..9" in err
    code, stdout, _ = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0 and np.load(tmp_path / "z.npz")["z"].shape == (120, 2)
    code, _, err = run(capsys, "reconstruct", out, "--digit", 3, "-o", tmp_path / "r.png")
    assert code == 0, err
    code, _, err = run(capsys, "explore", out)
    assert code == 1 and err.count("\n") == 1 and "decoder needs more than the code" in err
    code, _, err = run(capsys, "evaluate", out, "--protocol", "paper")
    assert code == 1 and "p(x|y), not p(x)" in err


def test_refusals_of_missing_abilities_are_one_line(trained, tmp_path, capsys):
    code, _, err = run(capsys, "sample", trained, "--digit", 3, "-o", tmp_path / "s.png")
    assert code == 1 and "needs labels (a conditional model)" in err and err.count("\n") == 1


def test_presets_and_model_from_a_preset(tmp_path, idx_dir, capsys):
    out = tmp_path / "b2"
    code, _, err = run(
        capsys, "train", "--preset", "burda2", "vamp", "--pseudo-inputs", 3, "--epochs", 0,
        "--data-dir", idx_dir, "--no-verify", "--out", out, "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "hvae" and saved["model_config"]["prior"] == "vamp"
    assert saved["model_config"]["z1_dim"] == 100 and saved["model_config"]["pseudo_inputs"] == 3
    with pytest.raises(SystemExit) as stop:  # --k is a vae's setting, not --kl-warmup
        run(capsys, "train", "--model", "ae", "--k", 3, "--out", tmp_path / "x")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unrecognized arguments: --k 3" in err
    assert "--model ae --help" in err and not (tmp_path / "x").exists()


def test_no_figures_says_nothing_about_figures(tmp_path, idx_dir, capsys):
    out = tmp_path / "nf"
    code, stdout, err = run(
        capsys, "train", "--hidden", 16, "--latent-dim", 2, "--epochs", 1, "--data-dir", idx_dir,
        "--no-verify", "--out", out, "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    assert "figures in" not in stdout and not (out / "figures").exists()


def test_paper_protocol_fixes_model_pixels_and_split(tmp_path, idx_dir, capsys):
    out = tmp_path / "paper"
    code, _, err = run(
        capsys, "train", "--protocol", "paper", "--epochs", 0, "--data-dir", idx_dir,
        "--no-verify", "--out", out, "--no-progress", "--no-figures",
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["val_size"] == 400 and saved["data"]["binarize"] == "dynamic"
    assert (
        saved["model_config"]["hidden"] == [200, 200] and saved["model_config"]["latent_dim"] == 50
    )
    code, _, err = run(capsys, "train", "--protocol", "paper", "--val-size", 10000)
    assert code == 1 and "--protocol paper needs val_size=400" in err


def test_paper_protocol_takes_any_family_that_bounds_log_px(tmp_path, idx_dir, capsys):
    """The protocol fixes the pixels and the split; the family may be any model with an ELBO
    on p(x), on Burda et al.'s net unless a preset says otherwise."""
    common = ["--epochs", 0, "--data-dir", idx_dir, "--no-verify", "--no-progress", "--no-figures"]
    out = tmp_path / "iwae"
    code, _, err = run(capsys, "train", "--protocol", "paper", "--model", "iwae", "--k", 50,
                       "--out", out, *common)  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "iwae" and saved["model_config"]["k"] == 50
    assert saved["model_config"]["hidden"] == [200, 200] and saved["data"]["val_size"] == 400
    out = tmp_path / "two"
    code, _, err = run(capsys, "train", "--protocol", "paper", "--preset", "burda2",
                       "--out", out, *common)  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "hvae" and saved["data"]["binarize"] == "dynamic"
    for family in ("ae", "cvae"):
        code, _, err = run(capsys, "train", "--protocol", "paper", "--model", family,
                           "--out", tmp_path / family, *common)  # fmt: skip
        assert code == 1 and "needs a model with an ELBO on p(x)" in err and family in err
        assert not (tmp_path / family).exists()
