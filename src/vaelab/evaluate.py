"""Evaluation of a trained run on a data split, every number with its unit and meaning.

Results are printed and also kept in ``RUN/evaluation.json`` (one entry per split; an evaluation
of the first N images only, ``--limit N``, under ``split[:N]`` beside it), which
``vaelab report`` shows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .batches import Split, binarize_once
from .config import DataConfig
from .errors import VaelabError
from .models.abilities import Conditional, HasBound
from .nll import diagnose, importance_sampled
from .precision import check_precision
from .runs import Run
from .train import evaluate_loss, pick_device

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PAPER_K = 5000
# Where the importance-sampled estimate is saved, by what kind of number it is.
ESTIMATE_KEYS = {"likelihood": "nll", "density": "nll_density", "loss": "importance_sampled_loss"}


def data_protocol(model, data: DataConfig) -> dict[str, Any]:
    """What the reported numbers mean, given the model and the pixels it was scored on."""
    return {"pixels": data.describe(), **model.numbers_mean(data.binary)}


def check_paper_protocol(model, data: DataConfig, run_dir) -> None:
    """Published MNIST likelihoods: an unconditional latent-variable model whose numbers are
    log-probabilities of dynamically binarized pixels."""
    problems = []
    if not isinstance(model, HasBound):
        problems.append(f"a {model.about.label} has no likelihood")
    elif isinstance(model, Conditional):
        problems.append(f"a {model.about.label} models p(x|y), not p(x)")
    if data.dataset != "mnist":
        problems.append(f"its data set is {data.dataset}, not MNIST")
    if data.binarize != "dynamic":
        problems.append("pixels are grayscale, not dynamically binarized")
    elif model.numbers_mean(True)["kind"] != "likelihood":
        problems.append(f"its {model.cfg.likelihood} decoder gives no probability of binary pixels")
    if problems:
        raise VaelabError(
            f"{run_dir} was not trained under the paper protocol ({'; '.join(problems)}); "
            "train with `vaelab train --protocol paper`"
        )


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    *,
    which: str = "best",
    device: str = "auto",
    seed: int = 0,
    nll_samples: int | None = None,
    protocol: str | None = None,
    probes: bool = False,
    quality: bool = False,
    limit: int | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    save: bool = True,
    compile: bool | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Evaluate a run on ``split`` (its first ``limit`` images): loss terms (one z per image,
    drawn with ``seed``), active units, and on request the importance-sampled likelihood with
    ``nll_samples`` samples (``protocol="paper"``: 5000, and the run must follow the paper
    protocol), linear-probe and k-NN accuracy of the latent means, and sample quality.
    ``compile``: the estimate through ``torch.compile`` (None: where it pays; see
    ``nll.weights_function``).  ``precision``: the format of the estimate's products
    (``precision.PRECISIONS``; fp32 by default).  Saved into RUN/evaluation.json."""
    if split not in SPLITS:
        raise VaelabError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if protocol not in (None, "paper"):
        raise VaelabError(f"unknown protocol {protocol!r}; the only one is 'paper'")
    if limit is not None and limit < 1:
        raise VaelabError(f"limit must be >= 1, got {limit}")
    dev = distributed.current().device(pick_device(device))
    check_precision(precision, dev)
    run = Run.load(run_dir)
    model = run.model(which, dev)
    if protocol == "paper":
        if precision == "bf16":
            raise VaelabError(
                "--protocol paper needs an estimate within 0.01 nats of fp32's: bf16 products "
                "move it by 0.05 to 0.08 (use fp32, tf32 or fp16)"
            )
        check_paper_protocol(model, run.data, run_dir)
        nll_samples = PAPER_K if nll_samples is None else nll_samples
    splits = run.splits()
    data = splits[split].head(limit)
    torch.manual_seed(seed)
    terms = evaluate_loss(model, data, batch_size=batch_size)
    meaning = data_protocol(model, run.data)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "model": run.model_name,
        "label": model.about.label,
        "describe": model.about.summary,
        "weights": which,
        "split": split,
        "n_images": len(data),
        "latent_dim": model.latent_dim,
        "unit": model.about.loss_unit + ", mean over images",
        **meaning,
        "seed": seed,
        "has_elbo": isinstance(model, HasBound),
    }
    x, y = data.x.to(dev), data.y.to(dev)
    result |= _loss_terms(model, terms, x, y, batch_size)
    if nll_samples is not None:
        result |= _likelihood(
            model, x, y, nll_samples, meaning["kind"], seed, progress, compile, precision
        )
    if probes:
        result |= _probes(model, splits, run.data)
    if quality:
        result |= _quality(model, splits, run.data, seed)
    if save and distributed.current().is_main:
        # a partial evaluation (--limit), or one with 16-bit or tf32 products, is kept beside
        # the whole split's fp32 one, never over it
        part = len(data) < len(splits[split])
        key = f"{split}[:{len(data)}]" if part else split
        run.save_evaluation(result, key if precision == "fp32" else f"{key}@{precision}")
    return result


