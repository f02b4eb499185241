"""Figures (PNG, matplotlib).  The only module that imports matplotlib.

Every figure is written atomically through ``save_figure``.  Images are (N, C*H*W) arrays of
pixel values in [0, 1], channels first (MNIST: (N, 784); for a model: the mean of p(x|z)), of
``shape`` (C, H, W), grayscale or RGB; latent coordinates are unitless (for a VAE, in standard
deviations of the N(0, I) prior).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .analysis import unit_factor_information
from .data import DIGITS, Split
from .errors import VaelabError
from .models.abilities import (
    Conditional,
    HasBound,
    KLPerUnit,
    LatentPictures,
    Samples,
    flatten_codes,
    require,
    shape_codes,
)
from .models.helpers import eval_mode, flat_codes, model_device
from .runs import Run, atomic_write

DIGIT_COLORS = matplotlib.colormaps["tab10"].colors  # 10 distinct colours, one per digit


def _subplots(figsize: tuple[float, float], *args, **kwargs):
    """A figure and its axes, without pyplot: no global backend or figure registry is touched."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _numpy(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)


MNIST_SHAPE = (1, 28, 28)


def tile(
    images: torch.Tensor | np.ndarray,
    ncol: int,
    pad: int = 1,
    shape: Sequence[int] = MNIST_SHAPE,
) -> np.ndarray:
    """(N, C*H*W) images in [0, 1] of ``shape`` (C, H, W) -> one mosaic with ``ncol`` columns
    and ``pad`` px white gaps: (rows, cols) for grayscale, (rows, cols, 3) for RGB."""
    c, h, w = shape
    imgs = _numpy(images).reshape(-1, c, h, w).transpose(0, 2, 3, 1)  # (N, H, W, C)
    n = len(imgs)
    nrow = math.ceil(n / ncol)
    out = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.float32)
    for i, img in enumerate(imgs):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top : top + h, left : left + w] = img
    return out[..., 0] if c == 1 else out.clip(0, 1)


def _show(ax, mosaic: np.ndarray) -> None:
    """Draw a ``tile`` mosaic: grayscale on a fixed 0..1 gray scale, RGB as it is."""
    if mosaic.ndim == 2:
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")


def _centres(count: int, side: int, pad: int) -> np.ndarray:
    """Pixel coordinates of the centres of ``count`` tiles of ``side`` px with ``pad`` gaps."""
    return pad + np.arange(count) * (side + pad) + (side - 1) / 2


