"""Importance-sampled log-likelihood (Burda et al. 2016), vectorised over samples and images.

    log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x)

The bound tightens as K grows and equals the one-sample ELBO estimate at K = 1.  For each
batch of images the K log-weights are computed in chunks of shape (k_chunk, B) and folded
into a running logsumexp, so memory stays bounded whatever K is.  Results are in nats per
image; bits per dimension divide by 784 ln 2.

Diagnostics come from the same draws (``importance_sampled``): the estimate from the first
K/5 samples (K = 5000: the K = 1000 estimate on the same images), whose gap to the full one
shows how far the estimate still moves with K; and the effective sample size of the
normalised importance weights, ESS = (sum w)^2 / sum w^2, between 1 (one sample carries all
the weight) and K (all equal).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import distributed, weight_stats
from .errors import VaelabError
from .models.abilities import Conditional, HasBound, require
from .models.helpers import eval_mode, model_device
from .nets import IMAGE_DIM
from .precision import check_precision, products_in

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkPlan:
    batch: int  # images per batch (B)
    k_chunk: int  # importance samples per chunk; rows per decoder call = batch * k_chunk


def bytes_per_row(model) -> int:
    """Rough float32 memory of one (sample, image) row in one chunk: inputs, decoder
    activations, log-prob terms and latent draws, with headroom for temporaries."""
    shape = getattr(model, "image_shape", (1, 28, 28))
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules()):
        c, h, w = shape
        # conv decoder feature maps: channels double as the side halves, so each stage holds
        # about 32 * 2^i * (h * w / 4^(i+1)) values; the first two dominate
        widths += [2 * 32 * h * w // 4, 2 * 64 * h * w // 16, c * h * w]
    prior = getattr(model, "prior", None)
    mixture = getattr(prior, "pseudo", None)  # a VampPrior: a (rows, K) matrix of components
    widths += [3 * len(mixture)] if mixture is not None else []
    dims = math.prod(shape)
    return 4 * (4 * dims + 2 * sum(widths) + 8 * model.latent_dim)


def plan_chunks(model, k: int, n_images: int, memory_bytes: int | None = None) -> ChunkPlan:
    """Largest (B, k_chunk) whose rows fit ``memory_bytes``.  Prefers a whole K per chunk and
    several images per batch.  Default budget: half of the free memory on a GPU, at most
    2 GiB (larger chunks run no faster, and several processes may share the GPU); 64 MB on a
    CPU, where chunks of a few thousand rows that stay in cache run faster than larger ones
    (measured with tools/bench/nll_speed.py)."""
    if memory_bytes is None:
        device = next(model.parameters()).device
        if device.type == "cuda":
            memory_bytes = min(torch.cuda.mem_get_info(device)[0] // 2, 2 * 2**30)
        else:
            memory_bytes = 64 * 2**20
    rows = max(1, memory_bytes // bytes_per_row(model))
    if rows >= k:
        return ChunkPlan(batch=max(1, min(n_images, rows // k)), k_chunk=k)
    n_chunks = math.ceil(k / rows)
    return ChunkPlan(batch=1, k_chunk=math.ceil(k / n_chunks))  # equal chunks, none tiny


@dataclass
class Estimates:
    """Per image (N,): ``log_px`` with K samples, ``log_px_sub`` with the first ``k_sub`` of
    the same samples, and ``ess`` the effective sample size of the K importance weights."""

    k: int
    log_px: torch.Tensor
    k_sub: int
    log_px_sub: torch.Tensor
    ess: torch.Tensor
    # error bars of each image's number from the same draws (``weight_stats``), (N,) each:
    # Monte Carlo s.e., Nowozin's jackknife estimate of log p(x), Pareto k-hat of the weights
    mc_se: torch.Tensor | None = None
    log_px_jackknife: torch.Tensor | None = None
    khat: torch.Tensor | None = None
    # the ELBOs of the encoder's q and of each image's optimised q* (``gaps.py``), nats
    elbo_q_phi: torch.Tensor | None = None
    elbo_q_star: torch.Tensor | None = None

    def per_image(self) -> dict[str, torch.Tensor]:
        """The per-image arrays by name (nats, except ``ess`` and ``khat``, which are plain)."""
        names = ("log_px", "log_px_sub", "ess", "mc_se", "log_px_jackknife", "khat",
                 "elbo_q_phi", "elbo_q_star")  # fmt: skip
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


COMPILE_MIN_ROWS = 2_000_000  # (sample, image) rows below which compiling does not pay


def compiler_available() -> bool:
    """Whether ``torch.compile`` can build kernels here: a C++ compiler for the CPU."""
    cxx = os.environ.get("CXX")
    return any(shutil.which(c) for c in ([cxx] if cxx else []) + ["c++", "g++", "clang++"])


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_function(model, compile: bool | None, rows: int):
    """``model.log_importance_weights``, or its ``torch.compile``d version: one pass over the
    logits for the Bernoulli log-likelihood and the layers' bias and activation fused into the
    products' output (faster on a CPU: tools/bench/nll_speed.py measures it, docs/performance.md
    shows it).  The draws come from the same RNG calls as without compiling (inductor's
    ``fallback_random``), so the estimate is the same up to floating-point order.

    ``compile=None`` (auto) compiles on a CPU when the estimate has at least
    ``COMPILE_MIN_ROWS`` (sample, image) rows and a compiler is found; a model that fails to
    compile falls back to the plain function with a warning."""
    plain = model.log_importance_weights
    if compile is None:  # measured on CPUs; on a GPU ask for it
        on_cpu = next(model.parameters()).device.type == "cpu"
        compile = on_cpu and rows >= COMPILE_MIN_ROWS and compiler_available()
    if not compile:
        return plain
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(plain, dynamic=None, options={"fallback_random": True})
    compiled = _COMPILED[model]

    def weights(*args):
        nonlocal compiled
        if compiled is not plain:
            try:
                return compiled(*args)
            except Exception as e:  # noqa: BLE001  (any compiler failure: fall back)
                logger.warning(
                    f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                    "the estimate continues without it"
                )
                compiled = _COMPILED[model] = plain
        return plain(*args)

    return weights


DRAW_BLOCK = 1000  # importance samples of one image per call under a seed: fixed, not memory's


def draw_seed(seed: int, image: int, first_sample: int) -> int:
    """The seed of the draws of samples ``first_sample`` .. ``first_sample + DRAW_BLOCK - 1``
    of image ``image`` (its index in the estimate's ``x``): a hash of the three numbers, so an
    image's draws follow from them alone, not from its batch, the chunking, the memory budget
    or the number of processes."""
    key = f"{seed}/{image}/{first_sample}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class EstimateSettings:
    """How an estimate is computed, none of which changes what it estimates (beyond
    floating-point order): ``memory_bytes`` per chunk of (sample, image) rows (``plan_chunks``;
    None: the device's default), ``compile`` the log-weights (:func:`weights_function`; None:
    when it pays and a compiler is found), and ``precision``, the format of the networks'
    products (``precision.PRECISIONS``; the log-probabilities stay float32 and the sums
    float64)."""

    memory_bytes: int | None = None
    compile: bool | None = None
    precision: str = "fp32"


@torch.no_grad()
def importance_sampled(
    model,
    x: torch.Tensor,
    k: int = 5000,
    *,
    y: torch.Tensor | None = None,
    seed: int | None = None,
    progress: bool = True,
    settings: EstimateSettings | None = None,
) -> Estimates:
    """The K-sample estimate of log p(x) (of log p(x | y) for a conditional model, which
    needs the labels ``y``) for every image of ``x``, with its diagnostics; nats.

    Draws z ~ q(z|x) from the global torch RNG.  With ``seed`` the images are scored one at a
    time in fixed blocks of ``DRAW_BLOCK`` samples, the RNG reseeded before each block from
    (seed, image index, first sample) (``draw_seed``), so the same seed gives the same
    per-image estimates whatever the memory budget, the chunking or the number of processes
    (on one kind of device; CPU and CUDA generators differ): in a group
    (``distributed.current()``) the images are dealt out round-robin and the estimates summed
    back.  The price: one image per network call, at most ``DRAW_BLOCK`` rows.  Without
    ``seed`` the batches and chunks follow the memory budget (``plan_chunks``) and the draws
    continue the RNG's stream.  ``settings``: memory, compiling and number format
    (:class:`EstimateSettings`).
    """
    settings = settings or EstimateSettings()
    dist = distributed.current()
    _check_request(model, x, k, y, seed)
    device = model_device(model)
    check_precision(settings.precision, device)
    if seed is None:
        plan = plan_chunks(model, k, len(x), settings.memory_bytes)
    else:  # fixed blocks: the draws must not follow the memory
        plan = ChunkPlan(batch=1, k_chunk=min(k, DRAW_BLOCK))
    k_sub = max(1, k // 5)
    # in a group the other processes' images stay 0 here, then the sums fill them in
    empty = [torch.zeros(len(x), dtype=torch.float64) for _ in range(6)]
    est = Estimates(k, empty[0], k_sub, empty[1], empty[2], *empty[3:])
    weights = weights_function(model, settings.compile, len(x) * k)
    starts = range(0, len(x), plan.batch)[dist.rank :: dist.world]
    mine = sum(min(plan.batch, len(x) - s) for s in starts)  # this process's images
    disable = None if progress and dist.is_main else True
    bar = tqdm(total=mine, desc=f"log p(x), K={k}", unit="img", disable=disable)
    forecast = Forecast(len(starts) * math.ceil(k / plan.k_chunk), f"{k} samples of {mine} images")
    with eval_mode(model), products_in(settings.precision, device):
        for start in starts:
            sl = slice(start, start + plan.batch)
            reseed = None if seed is None else _reseed(seed, start)
            yb = None if y is None else y[sl]
            _estimate_batch(weights, x[sl], yb, plan, est, sl, forecast, reseed)
            bar.update(len(x[sl]))
    bar.close()
    if dist.active:
        for t in est.per_image().values():
            dist.sum_(t)
    return est


def _check_request(model, x: torch.Tensor, k: int, y: torch.Tensor | None, seed: int | None):
    """A one-line refusal of an estimate that cannot be made as asked."""
    if distributed.current().active and seed is None:
        raise VaelabError("a likelihood estimate shared among processes needs a seed")
    if k < 1:
        raise VaelabError(f"the number of importance samples must be >= 1, got {k}")
    require(model, HasBound, "importance sampling")
    if isinstance(model, Conditional) and y is None:
        raise VaelabError("a conditional model's likelihood needs the labels y")


FORECAST_AFTER_S = 10.0  # an estimate expected to take longer says how long, once


class Forecast:
    """Called after each of an estimate's ``chunks`` chunks: times the second (the first may
    include compiling and warming up), and when the whole estimate should take over
    ``FORECAST_AFTER_S`` logs one line, "about N min for WHAT", before it goes on."""

    def __init__(self, chunks: int, what: str):
        self.chunks, self.what = chunks, what
        self.done, self.first, self.since = 0, 0.0, time.perf_counter()

    def __call__(self) -> None:
        self.done += 1
        if self.done > 2 or self.chunks <= 2:
            return
        now = time.perf_counter()
        if self.done == 1:
            self.first, self.since = now - self.since, now
            return
        seconds = self.first + (self.chunks - 1) * (now - self.since)
        if seconds > FORECAST_AFTER_S:
            logger.info(f"about {duration(seconds)} for {self.what} (timed on the first chunks)")


def duration(seconds: float) -> str:
    """``seconds`` in words: 40 s, 12 min, 5.2 h, 3.1 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _reseed(seed: int, image: int) -> Callable[[int], None]:
    """Reseeds the RNG for the block of ``image``'s samples that starts at the one given."""
    return lambda first_sample: torch.manual_seed(draw_seed(seed, image, first_sample))


