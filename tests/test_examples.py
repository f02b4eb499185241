"""The tutorial's example scripts run, and the generated tutorial matches the code."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(name, *args):
    cmd = [sys.executable, str(ROOT / "examples" / f"{name}.py"), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_ae_example_on_synthetic_digits(tmp_path, idx_dir):
    out = run_example(
        "mnist_ae", "--epochs", 1, "--data-dir", idx_dir, "--no-verify", "--out", tmp_path / "ae"
    )
    assert "test reconstruction loss" in out and "linear probe on the 20-D codes" in out
    assert (tmp_path / "ae" / "figures" / "reconstructions.png").exists()


def test_vae_example_on_synthetic_digits(tmp_path, idx_dir):
    out = run_example(
        "mnist_vae", "--epochs", 1, "--data-dir", idx_dir, "--no-verify", "--out", tmp_path / "vae"
    )
    m = re.search(r"test loss ([\d.]+) = recon ([\d.]+) \+ KL ([\d.]+)", out)
    assert m and float(m[1]) == pytest.approx(float(m[2]) + float(m[3]), abs=0.02)
    assert "active units" in out


@pytest.mark.mnist
@pytest.mark.parametrize("name", ["mnist_ae", "mnist_vae"])
def test_examples_on_a_slice_of_mnist(tmp_path, name):
    out = run_example(name, "--epochs", 1, "--train-limit", 2000, "--out", tmp_path / name)
    assert "test" in out


def test_tutorial_is_generated_from_the_current_examples():
    tutorial = ROOT / "docs" / "tutorial.md"
    if not tutorial.exists():
        pytest.skip("docs/tutorial.md not generated yet (make docs)")
    text = tutorial.read_text()
    assert "{{" not in text and "[[" not in text
    for name in ("mnist_ae", "mnist_vae"):
        assert (ROOT / "examples" / f"{name}.py").read_text().strip() in text
    for figure in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (ROOT / "docs" / figure).is_file(), figure


def test_tutorial_is_the_current_template_filled_with_the_saved_values(tmp_path):
    """An edit to the template that was not rendered (make tutorial-text) fails here."""
    values = ROOT / "docs" / "tutorial.values.json"
    if not values.exists():
        pytest.skip("docs/tutorial.values.json not generated yet (make docs)")
    (tmp_path / "tutorial.values.json").write_text(values.read_text())
    cmd = [sys.executable, "-m", "tools.docs.make_docs", "--render-only"]
    p = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    rendered = (tmp_path / "tutorial.md").read_text()
    assert rendered == (ROOT / "docs" / "tutorial.md").read_text()
    assert json.loads(values.read_text())["epochs"] in rendered


@pytest.mark.mnist
def test_results_script_quick_mode(tmp_path):
    """`python -m tools.experiments.results --quick` runs the whole pipeline in minutes and
    writes its table next to its runs, with the estimator's diagnostics computed, not assumed."""
    p = subprocess.run(
        [sys.executable, "-m", "tools.experiments.results", "--quick", "--out-dir", tmp_path],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    text = (tmp_path / "results.md").read_text()
    assert "| vae-paper |" in text and "(NLL, K=50)" in text
    assert "is below its negative ELBO" in text or "is NOT below" in text
    assert "effective sample size" in text and "Not comparable across kinds" in text
    assert text.count("principal subspace") == 1
    assert "pythae" in text.split("Not comparable with the table above")[1]
    assert (tmp_path / "figures" / "nll-vs-time.png").stat().st_size > 1000


@pytest.mark.mnist
def test_likelihood_table_quick_mode(tmp_path):
    """Every row of the likelihood table trains and is evaluated through the same commands as
    the full table, and the table states each row's command, hardware and diagnostics."""
    p = subprocess.run(
        [sys.executable, "-m", "tools.experiments.likelihood_table", "--quick",
         "--quick-dir", tmp_path],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["runs"]) == 8
    assert all(r["train_exit"] == 0 and r["evaluate_exit"] == 0 for r in manifest["runs"].values())
    text = (tmp_path / "likelihoods.md").read_text()
    details = text.split("test NLL ± s.e. (nats), K = 50, 300 images")[1].split("</details>")[0]
    rows = [line for line in details.splitlines() if line.startswith("| `") and " ± " in line]
    assert len(rows) == 8  # K=50 on 300 test images (said once in the header), a line per row
    assert "vaelab train --protocol paper --batch-size 100" in text and "--preset burda2" in text
    assert (tmp_path / "figures" / "likelihood-vs-time.png").stat().st_size > 1000


def test_disentanglement_study_quick_mode(tmp_path):
    """`python -m tools.experiments.disentanglement --quick` trains every model of the study
    on the sprites with two seeds, scores each with every metric, and writes the page's made
    part (tables with mean ± sd, the seeds-against-models table, the figures) where told."""
    page = tmp_path / "page.md"
    page.write_text("# kept above\n\n<!-- made by tools/experiments/disentanglement.py -->\n"
                    "old\n<!-- end of the made part -->\n\nkept below\n")  # fmt: skip
    p = subprocess.run(
        [sys.executable, "-m", "tools.experiments.disentanglement", "--quick", "--jobs", "2",
         "--run-dir", tmp_path / "runs", "--page", page],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    text = page.read_text()
    assert text.startswith("# kept above") and text.rstrip().endswith("kept below")
    assert "\nold\n" not in text
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert len(results) == 10 and {r["seed"] for r in results} == {0, 1}
    for r in results:
        assert set(r["metrics"]) >= {"beta_vae", "factor_vae", "mig", "dci_disentanglement",
                                     "sap", "modularity"}  # fmt: skip
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert r["recon"] > 0 and r["kl"] >= 0
    rows = [line for line in text.splitlines() if line.startswith("| β-VAE, β = 4 (2) |")]
    assert len(rows) == 2 and all(" ± " in line for line in rows)
    assert "range of the 5 models' means" in text
    figures = tmp_path / "figures"
    assert (figures / "disentanglement-metrics.png").stat().st_size > 1000
    assert len(list(figures.glob("disentanglement-*-best.png"))) == 5
