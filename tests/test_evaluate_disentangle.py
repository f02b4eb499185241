"""``vaelab evaluate --disentanglement``: the metrics of a run on its data's factor grid, in
evaluation.json, printed, in the report and in compare's table; refused without a grid."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import vaelab.data
from tests.helpers import run, tiny_run
from vaelab.compare import cells, markdown, row_of
from vaelab.config import DataConfig
from vaelab.data import Split, put_splits
from vaelab.disentangle.known import IndexGrid
from vaelab.disentangle.suite import MEANINGS
from vaelab.errors import VaelabError
from vaelab.evaluate import evaluate_run, format_result
from vaelab.report import write_report
from vaelab.train import TrainConfig, train

GRID = IndexGrid((4, 5, 6))


def _splits() -> dict[str, Split]:
    factors = GRID.factors_of(np.arange(len(GRID)))
    rng = np.random.default_rng(0)
    out = {}
    for name, n in [("train", 96), ("val", 12), ("test", 12)]:
        f = factors[rng.choice(len(GRID), n)]
        pixels = torch.from_numpy(GRID.images(f))
        out[name] = Split(pixels, torch.full((n,), -1), GRID.shape, None, torch.from_numpy(f),
                          GRID.names)  # fmt: skip
    return out


@pytest.fixture
def factor_run(tmp_path, monkeypatch):
    data = put_splits(DataConfig(data="synthetic-factor-grid"), _splits())  # images (1, 1, 3)
    path = tmp_path / "run"
    cfg = {"hidden": [16], "latent_dim": 3}
    train(path, "vae", cfg, TrainConfig(epochs=1, batch_size=32), data, progress=False)
    monkeypatch.setattr(vaelab.data, "ground_truth", lambda cfg: GRID)
    return path


def test_the_evaluation_keeps_every_metric_with_its_settings_and_time(factor_run):
    result = evaluate_run(factor_run, disentanglement=True, progress=False)
    d = result["disentanglement"]
    assert set(d["values"]) == set(MEANINGS)
    assert all(0.0 <= v <= 1.0 for v in d["values"].values())
    assert set(d["seconds"]) == {"beta_vae", "factor_vae", "mig", "dci", "sap", "modularity"}
    assert d["settings"]["code_train"] == 2000 and d["preset"] == "quick"
    saved = json.loads((factor_run / "evaluation.json").read_text())["test"]
    assert saved["disentanglement"]["values"] == d["values"]
    text = format_result(result)
    assert "mutual information gap" in text and "higher is better" in text
    html = write_report(factor_run).read_text()
    assert "dci_completeness" in html and "value (0 to 1)" in html
    row = row_of(factor_run)
    assert row.disentanglement["mig"] == pytest.approx(d["values"]["mig"])
    assert f"MIG {d['values']['mig']:.2f}" in cells(row)[-1]
    assert "Disentanglement: the metrics" in markdown([row])


def test_data_without_known_factors_are_refused_in_one_line(tmp_path, tiny_splits, capsys):
    path = tiny_run(tmp_path / "run", tiny_splits)
    with pytest.raises(VaelabError, match="no known factors"):
        evaluate_run(path, disentanglement=True, progress=False)
    code, _, err = run(capsys, "evaluate", path, "--disentanglement")
    assert code != 0 and "no known factors" in err and "Traceback" not in err


def test_a_run_without_the_metrics_has_no_entry_and_no_column(factor_run):
    result = evaluate_run(factor_run, progress=False)
    assert "disentanglement" not in result
    row = row_of(factor_run)
    assert row.disentanglement is None and cells(row)[-1] == ""


def test_the_report_shows_a_malformed_entry_without_failing(factor_run):
    (factor_run / "evaluation.json").write_text(
        json.dumps({"test": {"disentanglement": {"values": [1], "seconds": "x", "meaning": 3}}})
    )
    assert "<h3>disentanglement</h3>" in write_report(factor_run).read_text()
    assert row_of(factor_run).disentanglement is None


def test_a_grid_of_other_images_than_the_models_is_refused(factor_run, monkeypatch):
    monkeypatch.setattr(vaelab.data, "ground_truth", lambda cfg: IndexGrid((4, 5)))
    with pytest.raises(VaelabError, match=r"factor grid's images are \(1, 1, 2\)"):
        evaluate_run(factor_run, disentanglement=True, progress=False)


def test_the_command_prints_every_number_with_its_meaning_and_the_time(factor_run, capsys):
    code, out, _ = run(capsys, "evaluate", factor_run, "--disentanglement", "--no-progress")
    assert code == 0
    assert "disentanglement on factor indices (quick preset" in out
    assert re.search(r"s in all: beta_vae \d+\.\d s, .*, modularity \d+\.\d s\)", out)
    lines = [line.split() for line in out.splitlines() if line.startswith("    ")]
    named = {words[0]: words for words in lines if words[0] in MEANINGS}
    assert set(named) == set(MEANINGS)
    assert all(0.0 <= float(words[1]) <= 1.0 and len(words) > 4 for words in named.values())
