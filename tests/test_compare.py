"""vaelab compare: runs side by side, never mixing kinds of numbers or K silently."""

from __future__ import annotations

import re

import pytest
from helpers import synthetic

from vaelab.cli import main
from vaelab.compare import compare, html, markdown
from vaelab.errors import VaelabError
from vaelab.evaluate import evaluate_run
from vaelab.train import TrainConfig, train


def run_pair(tmp_path, tiny_splits):
    small = {"hidden": [16], "latent_dim": 2}
    settings = TrainConfig(epochs=2, batch_size=128)
    gray, binary = tmp_path / "gray", tmp_path / "binary"
    train(gray, "vae", small, settings, synthetic(tiny_splits), progress=False)
    data = synthetic(tiny_splits, binarize="dynamic")
    train(binary, "iwae", small | {"k": 3}, settings, data, progress=False)
    evaluate_run(gray, nll_samples=5, progress=False, device="cpu")
    evaluate_run(binary, nll_samples=10, progress=False, device="cpu")
    return gray, binary


def test_table_labels_every_estimate_and_warns_when_a_column_mixes(tmp_path, tiny_splits):
    gray, binary = run_pair(tmp_path, tiny_splits)
    rows = compare([gray, binary])
    assert [r.kind for r in rows] == ["loss", "likelihood"] and [r.k for r in rows] == [5, 10]
    text = markdown(rows)
    lines = text.splitlines()
    columns = [len(re.findall(r"(?<!\\)\|", line)) for line in lines[:4]]
    assert lines[0].startswith("| run | model |") and len(set(columns)) == 1  # p(x\|z) escaped
    assert "(loss, not an NLL, K=5)" in lines[2] and "(NLL, K=10)" in lines[3]
    assert "Not comparable across kinds" in text and "different K (5, 10)" in text
    assert "2/2" in lines[2] or "/2" in lines[2]  # active units of a 2-D code
    # one kind and one K: no such warnings
    single = markdown(compare([binary]))
    assert "Not comparable" not in single and "different K" not in single
    page = html(rows)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page


def test_compare_from_the_command_line(tmp_path, tiny_splits, capsys):
    gray, binary = run_pair(tmp_path, tiny_splits)
    assert main(["compare", str(gray), str(binary), "--curves", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| gray |" in out and "| binary |" in out and (tmp_path / "c.png").stat().st_size > 0
    assert main(["compare", str(gray), "--html", "-o", str(tmp_path / "t.html")]) == 0
    assert (tmp_path / "t.html").read_text().count("<tr>") == 2  # header and one run
    assert main(["compare", str(tmp_path / "nothing")]) == 1
    assert "not a vaelab run folder" in capsys.readouterr().err


def test_an_unevaluated_run_has_an_empty_row(tmp_path, tiny_splits):
    out = tmp_path / "fresh"
    train(out, "vae", {"hidden": [8], "latent_dim": 2}, TrainConfig(epochs=1),
          synthetic(tiny_splits), progress=False)  # fmt: skip
    (row,) = compare([out])
    assert row.kind is None and row.nll is None and row.epochs == 1 and row.curve
    with pytest.raises(VaelabError):
        compare([])


def test_nll_against_time_plots_only_likelihoods(tmp_path, tiny_splits):
    from vaelab.plots import nll_against_time

    gray, binary = run_pair(tmp_path, tiny_splits)
    path = nll_against_time(compare([gray, binary]), tmp_path / "t.png", [("VAE", 86.76)])
    assert path.stat().st_size > 1000
    with pytest.raises(VaelabError, match="no run here has a test NLL"):
        nll_against_time(compare([gray]), tmp_path / "g.png")


def test_published_labels_spread_apart_and_commands_name_no_local_folder():
    """Labels of close lines (85.54 and 85.33 nats) end at least the gap apart, in the lines'
    order; a recorded command reads runs/LAUNCH and DATA_DIR instead of the machine's folders."""
    from tools.experiments.likelihood_table import public
    from vaelab.plots import spread_labels

    values = [86.76, 85.54, 85.33, 84.78, 82.90, 82.38]
    heights = spread_labels(values, 0.4)
    ordered = [h for _, h in sorted(zip(values, heights, strict=True))]
    assert all(b - a >= 0.4 - 1e-9 for a, b in zip(ordered, ordered[1:], strict=False))
    assert max(abs(h - v) for h, v in zip(heights, values, strict=True)) < 1.0
    cmd = public("vaelab train --out /tmp/tg/vae1-s0 --data-dir /tmp/mnist --seed 0", "table-gpu")
    assert cmd == "vaelab train --out runs/table-gpu/vae1-s0 --data-dir DATA_DIR --seed 0"
    assert (
        public("vaelab evaluate /tmp/tg/vae1-s0 --json", "g")
        == "vaelab evaluate runs/g/vae1-s0 --json"
    )


def test_likelihood_page_written_from_runs_renders_again_from_its_saved_numbers(
    tmp_path, tiny_splits
):
    """`write` saves the numbers beside the page and `render` makes the same page from them
    alone; the page names no folder of the machine that ran the launch."""
    import argparse
    import json
    import shutil

    from tools.experiments.likelihood_table import DATA, render_saved, write

    _, binary = run_pair(tmp_path, tiny_splits)
    launch = tmp_path / "launch"
    shutil.copytree(binary, launch / "iwae50-s0")
    cmd = f"vaelab train --out {launch}/iwae50-s0 --data-dir {tmp_path}/mnist"
    run = {"row": "iwae50", "seed": 0, "command": cmd,
           "evaluate": f"vaelab evaluate {launch}/iwae50-s0"}  # fmt: skip
    manifest = {"launch": f"python -m x launch --out-dir {launch}", "jobs_at_once": 1,
                "hardware": {"cpu": "a CPU", "cpu_threads": 2, "torch": "2"},
                "runs": {"iwae50-s0": run}}  # fmt: skip
    (launch / "manifest.json").write_text(json.dumps(manifest))
    doc = tmp_path / "site" / "likelihoods.md"
    write(argparse.Namespace(dirs=[str(launch)], doc=str(doc), figures=None))
    page = doc.read_text()
    assert str(tmp_path) not in page and "--out runs/launch/iwae50-s0" in page
    assert "--data-dir DATA_DIR" in page and (doc.parent / DATA).exists()
    headline = [x for x in page.splitlines() if x.startswith("| IWAE k=50, 1 stochastic layer |")]
    assert len(headline) == 1 and "84.78" in headline[0]  # the best run beside the published
    doc.unlink()
    render_saved(argparse.Namespace(doc=str(doc), data=None, figures=None))
    assert doc.read_text() == page
    assert (doc.parent / "figures" / "likelihood-vs-time.png").stat().st_size > 1000