def _estimate_batch(
    weights,
    xb,
    yb,
    plan: ChunkPlan,
    est: Estimates,
    sl: slice,
    after_chunk: Callable[[], None],
    before_chunk: Callable[[int], None] | None = None,
) -> None:
    """Fold the K log-weights of one batch, chunk by chunk, into three running logsumexps;
    ``before_chunk(first sample)`` before and ``after_chunk()`` after each chunk."""
    k, k_sub = est.k, est.k_sub
    total = total_sq = sub = None  # (B,) each: lse of w, of w^2, of the first k_sub w
    kept = []  # the (kc, B) log-weights, for the error bars: B*K values, few beside the rows
    for done in range(0, k, plan.k_chunk):
        if before_chunk is not None:
            before_chunk(done)
        lw = weights(xb, min(plan.k_chunk, k - done), yb).double()  # (kc, B)
        kept.append(lw)
        total = _fold(total, lw)
        total_sq = _fold(total_sq, 2 * lw)
        if done < k_sub:
            sub = _fold(sub, lw[: k_sub - done])
        after_chunk()
    est.log_px[sl] = (total - math.log(k)).cpu()
    est.log_px_sub[sl] = (sub - math.log(k_sub)).cpu()
    est.ess[sl] = torch.exp(2 * total - total_sq).cpu()
    error_bars(torch.cat(kept), est, sl)


