"""Hostile run folders and oversized requests: each ends in one line (an error with exit
status 1, or a warning), never in a traceback, and never changes what the folder holds."""

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch
from helpers import run, synthetic, tiny_run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from vaelab import nll
from vaelab.runs import MAX_JSON_DEPTH, Run


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_splits_module) -> Path:
    """A one-epoch run of a small VAE, made once; tests work on copies (``run_dir``)."""
    return tiny_run(tmp_path_factory.mktemp("template") / "run", tiny_splits_module)


@pytest.fixture
def run_dir(template, tiny_splits, tmp_path) -> Path:
    synthetic(tiny_splits)  # the run's data, for the commands that read it
    return Path(shutil.copytree(template, tmp_path / "run"))


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("vaelab: error: ") and all(w in err for w in words), err


def test_deeply_nested_config_json_is_refused_in_one_line(run_dir, capsys):
    """Before: RecursionError in the JSON parser.  Now: refused, naming the file."""
    (run_dir / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(*run(capsys, "report", run_dir)[::2], "config.json", "nests")
    shallow = {"model": "vae", "model_config": {}, "train": {}, "data": {}}
    for _ in range(MAX_JSON_DEPTH):  # parses, but deeper than any vaelab file
        shallow["model_config"] = {"a": shallow["model_config"]}
    (run_dir / "config.json").write_text(json.dumps(shallow))
    one_line_error(*run(capsys, "compare", run_dir)[::2], "config.json", "deep")


@pytest.mark.parametrize(
    "line, words",
    [
        (b"\xff\xfe\x00garbage\x9c", ["line 2", "not UTF-8"]),
        (b'{"epoch": 2, "val_loss": "x"}', ["line 2", "'val_loss'", "not a finite number"]),
        (b'{"epoch": 2, "val_loss": NaN}', ["line 2", "'val_loss'", "not a finite number"]),
        (b'{"epoch": "2"}', ["line 2", "epoch", "whole number"]),
        (b"[1, 2]", ["line 2", "not a JSON object"]),
        (b"[" * 100_000, ["line 2", "nests too deeply"]),
    ],
)
def test_a_bad_metrics_line_is_named_by_every_reader(run_dir, capsys, line, words):
    """Before: UnicodeDecodeError (random bytes) or TypeError (a string for a number) in
    report, compare, plot and resume.  Now: one line naming the file and the line."""
    metrics = run_dir / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes() + line + b"\n")
    for argv in (["report", run_dir], ["compare", run_dir], ["plot", run_dir],
                 ["train", "--resume", run_dir, "--epochs", 2, "--no-progress"]):  # fmt: skip
        one_line_error(*run(capsys, *argv)[::2], "metrics.jsonl", *words)


def poison(run_dir: Path) -> None:
    """NaN in every tensor of the best weights (training's divergence check never saves
    such weights; a damaged or foreign file can hold them)."""
    path = run_dir / "best.safetensors"
    state = {k: torch.full_like(v, float("nan")) for k, v in load_file(str(path)).items()}
    save_file(state, str(path))


def test_nan_weights_are_named_by_explore_evaluate_and_sample(run_dir, capsys):
    """Before: LinAlgError in explore; evaluate and sample printed NaN without a word.  Now:
    explore refuses in one line; evaluate and sample warn in one line, then go on."""
    poison(run_dir)
    one_line_error(*run(capsys, "explore", run_dir)[::2], "best.safetensors", "non-finite")
    for argv in (["evaluate", run_dir, "--no-progress"],
                 ["sample", run_dir, "-o", run_dir / "s.png"]):  # fmt: skip
        code, _, err = run(capsys, *argv)
        assert code == 0 and "Traceback" not in err, err
        warnings = [line for line in err.splitlines() if "non-finite" in line]
        assert len(warnings) == 1 and "best.safetensors" in warnings[0], err
        assert "8 of its 8 tensors" in warnings[0], err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sample", "-n", 10**9], ["-n must lie in 1..10000, got 1000000000"]),
        (["sample", "-n", 0], ["-n must lie in 1..10000"]),
        (["sample", "--ncol", 10**6], ["--ncol must lie in 1..256"]),
        (["reconstruct", "-n", 10**9], ["-n must lie in 1..10000"]),
        (["reconstruct", "--ncol", 0], ["--ncol must lie in 1..256"]),
    ],
)
def test_grid_sizes_are_bounded(run_dir, capsys, argv, words):
    """Before: ``sample -n 1000000000`` tried to allocate about 80 GB."""
    one_line_error(*run(capsys, argv[0], run_dir, *argv[1:])[::2], *words)


