"""Looking inside trained models: the PCA check of a linear AE, latent probes, active units.

Units used throughout:

- pixels are in [0, 1]; a *per-pixel MSE* is the squared error averaged over images **and** over
  the 784 pixels (pixel units squared), i.e. an AE's "squared error per image, summed over
  pixels" divided by 784;
- PCA eigenvalues are variances of the centred training pixels along each principal direction
  (pixel units squared), with 1/N normalisation, so that ``sum(eigenvalues[k:]) / 784`` is
  exactly PCA's per-pixel training MSE with k components;
- principal angles are in degrees, in [0, 90];
- accuracies are fractions of the test images classified correctly, in [0, 1].

The PCA check follows Baldi & Hornik (1989): a linear encoder/decoder trained on squared error
reaches the top-k principal subspace of the centred data (any invertible mix of the components,
not the components themselves), so its training MSE equals the discarded variance and the
principal angles between its decoder's column space and the top-k PCs are ~0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .data import Split
from .disentangle.common import entropies, mutual_info_matrix
from .errors import VaelabError
from .models.abilities import Conditional
from .models.helpers import eval_mode, flat_codes, model_device

MSE_TOLERANCE = 0.02  # pca_check: train MSE within 2% of PCA's ...
MAX_ANGLE_DEG = 10.0  # ... and every principal angle below 10 degrees


@dataclass
class PCA:
    """Principal components of data (N, 784), all float64.

    ``mean`` (784,): the pixel means.  ``components`` (k, 784): orthonormal rows, the top-k
    principal directions in order of decreasing variance (sign fixed so that each row's largest
    entry in absolute value is positive).  ``eigenvalues`` (784,): every eigenvalue of the centred
    covariance (1/N normalisation), descending, clamped at 0 (pixel units squared).
    """

    mean: Tensor
    components: Tensor
    eigenvalues: Tensor

    @property
    def k(self) -> int:
        return len(self.components)

    def discarded_variance(self) -> float:
        """Sum of the eigenvalues beyond k over 784: PCA's per-pixel training MSE."""
        return self.eigenvalues[self.k :].sum().item() / self.mean.numel()


def fit_pca(x: Tensor, k: int, chunk_size: int = 10_000) -> PCA:
    """PCA of the rows of ``x`` (N, D) keeping ``k`` components.

    The covariance is accumulated in float64 over chunks of ``chunk_size`` rows (so 50,000 x 784
    never needs a float64 copy of the data) and diagonalised with ``torch.linalg.eigh``.  With
    fewer rows than columns (a few thousand 64x64 RGB images: D = 12,288) the N x N Gram matrix
    of the centred rows is diagonalised instead: the same nonzero eigenvalues, the components
    X^T u / sqrt(N lambda), and D - N zero eigenvalues, in far less time.
    """
    n, d = x.shape
    if not 1 <= k <= d:
        raise VaelabError(f"k must be in 1..{d}, got {k}")
    if n < 2:
        raise VaelabError(f"PCA needs at least 2 rows, got {n}")
    mean = torch.zeros(d, dtype=torch.float64)
    for xb in x.split(chunk_size):
        mean += xb.to(device="cpu", dtype=torch.float64).sum(0)
    mean /= n
    if n < d:
        p = _pca_from_gram(x, k, mean)
        if p is not None:
            return p
    cov = torch.zeros(d, d, dtype=torch.float64)
    for xb in x.split(chunk_size):
        xc = xb.to(device="cpu", dtype=torch.float64) - mean  # (b, D)
        cov += xc.T @ xc
    cov /= n  # 1/N: eigenvalues are then exactly the per-direction training MSE
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    return _pca(mean, evecs[:, :k].T, evals)


