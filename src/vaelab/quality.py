"""Sample quality for MNIST models: Frechet distance and k-NN precision / recall in the features
of a small digit classifier that vaelab trains itself (no download).

What the numbers are:

- ``fd``: the Frechet distance between Gaussians fitted (mean and covariance) to the 128-d
  penultimate activations of ``DigitNet`` for model samples and for real images,
  ``||mu_r - mu_s||^2 + Tr(C_r + C_s - 2 (C_r C_s)^{1/2})``, in squared feature units.
  0 means the two feature clouds share their mean and covariance; lower is better.
- ``precision``: the fraction of samples that fall inside the real-image manifold, estimated as
  the union of balls around each real feature vector with radius its distance to its k-th
  nearest real neighbour (Kynkaanniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models"). It measures fidelity: are the samples digit-like?
- ``recall``: the fraction of real images that fall inside the sample manifold (the same
  construction around the samples). It measures diversity: are all kinds of digit produced?

What they are not:

- Not FID. FID uses Inception-v3 features of ImageNet photos; these numbers use a small CNN
  trained on MNIST digits by ``load_feature_net``. They are not comparable with FID or any
  other Inception-based number, nor with numbers computed with another classifier: compare
  models only when they were scored with the same classifier file (``feature_net`` names it
  and its test accuracy) and the same reference set and sample count (FD is biased upwards at
  small n).
- Not a likelihood, and not a per-image score.
- Samples are decoder *means* (pixel probabilities for a Bernoulli decoder), which are
  blurrier than real digits; the metrics penalise that blur, as an eye would in an image
  grid. Binary samples drawn from the same decoder would look sharper, but are not scored.

``reference_floor`` gives the same numbers for real images against real images: the best a
model can hope for at that sample size (FD > 0 from sampling noise alone, precision and recall
< 1 because k-NN balls do not cover every point of a finite sample).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import DataConfig
from .data import Split, default_cache_dir, load_splits
from .errors import VaelabError
from .models.abilities import Samples, require
from .models.helpers import eval_mode
from .runs import load_state, save_weights

logger = logging.getLogger(__name__)

VERSION = "digitnet-v1"
FEATURE_DIM = 128
WHAT = (
    "Frechet distance and k-NN precision/recall in the 128-d features of a small MNIST "
    "classifier trained by vaelab; comparable only across models scored with the same "
    "classifier file; not FID"
)
_PIXEL_MEAN, _PIXEL_STD = 0.1307, 0.3081  # MNIST training pixels, the usual normalisation


class DigitNet(nn.Module):
    """A small CNN digit classifier: conv32 5x5 /2 -> conv64 5x5 /2 -> fc128 -> fc10 (ReLU).

    Input images (B, 784) with pixels in [0, 1]; ``forward`` gives class logits (B, 10),
    ``features`` the 128-d penultimate activations (after ReLU) used by the quality metrics.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, stride=2, padding=2)  # (B, 32, 14, 14)
        self.conv2 = nn.Conv2d(32, 64, 5, stride=2, padding=2)  # (B, 64, 7, 7)
        self.fc1 = nn.Linear(64 * 7 * 7, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, 128) for images (B, 784) in [0, 1]."""
        h = ((x - _PIXEL_MEAN) / _PIXEL_STD).view(-1, 1, 28, 28)
        h = torch.relu(self.conv2(torch.relu(self.conv1(h))))
        return torch.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, 10)."""
        return self.fc2(self.features(x))


