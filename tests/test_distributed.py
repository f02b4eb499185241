"""Two CPU processes through torchrun (gloo): the same training and the same likelihood as one.

Each test starts real process groups (``python -m torch.distributed.run --standalone``), on
synthetic IDX digits, with one thread per process.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from vaelab.distributed import Dist

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
SMALL = ["--hidden", 64, "--latent-dim", 4, "--no-figures", "--no-progress", "--no-verify"]


def vaelab(*argv, processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "vaelab"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", str(processes), "-m", "vaelab"]  # fmt: skip
    p = subprocess.run(
        [*launcher, *map(str, argv)], capture_output=True, text=True, timeout=300, env=ENV
    )
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def weights(run) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last.safetensors"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_shares_cover_every_item_once():
    for n in (0, 1, 7, 100, 101):
        for world in (1, 2, 3, 8):
            shares = [Dist(r, world).share(n) for r in range(world)]
            covered = [i for s in shares for i in range(n)[s]]
            assert covered == list(range(n))
            sizes = [len(range(n)[s]) for s in shares]
            assert max(sizes) - min(sizes) <= 1


def test_two_processes_train_what_one_trains(tmp_path, idx_dir):
    """A deterministic model (the AE) on dynamically binarized pixels: the same global
    batches and bits, uneven shares in the last batch (600 = 5 x 111 + 45, shares 23 and
    22), so the same weights up to floating-point order; only rank 0 wrote the folder."""
    args = ["train", "--model", "ae", "--binarize", "dynamic", "--epochs", 2,
            "--batch-size", 111, "--data-dir", idx_dir, *SMALL]  # fmt: skip
    vaelab(*args, "--out", tmp_path / "one")
    two = vaelab(*args, "--out", tmp_path / "two", processes=2)
    assert "2 processes: global batch 111" in two.stderr
    assert two.stdout.count("done:") == 1  # rank 0 alone reports
    assert max_difference(weights(tmp_path / "one"), weights(tmp_path / "two")) < 2e-4
    m1, m2 = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert len(m2) == 2
    for a, b in zip(m1, m2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.endswith(".tmp")]


def test_two_process_vae_resumes_exactly_and_matches_one_process(tmp_path, idx_dir):
    """The VAE's sampling noise is each process's own, so against one process the result
    agrees statistically, not bit for bit; a resumed group repeats an uninterrupted one."""
    args = ["train", "--model", "vae", "--batch-size", 64, "--data-dir", idx_dir, *SMALL]
    vaelab(*args, "--epochs", 3, "--out", tmp_path / "straight", processes=2)
    vaelab(*args, "--epochs", 1, "--out", tmp_path / "resumed", processes=2)
    vaelab("train", "--resume", tmp_path / "resumed", "--epochs", 3, "--no-progress",
           "--no-figures", processes=2)  # fmt: skip
    assert max_difference(weights(tmp_path / "straight"), weights(tmp_path / "resumed")) == 0
    assert [m["epoch"] for m in metrics(tmp_path / "resumed")] == [1, 2, 3]
    vaelab(*args, "--epochs", 3, "--out", tmp_path / "one")
    one, two = metrics(tmp_path / "one")[-1], metrics(tmp_path / "straight")[-1]
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=0.02)
    assert two["val_loss"] < metrics(tmp_path / "straight")[0]["val_loss"]  # it learns


def test_sharded_likelihood_equals_one_process(tmp_path, idx_dir):
    args = ["train", "--model", "vae", "--binarize", "dynamic", "--epochs", 1,
            "--batch-size", 64, "--data-dir", idx_dir, *SMALL]  # fmt: skip
    vaelab(*args, "--out", tmp_path / "run")
    ev = ["evaluate", tmp_path / "run", "--nll-samples", 200, "--json", "--no-progress"]
    one = json.loads(vaelab(*ev).stdout)
    two = json.loads(vaelab(*ev, processes=2).stdout)
    assert two["nll_processes"] == 2 and one["nll_processes"] == 1
    for key in ("nll", "nll_sem", "nll_k_gap", "ess_median", "ess_p5", "neg_elbo"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-6), key
    saved = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert saved["test"]["nll"] == pytest.approx(one["nll"], rel=1e-6)


def test_commands_that_run_alone_refuse_a_group(tmp_path, idx_dir):
    p = vaelab("sample", tmp_path, processes=2, check=False)
    assert p.returncode != 0
    assert "only train and evaluate run under torchrun" in p.stderr
