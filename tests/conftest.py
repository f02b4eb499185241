"""Shared fixtures: small synthetic data, never the network."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.batches import Split, clear_cache


def make_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 28, 28) drawn around 10 fixed random blob prototypes, labels 0..9.

    Structured enough for a model to learn something, small enough for unit tests.
    """
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:28, 0:28]
    protos = []
    for _ in range(10):
        img = np.zeros((28, 28))
        for cy, cx in rng.uniform(6, 22, size=(3, 2)):
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 12.0)
        protos.append(np.clip(img, 0, 1))
    protos = np.stack(protos)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    noise = rng.uniform(-0.15, 0.15, size=(n, 28, 28))
    images = np.clip(protos[labels] + noise, 0, 1)
    return (images * 255).round().astype(np.uint8), labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An IDX file (magic 0x0801 labels / 0x0803 images, big-endian dims, uint8 payload)."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A folder of MNIST-format IDX files with 600 training and 120 test synthetic digits."""
    d = tmp_path / "synthetic-mnist"
    d.mkdir()
    xtr, ytr = make_digits(600, seed=1)
    xte, yte = make_digits(120, seed=2)
    write_idx(d / "train-images-idx3-ubyte", xtr)
    write_idx(d / "train-labels-idx1-ubyte", ytr)
    write_idx(d / "t10k-images-idx3-ubyte.gz", xte, compress=True)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", yte, compress=True)
    return d


@pytest.fixture
def tiny_splits() -> dict[str, Split]:
    """In-memory train/val/test splits of synthetic digits, pixels in [0, 1]."""
    out = {}
    for name, n, seed in [("train", 512, 1), ("val", 128, 2), ("test", 128, 3)]:
        x, y = make_digits(n, seed)
        out[name] = Split(torch.from_numpy(x.reshape(n, -1) / 255.0).float(), torch.from_numpy(y))
    return out


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path_factory, monkeypatch):
    """Tests never touch the user's cache unless they are marked ``mnist`` (the real data),
    and splits put in memory by one test are gone for the next."""
    if request.node.get_closest_marker("mnist") is None:
        monkeypatch.setenv("VAELAB_DATA", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
    clear_cache()