def error_bars(lw: torch.Tensor, est: Estimates, sl: slice) -> None:
    """The per-image error bars of the batch ``sl`` from all its (K, B) log-weights ``lw``:
    Monte Carlo s.e., jackknife estimate and Pareto k-hat (``weight_stats``)."""
    lw = lw.cpu()
    est.mc_se[sl] = weight_stats.mc_standard_error(lw)
    est.log_px_jackknife[sl] = weight_stats.jackknife(lw)
    est.khat[sl] = weight_stats.pareto_khat(lw)


def _fold(running: torch.Tensor | None, lw: torch.Tensor) -> torch.Tensor:
    lse = torch.logsumexp(lw, dim=0)
    return lse if running is None else torch.logaddexp(running, lse)


def log_likelihood_estimates(model, x: torch.Tensor, k: int = 5000, **kwargs) -> torch.Tensor:
    """Only the K-sample estimates of :func:`importance_sampled`: shape (N,), nats."""
    return importance_sampled(model, x, k, **kwargs).log_px


def summarize(log_px: torch.Tensor, dims: int = IMAGE_DIM) -> dict[str, float]:
    """Mean NLL in nats per image, its standard error over images (the spread of the
    per-image values / sqrt(N): how much the mean would move on other test images, not the
    Monte Carlo error of the estimator), and bits per dimension (over ``dims`` = C*H*W)."""
    nll = -log_px
    mean = nll.mean().item()
    sem = (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan")
    return {
        "nll": mean,
        "nll_sem": sem,
        "bits_per_dim": mean / (dims * math.log(2)),
    }


def diagnose(est: Estimates, dims: int = IMAGE_DIM) -> dict[str, float]:
    """``summarize`` of the K-sample estimate, plus the diagnostics of the same draws:
    ``nll_sub`` (first K/5 samples) and ``nll_k_gap`` = nll_sub - nll (>= 0 in expectation;
    near 0 when K is enough), and the median and 5th percentile over images of the ESS."""
    out = summarize(est.log_px, dims)
    nll_sub = -est.log_px_sub.mean().item()
    ess = est.ess.float()
    return (
        out
        | {
            "nll_k": est.k,
            "nll_k_sub": est.k_sub,
            "nll_sub": nll_sub,
            "nll_k_gap": nll_sub - out["nll"],
            "ess_median": ess.median().item(),
            "ess_p5": torch.quantile(ess, 0.05).item(),
        }
        | error_bar_summary(est, nll_sub - out["nll"])
    )


def error_bar_summary(est: Estimates, k_gap: float) -> dict[str, float]:
    """What the per-image error bars say about the mean (``weight_stats``): the mean over
    images of the Monte Carlo s.e. of each image's estimate (nats), and that of the mean NLL
    (root of the summed variances / N); the bias of the NLL estimate from the K/5-vs-K gap
    under bias = c/K (nats, the NLL is too high by it); the jackknife-corrected NLL (Nowozin
    2018; nats, no longer a bound); the median and largest Pareto k-hat, and the share of
    images with k-hat > 0.7 (weights too heavy-tailed to trust)."""
    if est.mc_se is None:
        return {}
    n = len(est.mc_se)
    khat = est.khat.float()
    finite = khat[~torch.isnan(khat)]
    return {
        "nll_mc_se_groups": min(weight_stats.MC_GROUPS, est.k),
        "nll_mc_se_image": est.mc_se.mean().item(),
        "nll_mc_se_mean": (est.mc_se.pow(2).sum().sqrt() / n).item(),
        "nll_bias_k_gap": weight_stats.k_gap_bias(k_gap, est.k, est.k_sub),
        "nll_jackknife": -est.log_px_jackknife.mean().item(),
        "khat_median": finite.median().item() if len(finite) else float("nan"),
        "khat_max": finite.max().item() if len(finite) else float("nan"),
        "khat_limit": weight_stats.KHAT_LIMIT,
        "khat_share_over": (finite > weight_stats.KHAT_LIMIT).float().mean().item()
        if len(finite)
        else float("nan"),
    }
