"""Maximum mean discrepancy between two samples, for the MMD auto-encoders (InfoVAE, WAE).

MMD^2(P, Q) = E k(a, a') + E k(b, b') - 2 E k(a, b), a, a' ~ P, b, b' ~ Q independent
(Gretton et al. 2012, JMLR, Lemma 6).  Both kernels here are characteristic, so MMD^2 = 0
only when P = Q.  The values are in the kernel's units (a kernel is dimensionless): MMD^2 is
not in nats and does not add to a likelihood.

Kernels (``KERNELS``), with one scale C = 2 d sigma_z^2 tied to the latent size d and the
prior's variance sigma_z^2, since E ||a - b||^2 = 2 d sigma_z^2 for a, b ~ N(0, sigma_z^2 I):

- ``rbf``: k(a, b) = exp(-||a - b||^2 / C), the Gaussian kernel exp(-||a - b||^2 / (2 s^2))
  with bandwidth s^2 = d sigma_z^2.  Zhao et al.'s MMD-VAE code (github.com/ShengjiaZhao/
  MMD-Variational-Autoencoder, ``compute_kernel``) uses exp(-||a - b||^2 / d^2), i.e.
  2 s^2 = d^2: the same as ours at d = 2 with sigma_z = 1, flatter than ours for d > 2.
- ``imq``: the inverse multiquadric k(a, b) = sum_s sC / (sC + ||a - b||^2) over the scales
  s in ``IMQ_SCALES`` = {0.1, 0.2, 0.5, 1, 2, 5, 10}: Tolstikhin et al. 2018 (section 4:
  C = 2 d_z sigma_z^2) and their code (github.com/tolstikhin/wae, ``mmd_penalty``),
  which sums the kernel over these scales.  k(a, a) = 7.

Estimators of MMD^2 from X = (x_1..x_n) ~ P and Y = (y_1..y_m) ~ Q (Gretton et al. 2012,
eqs. 3 and 5):

- ``unbiased`` (the U-statistic): the within-sample means drop the diagonal,
  U = sum_{i != j} k(x_i, x_j) / (n (n-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
      - 2 sum_{i, j} k(x_i, y_j) / (n m).
  Its expectation is MMD^2 exactly; it can be negative (around 0 when P = Q).
- ``biased`` (the V-statistic): every mean keeps the diagonal (divides by n^2 and m^2).
  With D_X = mean_i k(x_i, x_i) and O_X = mean_{i != j} k(x_i, x_j) (likewise for Y),
  V - U = (D_X - O_X) / n + (D_Y - O_Y) / m  exactly, on any sample, so
  E V = MMD^2 + (E k(a, a) - E k(a, a')) / n + (E k(b, b) - E k(b, b')) / m >= MMD^2
  (a, a' ~ P and b, b' ~ Q independent); V >= 0 always.

In training the MMD is a batch quantity: codes of the batch's n images against n draws from
the prior.  A model gives the batch's one value to each image of the batch (the per-image
term the contract asks for), so its value, and the bias of the V-statistic, depend on the
batch size.
"""

from __future__ import annotations

import torch

KERNELS = ("rbf", "imq")
ESTIMATORS = ("unbiased", "biased")
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SPLIT_IMAGES = 1000  # images of a split whose codes the models' ``diagnostics`` compare


def kernel_scale(dim: int, prior_var: float = 1.0) -> float:
    """C = 2 d sigma_z^2: the mean squared distance of two draws from N(0, sigma_z^2 I_d)."""
    return 2.0 * dim * prior_var


def gram(a: torch.Tensor, b: torch.Tensor, kernel: str, scale: float) -> torch.Tensor:
    """k(a_i, b_j) for a (n, d) and b (m, d): (n, m), with C = ``scale`` (module docstring)."""
    sq = (a.unsqueeze(1) - b.unsqueeze(0)).square().sum(-1)  # (n, m): ||a_i - b_j||^2
    if kernel == "rbf":
        return torch.exp(-sq / scale)
    if kernel == "imq":
        return sum(s * scale / (s * scale + sq) for s in IMQ_SCALES)
    raise ValueError(f"unknown kernel {kernel!r} (choose from {', '.join(KERNELS)})")


def _within(k: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Mean of a square Gram matrix: off the diagonal (U) or over all n^2 entries (V); a
    sample of one has no pair, and gives its one entry k(a, a) (biased)."""
    n = k.shape[0]
    if unbiased and n > 1:
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
    return k.mean()


def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "rbf",
    scale: float | None = None,
    estimator: str = "unbiased",
) -> torch.Tensor:
    """The estimate of MMD^2 between the samples x (n, d) and y (m, d), a scalar in the
    kernel's units; ``scale`` C defaults to ``kernel_scale(d)`` (sigma_z = 1)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r} (choose from {', '.join(ESTIMATORS)})")
    c = kernel_scale(x.shape[-1]) if scale is None else scale
    unbiased = estimator == "unbiased"
    xx = _within(gram(x, x, kernel, c), unbiased)
    yy = _within(gram(y, y, kernel, c), unbiased)
    return xx + yy - 2 * gram(x, y, kernel, c).mean()
