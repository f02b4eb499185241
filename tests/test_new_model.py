"""A new model is one file in models/ and one line in the registry, and nothing else changes.

A copy of the package gets ``tests/toy_model.py`` as ``models/toy.py`` (a setting of its own,
``gamma``; codes of shape (B, 4, 7, 7); a per-step hook) and one line in ``registry.MODELS``.
The diff between the copy and the package is checked to be just that; then every command is
run from the shell on the copy: each works, or refuses in one line.
"""

from __future__ import annotations

import difflib
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "vaelab"
TOY = Path(__file__).resolve().parent / "toy_model.py"
ENTRY = '    "toy": "vaelab.models.toy:Toy",\n'


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A copy of vaelab with the toy model added as one file and one registry line."""
    root = tmp_path_factory.mktemp("with-toy") / "src"
    copy = root / "vaelab"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(TOY, copy / "models" / "toy.py")
    registry = (copy / "registry.py").read_text()
    anchor = "MODELS: dict[str, str] = {\n"
    assert anchor in registry
    (copy / "registry.py").write_text(registry.replace(anchor, anchor + ENTRY, 1))
    return root


def test_the_change_is_one_new_file_and_one_registry_line(package):
    copy = package / "vaelab"
    assert _files(copy) - _files(SRC) == {"models/toy.py"}
    assert _files(SRC) - _files(copy) == set()
    changed = {f for f in _files(SRC) if not filecmp.cmp(SRC / f, copy / f, shallow=False)}
    assert changed == {"registry.py"}
    diff = difflib.ndiff(
        (SRC / "registry.py").read_text().splitlines(True),
        (copy / "registry.py").read_text().splitlines(True),
    )
    edits = [line for line in diff if line[:2] in ("+ ", "- ")]
    assert edits == ["+ " + ENTRY]


def _vaelab(package: Path, *argv) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(package)}
    return subprocess.run(
        [sys.executable, "-m", "vaelab", *map(str, argv)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _works_or_refuses_in_one_line(p: subprocess.CompletedProcess) -> str:
    if p.returncode == 0:
        return "works"
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert lines[0].startswith("vaelab: error: ") and "Traceback" not in p.stderr
    return "refuses"


def test_the_shell_trains_the_new_model_and_every_command_answers(package, idx_dir, tmp_path):
    p = _vaelab(package, "train", "--model", "toy", "--help")
    assert p.returncode == 0 and "toy's own settings" in p.stdout
    assert "--gamma GAMMA" in p.stdout and "(default: 0.01)" in p.stdout

    run = tmp_path / "toy-run"
    p = _vaelab(
        package, "train", "--model", "toy", "--gamma", 3, "--epochs", 1, "--data-dir", idx_dir,
        "--no-verify", "--out", run, "--no-progress",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == "toy" and saved["model_config"]["gamma"] == 3

    outcome = {
        "evaluate": _vaelab(package, "evaluate", run, "--no-progress"),
        "evaluate --nll-samples": _vaelab(package, "evaluate", run, "--nll-samples", 5),
        "plot": _vaelab(package, "plot", run),
        "report": _vaelab(package, "report", run),
        "encode": _vaelab(package, "encode", run, "-o", tmp_path / "z.npz"),
        "sample": _vaelab(package, "sample", run, "-o", tmp_path / "s.png"),
        "reconstruct": _vaelab(package, "reconstruct", run, "-o", tmp_path / "r.png"),
        "explore": _vaelab(package, "explore", run),
    }
    verdict = {name: _works_or_refuses_in_one_line(p) for name, p in outcome.items()}
    # what a model with codes and no prior can do, and what it cannot
    assert verdict["evaluate"] == verdict["plot"] == verdict["report"] == "works"
    assert verdict["encode"] == verdict["reconstruct"] == "works"
    assert verdict["evaluate --nll-samples"] == verdict["sample"] == "refuses"
    assert "importance sampling" in outcome["evaluate --nll-samples"].stderr
    z = np.load(tmp_path / "z.npz")
    assert z["z"].shape == (120, 4 * 7 * 7) and z["labels"].shape == (120,)
    assert (run / "report.html").is_file() and (run / "figures" / "reconstructions.png").is_file()
