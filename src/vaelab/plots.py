"""Figures (PNG, matplotlib).  The only module that imports matplotlib.

Every figure is written atomically through ``save_figure``.  Images are (N, 784) arrays of pixel
values in [0, 1] (for a model: the mean of p(x|z)); latent coordinates are unitless (for a VAE,
in standard deviations of the N(0, I) prior).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .errors import VaelabError  # noqa: E402
from .runs import atomic_write  # noqa: E402

DIGIT_COLORS = plt.get_cmap("tab10").colors  # 10 distinct colours, one per digit


def _numpy(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)


def tile(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """(N, 784) images in [0, 1] -> one (H, W) mosaic with ``ncol`` columns, ``pad`` px gaps."""
    imgs = _numpy(images).reshape(-1, 28, 28)
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


def save_grid(
    path: Path, images, title: str, ncol: int = 8, row_labels: Sequence[str] | None = None
) -> Path:
    """A mosaic of (N, 784) images in [0, 1], ``ncol`` per row, optionally one label per row."""
    mosaic = tile(images, ncol)
    h, w = mosaic.shape
    fig, ax = plt.subplots(figsize=(max(3.0, w / 40), max(3.0, h / 40) + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    if row_labels is None:
        ax.axis("off")
    else:
        nrow = math.ceil(len(_numpy(images).reshape(-1, 784)) / ncol)
        ax.set_yticks(1 + np.arange(nrow) * 29 + 13.5, list(row_labels)[:nrow], fontsize=8)
        ax.set_xticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return save_figure(fig, path)


def reconstruction_grid(model, x: torch.Tensor, path: Path, n: int = 32, ncol: int = 8) -> Path:
    """Rows alternate: originals, then the model's reconstructions (mean of p(x|z))."""
    x = x[:n]
    recon = model.reconstruct(x)
    rows = []
    for start in range(0, len(x), ncol):
        rows += [x[start : start + ncol], recon[start : start + ncol]]
    title = "originals and their reconstructions: mean of p(x|z) at the encoder's mean z"
    labels = ["original", "reconstruction"] * (len(rows) // 2)
    return save_grid(path, torch.cat(rows), title, ncol, row_labels=labels)


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


# --- looking inside the latent space -------------------------------------------------------


def latent_scatter(z: np.ndarray | torch.Tensor, labels, path: Path, title_extra: str = "") -> Path:
    """Latent means (N, D) as points coloured by digit label.

    D == 2 is drawn as is; D > 2 as its projection on the first two principal components of the
    means (the axis labels give the share of variance each explains); D == 1 as the value
    against the digit, jittered sideways so that the points do not hide each other.
    """
    z = _numpy(z).astype(np.float64)
    z = z[:, None] if z.ndim == 1 else z
    labels = _numpy(labels).astype(np.int64).reshape(-1)
    if len(z) != len(labels):
        raise VaelabError(f"{len(z)} latent vectors but {len(labels)} labels")
    n, d = z.shape
    rng = np.random.default_rng(0)
    if d == 1:
        xs = labels + rng.uniform(-0.3, 0.3, size=n)
        ys = z[:, 0]
        xlabel, ylabel = "digit label (points jittered sideways)", "latent mean z (unitless)"
        what = "1-D latent means"
    elif d == 2:
        xs, ys = z[:, 0], z[:, 1]
        xlabel, ylabel = "latent mean z₁ (unitless)", "latent mean z₂ (unitless)"
        what = "2-D latent means"
    else:
        centred = z - z.mean(0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)  # rows of vt: principal axes
        share = s**2 / max((s**2).sum(), 1e-300)
        xs, ys = centred @ vt[0], centred @ vt[1]
        xlabel = f"principal component 1 of the latent means ({100 * share[0]:.1f}% of variance)"
        ylabel = f"principal component 2 ({100 * share[1]:.1f}% of variance)"
        what = (
            f"{d}-D latent means, projected on their first 2 principal components\n"
            f"({100 * share[0]:.1f}% + {100 * share[1]:.1f}% of the variance),"
        )

    fig, ax = plt.subplots(figsize=(8, 6.5))
    order = rng.permutation(n)  # random drawing order: no digit is painted over all others
    colors = np.array([DIGIT_COLORS[lab % 10] for lab in labels])
    size = 4 if n > 2000 else 12
    ax.scatter(xs[order], ys[order], c=colors[order], s=size, alpha=0.7, linewidths=0)
    if d == 1:
        ax.set_xticks(range(10))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    title = f"{what} of {n:,} images, coloured by digit"
    ax.set_title(title + (f"\n{title_extra}" if title_extra else ""), fontsize=10)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=DIGIT_COLORS[k % 10], label=str(k))
        for k in np.unique(labels)
    ]
    ax.legend(handles=handles, title="digit", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(fig, path)


def _grid_axis(model, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The n values of z₁ and of z₂ for the manifold grid, and how they were chosen."""
    if model.name == "ae":
        # 1st..99th percentile of each coordinate under the Gaussian fitted to the codes
        std = (model.code_chol @ model.code_chol.T).diagonal().sqrt().cpu()
        mean = model.code_mean.cpu()
        lo, hi = mean - 2.3263 * std, mean + 2.3263 * std  # Φ⁻¹(0.01), Φ⁻¹(0.99)
        axes = [torch.linspace(lo[i].item(), hi[i].item(), n) for i in range(2)]
        how = "evenly spaced over the 1st-99th percentiles of the Gaussian fitted to the codes"
        return axes[0], axes[1], how
    # Kingma & Welling (2014), fig. 4: the prior's quantiles, z = Φ⁻¹(p)
    z = torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()
    return z, z, f"z = Φ⁻¹(p) of the N(0, 1) prior, p = 0.05 ... 0.95 in {n} even steps"


@torch.no_grad()
def manifold_grid(model, path: Path, n: int = 20) -> Path:
    """Decoded means of p(x|z) over an n x n grid of a 2-D latent space (z₂ grows upwards)."""
    if model.latent_dim != 2:
        raise VaelabError(
            f"the manifold figure needs a 2-D latent space; this model has {model.latent_dim}"
        )
    if n < 2:
        raise VaelabError(f"the manifold grid needs n >= 2, got {n}")
    z1, z2, how = _grid_axis(model, n)
    rows = z2.flip(0)  # image row 0 at the top shows the largest z₂
    grid2, grid1 = torch.meshgrid(rows, z1, indexing="ij")  # (n, n) each: [row, column]
    z = torch.stack([grid1, grid2], -1).reshape(-1, 2)  # (n*n, 2), row-major like tile()
    p = next(model.parameters())
    images = model.decode(z.to(p)).mean.cpu()  # (n*n, 784)
    mosaic = tile(images, n, pad=0)

    fig, ax = plt.subplots(figsize=(9, 9.6))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.unique(np.linspace(0, n - 1, min(n, 7)).round().astype(int))
    ax.set_xticks(ticks * 28 + 13.5, [f"{z1[i]:.2f}" for i in ticks])
    ax.set_yticks(ticks * 28 + 13.5, [f"{rows[i]:.2f}" for i in ticks])
    ax.set_xlabel("latent z₁ (value at the centre of each column)")
    ax.set_ylabel("latent z₂ (value at the centre of each row)")
    kind = "VAE" if model.name == "vae" else "AE"
    ax.set_title(
        f"{kind}: mean of p(x|z) decoded on a {n}×{n} grid of the 2-D latent space\n{how}",
        fontsize=10,
    )
    return save_figure(fig, path)


@torch.no_grad()
def interpolation_grid(
    model,
    x_a,
    x_b,
    path: Path,
    steps: int = 10,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """One row per pair: x_a[i], decodings along the line from its latent mean to x_b[i]'s, x_b[i].

    The ``steps`` decodings (means of p(x|z)) include both ends, t = 0 and t = 1, which are the
    reconstructions of x_a[i] and x_b[i].
    """
    if steps < 2:
        raise VaelabError(f"interpolation needs steps >= 2, got {steps}")
    p = next(model.parameters())
    x_a = torch.as_tensor(_numpy(x_a), dtype=torch.float32).reshape(-1, 784).to(p.device)
    x_b = torch.as_tensor(_numpy(x_b), dtype=torch.float32).reshape(-1, 784).to(p.device)
    if len(x_a) != len(x_b):
        raise VaelabError(f"{len(x_a)} start images but {len(x_b)} end images")
    za, zb = model.latent_mean(x_a), model.latent_mean(x_b)  # (P, D) each
    t = torch.linspace(0, 1, steps, device=za.device)[None, :, None]  # (1, steps, 1)
    z = (1 - t) * za[:, None] + t * zb[:, None]  # (P, steps, D)
    pairs = len(x_a)
    decoded = model.decode(z.reshape(pairs * steps, -1)).mean.reshape(pairs, steps, 784)
    row = torch.cat([x_a[:, None], decoded, x_b[:, None]], 1).cpu()  # (P, steps + 2, 784)
    ncol = steps + 2
    pad = 2
    mosaic = tile(row.reshape(-1, 784), ncol, pad=pad)

    fig, ax = plt.subplots(figsize=(0.62 * ncol + 1.2, 0.62 * pairs + 1.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    centres = pad + np.arange(ncol) * (28 + pad) + 13.5
    names = ["input A", *[f"{v:.2g}" for v in np.linspace(0, 1, steps)], "input B"]
    ax.set_xticks(centres, names, fontsize=8)
    ax.set_xlabel("t: decoded mean of p(x|z) at z = (1 - t)·mean(A) + t·mean(B)", fontsize=9)
    for edge in (pad + 28 + pad / 2, pad + (ncol - 1) * (28 + pad) - pad / 2):
        ax.axvline(edge - 0.5, color="tab:red", linewidth=1.5)  # originals | decodings
    ycent = pad + np.arange(pairs) * (28 + pad) + 13.5
    ax.set_yticks(ycent, list(row_labels) if row_labels is not None else [""] * pairs, fontsize=8)
    ax.set_ylabel("digit of input A → input B" if row_labels is not None else "")
    ax.tick_params(length=0)
    ax.set_title(
        "Linear interpolation between the latent means of two test images\n"
        "(outside the red lines: the original images)",
        fontsize=10,
    )
    return save_figure(fig, path)


def training_curves(rows: list[dict], path: Path, unit: str = "nats per image") -> Path:
    """Train and validation loss per epoch; for a VAE also its reconstruction and KL parts.

    ``unit`` is the loss's unit for the y axes (a VAE: nats per image; an AE: its loss name).
    """
    if not rows:
        raise VaelabError("no metrics to plot (metrics.jsonl is empty)")
    epochs = [r["epoch"] for r in rows]
    vae = "train_kl" in rows[0]
    marker = "o" if len(rows) <= 30 else None
    if vae:  # the loss on the left; its two parts, on their own scales, on the right
        fig = plt.figure(figsize=(12, 5.5))
        grid = fig.add_gridspec(2, 2)
        ax = fig.add_subplot(grid[:, 0])
        parts = [fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])]
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        parts = []

    def curve(ax, key: str, label: str, color: str) -> list[float]:
        ys = [r.get(key, math.nan) for r in rows]
        ax.plot(epochs, ys, color=color, marker=marker, markersize=4, label=label)
        return ys

    curve(ax, "train_loss", "train (mean over the epoch's batches)", "tab:blue")
    val = curve(ax, "val_loss", "validation (after the epoch)", "tab:orange")
    best = int(np.nanargmin(val))
    ax.plot(
        epochs[best],
        val[best],
        "*",
        color="black",
        markersize=12,
        zorder=3,
        label=f"lowest validation loss {val[best]:.2f} (best weights)",
    )
    ax.set_title(("loss = recon + β·KL" if vae else "loss") + " per epoch", fontsize=10)
    ax.set_ylabel(f"loss ({unit})")
    names = [("recon", "reconstruction −log p(x|z)"), ("kl", "KL(q(z|x) ‖ N(0, I))")]
    for part, (key, name) in zip(parts, names, strict=False):  # no parts for an AE
        curve(part, f"train_{key}", "train", "tab:blue")
        curve(part, f"val_{key}", "validation", "tab:orange")
        part.set_title(f"{name} per epoch", fontsize=10)
        part.set_ylabel("nats per image")
    for a in [ax, *parts]:
        a.set_xlabel("epoch")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# --- all figures of a run ------------------------------------------------------------------


def interpolation_pairs(y: torch.Tensor | np.ndarray, n_pairs: int = 8) -> list[tuple[int, int]]:
    """Deterministic pairs of indices: the first image of digit k and of the next digit present.

    With fewer than two digits present, the first images of the split pair up instead.
    """
    y = _numpy(y).reshape(-1)
    digits = sorted(int(v) for v in np.unique(y))
    first = {d: int(np.flatnonzero(y == d)[0]) for d in digits}
    if len(digits) >= 2:
        pairs = [(first[d], first[digits[(i + 1) % len(digits)]]) for i, d in enumerate(digits)]
    else:
        pairs = [(i, i + 1) for i in range(0, len(y) - 1, 2)]
    return pairs[:n_pairs]


@torch.no_grad()
def all_figures(
    run_dir: Path, splits=None, device: str | torch.device = "cpu", seed: int = 0
) -> list[Path]:
    """Every figure of a run's best weights, on its test split, into ``run_dir/figures``.

    reconstructions, samples, latents (test-set latent means by digit), interpolation,
    curves (from metrics.jsonl) and, for a 2-D latent space, manifold.  Returns the paths.
    """
    from .batches import DataConfig, load_splits
    from .runs import load_run, read_metrics

    run_dir = Path(run_dir)
    model = load_run(run_dir, device=device)
    if splits is None:
        splits = load_splits(DataConfig(**model.run_config["data"]))
    test = splits["test"]
    figures = run_dir / "figures"
    kind = model.name.upper()
    paths = [
        reconstruction_grid(model, test.x[:32].to(device), figures / "reconstructions.png"),
        sample_grid(model, figures / "samples.png", seed=seed),
    ]
    z = torch.cat([model.latent_mean(xb.to(device)).cpu() for xb in test.x.split(2000)])
    extra = (
        "VAE: means of q(z|x), test split" if kind == "VAE" else "AE: codes z = f(x), test split"
    )
    paths.append(latent_scatter(z, test.y, figures / "latents.png", title_extra=extra))
    pairs = interpolation_pairs(test.y)
    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    labels = [f"{int(test.y[i])} → {int(test.y[j])}" for i, j in pairs]
    paths.append(
        interpolation_grid(
            model, test.x[a], test.x[b], figures / "interpolation.png", row_labels=labels
        )
    )
    rows = read_metrics(run_dir)
    if rows:
        paths.append(training_curves(rows, figures / "curves.png", unit=model.loss_unit))
    if model.latent_dim == 2:
        paths.append(manifold_grid(model, figures / "manifold.png"))
    return paths
