"""Importance-sampled log-likelihood (Burda et al. 2016), vectorised over samples and images.

    log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x)

The bound tightens as K grows and equals the one-sample ELBO estimate at K = 1.  For each
batch of images the K log-weights are computed in chunks of shape (k_chunk, B) and folded
into a running logsumexp, so memory stays bounded whatever K is.  Results are in nats per
image; bits per dimension divide by 784 ln 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .errors import VaelabError
from .models.helpers import eval_mode
from .nets import IMAGE_DIM


@dataclass(frozen=True)
class ChunkPlan:
    batch: int  # images per batch (B)
    k_chunk: int  # importance samples per chunk; rows per decoder call = batch * k_chunk


def bytes_per_row(model) -> int:
    """Rough float32 memory of one (sample, image) row in one chunk: inputs, decoder
    activations, log-prob terms and latent draws, with headroom for temporaries."""
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules()):
        widths += [2 * 64 * 7 * 7, 2 * 32 * 14 * 14, IMAGE_DIM]  # conv decoder feature maps
    prior = getattr(model, "prior", None)
    mixture = getattr(prior, "pseudo", None)  # a VampPrior: a (rows, K) matrix of components
    widths += [3 * len(mixture)] if mixture is not None else []
    return 4 * (4 * IMAGE_DIM + 2 * sum(widths) + 8 * model.latent_dim)


def plan_chunks(model, k: int, n_images: int, memory_bytes: int | None = None) -> ChunkPlan:
    """Largest (B, k_chunk) whose rows fit ``memory_bytes``.  Prefers a whole K per chunk and
    several images per batch.  Default budget: half of the free memory on a GPU; 64 MB on a
    CPU, where chunks of a few thousand rows that stay in cache run faster than larger ones
    (measured with bench/nll_speed.py)."""
    if memory_bytes is None:
        device = next(model.parameters()).device
        if device.type == "cuda":
            memory_bytes = torch.cuda.mem_get_info(device)[0] // 2
        else:
            memory_bytes = 64 * 2**20
    rows = max(1, memory_bytes // bytes_per_row(model))
    if rows >= k:
        return ChunkPlan(batch=max(1, min(n_images, rows // k)), k_chunk=k)
    n_chunks = math.ceil(k / rows)
    return ChunkPlan(batch=1, k_chunk=math.ceil(k / n_chunks))  # equal chunks, none tiny


@torch.no_grad()
def log_likelihood_estimates(
    model,
    x: torch.Tensor,
    k: int = 5000,
    *,
    y: torch.Tensor | None = None,
    memory_bytes: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The K-sample estimate of log p(x) (of log p(x | y) for a conditional model, which
    needs the labels ``y``) for every image of ``x``: shape (N,), nats.

    Uses the global torch RNG for z ~ q(z|x); seed it for a reproducible estimate.
    """
    if k < 1:
        raise VaelabError(f"the number of importance samples must be >= 1, got {k}")
    if not model.has_elbo:
        model.log_importance_weights(x[:1], 1)  # raises the model's own refusal
    if model.conditional and y is None:
        raise VaelabError("a conditional model's likelihood needs the labels y")
    plan = plan_chunks(model, k, len(x), memory_bytes)
    out = torch.empty(len(x), dtype=torch.float64)
    bar = tqdm(
        total=len(x), desc=f"log p(x), K={k}", unit="img", disable=None if progress else True
    )
    with eval_mode(model):
        _estimate(model, x, y, k, plan, out, bar)
    bar.close()
    return out


def _estimate(model, x, y, k: int, plan: ChunkPlan, out: torch.Tensor, bar) -> None:
    for start in range(0, len(x), plan.batch):
        xb = x[start : start + plan.batch]
        yb = None if y is None else y[start : start + plan.batch]
        total = None  # running logsumexp over the chunks, (B,)
        for done in range(0, k, plan.k_chunk):
            lw = model.log_importance_weights(xb, min(plan.k_chunk, k - done), yb)  # (kc, B)
            lse = torch.logsumexp(lw.double(), dim=0)
            total = lse if total is None else torch.logaddexp(total, lse)
        out[start : start + len(xb)] = (total - math.log(k)).cpu()
        bar.update(len(xb))


def summarize(log_px: torch.Tensor) -> dict[str, float]:
    """Mean NLL in nats per image, its standard error over images, and bits per dimension."""
    nll = -log_px
    mean = nll.mean().item()
    sem = (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan")
    return {
        "nll": mean,
        "nll_sem": sem,
        "bits_per_dim": mean / (IMAGE_DIM * math.log(2)),
    }
