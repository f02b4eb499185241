"""Per-image estimates beside evaluation.json, and `vaelab compare A B` paired on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import synthetic

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.evaluate import evaluate_run
from vaelab.paired import PER_IMAGE, Paired, paired, read_per_image
from vaelab.train import TrainConfig, train


def two_runs(tmp_path, tiny_splits, limit=40):
    """Two tiny binarized VAEs (different seeds) scored on the same first ``limit`` images."""
    small = {"hidden": [16], "latent_dim": 2}
    data = synthetic(tiny_splits, binarize="dynamic")
    runs = []
    for seed in (0, 1):
        folder = tmp_path / f"run{seed}"
        train(folder, "vae", small, TrainConfig(epochs=1, seed=seed), data, progress=False)
        evaluate_run(folder, nll_samples=30, limit=limit, progress=False, device="cpu")
        runs.append(folder)
    return runs


def test_per_image_values_are_saved_and_paired(tmp_path, tiny_splits):
    a, b = two_runs(tmp_path, tiny_splits)
    assert (a / PER_IMAGE).exists() and not list(a.glob(f".{PER_IMAGE}.*.tmp"))
    saved = read_per_image(a)
    log_px = saved["test[:40]/log_px"]
    assert log_px.shape == (40,) and int(saved["test[:40]/k"]) == 30
    assert {"mc_se", "log_px_jackknife", "khat", "ess"} <= {n.split("/")[1] for n in saved}
    # the saved values are the ones the evaluation summarised
    ev = evaluate_run(a, nll_samples=30, limit=40, progress=False, device="cpu", save=False)
    assert -log_px.mean() == pytest.approx(ev["nll"], abs=1e-9)
    p = paired(a, b)
    assert isinstance(p, Paired) and p.n_images == 40
    d = -(log_px - read_per_image(b)["test[:40]/log_px"])
    assert p.mean == pytest.approx(d.mean(), abs=1e-12)
    assert p.paired_se == pytest.approx(np.std(d, ddof=1) / math.sqrt(40), rel=1e-9)
    assert p.resolved == (abs(d.mean()) > 2 * p.paired_se)


def test_different_images_are_not_paired(tmp_path, tiny_splits):
    small = {"hidden": [16], "latent_dim": 2}
    data = synthetic(tiny_splits, binarize="dynamic")
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, limit in ((a, 20), (b, 30)):
        train(folder, "vae", small, TrainConfig(epochs=1), data, progress=False)
        evaluate_run(folder, nll_samples=5, limit=limit, progress=False, device="cpu")
    assert "no paired comparison" in paired(a, b)


def test_compare_prints_the_paired_difference(tmp_path, tiny_splits, capsys):
    a, b = two_runs(tmp_path, tiny_splits, limit=20)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "paired comparison on the same 20 images" in out
    assert "paired s.e." in out and ("not resolved" in out or "resolved:" in out)


def test_paired_verdict_follows_two_paired_standard_errors():
    p = Paired("test", 100, ("5", "5"), mean=0.3, paired_se=0.1, se_a=1.0, se_b=1.0)
    assert p.resolved and "run_a has the lower NLL" not in "\n".join(p.lines("run_a", "run_b"))
    q = Paired("test", 100, ("5", "5"), mean=-0.19, paired_se=0.1, se_a=1.0, se_b=1.0)
    assert not q.resolved and "not resolved" in "\n".join(q.lines("a", "b"))


def test_a_damaged_per_image_file_is_one_line(tmp_path):
    (tmp_path / PER_IMAGE).write_bytes(b"not a zip")
    with pytest.raises(VaelabError, match="cannot read"):
        read_per_image(tmp_path)