def _loss_terms(model, terms: dict, x, y, batch_size: int) -> dict[str, Any]:
    """The loss terms to report, and active units (a model with an ELBO) or the mean squared
    error per pixel (one without)."""
    if not isinstance(model, HasBound):
        from .analysis import mse_per_pixel

        return {
            "recon": terms["recon"],
            "mse_per_pixel": mse_per_pixel(model.reconstruct, x, batch_size),
        }
    from .analysis import active_units

    out = {"neg_elbo": terms["neg_elbo"], "recon": terms["recon"], "kl": terms["kl"]}
    if abs(terms["loss"] - terms["neg_elbo"]) > 1e-9:
        out["training_loss"] = terms["loss"]
    au = active_units(model, x, y)
    return out | {"active_units": au["active_units"], "active_threshold": au["threshold"]}


def _probes(model, splits: dict[str, Split], data: DataConfig) -> dict[str, Any]:
    """Linear-probe and k-NN accuracy of the latent means and of PCA codes; skipped, with the
    reason, when the images have no labels."""
    if not splits["train"].labelled:
        why = "the probes predict labels, and these images have none"
        logger.warning(f"probes skipped: {why}")
        return {"probes_skipped": why}
    from .analysis import pca_probes
    from .analysis import probes as latent_probes

    fit_on = probe_splits(splits, data)
    return {
        "probes": latent_probes(model, fit_on),
        "probes_pca": pca_probes(fit_on, model.latent_dim),
    }


def _quality(model, splits: dict[str, Split], data: DataConfig, seed: int) -> dict[str, Any]:
    """Sample quality in the features of a classifier of MNIST digits; skipped, with the
    reason, on other data."""
    why = None
    if data.data is not None:
        why = f"scored by a classifier of MNIST digits; this run's images are {data.data}"
    elif data.dataset != "mnist":
        why = f"scored by a classifier of MNIST digits; this run's data set is {data.dataset}"
    if why:
        logger.warning(f"sample quality skipped: {why}")
        return {"sample_quality_skipped": why}
    from .quality import sample_quality

    return {"sample_quality": sample_quality(model, splits["test"].x, seed=seed)}


def probe_splits(splits: dict[str, Split], data: DataConfig) -> dict[str, Split]:
    """The splits the probes fit and score on: pixels of one kind.  With binarized data the
    training images (kept grayscale for dynamic binarization) are binarized once, with seed
    ``binarize_seed + 1``, like the test images they are scored against."""
    if not data.binary:
        return splits
    train = splits["train"]
    return splits | {"train": replace(train, pixels=binarize_once(train.x, data.binarize_seed + 1))}


def _likelihood(
    model, x, y, k: int, kind: str, seed: int, progress: bool, compile: bool | None, precision: str
) -> dict[str, Any]:
    """The K-sample estimate on ``x``; in a group of processes (torchrun) each scores its
    share of the images and the per-image estimates are gathered (the same numbers)."""
    dist = distributed.current()
    t0 = time.perf_counter()
    est = importance_sampled(
        model,
        x,
        k,
        y=y,
        progress=progress,
        seed=seed,
        dist=dist,
        compile=compile,
        precision=precision,
    )
    s = diagnose(est, dims=x.shape[1])
    seconds = time.perf_counter() - t0
    if kind == "loss":
        logger.warning(
            "warning: a Bernoulli decoder on grayscale pixels has no likelihood; the "
            "importance-sampled number is reported as a loss ('importance_sampled_loss')"
        )
    key = ESTIMATE_KEYS[kind]
    out = {key: s["nll"], f"{key}_sem": s["nll_sem"], "nll_k": k, "nll_seconds": seconds}
    out["nll_processes"] = dist.world
    out["nll_precision"] = precision
    out |= {n: s[n] for n in ("nll_k_sub", "nll_k_gap", "ess_median", "ess_p5")}
    if kind in ("likelihood", "density"):
        out["bits_per_dim"] = s["bits_per_dim"]
    return out


