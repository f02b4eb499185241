"""Figures (PNG, matplotlib).  The only module that imports matplotlib."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .runs import atomic_write  # noqa: E402


def tile(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """(N, 784) images in [0, 1] -> one (H, W) mosaic with ``ncol`` columns, ``pad`` px gaps."""
    imgs = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    imgs = imgs.reshape(-1, 28, 28)
    n = len(imgs)
    nrow = math.ceil(n / ncol)
    size = 28 + pad
    out = np.ones((nrow * size + pad, ncol * size + pad), dtype=np.float32)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        out[pad + r * size : pad + r * size + 28, pad + c * size : pad + c * size + 28] = img
    return out


def save_figure(fig, path: Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def save_grid(path: Path, images, title: str, ncol: int = 8) -> Path:
    mosaic = tile(images, ncol)
    h, w = mosaic.shape
    fig, ax = plt.subplots(figsize=(max(3.0, w / 40), max(3.0, h / 40) + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return save_figure(fig, path)


def reconstruction_grid(model, x: torch.Tensor, path: Path, n: int = 32, ncol: int = 8) -> Path:
    """Rows alternate: originals, then the model's reconstructions (mean of p(x|z))."""
    x = x[:n]
    recon = model.reconstruct(x)
    rows = []
    for start in range(0, len(x), ncol):
        rows += [x[start : start + ncol], recon[start : start + ncol]]
    return save_grid(path, torch.cat(rows), "odd rows: originals, even rows: reconstructions", ncol)


def sample_grid(model, path: Path, n: int = 64, seed: int = 0, ncol: int = 8) -> Path:
    g = torch.Generator().manual_seed(seed)
    images = model.sample(n, generator=g)
    if model.name == "ae":
        title = "AE decodings of codes drawn from a Gaussian fitted to the training codes"
    else:
        title = "samples: mean of p(x|z), z ~ N(0, I)"
    return save_grid(path, images, title, ncol)


def run_figures(run_dir: Path, splits=None, device: str | torch.device = "cpu") -> list[Path]:
    """The reconstruction and sample grids of a run's best weights, in ``run_dir/figures``."""
    from .batches import DataConfig, load_splits
    from .runs import load_run

    run_dir = Path(run_dir)
    model = load_run(run_dir, device=device)
    if splits is None:
        splits = load_splits(DataConfig(**model.run_config["data"]))
    x = splits["val"].x[:32].to(device)
    figures = run_dir / "figures"
    return [
        reconstruction_grid(model, x, figures / "reconstructions.png"),
        sample_grid(model, figures / "samples.png"),
    ]
