"""Shared fixtures: small synthetic data, never the network."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.data import Split, clear_cache


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


def _tiny_splits() -> dict[str, Split]:
    out = {}
    for name, n, seed in [("train", 512, 1), ("val", 128, 2), ("test", 128, 3)]:
        x, y = make_digits(n, seed)
        out[name] = Split(torch.from_numpy(x.reshape(n, -1) / 255.0).float(), torch.from_numpy(y))
    return out


@pytest.fixture
def tiny_splits() -> dict[str, Split]:
    """In-memory train/val/test splits of synthetic digits, pixels in [0, 1]."""
    return _tiny_splits()


@pytest.fixture(scope="module")
def tiny_splits_module() -> dict[str, Split]:
    """The same splits, once per test module (for module-scoped fixtures)."""
    return _tiny_splits()


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path_factory, monkeypatch):
    """Tests never touch the user's cache unless they are marked ``mnist`` (the real data),
    and splits put in memory by one test are gone for the next."""
    if request.node.get_closest_marker("mnist") is None:
        monkeypatch.setenv("VAELAB_DATA", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
    clear_cache()


# ---------------------------------------------------------------- headless Chromium

CHROMIUM = os.environ.get("VAELAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VAELAB_CHROMEDRIVER", "/usr/bin/chromedriver")


def _no_browser(reason: str) -> None:
    reason = f"browser test: {reason} (install with: bash scripts/install_browser.sh)"
    if os.environ.get("VAELAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VAELAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, driven by selenium through a fixed chromedriver.

    ``SE_OFFLINE`` and the explicit driver and browser paths keep selenium-manager from ever
    downloading anything.
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _no_browser(f"{path} not found")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("the selenium package is not installed")
    env = pytest.MonkeyPatch()
    env.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1300,1000",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as e:  # installed but cannot start: say why
        env.undo()
        _no_browser(f"chromium did not start: {type(e).__name__}: {str(e).splitlines()[0]}")
    yield driver
    driver.quit()
    env.undo()
