"""Small shared helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from vaelab.batches import DataConfig
from vaelab.train import TrainConfig, train


def tiny_run(path: Path, splits, **model_config) -> Path:
    """A one-epoch run of a small VAE (default 32 hidden units, 2-D latent) on ``splits``."""
    cfg = {"hidden": [32], "latent_dim": 2, **model_config}
    train(
        path,
        "vae",
        cfg,
        TrainConfig(epochs=1, batch_size=64),
        DataConfig(),
        splits=splits,
        progress=False,
        figures=False,
        log=lambda m: None,
    )
    return path