def format_result(r: dict[str, Any]) -> str:
    """The evaluation ``r`` as lines of text, each number with its unit and meaning."""
    lines = [
        f"run {r['run']}: {r['model']} ({r['weights']} weights), {r['split']} split, "
        f"{r['n_images']} images, {r['pixels']}",
    ]
    if r.get("has_elbo", "neg_elbo" in r):
        lines += _elbo_lines(r) + _estimate_lines(r)
        lines.append(
            f"  active units     {r['active_units']:>6d} of {r['latent_dim']}"
            f"  (Var_x E[z_u|x] > {r['active_threshold']})"
        )
    else:
        lines += [
            f"  reconstruction   {r['recon']:10.3f}  {r['unit']}",
            f"  mean squared error per pixel {r['mse_per_pixel']:.5f}",
        ]
    lines += _probe_and_quality_lines(r)
    lines.append(f"  meaning: {r['meaning']}")
    return "\n".join(lines)


def _elbo_lines(r: dict[str, Any]) -> list[str]:
    if r["is_likelihood"]:
        total, recon = "negative ELBO", "-log p(x|z), one z ~ q(z|x) per image"
    else:  # grayscale Bernoulli or continuous Gaussian: say what is summed, claim no NLL
        total, recon = "loss (recon + KL)", "reconstruction term, one z ~ q(z|x) per image"
    lines = [
        f"  {total:<17}{r['neg_elbo']:10.3f}  nats per image (summed over pixels)",
        f"    reconstruction {r['recon']:10.3f}  {recon}",
        f"    KL             {r['kl']:10.3f}  KL(q(z|x) || p(z))",
    ]
    if "training_loss" in r:
        lines.append(f"  training loss    {r['training_loss']:10.3f}  (beta, k or free bits)")
    return lines


def _estimate_lines(r: dict[str, Any]) -> list[str]:
    """The importance-sampled number (an NLL, a density's NLL or a loss) and its diagnostics."""
    k, lines = r.get("nll_k"), []
    if "nll" in r:
        lines.append(
            f"  NLL (K={k})      {r['nll']:10.3f}  nats per image (+- {r['nll_sem']:.3f} "
            f"s.e.), {r['bits_per_dim']:.4f} bits/dim: importance-sampled -log p(x)"
        )
    if "nll_density" in r:
        lines.append(
            f"  NLL (K={k})      {r['nll_density']:10.3f}  nats per image, "
            f"{r['bits_per_dim']:.4f} bits/dim: -log density of pixels in [0, 1], not "
            "comparable to binarized-MNIST NLLs or 8-bit bits/dim"
        )
    if "importance_sampled_loss" in r:
        lines.append(
            f"  IS loss (K={k})  {r['importance_sampled_loss']:10.3f}  per image: the "
            "importance-sampled bound on grayscale pixels, a loss, not an NLL"
        )
    if "nll_k_gap" in r:
        lines += [
            f"    s.e. is the spread over images / sqrt(N), not Monte Carlo error; with the "
            f"first {r['nll_k_sub']} samples the estimate is {r['nll_k_gap']:+.3f} nats "
            f"higher (convergence in K)",
            f"    effective sample size of the {k} weights: median {r['ess_median']:.1f}, "
            f"5th percentile {r['ess_p5']:.1f} over images",
        ]
    if r.get("nll_precision", "fp32") != "fp32":
        lines.append(f"    the networks' products in {r['nll_precision']} (log-probs in fp32)")
    return lines


def _probe_and_quality_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("probes", "probes_pca"):
        if name in r:
            p = r[name]
            who = "latent means" if name == "probes" else "PCA codes (same size)"
            lines.append(
                f"  {who}: linear probe accuracy {p['linear_probe_acc']:.4f}, "
                f"{p['k']}-NN accuracy {p['knn_acc']:.4f} (test labels)"
            )
    for name in ("probes_skipped", "sample_quality_skipped"):
        if name in r:
            lines.append(f"  {name.split('_skipped')[0].replace('_', ' ')} skipped: {r[name]}")
    if "sample_quality" in r:
        q = r["sample_quality"]
        lines.append(
            f"  samples: digit-feature Frechet distance {q['fd']:.3f}, precision "
            f"{q['precision']:.3f}, recall {q['recall']:.3f} (n={q['n']}; not FID)"
        )
    return lines