def _pca_from_gram(x: Tensor, k: int, mean: Tensor) -> PCA | None:
    """``fit_pca`` through the (N, N) Gram matrix of the centred rows, for N < D; None when
    the rows span fewer than k directions (the covariance then picks the rest)."""
    n, d = x.shape
    xc = x.to(device="cpu", dtype=torch.float64) - mean  # (N, D)
    evals, u = torch.linalg.eigh(xc @ xc.T / n)  # ascending, (N,), (N, N)
    evals, u = evals.flip(0).clamp_min(0), u.flip(1)
    if k > n or not evals[k - 1] > 1e-9 * evals[0]:
        return None
    comps = (xc.T @ u[:, :k]) / torch.sqrt(n * evals[:k])  # (D, k), orthonormal columns
    padded = torch.cat([evals, torch.zeros(d - n, dtype=torch.float64)])
    return _pca(mean, comps.T, padded)


def _pca(mean: Tensor, components: Tensor, evals: Tensor) -> PCA:
    """A PCA with each component's largest entry (in absolute value) made positive."""
    comps = components.contiguous()  # (k, D)
    idx = comps.abs().argmax(1, keepdim=True)
    comps *= comps.gather(1, idx).sign()
    return PCA(mean=mean, components=comps, eigenvalues=evals)


def pca_encode(p: PCA, x: Tensor) -> Tensor:
    """PCA codes (N, k) of images (N, 784): projections of the centred images, float64."""
    return (x.to(device="cpu", dtype=torch.float64) - p.mean) @ p.components.T


def pca_reconstruct(p: PCA, x: Tensor) -> Tensor:
    """Projections of images (N, 784) onto the top-k affine principal subspace, float64."""
    return pca_encode(p, x) @ p.components + p.mean


