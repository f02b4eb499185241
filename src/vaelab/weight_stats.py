"""Error bars and diagnostics from one image's K importance log-weights, vectorised over images.

Each function takes log-weights ``lw`` of shape (K, B) (K draws for each of B images, nats,
float64) and returns one number per image (B,):

- ``mc_standard_error``: the Monte Carlo standard error of the K-sample estimate
  log (1/K) sum w, from ``MC_GROUPS`` independent groups of K/G consecutive draws (batch
  means): the spread of the groups' own estimates / sqrt(G).  The error of this one image's
  number over fresh draws, not the spread over images.
- ``jackknife``: the jackknife-corrected estimate of Nowozin 2018 ("Debiasing evidence
  approximations", eq. 9, order 1): K L_K - (K-1) mean_i L_{K-1, without i}.  The bias of
  L_K is -c/K + O(1/K^2); the correction removes the 1/K term (and can raise the
  estimate above log p(x): it is no longer a lower bound).
- ``pareto_khat``: the shape k of a generalized Pareto distribution fitted to the largest
  M = min(K/5, 3 sqrt K) weights (Vehtari et al., "Pareto smoothed importance sampling",
  2015/2024, with Zhang & Stephens' 2009 fit and its weak prior towards 0.5).  Weights with
  k > 0.5 have infinite variance, with k > 0.7 the estimate is unreliable whatever the ESS.

``k_gap_bias`` turns the K/5-vs-K gap into a bias estimate under the same 1/K model.
"""

from __future__ import annotations

import math

import torch

MC_GROUPS = 10  # independent groups of the K draws behind the Monte Carlo standard error
KHAT_LIMIT = 0.7  # Pareto k-hat above which Vehtari et al. call the estimate unreliable


def _log_mean(lw: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])


def mc_standard_error(lw: torch.Tensor, groups: int = MC_GROUPS) -> torch.Tensor:
    """Monte Carlo s.e. (nats) of log mean w over the K draws, from ``groups`` groups of
    consecutive draws (fewer when K < groups; NaN when K < 2)."""
    k = lw.shape[0]
    g = min(groups, k)
    if g < 2:
        return torch.full(lw.shape[1:], float("nan"), dtype=lw.dtype)
    size = k // g
    parts = lw[: g * size].reshape(g, size, *lw.shape[1:])
    estimates = torch.logsumexp(parts, dim=1) - math.log(size)  # (g, B)
    return estimates.std(dim=0) / math.sqrt(g)


def leave_one_out(lw: torch.Tensor) -> torch.Tensor:
    """L_{K-1, without i} for every draw i: (K, B).  log(S - w_i) from the total, except
    for each image's largest weight, whose complement is summed directly (no cancellation)."""
    k = lw.shape[0]
    total = torch.logsumexp(lw, dim=0)
    share = torch.exp(lw - total).clamp(max=1.0)
    out = total + torch.log1p(-share)
    top = lw.argmax(dim=0)  # (B,)
    masked = lw.clone()
    masked[top, torch.arange(lw.shape[1])] = -math.inf
    out[top, torch.arange(lw.shape[1])] = torch.logsumexp(masked, dim=0)
    return out - math.log(k - 1)


def jackknife(lw: torch.Tensor) -> torch.Tensor:
    """Nowozin's first-order jackknife estimate of log p(x) (nats), (B,); the plain estimate
    when K = 1."""
    k = lw.shape[0]
    plain = _log_mean(lw)
    if k < 2:
        return plain
    return k * plain - (k - 1) * leave_one_out(lw).mean(dim=0)


def k_gap_bias(gap: float, k: int, k_sub: int) -> float:
    """The bias of the K-sample NLL estimate (nats, >= 0 when the gap is), from the gap
    NLL(K_sub) - NLL(K) under bias = c/K: c/K_sub - c/K = gap, so c/K = gap K_sub/(K - K_sub)."""
    return gap * k_sub / (k - k_sub) if k > k_sub else float("nan")


def tail_length(k: int) -> int:
    """M, the largest weights the Pareto fit uses (Vehtari et al.): ceil(min(K/5, 3 sqrt K))."""
    return math.ceil(min(0.2 * k, 3 * math.sqrt(k)))


def pareto_khat(lw: torch.Tensor) -> torch.Tensor:
    """Pareto k-hat of each image's weights, (B,); NaN when the tail has 4 weights or fewer."""
    k = lw.shape[0]
    m = tail_length(k)
    if m <= 4 or m >= k:
        return torch.full(lw.shape[1:], float("nan"), dtype=lw.dtype)
    top = torch.topk(lw, m + 1, dim=0).values.flip(0)  # ascending, (m+1, B)
    shift = top[-1]
    cutoff = torch.exp(top[0] - shift)
    x = (torch.exp(top[1:] - shift) - cutoff).T  # exceedances over the cutoff, (B, m)
    return _gpd_shape(x.clamp(min=0.0))


def _gpd_shape(x: torch.Tensor, prior_bs: float = 3.0, prior_k: float = 10.0) -> torch.Tensor:
    """Zhang & Stephens' (2009) estimate of the generalized Pareto shape for each row of the
    ascending exceedances ``x`` (B, n), as the PSIS reference code does it: a posterior mean
    of b = -k/sigma over a grid, then k, shrunk towards 0.5 with weight ``prior_k``."""
    n = x.shape[1]
    grid = 30 + int(math.sqrt(n))
    j = torch.arange(1, grid + 1, dtype=x.dtype)
    quartile = x[:, int(n / 4 + 0.5) - 1].clamp(min=torch.finfo(x.dtype).tiny)
    b = 1 - torch.sqrt(grid / (j - 0.5))  # (grid,)
    b = b / (prior_bs * quartile[:, None]) + 1 / x[:, -1:]  # (B, grid)
    k = torch.log1p(-b[:, :, None] * x[:, None, :]).mean(dim=2)  # (B, grid)
    profile = n * (torch.log(-b / k) - k - 1)
    weights = torch.softmax(profile, dim=1)
    weights = torch.where(weights >= 10 * torch.finfo(x.dtype).eps, weights, 0.0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    b_post = (b * weights).sum(dim=1)
    k_post = torch.log1p(-b_post[:, None] * x).mean(dim=1)
    return (n * k_post + prior_k * 0.5) / (n + prior_k)