def save_figure(fig, path: Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    return path


def save_grid(
    path: Path,
    images,
    title: str,
    ncol: int = 8,
    row_labels: Sequence[str] | None = None,
    shape: Sequence[int] = MNIST_SHAPE,
) -> Path:
    """A mosaic of (N, C*H*W) images in [0, 1] of ``shape``, ``ncol`` per row, optionally one
    label per row.  The figure's size follows MNIST's scale (28 px tiles)."""
    mosaic = tile(images, ncol, shape=shape)
    h, w = mosaic.shape[:2]
    scale = 40 * max(shape[1], shape[2]) / 28  # px per inch: 28 px tiles at 0.7 in
    fig, ax = _subplots((max(3.0, w / scale), max(3.0, h / scale) + 0.4))
    _show(ax, mosaic)
    ax.set_title(title, fontsize=9)
    if row_labels is None:
        ax.axis("off")
    else:
        nrow = math.ceil(len(_numpy(images).reshape(-1, math.prod(shape))) / ncol)
        ax.set_yticks(_centres(nrow, shape[1], 1), list(row_labels)[:nrow], fontsize=8)
        ax.set_xticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return save_figure(fig, path)


def reconstruction_grid(
    model, x: torch.Tensor, path: Path, n: int = 32, ncol: int = 8, y: torch.Tensor | None = None
) -> Path:
    """Rows alternate: originals, then the model's reconstructions (mean of p(x|z))."""
    x = x[:n].to(model_device(model))
    y = None if y is None else y[:n].to(x.device)
    with eval_mode(model):
        recon = model.reconstruct(x, y)
    rows = []
    for start in range(0, len(x), ncol):
        for images in (x[start : start + ncol], recon[start : start + ncol]):
            blank = torch.ones(ncol - len(images), images.shape[1], device=images.device)
            rows.append(torch.cat([images, blank]))  # a short last row, padded with white
    title = f"originals and their reconstructions: mean of p(x|z) at z = {model.about.codes}"
    labels = ["original", "reconstruction"] * (len(rows) // 2)
    return save_grid(path, torch.cat(rows).cpu(), title, ncol, labels, model.image_shape)


def sample_grid(
    model, path: Path, n: int = 64, seed: int = 0, ncol: int = 8, digit: int | None = None
) -> Path:
    """Samples of the model (decoder means), ``ncol`` per row.  A conditional model draws
    ``digit`` only, or else one row per class (``n`` is then rounded to whole rows)."""
    require(model, Samples, "sampling")
    g = torch.Generator().manual_seed(seed)
    title, labels, y = model.about.samples, None, None
    if digit is not None or isinstance(model, Conditional):
        require(model, Conditional, "drawing a chosen digit")
        classes = model.num_classes
        if digit is not None:
            if not 0 <= digit < classes:
                raise VaelabError(f"digit must lie in 0..{classes - 1}, got {digit}")
            y = torch.full((n,), digit)
            title += f" (digit {digit})"
        else:
            y = torch.arange(classes).repeat_interleave(ncol)
            labels = [f"y = {c}" for c in range(classes)]
        y = y.to(model_device(model))
    with eval_mode(model):
        images = model.sample(len(y) if y is not None else n, generator=g, y=y)
    return save_grid(path, images.cpu(), title, ncol, labels, model.image_shape)


@torch.no_grad()
def style_grid(model, x: torch.Tensor, y: torch.Tensor, path: Path, n: int = 8) -> Path:
    """A conditional model's analogies: each row keeps the code z of one test image (its
    style) and decodes it with every label, 0 .. C-1, beside the original."""
    require(model, Conditional, "the style grid")
    device = model_device(model)
    x, y = x[:n].to(device), y[:n].to(device)
    classes = model.num_classes
    with eval_mode(model):
        z = model.code(x, y)  # (n, *code_shape)
        zz = z.repeat_interleave(classes, 0)  # (n C, *code_shape)
        yy = torch.arange(classes, device=device).repeat(len(x))
        decoded = model.decode(zz, yy).mean.reshape(len(x), classes, -1)
    rows = torch.cat([x[:, None], decoded], 1).reshape(-1, x.shape[-1]).cpu()
    title = (
        "style kept, label changed: the code of each test image (left) decoded with "
        f"y = 0..{classes - 1}"
    )
    labels = [f"label {int(v)}" for v in y]
    return save_grid(path, rows, title, classes + 1, labels, model.image_shape)


# --- looking inside the latent space -------------------------------------------------------


def _scatter_coordinates(z: np.ndarray, labels: np.ndarray, word: str, rng) -> tuple:
    """The points (xs, ys) of ``latent_scatter`` for codes (N, D), their axis labels and what
    they are: the label against z (jittered with ``rng``), z itself, or the first two
    principal components."""
    n, d = z.shape
    if d == 1:
        xs = np.maximum(labels, 0) + rng.uniform(-0.3, 0.3, size=n)
        ys = z[:, 0]
        xlabel, ylabel = f"{word} (points jittered sideways)", "latent mean z (unitless)"
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
    return xs, ys, xlabel, ylabel, what


@dataclass(frozen=True)
class FactorColours:
    """One factor of the data to colour a latent scatter by: its ``name``, each image's index
    (N,) of it, and the names of its values when it is categorical (the first factor, whose
    values are the labels: a sprite's shape); None for an ordered factor (scale, position),
    drawn with a continuous colour map."""

    name: str
    index: np.ndarray
    classes: tuple[str, ...] | None = None


def factor_colours(split: Split, name: str) -> FactorColours:
    """The factor ``name`` of a split made from known factors, or a one-line error naming the
    factors the split has."""
    if not split.has_factors:
        raise VaelabError(
            f"cannot colour by {name!r}: this run's data were not made from known factors"
        )
    names = list(split.factor_names)
    if name not in names:
        raise VaelabError(f"unknown factor {name!r}; this run's data have: {', '.join(names)}")
    k = names.index(name)
    index = _numpy(split.factors[:, k]).astype(np.int64)
    categorical = k == 0 and split.classes is not None and np.array_equal(index, _numpy(split.y))
    return FactorColours(name, index, tuple(split.classes) if categorical else None)


def latent_scatter(
    z: np.ndarray | torch.Tensor,
    labels,
    path: Path,
    title_extra: str = "",
    prior_circles: bool = False,
    classes: Sequence[str] | None = None,
    factor: FactorColours | None = None,
) -> Path:
    """Latent means (N, D) as points coloured by label (``classes``: the labels' names, MNIST's
    digits when None; labels -1, unlabelled images, are drawn in one colour), or by a
    ``factor`` of the data: a categorical one like labels, an ordered one on a continuous
    colour map with its colour bar.

    D == 2 is drawn as is; D > 2 as its projection on the first two principal components of the
    means (the axis labels give the share of variance each explains); D == 1 as the value
    against the digit, jittered sideways so that the points do not hide each other.
    ``prior_circles`` (D == 2): the circles holding 39% and 86% of a N(0, I) prior's mass (radius
    1 and 2), to set where the codes lie against where the prior puts its samples.
    """
    z = _numpy(z).astype(np.float64)
    z = z[:, None] if z.ndim == 1 else z
    labels = _numpy(labels).astype(np.int64).reshape(-1)
    if factor is not None:
        labels, classes = factor.index, factor.classes or classes
    if len(z) != len(labels):
        raise VaelabError(f"{len(z)} latent vectors but {len(labels)} labels")
    n, d = z.shape
    rng = np.random.default_rng(0)
    ordered = factor is not None and factor.classes is None
    unlabelled = not ordered and bool(n) and labels.min() < 0
    word = "digit" if classes is None or tuple(classes) == DIGITS else "class"
    word = factor.name if factor is not None else word
    xs, ys, xlabel, ylabel, what = _scatter_coordinates(z, labels, word, rng)

    fig, ax = _subplots((8, 6.5))
    order = rng.permutation(n)  # random drawing order: no digit is painted over all others
    size = 4 if n > 2000 else 12
    if ordered:
        points = ax.scatter(xs[order], ys[order], c=labels[order], cmap="viridis", s=size,
                            alpha=0.7, linewidths=0)  # fmt: skip
        bar = fig.colorbar(points, ax=ax, pad=0.02)
        bar.set_label(f"{word} (index of its value, 0 .. {labels.max(initial=0)})")
    else:
        colors = [DIGIT_COLORS[lab % 10] if lab >= 0 else (0.3, 0.3, 0.6) for lab in labels]
        ax.scatter(xs[order], ys[order], c=np.array(colors)[order], s=size, alpha=0.7,
                   linewidths=0)  # fmt: skip
    if d == 1 and not unlabelled and not ordered:
        ax.set_xticks(range(int(labels.max()) + 1))
    if prior_circles and d == 2:
        _prior_circles(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    title = f"{what} of {n:,} images, " + ("unlabelled" if unlabelled else f"coloured by {word}")
    ax.set_title(title + (f"\n{title_extra}" if title_extra else ""), fontsize=10)
    if not unlabelled and not ordered:
        _label_legend(ax, labels, classes, word)
    return save_figure(fig, path)


def _label_legend(ax, labels: np.ndarray, classes: Sequence[str] | None, word: str) -> None:
    """One legend entry per label present, in its colour, named by ``classes`` (digits)."""
    names = list(classes if classes is not None else DIGITS)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=DIGIT_COLORS[k % 10],
               label=names[k] if k < len(names) else str(k))
        for k in np.unique(labels)
    ]  # fmt: skip
    ax.legend(handles=handles, title=word, loc="center left", bbox_to_anchor=(1.01, 0.5))


def _prior_circles(ax) -> None:
    """The circles of radius 1 and 2, holding 39% and 86% of a 2-D N(0, I)'s mass."""
    t = np.linspace(0, 2 * np.pi, 200)
    for r, share in ((1, 39), (2, 86)):
        ax.plot(r * np.cos(t), r * np.sin(t), color="black", linestyle="--", linewidth=1)
        ax.annotate(f"N(0, I): {share}% of samples inside", (r * 0.71, r * 0.71),
                    fontsize=8, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.set_aspect("equal", adjustable="datalim")


@torch.no_grad()
def manifold_grid(
    model, path: Path, n: int = 20, label: int | None = None, codes: torch.Tensor | None = None
) -> Path:
    """Decoded means of p(x|z) over an n x n grid of a 2-D latent space (z₂ grows upwards);
    a conditional model decodes every point with the class ``label``.  The grid spans the
    model's ``latent_grid`` (for a VAE: quantiles of the prior), or with ``codes`` (N, 2) the
    region where those codes lie (1st to 99th percentile of each coordinate)."""
    require(model, LatentPictures, "the manifold figure")
    if isinstance(model, Conditional) and label is None:
        raise VaelabError(f"a {model.about.label} decodes with a label: give the class to draw")
    if model.latent_dim != 2:
        raise VaelabError(
            f"the manifold figure needs a 2-D latent space; this model has {model.latent_dim}"
        )
    if n < 2:
        raise VaelabError(f"the manifold grid needs n >= 2, got {n}")
    if codes is None:
        z1, z2, how = model.latent_grid(n)
    else:
        lo = torch.quantile(codes.float().cpu(), 0.01, dim=0)
        hi = torch.quantile(codes.float().cpu(), 0.99, dim=0)
        z1, z2 = torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n)
        how = f"over the region of {len(codes):,} codes (1st to 99th percentile of each coordinate)"
    rows = z2.flip(0)  # image row 0 at the top shows the largest z₂
    grid2, grid1 = torch.meshgrid(rows, z1, indexing="ij")  # (n, n) each: [row, column]
    z = torch.stack([grid1, grid2], -1).reshape(-1, 2)  # (n*n, 2), row-major like tile()
    device = model_device(model)
    y = None if label is None else torch.full((len(z),), label, device=device)
    with eval_mode(model):
        images = model.decode(shape_codes(model, z.to(device)), y).mean.cpu()  # (n*n, C*H*W)
    shape = model.image_shape
    mosaic = tile(images, n, pad=0, shape=shape)

    fig, ax = _subplots((9, 9.6))
    _show(ax, mosaic)
    ticks = np.unique(np.linspace(0, n - 1, min(n, 7)).round().astype(int))
    ax.set_xticks(_centres(n, shape[2], 0)[ticks], [f"{z1[i]:.2f}" for i in ticks])
    ax.set_yticks(_centres(n, shape[1], 0)[ticks], [f"{rows[i]:.2f}" for i in ticks])
    ax.set_xlabel("latent z₁ (value at the centre of each column)")
    ax.set_ylabel("latent z₂ (value at the centre of each row)")
    ax.set_title(
        f"{model.about.label}: mean of p(x|z{'' if label is None else f', y={label}'}) decoded "
        f"on a {n}×{n} grid of the 2-D latent space\n{how}",
        fontsize=10,
    )
    return save_figure(fig, path)


@torch.no_grad()
@torch.no_grad()
def _interpolated(model, a: tuple, b: tuple, steps: int) -> torch.Tensor:
    """Means of p(x|z) at ``steps`` codes on the line from the code of each image of ``a``
    (images, labels) to that of ``b``'s: (P * steps, C*H*W)."""
    (x_a, ya), (x_b, yb) = a, b
    with eval_mode(model):
        za = flatten_codes(model, model.code(x_a, ya))  # (P, D)
        zb = flatten_codes(model, model.code(x_b, yb))
        t = torch.linspace(0, 1, steps, device=za.device)[None, :, None]  # (1, steps, 1)
        z = (1 - t) * za[:, None] + t * zb[:, None]  # (P, steps, D)
        # a conditional model decodes with A's label up to the middle, then B's
        labels = None
        if ya is not None:
            labels = torch.where(t.reshape(1, steps) < 0.5, ya[:, None], yb[:, None]).reshape(-1)
        return model.decode(shape_codes(model, z.reshape(len(za) * steps, -1)), labels).mean


def interpolation_grid(
    model,
    x_a,
    x_b,
    path: Path,
    steps: int = 10,
    row_labels: Sequence[str] | None = None,
    y_a=None,
    y_b=None,
) -> Path:
    """One row per pair: x_a[i], decodings along the line from its latent mean to x_b[i]'s, x_b[i].

    The ``steps`` decodings (means of p(x|z)) include both ends, t = 0 and t = 1, which are the
    reconstructions of x_a[i] and x_b[i].
    """
    if steps < 2:
        raise VaelabError(f"interpolation needs steps >= 2, got {steps}")
    device = model_device(model)
    shape = model.image_shape
    dim = math.prod(shape)
    x_a = torch.as_tensor(_numpy(x_a), dtype=torch.float32).reshape(-1, dim).to(device)
    x_b = torch.as_tensor(_numpy(x_b), dtype=torch.float32).reshape(-1, dim).to(device)
    if len(x_a) != len(x_b):
        raise VaelabError(f"{len(x_a)} start images but {len(x_b)} end images")
    ya = None if y_a is None else torch.as_tensor(y_a).to(device)
    yb = None if y_b is None else torch.as_tensor(y_b).to(device)
    pairs = len(x_a)
    decoded = _interpolated(model, (x_a, ya), (x_b, yb), steps).reshape(pairs, steps, dim)
    row = torch.cat([x_a[:, None], decoded, x_b[:, None]], 1).cpu()  # (P, steps + 2, C*H*W)
    ncol = steps + 2
    pad = 2
    mosaic = tile(row.reshape(-1, dim), ncol, pad=pad, shape=shape)

    fig, ax = _subplots((0.62 * ncol + 1.2, 0.62 * pairs * shape[1] / shape[2] + 1.4))
    _show(ax, mosaic)
    names = ["input A", *[f"{v:.2g}" for v in np.linspace(0, 1, steps)], "input B"]
    ax.set_xticks(_centres(ncol, shape[2], pad), names, fontsize=8)
    ax.set_xlabel("t: decoded mean of p(x|z) at z = (1 - t)·mean(A) + t·mean(B)", fontsize=9)
    w = shape[2]
    for edge in (pad + w + pad / 2, pad + (ncol - 1) * (w + pad) - pad / 2):
        ax.axvline(edge - 0.5, color="tab:red", linewidth=1.5)  # originals | decodings
    ycent = _centres(pairs, shape[1], pad)
    ax.set_yticks(ycent, list(row_labels) if row_labels is not None else [""] * pairs, fontsize=8)
    ax.set_ylabel("label of input A → input B" if row_labels is not None else "")
    ax.tick_params(length=0)
    ax.set_title(
        "Linear interpolation between the latent means of two test images\n"
        "(outside the red lines: the original images)",
        fontsize=10,
    )
    return save_figure(fig, path)


def training_curves(
    rows: list[dict],
    path: Path,
    unit: str = "nats per image",
    parts: Sequence[tuple[str, str]] = (),
) -> Path:
    """Train and validation loss per epoch, and beside it each of the loss's ``parts``
    (``model.about.loss_parts``: key in the metrics and description), on its own scale.

    ``unit`` is the loss's unit for the y axes (a VAE: nats per image; an AE: its loss name).
    """
    if not rows:
        raise VaelabError("no metrics to plot (metrics.jsonl is empty)")
    epochs = [r["epoch"] for r in rows]
    parts = [(k, d) for k, d in parts if f"train_{k}" in rows[0]]
    marker = "o" if len(rows) <= 30 else None
    if parts:  # the loss on the left; its parts, on their own scales, stacked on the right
        n = max(len(parts), 2)
        fig = Figure(figsize=(12, 2.75 * n))
        grid = fig.add_gridspec(n, 2)
        ax = fig.add_subplot(grid[:, 0])
        part_axes = [fig.add_subplot(grid[i, 1]) for i in range(len(parts))]
    else:
        fig, ax = _subplots((7, 4.5))
        part_axes = []

    def curve(ax, key: str, label: str, color: str) -> list[float]:
        ys = [r.get(key, math.nan) for r in rows]
        ax.plot(epochs, ys, color=color, marker=marker, markersize=4, label=label)
        return ys

    curve(ax, "train_loss", "train (mean over the epoch's batches)", "tab:blue")
    val = curve(ax, "val_loss", "validation (after the epoch)", "tab:orange")
    if not all(math.isnan(v) for v in val):  # rows without a validation loss: no star
        best = int(np.nanargmin(val))
        ax.plot(epochs[best], val[best], "*", color="black", markersize=12, zorder=3,
                label=f"lowest validation loss {val[best]:.2f} (best weights)")  # fmt: skip
    what = " + ".join(key for key, _ in parts)
    ax.set_title(f"loss ({what}, weighted) per epoch" if parts else "loss per epoch", fontsize=10)
    ax.set_ylabel(f"loss ({unit})")
    for part, (key, name) in zip(part_axes, parts, strict=True):
        curve(part, f"train_{key}", "train", "tab:blue")
        curve(part, f"val_{key}", "validation", "tab:orange")
        part.set_title(f"{name} per epoch", fontsize=10)
        part.set_ylabel("nats per image")
    for a in [ax, *part_axes]:
        a.set_xlabel("epoch")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# --- all figures of a run ------------------------------------------------------------------


TRAVERSAL_ORDERS = ("variance", "factor")


@torch.no_grad()
def traversal_grid(
    model,
    x: torch.Tensor | Split,
    path: Path,
    units: int = 8,
    steps: int = 9,
    span: float = 2.5,
    index: int = 0,
    order_by: str = "variance",
) -> Path:
    """Latent traversals: each row starts from the latent mean of image ``index`` of ``x`` and
    moves one latent unit from m - span·s to m + span·s (m, s: that unit's mean and standard
    deviation over the latent means of ``x``), the other units fixed; the ``units`` units whose
    means vary most over ``x`` are shown.

    ``x``: images (N, C*H*W), or a ``Split``, whose labels a conditional model reads and whose
    factors, for data made from known factors, name the factor each row's unit follows most
    (``traversal_rows``).  ``order_by``: "variance" (most varying unit first) or "factor"."""
    split = x if isinstance(x, Split) else None
    images = split.x if split is not None else x
    device = model_device(model)
    yy = split.y.to(device) if split is not None and isinstance(model, Conditional) else None
    with eval_mode(model):
        means = flat_codes(model, images, yy).to(device)  # (N, D)
    order, labels = traversal_rows(means.cpu(), split, units, order_by)
    m, s = means.mean(0), means.std(0)
    t = torch.linspace(-span, span, steps, device=device)
    codes = []
    for u in order:
        z = means[index].repeat(steps, 1)
        z[:, u] = m[u] + t * s[u]
        codes.append(z)
    z = torch.cat(codes)
    y_rep = None if yy is None else yy[index].repeat(len(z))
    with eval_mode(model):
        decoded = model.decode(shape_codes(model, z), y_rep).mean.cpu()
    title = (f"{model.about.label}: one latent unit at a time, from its mean\n- {span:g} sd "
             f"to + {span:g} sd over the codes, the others kept\nat one test image's code "
             "(mean of p(x|z))")  # fmt: skip
    if split is not None and split.has_factors:
        title += (
            "\nrow: the factor the unit follows most; in brackets,\nthe mutual information of "
            "the unit's code (20 bins) with it,\nover the factor's entropy (both in nats)"
        )
    return save_grid(path, decoded, title, steps, labels, model.image_shape)


def traversal_rows(
    means: torch.Tensor, split: Split | None, units: int = 8, order_by: str = "variance"
) -> tuple[list[int], list[str]]:
    """The rows of ``traversal_grid`` for latent means (N, D) of the images of ``split``: the
    ``units`` units whose means vary most, and one label each.

    On data made from known factors a row reads "unit u: FACTOR (I)": the factor whose index
    the unit's code says most about, I = ``analysis.unit_factor_information`` (the mutual
    information of the code in 20 equal-width bins with the factor, over the factor's
    entropy; 0 .. 1).  ``order_by="factor"`` groups the units by that factor, in the data's
    order of factors, strongest first; "variance" keeps the most varying unit first."""
    if order_by not in TRAVERSAL_ORDERS:
        raise VaelabError(
            f"order_by must be one of {', '.join(TRAVERSAL_ORDERS)}, not {order_by!r}"
        )
    var = means.var(0)
    order = torch.argsort(var, descending=True)[: min(units, means.shape[1])].tolist()
    if split is None or not split.has_factors:
        if order_by == "factor":
            raise VaelabError("ordering traversals by factor needs data made from known factors")
        return order, [f"unit {u} (var {var[u]:.2f})" for u in order]
    info = unit_factor_information(means.numpy(), _numpy(split.factors))
    best = {u: int(np.argmax(info[u])) for u in order}
    if order_by == "factor":
        order = sorted(order, key=lambda u: (best[u], -info[u, best[u]]))
    names = split.factor_names
    return order, [f"unit {u}: {names[best[u]]} ({info[u, best[u]]:.2f})" for u in order]


@torch.no_grad()
def kl_per_unit(
    models: dict,
    x: torch.Tensor,
    path: Path,
    threshold: float = 0.01,
    y: torch.Tensor | None = None,
) -> Path:
    """Mean over the images ``x`` (labels ``y`` for conditional models) of KL(q(z_u|x) ‖
    p(z_u)) for each latent unit u, sorted, one line per model (``{name: model}``; each must
    give ``kl_units``, the per-unit KL in closed form).  The legend gives each model's total KL
    and its active units (Var_x E[z_u|x] > ``threshold``)."""
    fig, ax = _subplots((8, 4.8))
    for name, model in models.items():
        require(model, KLPerUnit, f"{name}: the KL per unit")
        device = model_device(model)
        parts = []
        with eval_mode(model):
            for start in range(0, len(x), 1000):
                xb = x[start : start + 1000].to(device)
                yb = None if y is None else y[start : start + 1000].to(device)
                parts.append((model.kl_units(xb, yb), model.code(xb, yb)))
        if parts[0][0] is None:
            raise VaelabError(
                f"{name}: this {model.about.label}'s prior gives no per-unit KL in closed form "
                "(it needs a factorised prior such as N(0, I))"
            )
        kl = torch.cat([k for k, _ in parts]).cpu().mean(0)
        mu = torch.cat([m for _, m in parts]).cpu()
        active = int((mu.var(0) > threshold).sum())
        ranked = torch.sort(kl, descending=True).values.numpy()
        ax.plot(np.arange(1, len(ranked) + 1), ranked, marker="o", markersize=3,
                label=f"{name}: total KL {kl.sum():.1f} nats, {active} of {len(kl)} units "
                "active")  # fmt: skip
    ax.set_xlabel("latent unit, ranked by its KL")
    ax.set_ylabel("KL(q(z_u|x) ‖ p(z_u)), nats (mean over images)")
    ax.set_title("KL per latent unit: units near 0 carry (almost) no information", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


@torch.no_grad()
def means_and_draws(model, path: Path, n: int = 8, draws: int = 3, seed: int = 0) -> Path:
    """Why samples look blurry: for ``n`` codes from the model, the mean of p(x|z) (what
    sample grids show) above ``draws`` images drawn from p(x|z) itself (independent pixels)."""
    require(model, Samples, "drawing from p(x|z)")
    g = torch.Generator().manual_seed(seed)
    device = model_device(model)
    with eval_mode(model):
        y = model.default_labels(n) if isinstance(model, Conditional) else None
        z = model.sample_codes(n, generator=g, y=y)
        px = model.decode(z.to(device), None if y is None else y.to(device))
        rows = [px.mean.cpu()] + [px.sample(generator=g).cpu() for _ in range(draws)]
    labels = ["mean of p(x|z)"] + [f"draw {i + 1} from p(x|z)" for i in range(draws)]
    title = (f"{model.about.label}: {n} codes from the prior; the decoder's mean (top) and "
             "images drawn from p(x|z), every pixel independently")  # fmt: skip
    return save_grid(path, torch.cat(rows), title, n, labels, model.image_shape)


def interpolation_pairs(y: torch.Tensor | np.ndarray, n_pairs: int = 8) -> list[tuple[int, int]]:
    """Deterministic pairs of indices: the first image of label k and of the next label present.

    With fewer than two labels present (unlabelled images: all -1), the first images of the
    split pair up instead.
    """
    y = _numpy(y).reshape(-1)
    digits = sorted(int(v) for v in np.unique(y))
    first = {d: int(np.flatnonzero(y == d)[0]) for d in digits}
    if len(digits) >= 2:
        pairs = [(first[d], first[digits[(i + 1) % len(digits)]]) for i, d in enumerate(digits)]
    else:
        pairs = [(i, i + 1) for i in range(0, len(y) - 1, 2)]
    return pairs[:n_pairs]


def all_figures(
    run_dir: Path, device: str | torch.device = "cpu", seed: int = 0, colour_by: str | None = None
) -> list[Path]:
    """Every figure of a run's best weights, on its test split, into ``run_dir/figures``.

    reconstructions, samples, latents (test-set latent means by digit, or by the factor
    ``colour_by`` of data made from known factors), traversals (one latent unit at a time),
    means-draws (decoder means beside draws from p(x|z)), kl-per-unit (models with an ELBO
    and a N(0, I) prior), interpolation, curves (from metrics.jsonl), for a 2-D latent space
    the manifold over the prior and over the codes, and for a conditional model the style
    grid.  Data made from known factors add latents-FACTOR (one scatter per factor), and
    their traversals name and group the units by the factor each follows.  Returns the paths.
    """
    run = Run.load(run_dir)
    model = run.model("best", device)
    test = run.splits()["test"]
    colours = None if colour_by is None else factor_colours(test, colour_by)
    figures = run.figures_dir
    about, conditional = model.about, isinstance(model, Conditional)
    y = test.y if conditional else None
    paths = [reconstruction_grid(model, test.x, figures / "reconstructions.png", y=y)]
    if isinstance(model, Samples):
        paths.append(sample_grid(model, figures / "samples.png", seed=seed))
    z = flat_codes(model, test.x, y)
    paths += _latent_figures(model, test, z, figures, colours)
    if isinstance(model, Samples):
        paths.append(means_and_draws(model, figures / "means-draws.png", seed=seed))
    device = model_device(model)
    y2 = None if y is None else y[:2].to(device)
    if isinstance(model, KLPerUnit) and model.kl_units(test.x[:2].to(device), y2) is not None:
        paths.append(kl_per_unit({about.label: model}, test.x[:2000], figures / "kl-per-unit.png",
                                 y=None if y is None else y[:2000]))  # fmt: skip
    pairs = interpolation_pairs(test.y)
    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    names = test.classes if test.labelled else None
    labels = [f"{names[test.y[i]]} → {names[test.y[j]]}" for i, j in pairs] if names else None
    paths.append(
        interpolation_grid(
            model, test.x[a], test.x[b], figures / "interpolation.png", row_labels=labels,
            y_a=None if y is None else test.y[a], y_b=None if y is None else test.y[b],
        )
    )  # fmt: skip
    rows = run.metrics()
    if rows:
        paths.append(training_curves(rows, figures / "curves.png", about.loss_unit,
                                     about.loss_parts))  # fmt: skip
    if model.latent_dim == 2 and isinstance(model, LatentPictures):
        label = int(test.y[0]) if conditional else None
        paths.append(manifold_grid(model, figures / "manifold.png", label=label))
        if not conditional:
            paths.append(manifold_grid(model, figures / "manifold-codes.png", codes=z))
    if conditional:
        paths.append(style_grid(model, test.x, test.y, figures / "styles.png"))
    return paths


def _latent_figures(
    model, test: Split, z: torch.Tensor, figures: Path, colours: FactorColours | None
) -> list[Path]:
    """latents.png (by label, or by ``colours``), one latents-FACTOR.png per factor of data
    made from known factors, and traversals.png (its rows by factor on such data)."""
    about = model.about
    extra = f"{about.label}: {about.codes}, test split"
    circles = model.latent_dim == 2 and isinstance(model, HasBound) and model.standard_normal_prior
    if circles:
        extra += "; dashed: circles of the N(0, I) prior"
    paths = [
        latent_scatter(z, test.y, figures / "latents.png", title_extra=extra,
                       prior_circles=circles, classes=test.classes, factor=colours)
    ]  # fmt: skip
    for name in test.factor_names if test.has_factors else ():
        path = figures / f"latents-{_file_word(name)}.png"
        paths.append(latent_scatter(z, test.y, path, title_extra=extra, prior_circles=circles,
                                    factor=factor_colours(test, name)))  # fmt: skip
    order_by = "factor" if test.has_factors else "variance"
    paths.append(traversal_grid(model, test.head(2000), figures / "traversals.png",
                                order_by=order_by))  # fmt: skip
    return paths


def _file_word(name: str) -> str:
    """``name`` fit for a file name: letters, digits, '-' and '_' kept, the rest '-'."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def compare_curves(rows, path: Path) -> Path:
    """The validation loss per epoch of several runs (``compare.Row``) on one set of axes.

    Runs whose losses are of different kinds (a likelihood bound, a density, a grayscale
    loss) are still drawn, and the title says that their levels are not comparable.
    """
    drawn = [r for r in rows if r.curve]
    if not drawn:
        raise VaelabError("none of these runs has metrics to plot")
    fig, ax = _subplots((8, 5))
    for r in drawn:
        epochs, losses = zip(*r.curve, strict=True)
        ax.plot(epochs, losses, marker="o" if len(epochs) <= 30 else None, markersize=3,
                label=f"{r.name} ({r.kind or 'not evaluated'})")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (nats per image, summed over pixels)")
    kinds = {r.kind for r in drawn if r.kind}
    title = "validation loss per epoch"
    if len(kinds) > 1:
        title += "\n(kinds differ: likelihood bounds, densities and losses are not comparable)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def spread_labels(values: Sequence[float], gap: float) -> list[float]:
    """Heights for labels of the lines at ``values``, in input order: near their lines, with at
    least ``gap`` between neighbours so that no label prints over another."""
    if not values:
        return []
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [float(values[i]) for i in order]
    for j in range(1, len(placed)):  # push each up off the one below ...
        placed[j] = max(placed[j], placed[j - 1] + gap)
    shift = sum(p - float(values[i]) for p, i in zip(placed, order, strict=True)) / len(order)
    placed = [p - shift for p in placed]  # ... then all down by the mean push: gaps kept
    out = [0.0] * len(values)
    for j, i in enumerate(order):
        out[i] = placed[j]
    return out


LEADER = {"arrowstyle": "-", "color": "lightgray", "linewidth": 0.6}  # label to its line


def _published_lines(axes, published: Sequence[tuple[str, float]]) -> None:
    """Dotted lines at the published NLLs across every panel, labelled beside the last one,
    the labels spread apart with a thin leader to their line."""
    if not published:
        return
    for ax in axes:
        for _, value in published:
            ax.axhline(value, color="gray", linestyle=":", linewidth=1)
    low, high = axes[0].get_ylim()
    heights = spread_labels([v for _, v in published], 0.032 * (high - low))
    for (label, value), y in zip(published, heights, strict=True):
        axes[-1].annotate(f"{label} {value:.2f}", xy=(1, value), xytext=(1.06, y),
                          xycoords=("axes fraction", "data"), textcoords=("axes fraction", "data"),
                          fontsize=8, color="dimgray", va="center",
                          arrowprops=LEADER)  # fmt: skip


def nll_against_time(
    rows,
    path: Path,
    published: Sequence[tuple[str, float]] = (),
    group: Callable[[Any], str] | None = None,
    marker: Callable[[Any], str] | None = None,
    panel: Callable[[Any], str] | None = None,
) -> Path:
    """Test NLL (binarized pixels only) against training wall-clock time, one point per run
    (``compare.Row``), with published NLLs as dotted lines for scale (their labels spread
    apart so that none prints over another).

    ``group(row)`` names a row's series (one colour each; default the run's name), ``marker(row)``
    its marker, and ``panel(row)`` the panel it is drawn in (e.g. the hardware it ran on): runs
    of minutes and runs of hours then each get a linear time axis of their own, sharing the NLL
    axis, instead of crowding one end of a single axis.  Without ``panel``: one panel, log time.
    """
    points = [r for r in rows if r.kind == "likelihood" and r.nll is not None]
    if not points:
        raise VaelabError("no run here has a test NLL of binarized pixels to plot")
    group = group or (lambda r: r.name)
    names = list(dict.fromkeys(panel(r) for r in points)) if panel else [""]
    counts = [sum(1 for r in points if not panel or panel(r) == n) for n in names]
    widths = {"width_ratios": [3 if c > 3 else 1 for c in counts]}
    fig, axes = _subplots((8.5, 5.8), 1, len(names), sharey=True, squeeze=False, gridspec_kw=widths)
    axes = list(axes[0])
    colours: dict[str, str] = {}
    for ax, name in zip(axes, names, strict=True):
        for r in points:
            if panel and panel(r) != name:
                continue
            g = group(r)
            colour = colours.setdefault(g, f"C{len(colours) % 10}")
            shape = marker(r) if marker else "o"
            ax.errorbar(max(r.train_seconds, 1) / 60, r.nll, yerr=r.nll_sem or 0, capsize=3,
                        marker=shape, color=colour, linestyle="none")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("training time (minutes)")
        if not panel:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set_xlabel("training time (minutes, log scale)")
        else:
            low, high = ax.get_xlim()
            ax.set_xlim(low - 0.3 * (high - low) - 0.5, high + 0.3 * (high - low) + 0.5)
    axes[0].set_ylabel("test NLL (nats per image; ± s.e. over images)")
    values = [v for _, v in published] + [r.nll for r in points]
    axes[0].set_ylim(min(values) - 0.8, max(values) + 0.8)
    _published_lines(axes, published)
    handles = [Line2D([], [], marker="o", color=c, linestyle="none") for c in colours.values()]
    fig.legend(handles, list(colours), fontsize=8, loc="lower center", ncol=4, frameon=False)
    fig.suptitle("test NLL against training time, dynamically binarized MNIST\n"
                 "(dotted: published, after much longer training)", fontsize=10)  # fmt: skip
    fig.subplots_adjust(right=0.82, bottom=0.2, wspace=0.08)
    return save_figure(fig, path)


def metric_against_reconstruction(
    results: Sequence[dict],
    names: Sequence[str],
    path: Path,
    labels: dict[str, str],
    titles: dict[str, str] | None = None,
) -> Path:
    """One panel per disentanglement metric: each run a point at (its test reconstruction
    term, nats per image; the metric's value), coloured by model (``labels``: model key ->
    legend text; ``titles``: metric -> panel title).  ``results``: dicts with "model",
    "recon" and "metrics" {name: value}."""
    titles = titles or {}
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = _subplots((3.2 * cols, 2.8 * rows + 0.6), rows, cols, squeeze=False)
    keys = list(labels)
    for ax, name in zip(axes.flat, names, strict=False):
        for i, key in enumerate(keys):
            mine = [r for r in results if r["model"] == key]
            ax.scatter([r["recon"] for r in mine], [r["metrics"][name] for r in mine],
                       color=DIGIT_COLORS[i % 10], s=22, label=labels[key])  # fmt: skip
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("reconstruction, nats per image", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower center", ncol=min(3, len(keys)), fontsize=8)
    fig.suptitle("Each run's disentanglement metrics (0 to 1) against its reconstruction "
                 "term (test split; lower is better)", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return save_figure(fig, path)
