"""Faults injected on purpose: kills, a second writer, a full disk, hostile files, NaNs, load.

Each test injects a fault and asserts that nothing saved is lost or corrupted and that nothing
is executed.  The process-level ones train small models on synthetic digits in subprocesses.
"""

import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaelab.cli import main
from vaelab.config import DataConfig, TrainConfig
from vaelab.errors import VaelabError
from vaelab.runs import Run, RunLock, load_checkpoint, load_run
from vaelab.train import TrainingDiverged, fit, resolve_run

ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SMALL = ["--hidden", 32, "--latent-dim", 2, "--batch-size", 50, "--no-figures", "--no-progress"]

# Runs vaelab's command line, SIGKILLing itself inside the N-th atomic write (argv[1]): after
# the temporary file is written, before it is renamed into place (N = 0: no kill).
KILL_IN_WRITE = r"""
import os, signal, sys
import vaelab.runs as runs
n, count = int(sys.argv[1]), [0]
real_replace = os.replace
def replace(src, dst):
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
runs.os = type(os)("os_with_a_kill")
runs.os.__dict__.update(os.__dict__)
runs.os.replace = replace
from vaelab.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def cli(*argv, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vaelab", *map(str, argv)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, **kw,
    )  # fmt: skip


def train_args(idx_dir, out, epochs, hidden=32) -> list:
    return ["train", "--model", "vae", "--data-dir", idx_dir, "--no-verify", "--epochs", epochs,
            "--out", out, *SMALL, "--hidden", hidden]  # fmt: skip


def check_folder(run: Path, live: bool = False) -> int:
    """The folder loads: config, weights, metrics and checkpoint all parse and agree.  Returns
    the checkpoint's epoch (0 when none was written yet).  ``live``: a run still training,
    whose metrics may move on between the reads."""
    if not (run / "config.json").exists():
        assert not (run / "checkpoint.pt").exists()
        return 0
    loaded = Run.load(run)
    if not (run / "checkpoint.pt").exists():
        return 0
    epoch = int(load_checkpoint(run / "checkpoint.pt")["epoch"])
    rows = loaded.metrics()  # read after the checkpoint: never behind it
    load_run(run, "last")
    load_run(run, "best")
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    # metrics are written just before the checkpoint; a live run may have gone further since
    assert epoch <= len(rows) if live else len(rows) in (epoch, epoch + 1)
    return epoch


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_weights(tmp_path, idx_dir):
    """20 SIGKILLs: 14 at random moments of training, 6 inside a write (after the temporary
    file, before the rename; checkpoint writes among them).  After each the folder loads and
    at most one epoch is lost; resuming to the end gives the uninterrupted run's weights."""
    epochs = 400  # about 16 s of training after 1.5 s of start-up: the kills land throughout
    straight = tmp_path / "straight"
    p = cli(*train_args(idx_dir, straight, epochs, hidden=256))
    assert p.wait(timeout=300) == 0, p.stderr.read()
    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = []
    for i in range(20):
        resume = ["train", "--resume", run, "--no-progress", "--no-figures"]
        argv = resume if (run / "config.json").exists() else train_args(idx_dir, run, epochs, 256)
        if i % 10 >= 7:  # inside the n-th write of this process: n = 1..8
            n = rng.randint(1, 8)
            p = subprocess.Popen([sys.executable, "-c", KILL_IN_WRITE, str(n), *map(str, argv)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=ENV)  # fmt: skip
            p.wait(timeout=300)
            kills.append(f"in write {n}")
        else:
            p = cli(*argv)
            seen = 0
            delay = rng.uniform(1.6, 3.2)  # python and torch start in about 1.5 s
            t0 = time.monotonic()
            while time.monotonic() - t0 < delay and p.poll() is None:
                time.sleep(0.05)
                if (run / "metrics.jsonl").exists():
                    seen = len(Run.load(run).metrics())
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
            kills.append(f"after {delay:.1f} s")
            epoch = check_folder(run)
            assert epoch >= seen - 1, (kills, seen, epoch)  # at most one epoch lost
        check_folder(run)
        if (run / "checkpoint.pt").exists() and check_folder(run) == epochs:
            break
    assert len(kills) == 20
    while check_folder(run) < epochs:  # finish it
        p = cli("train", "--resume", run, "--no-progress", "--no-figures")
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert not list(run.glob(".*.tmp"))  # the resumes removed what the kills left
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(run / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), kills
    assert [r["epoch"] for r in Run.load(run).metrics()] == list(range(1, epochs + 1))


def test_sigterm_saves_and_exits_like_ctrl_c(tmp_path, idx_dir):
    run = tmp_path / "run"
    p = cli(*train_args(idx_dir, run, 500))
    t0 = time.monotonic()
    while not (run / "checkpoint.pt").exists() and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 130
    err = p.stderr.read()
    assert "interrupted in epoch" in err and "--resume" in err and "Traceback" not in err
    epoch = check_folder(run)
    assert epoch >= 1
    p = cli("train", "--resume", run, "--epochs", epoch + 1, "--no-progress", "--no-figures")
    assert p.wait(timeout=120) == 0
    assert check_folder(run) == epoch + 1


def test_a_second_writer_is_refused_and_a_dead_ones_lock_does_not_block(tmp_path, tiny_splits):
    from vaelab.data import use_splits

    data = DataConfig(train_limit=256)
    with use_splits(data, tiny_splits):
        run = resolve_run(tmp_path / "run", "vae", {"hidden": [16], "latent_dim": 2},
                          TrainConfig(epochs=1, batch_size=64), data)  # fmt: skip
        fit(run, progress=False)
        with RunLock(tmp_path / "run"):  # another process training into it, as far as flock sees
            with pytest.raises(VaelabError, match="is being trained by another process"):
                fit(resolve_run(tmp_path / "run", resume=True, epochs=2), progress=False)
        assert check_folder(tmp_path / "run") == 1  # the refusal changed nothing
        # a holder that dies without releasing: the kernel drops its flock
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time; from vaelab.runs import RunLock; "
            f"RunLock({str(tmp_path / 'run')!r}).acquire(); print('held', flush=True); "
            "time.sleep(60)")], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(VaelabError, match=r"pid \d+ on "):
            fit(resolve_run(tmp_path / "run", resume=True, epochs=2), progress=False)
        holder.kill()
        holder.wait()
        fit(resolve_run(tmp_path / "run", resume=True, epochs=2), progress=False)
        assert check_folder(tmp_path / "run") == 2


