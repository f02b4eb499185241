"""Small shared helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from vaelab.cli import main
from vaelab.config import DataConfig
from vaelab.data import DataError, Split, put_splits
from vaelab.train import TrainConfig, train

SYNTHETIC = "synthetic-test-data"  # a data_dir that no test reads from disk


def synthetic(splits: dict[str, Split], **data) -> DataConfig:
    """A data configuration under which ``load_splits`` returns ``splits`` (the conftest
    clears the cache after every test)."""
    return put_splits(DataConfig(data_dir=SYNTHETIC, verify=False, **data), splits)


def tiny_run(path: Path, splits, model: str = "vae", **model_config) -> Path:
    """A one-epoch run of a small model (default 32 hidden units, 2-D latent) on ``splits``."""
    cfg = {"hidden": [32], "latent_dim": 2, **model_config}
    train(path, model, cfg, TrainConfig(epochs=1, batch_size=64), synthetic(splits), progress=False)
    return path


def run(capsys, *argv):
    """``vaelab ARGV`` in this process: (exit code, stdout, stderr); arguments as strings."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def console_problems(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("WARNING", "SEVERE")]


def peak_bytes(fn) -> int:
    """The peak of traced allocations while ``fn()`` runs (its DataError is expected)."""
    tracemalloc.start()
    try:
        fn()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