def principal_angles(a: Tensor, b: Tensor) -> Tensor:
    """Principal angles (degrees, ascending) between the column spaces of a (n, ka), b (n, kb).

    ``min(ka, kb)`` angles: ``acos`` of the singular values of ``Qa^T Qb``, with Qa, Qb
    orthonormal bases from a reduced QR (Björck & Golub 1973), in float64.  The angles depend on
    the spaces only: mixing the columns of ``a`` by any invertible matrix leaves them unchanged.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise VaelabError(
            f"bases must be (n, k) with the same n, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    qs = []
    for m in (a, b):
        q, r = torch.linalg.qr(m.detach().to(device="cpu", dtype=torch.float64))
        diag = r.diagonal().abs()
        if diag.min() <= 1e-10 * diag.max().clamp_min(1e-300):
            raise VaelabError(f"basis of shape {tuple(m.shape)} is rank-deficient")
        qs.append(q)
    cos = torch.linalg.svdvals(qs[0].T @ qs[1]).clamp(-1.0, 1.0)  # descending
    return torch.rad2deg(torch.arccos(cos))


def latent_codes(
    model: nn.Module, x: Tensor, y: Tensor | None = None, batch_size: int = 2000
) -> Tensor:
    """Codes (N, D) of images (N, C*H*W) on the CPU, flattened: the AE's code, the VAE's
    E_q[z|x] (a conditional model's needs the labels ``y``)."""
    return flat_codes(model, x, y, batch_size)


@torch.no_grad()
def mse_per_pixel(
    reconstruct: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 2000
) -> float:
    """Squared error of ``reconstruct(x)`` averaged over images and pixels (float64 sums)."""
    total = 0.0
    for xb in x.split(batch_size):
        err = reconstruct(xb).to(device="cpu", dtype=torch.float64) - xb.cpu().double()
        total += err.square().sum().item()
    return total / x.numel()


def pca_check(
    model: nn.Module, splits: dict[str, Split], k: int | None = None, *, angles: bool = True
) -> dict[str, Any]:
    """Compare an auto-encoder with k-component PCA fitted on ``splits["train"].x``.

    ``k`` defaults to the model's latent dimension.  Keys (MSEs per pixel, pixel units squared;
    see the module docstring):

    - ``k``, ``latent_dim``, ``train_images``, ``test_images``;
    - ``ae_train_mse``, ``pca_train_mse``, ``ae_test_mse``, ``pca_test_mse``: the model's (AE
      or VAE: decoder mean at the latent mean, ``model.reconstruct``) and PCA's;
    - ``train_mse_ratio``, ``test_mse_ratio``: model MSE / PCA MSE (on train, >= 1 for a linear
      model with D <= k: PCA is the best rank-k affine reconstruction of its training data);
    - ``discarded_variance``: sum of the eigenvalues beyond k / 784, which equals
      ``pca_train_mse``; ``discarded_rel_diff`` is their relative difference (float error);
    - ``explained_variance``: fraction of the total training variance in the top k PCs;
    - ``angles_deg`` (list, ascending) and ``max_angle_deg``: principal angles between the
      decoder's column space (``decoder.weight``, (784, D)) and the top-k PCs; ``None`` when
      ``angles=False``;
    - ``verdict``: one line; the model "reaches the top-k principal subspace" when its train MSE
      is within ``MSE_TOLERANCE`` (2%) of PCA's and its largest angle is below ``MAX_ANGLE_DEG``
      (10 degrees); without angles it says whether the MSE is below, matches or is above PCA's;
    - ``units``: a reminder of the above.

    A decoder that is not linear has no column space: with ``angles=True`` that raises
    :class:`VaelabError`; ``angles=False`` compares the MSEs only (any AE or VAE, reconstructing
    from the latent mean).
    """
    linear = isinstance(getattr(model, "decoder", None), nn.Linear)
    if angles and not linear:
        raise VaelabError(
            "principal angles need a linear decoder; pass angles=False to compare MSEs only"
        )
    d = int(model.latent_dim)
    k = d if k is None else k
    train_x, test_x = splits["train"].x, splits["test"].x
    p = fit_pca(train_x, k)
    discarded = p.discarded_variance()
    mse = _mse_against_pca(model, p, train_x, test_x)
    out: dict[str, Any] = {
        "k": k,
        "latent_dim": d,
        "train_images": len(train_x),
        "test_images": len(test_x),
        **mse,
        "discarded_variance": discarded,
        "discarded_rel_diff": abs(mse["pca_train_mse"] - discarded) / max(discarded, 1e-300),
        "explained_variance": p.eigenvalues[:k].sum().item() / p.eigenvalues.sum().item(),
        "angles_deg": None,
        "max_angle_deg": None,
        "units": "MSE per pixel (mean over images and pixels, pixels in [0, 1]); angles in degrees",
    }
    if angles:
        theta = principal_angles(model.decoder.weight, p.components.T)  # (784, D) vs (784, k)
        out["angles_deg"] = theta.tolist()
        out["max_angle_deg"] = theta.max().item()
    out["verdict"] = _pca_verdict(getattr(model, "name", "model").upper(), out)
    return out


def _mse_against_pca(model: nn.Module, p: PCA, train_x: Tensor, test_x: Tensor) -> dict:
    """The model's and PCA's per-pixel MSE on the training and test images, and their ratios."""
    device = model_device(model)
    with eval_mode(model):
        ae_train = mse_per_pixel(lambda xb: model.reconstruct(xb.to(device)), train_x)
        ae_test = mse_per_pixel(lambda xb: model.reconstruct(xb.to(device)), test_x)
    pca_train = mse_per_pixel(lambda xb: pca_reconstruct(p, xb), train_x)
    pca_test = mse_per_pixel(lambda xb: pca_reconstruct(p, xb), test_x)
    return {
        "ae_train_mse": ae_train,
        "pca_train_mse": pca_train,
        "ae_test_mse": ae_test,
        "pca_test_mse": pca_test,
        "train_mse_ratio": ae_train / pca_train,
        "test_mse_ratio": ae_test / pca_test,
    }


def _pca_verdict(name: str, out: dict[str, Any]) -> str:
    """One line on ``pca_check``'s numbers: the MSE against PCA's, and the subspace reached
    (with angles) or the MSE's side of PCA's (without)."""
    ratio, k, largest = out["train_mse_ratio"], out["k"], out["max_angle_deg"]
    verdict = f"{name} train MSE {100 * (ratio - 1):+.3f}% vs PCA (k={k})"
    if largest is not None:
        reached = ratio <= 1 + MSE_TOLERANCE and largest < MAX_ANGLE_DEG
        return (
            f"{verdict}, largest principal angle {largest:.2f} deg: "
            f"{'reaches' if reached else 'does not reach'} the top-k principal subspace"
        )
    if ratio < 1 - 1e-6:
        return f"{verdict}: below PCA (possible only for a non-linear model); angles not computed"
    near = ratio <= 1 + MSE_TOLERANCE
    return f"{verdict}: {'matches' if near else 'above'} PCA; angles not computed"


def _standardise(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Features centred and scaled by the training mean and std (float64); constant ones -> 0."""
    train, test = train.cpu().double(), test.cpu().double()
    mean, std = train.mean(0), train.std(0, correction=0).clamp_min(1e-8)
    return (train - mean) / std, (test - mean) / std


def linear_probe(
    z_train: Tensor,
    y_train: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    *,
    l2: float = 1e-4,
    max_iter: int = 200,
    seed: int = 0,
) -> float:
    """Test accuracy in [0, 1] of multinomial logistic regression on features z (N, D).

    Features are standardised with the training mean and std.  The objective is the mean
    cross-entropy (nats per image) plus ``l2 / 2 * ||W||^2`` (bias not penalised), minimised by
    full-batch L-BFGS (strong Wolfe line search, at most ``max_iter`` iterations) in float64.
    ``seed`` draws the small random initial weights; the problem is strictly convex, so it only
    matters through incomplete convergence.
    """
    xtr, xte = _standardise(z_train, z_test)
    y_train, y_test = y_train.cpu().long(), y_test.cpu().long()
    classes = int(max(y_train.max().item(), y_test.max().item())) + 1
    g = torch.Generator().manual_seed(seed)
    w = (
        0.01 * torch.randn(xtr.shape[1], classes, generator=g, dtype=torch.float64)
    ).requires_grad_()
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xtr @ w + b, y_train) + 0.5 * l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xte @ w + b).argmax(1)
    return (pred == y_test).double().mean().item()


@torch.no_grad()
def knn_accuracy(
    z_train: Tensor,
    y_train: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    k: int = 5,
    batch_size: int = 1000,
) -> float:
    """Test accuracy in [0, 1] of a Euclidean k-nearest-neighbour majority vote.

    The test set is processed in chunks of ``batch_size`` rows, so at most a (batch_size, N_train)
    float32 distance matrix exists at once (1000 x 50,000: 200 MB).  Ties in the vote go to the
    tied class whose nearest member is closest.
    """
    if not 1 <= k <= len(z_train):
        raise VaelabError(f"k must be in 1..{len(z_train)}, got {k}")
    ztr, y_train = z_train.cpu().float(), y_train.cpu().long()
    classes = int(max(y_train.max().item(), y_test.max().item())) + 1
    ranks = torch.arange(k).expand(batch_size, k)
    correct = 0
    z_test, y_test = z_test.cpu().float(), y_test.cpu().long()
    for start in range(0, len(z_test), batch_size):
        zb, yb = z_test[start : start + batch_size], y_test[start : start + batch_size]
        dist = torch.cdist(zb, ztr)  # (b, N_train)
        nearest = dist.topk(k, dim=1, largest=False).indices  # (b, k), nearest first
        labels = y_train[nearest]  # (b, k)
        counts = torch.zeros(len(zb), classes).scatter_add_(1, labels, torch.ones(labels.shape))
        first = torch.full((len(zb), classes), k).scatter_reduce_(
            1, labels, ranks[: len(zb)], reduce="amin"
        )
        score = counts - first / (k + 1)  # the count decides; the nearest member breaks ties
        correct += (score.argmax(1) == yb).sum().item()
    return correct / len(z_test)


def _probe_scores(
    z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor, knn_k: int, features: str
) -> dict[str, Any]:
    t0 = time.perf_counter()
    lin = linear_probe(z_train, y_train, z_test, y_test)
    t1 = time.perf_counter()
    knn = knn_accuracy(z_train, y_train, z_test, y_test, k=knn_k)
    t2 = time.perf_counter()
    return {
        "linear_probe_acc": lin,
        "knn_acc": knn,
        "k": knn_k,
        "features": features,
        "train_images": len(z_train),
        "test_images": len(z_test),
        "linear_probe_seconds": t1 - t0,
        "knn_seconds": t2 - t1,
    }


def probes(model: nn.Module, splits: dict[str, Split], *, knn_k: int = 5) -> dict[str, Any]:
    """How linearly / locally the latent means separate the digits.

    Both probes are fitted on the train split's latent means and scored on the test split's.
    Keys: ``linear_probe_acc``, ``knn_acc`` (fractions in [0, 1]), ``k`` (neighbours),
    ``features``, ``train_images``, ``test_images``, ``linear_probe_seconds``, ``knn_seconds``.
    """
    y_tr, y_te = splits["train"].y, splits["test"].y
    conditional = isinstance(model, Conditional)
    z_tr = latent_codes(model, splits["train"].x, y_tr if conditional else None)
    z_te = latent_codes(model, splits["test"].x, y_te if conditional else None)
    features = f"latent means (D={z_tr.shape[1]})"
    return _probe_scores(z_tr, splits["train"].y, z_te, splits["test"].y, knn_k, features)


def pca_probes(splits: dict[str, Split], k: int, *, knn_k: int = 5) -> dict[str, Any]:
    """The probes of :func:`probes` on k-dim PCA codes (PCA fitted on the train split): a baseline
    for the AE and VAE latents.  Same keys, plus ``pca_seconds`` (fit and projection)."""
    t0 = time.perf_counter()
    p = fit_pca(splits["train"].x, k)
    z_tr, z_te = pca_encode(p, splits["train"].x), pca_encode(p, splits["test"].x)
    seconds = time.perf_counter() - t0
    out = _probe_scores(
        z_tr, splits["train"].y, z_te, splits["test"].y, knn_k, f"PCA codes (k={k})"
    )
    return {**out, "pca_seconds": seconds}


def active_units(
    model: nn.Module, x: Tensor, y: Tensor | None = None, threshold: float = 0.01
) -> dict[str, Any]:
    """Active latent units (Burda et al. 2016): unit u is active when Var_x(E_q[z_u | x]) >
    ``threshold`` (latent units squared), the variance over the images of ``x`` (1/N).

    Returns ``active_units`` (int), ``latent_dim``, ``threshold`` and ``variances`` (list, one
    per unit).
    """
    z = latent_codes(model, x, y).double()  # (N, D)
    var = z.var(0, correction=0)
    return {
        "active_units": int((var > threshold).sum().item()),
        "latent_dim": z.shape[1],
        "threshold": threshold,
        "variances": var.tolist(),
    }


def discretise(values: np.ndarray, bins: int = 20) -> np.ndarray:
    """Bin indices (N,) in 0 .. bins-1 of ``values`` (N,) in ``bins`` equal-width bins over
    their range, as disentanglement_lib's ``histogram_discretize`` (a constant: one bin)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 0.0)
    if not hi > lo:
        return np.zeros(len(values), dtype=np.int64)
    return np.digitize(values, np.linspace(lo, hi, bins + 1)[1:-1]).astype(np.int64)


def unit_factor_information(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """How much each latent unit says about each factor of the data: (D, F), entry (u, f) the
    mutual information between unit u's code, discretised into ``bins`` equal-width bins, and
    factor f's index, in nats, divided by factor f's entropy H(f) in nats (0 for a constant
    factor).  So 1: the unit's code determines the factor; 0: it tells nothing of it.

    The same estimate as the Mutual Information Gap (Chen et al. 2018) of disentanglement_lib
    (Locatello et al. 2019): codes (N, D) are latent means, factors (N, F) integer indices."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors).astype(np.int64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise VaelabError(
            f"codes {codes.shape} and factors {factors.shape} must be (N, D) and (N, F)"
        )
    binned = np.stack([discretise(codes[:, u], bins) for u in range(codes.shape[1])], axis=1)
    info, entropy = mutual_info_matrix(binned, factors), entropies(factors)  # nats
    return np.divide(info, entropy, out=np.zeros_like(info), where=entropy > 0)


__all__ = [
    "PCA",
    "active_units",
    "fit_pca",
    "knn_accuracy",
    "latent_codes",
    "linear_probe",
    "pca_check",
    "pca_encode",
    "pca_probes",
    "pca_reconstruct",
    "principal_angles",
    "probes",
    "unit_factor_information",
]
