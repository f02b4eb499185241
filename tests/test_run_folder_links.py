"""A run folder someone else can write to: links planted in it are refused, never followed.

Each attack points a name in the run folder at a file outside it; the command must fail in one
line (``vaelab: error: ...``, exit 1) and the outside file must be unchanged, content and mtime.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import make_digits, write_idx

from vaelab.cli import main

SMALL = ["--hidden", 16, "--latent-dim", 2, "--batch-size", 50, "--no-figures", "--no-progress"]


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, *words: str) -> None:
    """Exit 1 with one ``vaelab: error:`` line as the last (progress lines may come before)."""
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1].startswith("vaelab: error: "), err
    assert "Traceback" not in err and sum("error" in line for line in lines) == 1, err
    for word in words:
        assert word in lines[-1], err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A one-epoch run (figures included) on synthetic digits, trained once per module."""
    root = tmp_path_factory.mktemp("links")
    data = root / "data"
    data.mkdir()
    for prefix, n, seed in [("train", 300, 1), ("t10k", 60, 2)]:
        x, y = make_digits(n, seed=seed)
        write_idx(data / f"{prefix}-images-idx3-ubyte", x)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", y)
    run = root / "run"
    argv = ["train", "--model", "vae", "--data-dir", data, "--no-verify", "--epochs", 1,
            "--out", run, *SMALL]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert main(["plot", str(run)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, to plant links in."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the run folder that must never be read into it or written."""
    secret = tmp_path / "home" / "secret"
    secret.parent.mkdir()
    secret.write_text("private key\n")
    os.utime(secret, (1_000_000_000, 1_000_000_000))
    return secret


def unchanged(path: Path) -> bool:
    return path.read_text() == "private key\n" and path.stat().st_mtime == 1_000_000_000


# --- the lock files ---------------------------------------------------------------------------


def test_a_linked_lock_is_refused_on_resume(run, outside, capsys):
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(outside)
    code, err = cli(capsys, "train", "--resume", run, "--epochs", 2, "--no-progress")
    one_line_error(code, err, ".lock", "link")
    assert unchanged(outside)


def test_a_linked_lock_is_refused_in_a_new_out_folder(trained, tmp_path, outside, capsys):
    data = tmp_path / "data"
    shutil.copytree(trained.parent / "data", data)
    new = tmp_path / "new"
    new.mkdir()
    (new / ".lock").symlink_to(outside)
    code, err = cli(capsys, "train", "--model", "vae", "--data-dir", data, "--no-verify",
                    "--epochs", 1, "--out", new, *SMALL)  # fmt: skip
    one_line_error(code, err, ".lock", "link")
    assert unchanged(outside)
    assert not (new / "config.json").exists()


def test_a_lock_hard_linked_to_another_file_is_refused(run, outside, capsys):
    (run / ".lock").unlink(missing_ok=True)
    os.link(outside, run / ".lock")
    code, err = cli(capsys, "train", "--resume", run, "--epochs", 2, "--no-progress")
    one_line_error(code, err, ".lock", "hard links")
    assert unchanged(outside)


def test_a_dangling_evaluation_lock_creates_nothing(run, tmp_path, capsys):
    target = tmp_path / "home" / "created"
    (run / ".evaluation.lock").unlink(missing_ok=True)
    (run / ".evaluation.lock").symlink_to(target)
    code, err = cli(capsys, "evaluate", run, "--no-progress", "--limit", 20)
    one_line_error(code, err, ".evaluation.lock", "link")
    assert not target.exists() and not target.is_symlink()


def test_a_lock_that_is_not_a_regular_file_is_refused(run, capsys):
    (run / ".evaluation.lock").unlink(missing_ok=True)
    os.mkfifo(run / ".evaluation.lock")
    code, err = cli(capsys, "evaluate", run, "--no-progress", "--limit", 20)
    one_line_error(code, err, ".evaluation.lock", "not a regular file")


# --- figures ----------------------------------------------------------------------------------


def test_a_linked_figure_is_never_copied_into_the_report(run, outside, capsys):
    (run / "figures" / "zz.png").symlink_to(outside)
    code, err = cli(capsys, "report", run)
    one_line_error(code, err, "zz.png", "link")
    assert unchanged(outside)
    assert not (run / "report.html").exists()
    (run / "figures" / "zz.png").unlink()
    assert main(["report", str(run)]) == 0  # the honest folder reports as before


def test_a_linked_figures_folder_is_never_written(run, tmp_path, capsys):
    elsewhere = tmp_path / "home" / "pictures"
    elsewhere.mkdir(parents=True)
    shutil.rmtree(run / "figures")
    (run / "figures").symlink_to(elsewhere, target_is_directory=True)
    code, err = cli(capsys, "plot", run)
    one_line_error(code, err, "figures", "link")
    assert list(elsewhere.iterdir()) == []
    code, err = cli(capsys, "report", run)  # nor read for the report
    one_line_error(code, err, "figures", "link")


# --- the run's files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, command",
    [
        ("config.json", ["report"]),
        ("metrics.jsonl", ["report"]),
        ("evaluation.json", ["report"]),
        ("best.safetensors", ["evaluate", "--limit", "20", "--no-progress"]),
        ("checkpoint.pt", ["train", "--epochs", "2", "--no-progress", "--resume"]),
    ],
)
def test_a_linked_run_file_is_refused(run, tmp_path, name, command, capsys):
    """The link points at a good copy of the same file, so only the link can be refused."""
    copy = tmp_path / "home" / name
    copy.parent.mkdir(exist_ok=True)
    if (run / name).exists():
        shutil.move(run / name, copy)
    else:
        copy.write_text("{}\n")
    (run / name).symlink_to(copy)
    before = copy.read_bytes(), copy.stat().st_mtime_ns
    code, err = cli(capsys, *command, run)
    one_line_error(code, err, name, "link")
    assert (copy.read_bytes(), copy.stat().st_mtime_ns) == before


@pytest.mark.parametrize("name, command", [("report.html", "report"), ("explorer.html", "explore")])
def test_a_linked_output_page_is_replaced_not_followed(run, outside, name, command):
    (run / name).symlink_to(outside)
    assert main([command, str(run)]) == 0
    assert not (run / name).is_symlink() and (run / name).stat().st_size > 0
    assert unchanged(outside)