@pytest.mark.parametrize(
    "fault, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    ],
)
def test_disk_trouble_while_saving_keeps_the_previous_checkpoint(
    fault, message, tmp_path, idx_dir, capsys, monkeypatch
):
    run = tmp_path / "run"
    assert main([str(a) for a in train_args(idx_dir, run, 1)]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()

    import vaelab.runs

    def full_disk(*args, **kwargs):
        raise fault

    monkeypatch.setattr(vaelab.runs.tempfile, "mkstemp", full_disk)
    code = main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert code == 1 and len(err) == 1, err
    assert message in err[0] and "cannot write" in err[0] and "the previous file is kept" in err[0]
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }
    assert check_folder(run) == 1
    assert not list(run.glob(".*.tmp"))


class Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_checkpoint_is_refused_and_never_executed(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    assert main([str(a) for a in train_args(idx_dir, run, 1)]) == 0
    marker = tmp_path / "executed"
    torch.save({"model": Payload(marker), "epoch": 1}, run / "checkpoint.pt")
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--no-figures"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "cannot read checkpoint" in err[0]
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is live: it does run when trusted
    assert marker.exists()


def test_a_hostile_mnist_pickle_is_refused_and_never_executed(tmp_path):
    from vaelab.data import DataError
    from vaelab.data.formats import _mnist_from_pickle

    marker = tmp_path / "executed"
    with pytest.raises(DataError, match="refusing to unpickle"):
        _mnist_from_pickle(pickle.dumps(Payload(marker)), "mnist.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "epochs", "ten", "epochs must be an integer"),
        ("train", "lr", [1], "lr must be a number"),
        ("train", "shell", "rm -rf /", "unknown train setting(s) shell"),
        ("data", "binarize", 3, "binarize must be a string"),
        ("model_config", "hidden", [10**9, 10**9], "each of hidden must be >= 1 and <= 65,536"),
        ("model_config", "hidden", [60_000, 60_000], "parameters (more than"),
        ("train", "weight_decay", float("nan"), "weight_decay must be >= 0 and finite"),
        ("model_config", "latent_dim", "2", "latent_dim must be an integer"),
        ("model_config", "weights_path", "../../elsewhere", "weights_path"),
    ],
)
def test_a_bad_config_json_gets_one_line_before_anything_is_built(
    section, key, value, message, tmp_path, idx_dir, capsys
):
    run = tmp_path / "run"
    assert main([str(a) for a in train_args(idx_dir, run, 1)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    cfg[section][key] = value
    (run / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    for argv in (["evaluate", str(run)], ["train", "--resume", str(run), "--epochs", "2"]):
        t0 = time.perf_counter()
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and message in err[0], err
        assert time.perf_counter() - t0 < 20  # refused, not attempted


def test_nan_loss_is_reported_with_its_term_and_step(tmp_path, tiny_splits, monkeypatch):
    """--on-nan stop (the default) names the term and the step and keeps the last good
    checkpoint; --on-nan skip drops the bad batches, counts them and trains on."""
    import vaelab.train
    from vaelab.data import use_splits

    real = vaelab.train._model_loss
    calls = {"n": 0}

    def poisoned(model):
        loss = real(model)

        def fn(x, y, kl_weight):
            calls["n"] += 1
            parts = loss(x, y, kl_weight)
            if calls["n"] in (11, 29):  # epoch 2 step 3, epoch 4 step 5 (8 steps an epoch)
                parts["kl"] = parts["kl"] * float("inf")
                parts["loss"] = parts["recon"] + parts["kl"]
            return parts

        return fn

    monkeypatch.setattr(vaelab.train, "_model_loss", poisoned)
    data = DataConfig(train_limit=256)
    model_cfg = {"hidden": [16], "latent_dim": 2}
    with use_splits(data, tiny_splits):
        run = resolve_run(tmp_path / "stop", "vae", model_cfg,
                          TrainConfig(epochs=3, batch_size=64), data)  # fmt: skip
        with pytest.raises(TrainingDiverged, match=r"inf \(its kl = inf\) in epoch 2 step 3"):
            fit(run, progress=False)
        assert check_folder(tmp_path / "stop") == 1
        calls["n"] = 0
        run = resolve_run(tmp_path / "skip", "vae", model_cfg,
                          TrainConfig(epochs=4, batch_size=64, on_nan="skip"), data)  # fmt: skip
        fit(run, progress=False)
    rows = Run.load(tmp_path / "skip").metrics()
    assert [r["train_skipped_steps"] for r in rows] == [0, 1, 0, 1]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)
    weights = load_file(str(tmp_path / "skip" / "last.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_cache_file_changed_after_caching_is_detected_before_use(tmp_path, monkeypatch):
    """Every read of the cache checks each file's size and MD5, so a file changed on disk
    after caching (one byte, same size) is refused, never used."""
    import vaelab.data as data
    from vaelab.data.cache import md5

    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    for part, n, seed in [("train", 60, 1), ("test", 10, 2)]:
        g = np.random.default_rng(seed)
        x, y = g.integers(0, 256, (n, 28, 28)), g.integers(0, 10, n)
        data.write_idx(folder / data.IDX_FILES[f"{part}_images"], x)
        data.write_idx(folder / data.IDX_FILES[f"{part}_labels"], y)
    names = data.IDX_FILES.values()  # the synthetic files stand in for the canonical ones
    for n in names:
        monkeypatch.setitem(data.MNIST_MD5, n, md5((folder / n).read_bytes()))
        monkeypatch.setitem(data.MNIST_SIZES, n, (folder / n).stat().st_size)
    assert len(data.load_mnist(cache_dir=tmp_path / "cache", fetch=False).train_images) == 60
    name = data.IDX_FILES["train_images"]
    raw = bytearray((folder / name).read_bytes())
    raw[-1] ^= 0xFF  # one pixel changed on disk, same size
    (folder / name).write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=f"MD5 mismatch for {name}"):
        data.load_mnist(cache_dir=tmp_path / "cache", fetch=False)


def test_eight_commands_at_once_on_one_run_and_reading_a_run_being_written(tmp_path, idx_dir):
    """Scripts run evaluate --json, encode and sample side by side on one run folder: all
    succeed, and evaluation.json keeps every split's entry (its updates are serialised).  A
    run being trained is meanwhile read (loaded, evaluated) and never seen half-written."""
    run = tmp_path / "run"
    p = cli(*train_args(idx_dir, run, 2))
    assert p.wait(timeout=120) == 0, p.stderr.read()
    jobs = []
    for i, split in enumerate(["train", "val", "test", "test"]):
        jobs.append(cli("evaluate", run, "--split", split, "--json", "--seed", i, "--no-progress"))
    jobs.append(cli("encode", run, "-o", tmp_path / "codes.npz"))
    jobs.append(cli("encode", run, "-o", tmp_path / "codes.npy"))
    jobs.append(cli("sample", run, "-o", tmp_path / "a.png"))
    jobs.append(cli("sample", run, "-o", tmp_path / "b.png", "--seed", 1))
    for job in jobs:
        assert job.wait(timeout=300) == 0, job.stderr.read()
    saved = json.loads((run / "evaluation.json").read_text())
    assert set(saved) == {"train", "val", "test"}
    assert (tmp_path / "codes.npz").stat().st_size and (tmp_path / "a.png").stat().st_size

    live = tmp_path / "live"
    trainer = cli(*train_args(idx_dir, live, 400, hidden=256))
    reads = 0
    t0 = time.monotonic()
    while trainer.poll() is None and time.monotonic() - t0 < 60:
        if (live / "checkpoint.pt").exists():
            check_folder(live, live=True)  # every file parses and agrees, whatever the moment
            reads += 1
        time.sleep(0.02)
    evaluated = cli("evaluate", live, "--json", "--no-progress")
    assert evaluated.wait(timeout=120) == 0, evaluated.stderr.read()
    assert json.loads(evaluated.stdout.read())["n_images"] > 0
    trainer.send_signal(signal.SIGTERM)
    trainer.wait(timeout=60)
    assert reads >= 20


def test_a_bad_gradient_is_named_with_its_parameter():
    from vaelab.models import build_model
    from vaelab.train import non_finite

    torch.manual_seed(0)
    model = build_model("vae", hidden=[8], latent_dim=2)
    parts = model.loss(torch.rand(4, 784))
    parts["loss"].backward()
    assert non_finite(parts, model) == ""
    name, param = list(model.named_parameters())[-1]
    param.grad[0] = float("nan")
    assert non_finite(parts, model) == f"the gradient of {name} became non-finite"
    parts["kl"] = parts["kl"] + float("inf")
    assert non_finite(parts, model).startswith("the loss became non-finite in a term (its kl = inf")


def test_a_partial_evaluation_never_replaces_the_whole_splits(tmp_path, idx_dir, capsys):
    """evaluate --limit N is kept under 'test[:N]' beside the whole test set's entry, which
    stays what it was; readers take the whole split's entry, else the largest partial one."""
    from vaelab.compare import row_of

    run = tmp_path / "run"
    assert main([str(a) for a in train_args(idx_dir, run, 1)]) == 0
    assert main(["evaluate", str(run), "--json", "--no-progress"]) == 0
    whole = json.loads((run / "evaluation.json").read_text())["test"]
    assert main(["evaluate", str(run), "--json", "--limit", "30", "--no-progress"]) == 0
    saved = json.loads((run / "evaluation.json").read_text())
    assert saved["test"] == whole and saved["test[:30]"]["n_images"] == 30
    assert row_of(run).n_images == whole["n_images"] > 30
    (run / "evaluation.json").write_text(json.dumps({"test[:30]": saved["test[:30]"]}))
    assert row_of(run).n_images == 30