def test_a_long_estimate_says_how_long_before_it_goes_on(run_dir, capsys, monkeypatch):
    """Before: ``--nll-samples 1000000000`` started with no word of the hours it would take.
    Now: the first chunks are timed and the whole estimate's time is logged, once."""
    monkeypatch.setattr(nll, "FORECAST_AFTER_S", 0.0)
    monkeypatch.setattr(nll, "plan_chunks", lambda *a, **k: nll.ChunkPlan(batch=64, k_chunk=2))
    code, _, err = run(capsys, "evaluate", run_dir, "--nll-samples", 8, "--no-progress")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("about ")]
    assert len(lines) == 1 and lines[0].endswith(
        "for 8 samples of 128 images (timed on the first chunks)"
    ), err
    assert [nll.duration(s) for s in (3, 600, 4 * 3600, 5 * 86400)] == [
        "3 s", "10 min", "4.0 h", "5.0 days"
    ]  # fmt: skip


def test_the_forecast_stays_quiet_for_a_short_estimate(caplog):
    forecast = nll.Forecast(chunks=100, what="K samples")
    with caplog.at_level(logging.INFO, logger="vaelab.nll"):
        for _ in range(100):
            forecast()
    assert not caplog.records  # 100 chunks of microseconds: far under FORECAST_AFTER_S


# --- fuzzing ----------------------------------------------------------------------------

FILES = ("config.json", "metrics.jsonl", "evaluation.json")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),  # fmt: skip
    max_leaves=12,
)


@st.composite
def hostile(draw, template: Path) -> tuple[str, bytes]:
    """One of the run's files, replaced by random bytes or random JSON, or with one value of
    its own (or one line of metrics.jsonl) replaced by a random JSON value."""
    name = draw(st.sampled_from(FILES))
    how = draw(st.sampled_from(["bytes", "json", "edit"]))
    if how == "bytes":
        return name, draw(st.binary(max_size=300))
    if how == "json":
        return name, json.dumps(draw(json_values)).encode()
    if name == "metrics.jsonl":
        rows = [json.loads(line) for line in (template / name).read_text().splitlines()]
        row = rows[-1]
        row[draw(st.sampled_from(sorted(row)))] = draw(json_values)
        return name, "".join(json.dumps(r) + "\n" for r in rows).encode()
    saved = json.loads((template / "config.json").read_text()) if name == "config.json" else {
        "test": {"kind": "loss", "neg_elbo": 1.0, "n_images": 128, "nll_k": 5}
    }  # fmt: skip
    key = draw(st.sampled_from(sorted(saved)))
    if isinstance(saved[key], dict) and draw(st.booleans()):
        saved[key][draw(st.sampled_from(sorted(saved[key])))] = draw(json_values)
    else:
        saved[key] = draw(json_values)
    return name, json.dumps(saved).encode()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.name not in ("report.html", ".evaluation.lock")
        and "figures" not in p.parts
    }


def check_outcome(code: int, err: str) -> None:
    """Success, or exit status 1 with exactly one line on stderr; never a traceback."""
    assert "Traceback" not in err, err
    assert code in (0, 1), err
    if code == 1:
        assert len(err.strip().splitlines()) == 1 and err.startswith("vaelab: error: "), err


def test_fuzzed_run_files_end_in_success_or_one_line(template, tiny_splits, capsys):
    """report, compare, plot and evaluate on a run with one file made hostile: success or one
    line, and the folder unchanged (evaluate may replace an unreadable evaluation.json with
    its own, valid result)."""
    examples, t0 = [], time.perf_counter()

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile(template))
    @example(("config.json", b"[" * 50_000))
    @example(("metrics.jsonl", b'{"epoch": 1, "val_loss": "x"}\n'))
    @example(("evaluation.json", b'{"test": {"kind": [], "n_images": "x", "nll_k": 1e400}}'))
    def fuzz(case):
        name, data = case
        synthetic(tiny_splits)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(shutil.copytree(template, Path(tmp) / "run"))
            (folder / name).write_bytes(data)
            before = folder_bytes(folder)
            commands = [["report", folder], ["compare", folder],
                        ["evaluate", folder, "--no-progress"]]  # fmt: skip
            if name == "metrics.jsonl":  # plot is the slow one; the others read the rest
                commands.append(["plot", folder])
            for argv in commands:
                check_outcome(*run(capsys, *argv)[::2])
            after = folder_bytes(folder)
            if after.get("evaluation.json") != before.get("evaluation.json"):  # evaluate's
                assert Run.load(folder).evaluation()["test"]["n_images"] == 128  # own result
                after.pop("evaluation.json")
                before.pop("evaluation.json", None)
            assert after == before
        examples.append(name)

    fuzz()
    seconds = time.perf_counter() - t0
    print(f"{len(examples)} fuzzed run folders in {seconds:.1f} s")
    assert len(examples) >= 30