def feature_net_path(cache_dir: Path | str | None = None) -> Path:
    """Where the classifier's weights live: ``<cache>/classifier/digitnet-v1.safetensors``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "classifier" / f"{VERSION}.safetensors"


@torch.no_grad()
def accuracy(net: DigitNet, split: Split, batch_size: int = 2000) -> float:
    """Fraction of images of ``split`` whose arg-max class is the label."""
    net.eval()
    hits = sum(
        int(
            (
                net(split.rows(slice(i, i + batch_size))).argmax(1) == split.y[i : i + batch_size]
            ).sum()
        )
        for i in range(0, len(split), batch_size)
    )
    return hits / len(split)


def train_digit_net(
    splits: dict[str, Split],
    *,
    epochs: int = 2,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
) -> tuple[DigitNet, float]:
    """Train ``DigitNet`` on ``splits["train"]`` (cross-entropy, Adam, cosine-decayed rate).

    Returns the net in eval mode and its accuracy on ``splits["test"]``. The same seed gives
    the same weights on the same machine; the global RNG is left as it was.  Gradients are on
    even when the caller is in ``torch.no_grad`` (as ``sample_quality`` is on first use).
    """
    with torch.enable_grad():
        return _train_digit_net(splits, epochs, seed, batch_size, lr)


def _train_digit_net(
    splits: dict[str, Split], epochs: int, seed: int, batch_size: int, lr: float
) -> tuple[DigitNet, float]:
    train, test = splits["train"], splits["test"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitNet()
    order_rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    logger.info(
        f"training the {VERSION} feature classifier on {len(train)} images ({epochs} epochs)"
    )
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=order_rng)
        desc = f"{VERSION} epoch {epoch + 1}/{epochs}"
        bar = tqdm(range(steps), desc=desc, leave=False, disable=None, unit="batch")
        for step in bar:
            idx = order[step * batch_size : (step + 1) * batch_size]
            loss = nn.functional.cross_entropy(
                net(train.rows(idx)), train.y[idx]
            )  # mean over batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    acc = accuracy(net, test)
    logger.info(f"{VERSION}: test accuracy {acc:.4f} after {time.perf_counter() - t0:.0f} s")
    return net.eval(), acc


def load_feature_net(
    cache_dir: Path | str | None = None,
    *,
    train_if_missing: bool = True,
    splits: dict[str, Split] | None = None,
    epochs: int = 2,
    seed: int = 0,
) -> DigitNet:
    """The cached feature classifier, trained once if missing (~1 min on two idle CPU cores).

    Training uses ``splits`` (default: MNIST grayscale from the default data cache) and writes
    the weights atomically with metadata (version, test accuracy, epochs, seed, training
    images). Once the file exists it is loaded as is: ``epochs`` and ``seed`` only matter for
    the first call. The returned net is in eval mode; ``net.metadata`` holds the metadata.
    """
    path = feature_net_path(cache_dir)
    if not path.exists():
        if not train_if_missing:
            raise VaelabError(f"no feature classifier at {path}; call load_feature_net() to train")
        if splits is None:
            splits = load_splits(DataConfig())
        net, acc = train_digit_net(splits, epochs=epochs, seed=seed)
        metadata = {
            "version": VERSION,
            "test_accuracy": f"{acc:.4f}",
            "epochs": str(epochs),
            "seed": str(seed),
            "train_images": str(len(splits["train"])),
            "test_images": str(len(splits["test"])),
        }
        save_weights(net, path, metadata)
        logger.info(f"feature classifier cached in {path}")
        net.metadata = metadata
        return net
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # safe_open is not a dict
    except (SafetensorError, OSError, ValueError) as e:
        raise VaelabError(
            f"cannot read feature classifier {path} ({' '.join(str(e).split())}); "
            "delete it to retrain"
        ) from None
    if metadata.get("version") != VERSION or "test_accuracy" not in metadata:
        raise VaelabError(f"{path} is not a {VERSION} classifier file; delete it to retrain")
    net = DigitNet()
    load_state(net, state, path)
    net.metadata = metadata
    return net.eval()


def describe_net(net: DigitNet) -> str:
    """``"digitnet-v1 (test accuracy 0.99x)"``; says so when the net has no file metadata."""
    acc = getattr(net, "metadata", {}).get("test_accuracy")
    return f"{VERSION} (test accuracy {acc})" if acc else f"{VERSION} (not from a classifier file)"


@torch.no_grad()
def digit_features(net: DigitNet, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Penultimate features (N, 128), float32 on the CPU, for images (N, 784) in [0, 1]."""
    net.eval()
    device = next(net.parameters()).device
    out = [
        net.features(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, FEATURE_DIM)


def _as_float64(a: Tensor | np.ndarray, name: str) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    if a.ndim != 2 or len(a) < 2:
        raise VaelabError(f"{name} must be a (N, D) array with N >= 2, got shape {a.shape}")
    return a.astype(np.float64)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; rounding-level negative eigenvalues -> 0."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` (N, D) and ``b`` (M, D).

    ``||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2})`` with unbiased covariances, in
    float64. ``Tr (C_a C_b)^{1/2} = Tr (S C_b S)^{1/2}`` with ``S = C_a^{1/2}`` (same
    eigenvalues), a symmetric PSD matrix, so two eigen-decompositions suffice and singular
    covariances (dead features) are fine. The result is clipped at 0 against rounding.
    """
    a, b = _as_float64(a, "a"), _as_float64(b, "b")
    if a.shape[1] != b.shape[1]:
        raise VaelabError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    c_a, c_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (D, D)
    s = _sqrt_psd(c_a)
    m = s @ c_b @ s
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    fd = np.sum((mu_a - mu_b) ** 2) + np.trace(c_a) + np.trace(c_b) - 2.0 * cross
    return max(float(fd), 0.0)


def _sq_dist_chunks(a: Tensor, b: Tensor, batch_size: int) -> Iterator[tuple[int, Tensor]]:
    """(start, D) for each chunk of rows of ``a``: D (chunk, len(b)) = squared distances to ``b``.

    ``|a|^2 + |b|^2 - 2 a.b`` with one matrix product per chunk; rounding can leave entries a
    hair below 0, which no comparison below minds.
    """
    b_sq = (b * b).sum(1)  # (Nb,)
    for i in range(0, len(a), batch_size):
        rows = a[i : i + batch_size]
        d = torch.addmm(b_sq, rows, b.T, alpha=-2.0)  # (chunk, Nb)
        yield i, d.add_((rows * rows).sum(1, keepdim=True))


def _kth_nn_sq(x: Tensor, k: int, batch_size: int) -> Tensor:
    """Squared distance (N,) from each row of x to its k-th nearest other row."""
    if len(x) <= k:
        raise VaelabError(f"need more than k={k} points for k-NN radii, got {len(x)}")
    # the k + 1 smallest include the row itself at distance 0 (topk: faster than kthvalue;
    # docs/performance.md)
    chunks = _sq_dist_chunks(x, x, batch_size)
    out = [d.topk(k + 1, dim=1, largest=False).values[:, -1] for _, d in chunks]
    return torch.cat(out).clamp_min_(0.0)


@torch.no_grad()
def precision_recall(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, k: int = 3, batch_size: int = 2000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake`` against ``real``.

    Each point's ball has radius its distance to its k-th nearest neighbour in its own set.
    precision = fraction of fake rows inside at least one real ball (fidelity);
    recall = fraction of real rows inside at least one fake ball (coverage).
    Distances are computed ``batch_size`` rows at a time in float64, so memory is about
    ``batch_size * N * 8`` bytes, never N x N.
    """
    r = torch.from_numpy(_as_float64(real, "real"))
    f = torch.from_numpy(_as_float64(fake, "fake"))
    centre = r.mean(0)  # distances do not change; smaller norms lose less to cancellation
    r, f = r - centre, f - centre
    if r.shape[1] != f.shape[1]:
        raise VaelabError(f"feature sizes differ: {r.shape[1]} vs {f.shape[1]}")
    r_rad, f_rad = _kth_nn_sq(r, k, batch_size), _kth_nn_sq(f, k, batch_size)  # (Nr,), (Nf,)
    fake_in_real = torch.zeros(len(f), dtype=torch.bool)
    real_in_fake = torch.zeros(len(r), dtype=torch.bool)
    for i, d in _sq_dist_chunks(f, r, batch_size):  # d: (chunk, Nr)
        fake_in_real[i : i + batch_size] = (d <= r_rad).any(1)
        real_in_fake |= (d <= f_rad[i : i + batch_size, None]).any(0)
    return fake_in_real.double().mean().item(), real_in_fake.double().mean().item()


def _scores(net: DigitNet, real_x: Tensor, fake_x: Tensor, k: int) -> dict[str, float]:
    real_f, fake_f = digit_features(net, real_x), digit_features(net, fake_x)
    precision, recall = precision_recall(real_f, fake_f, k=k)
    return {"fd": frechet_distance(real_f, fake_f), "precision": precision, "recall": recall}


def _first(x: Tensor, n: int, name: str) -> Tensor:
    if x.ndim != 2 or x.shape[1] != 784:
        raise VaelabError(f"{name} must be images (N, 784), got shape {tuple(x.shape)}")
    return x[:n].float()


@torch.no_grad()
def sample_quality(
    model: nn.Module,
    reference_x: Tensor,
    n: int = 10000,
    seed: int = 0,
    net: DigitNet | None = None,
    *,
    k: int = 3,
    reference: str = "MNIST test split",
) -> dict[str, Any]:
    """FD, precision and recall of ``n`` model samples against the first ``n`` of ``reference_x``.

    Samples are ``model.sample`` decoder means drawn with a generator seeded by ``seed``,
    clamped to [0, 1] (a Gaussian decoder's means can leave it). ``net`` defaults to the cached
    classifier (trained on first use). ``reference`` names the real images in the result.
    """
    net = load_feature_net() if net is None else net
    real = _first(reference_x, n, "reference_x")
    gen = torch.Generator().manual_seed(seed)
    require(model, Samples, "sample quality")
    with eval_mode(model):
        chunks = [model.sample(min(2000, n - i), generator=gen) for i in range(0, n, 2000)]
    fake = torch.cat([c.cpu() for c in chunks]).float().clamp(0.0, 1.0)  # (n, 784)
    out: dict[str, Any] = _scores(net, real, fake, k)
    out.update(
        n=n,
        k=k,
        feature_net=describe_net(net),
        reference=f"{len(real)} images of the {reference}",
        what=WHAT,
    )
    logger.info(
        f"sample quality ({n} samples): FD {out['fd']:.2f}, "
        f"precision {out['precision']:.3f}, recall {out['recall']:.3f}"
    )
    return out


@torch.no_grad()
def reference_floor(
    train_x: Tensor,
    test_x: Tensor,
    n: int = 10000,
    net: DigitNet | None = None,
    *,
    k: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """The same numbers for ``n`` real images of ``train_x`` (a seeded random subset) against
    the first ``n`` of ``test_x``: the floor a model that reproduces the data would reach.

    The classifier was trained on the training split, whose features may sit slightly closer
    to the class centres than unseen images'; pass the validation split as ``train_x`` for a
    floor free of that effect.
    """
    net = load_feature_net() if net is None else net
    real = _first(test_x, n, "test_x")
    pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
    other = _first(train_x[pick], n, "train_x")
    out: dict[str, Any] = _scores(net, real, other, k)
    out.update(
        n=len(other),
        k=k,
        feature_net=describe_net(net),
        reference=f"first {len(real)} of test_x vs {len(other)} of train_x (seeded subset)",
        what=WHAT + "; real images against real images: the floor for a perfect model",
    )
    return out
