"""Evaluation of a trained run on a data split, every number with its unit and meaning.

Results are printed and also kept in ``RUN/evaluation.json`` (one entry per split), which
``vaelab report`` shows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .batches import DataConfig, Split, load_splits
from .errors import VaelabError
from .nll import log_likelihood_estimates, summarize
from .runs import EVALUATION, load_run, write_json
from .train import evaluate_loss, pick_device

SPLITS = ("train", "val", "test")
PAPER_K = 5000


def data_protocol(model, data: DataConfig) -> dict[str, Any]:
    """What the reported numbers mean, given the decoder and the pixels it was scored on."""
    likelihood = model.cfg.likelihood
    binary = data.binarize == "dynamic"
    if model.name == "ae":
        meaning = f"reconstruction loss ({model.loss_unit}); an AE defines no likelihood"
        kind = "loss"
    elif likelihood == "bernoulli" and binary:
        meaning = "negative ELBO: an upper bound on -log p(x) of binarized MNIST, in nats"
        kind = "likelihood"
    elif likelihood == "bernoulli":
        meaning = (
            "Bernoulli loss on grayscale pixels: a loss, not a log-likelihood; "
            "not comparable to published MNIST NLLs"
        )
        kind = "loss"
    else:
        meaning = (
            "negative ELBO of a Gaussian density on continuous pixels: "
            "not comparable to NLLs of binarized MNIST"
        )
        kind = "density"
    return {
        "pixels": data.describe(),
        "meaning": meaning,
        "is_likelihood": kind == "likelihood",
        "kind": kind,
    }


def check_paper_protocol(model, data: DataConfig, run_dir) -> None:
    """Published MNIST likelihoods: a Bernoulli-decoder VAE on dynamically binarized pixels."""
    problems = []
    if model.name != "vae":
        problems.append(f"model is {model.name}, not vae")
    if model.cfg.likelihood != "bernoulli":
        problems.append(f"decoder is {model.cfg.likelihood}, not bernoulli")
    if data.binarize != "dynamic":
        problems.append("pixels are grayscale, not dynamically binarized")
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
    splits: dict[str, Split] | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    save: bool = True,
    log=print,
) -> dict[str, Any]:
    """Evaluate a run on ``split``: loss terms (one z per image, drawn with ``seed``), active
    units, and on request the importance-sampled likelihood with ``nll_samples`` samples
    (``protocol="paper"``: 5000, and the run must follow the paper protocol), linear-probe and
    k-NN accuracy of the latent means, and sample quality.  Saved into RUN/evaluation.json."""
    if split not in SPLITS:
        raise VaelabError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if protocol not in (None, "paper"):
        raise VaelabError(f"unknown protocol {protocol!r}; the only one is 'paper'")
    dev = pick_device(device)
    model = load_run(run_dir, which=which, device=dev)
    data = DataConfig(**model.run_config["data"])
    if protocol == "paper":
        check_paper_protocol(model, data, run_dir)
        nll_samples = PAPER_K if nll_samples is None else nll_samples
    if splits is None:
        splits = load_splits(data, log=log)
    x = splits[split].x.to(dev)
    torch.manual_seed(seed)
    terms = evaluate_loss(model, x, batch_size=batch_size)
    meaning = data_protocol(model, data)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "model": model.name,
        "weights": which,
        "split": split,
        "n_images": len(x),
        "latent_dim": model.latent_dim,
        "unit": model.loss_unit + ", mean over images",
        **meaning,
        "seed": seed,
    }
    if model.name == "vae":
        from .analysis import active_units

        result |= {"neg_elbo": terms["neg_elbo"], "recon": terms["recon"], "kl": terms["kl"]}
        if model.cfg.beta != 1:
            result["beta_loss"] = terms["loss"]
        au = active_units(model, x)
        result |= {"active_units": au["active_units"], "active_threshold": au["threshold"]}
    else:
        result["recon"] = terms["recon"]
        from .analysis import mse_per_pixel

        result["mse_per_pixel"] = mse_per_pixel(model.reconstruct, x, batch_size)
    if nll_samples is not None:
        result |= _likelihood(model, x, nll_samples, meaning["kind"], seed, progress, log)
    if probes:
        from .analysis import pca_probes
        from .analysis import probes as latent_probes

        result["probes"] = latent_probes(model, splits)
        result["probes_pca"] = pca_probes(splits, model.latent_dim)
    if quality:
        from .quality import sample_quality

        result["sample_quality"] = sample_quality(model, splits["test"].x, seed=seed, log=log)
    if save:
        save_evaluation(Path(run_dir), result)
    return result


def _likelihood(model, x, k: int, kind: str, seed: int, progress: bool, log) -> dict[str, Any]:
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    s = summarize(log_likelihood_estimates(model, x, k, progress=progress))  # refuses an AE
    seconds = time.perf_counter() - t0
    if kind == "loss":
        log(
            "warning: a Bernoulli decoder on grayscale pixels has no likelihood; the "
            "importance-sampled number is reported as a loss ('importance_sampled_loss')"
        )
    key = {"likelihood": "nll", "density": "nll_density", "loss": "importance_sampled_loss"}[kind]
    out = {key: s["nll"], f"{key}_sem": s["nll_sem"], "nll_k": k, "nll_seconds": seconds}
    if kind == "likelihood":
        out["bits_per_dim"] = s["bits_per_dim"]
    return out


def save_evaluation(run_dir: Path, result: dict[str, Any]) -> None:
    """Merge ``result`` into RUN/evaluation.json under its split name (same weights: update)."""
    path = run_dir / EVALUATION
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            saved = {}
    old = saved.get(result["split"], {})
    merged = (old | result) if old.get("weights") == result["weights"] else result
    saved[result["split"]] = merged
    write_json(path, saved)


def format_result(r: dict[str, Any]) -> str:
    lines = [
        f"run {r['run']}: {r['model']} ({r['weights']} weights), {r['split']} split, "
        f"{r['n_images']} images, {r['pixels']}",
    ]
    if r["model"] == "vae":
        if r["is_likelihood"]:
            total, recon = "negative ELBO", "-log p(x|z), one z ~ q(z|x) per image"
        else:  # grayscale Bernoulli or continuous Gaussian: say what is summed, claim no NLL
            total, recon = "loss (recon + KL)", "reconstruction term, one z ~ q(z|x) per image"
        lines += [
            f"  {total:<17}{r['neg_elbo']:10.3f}  nats per image (summed over pixels)",
            f"    reconstruction {r['recon']:10.3f}  {recon}",
            f"    KL             {r['kl']:10.3f}  KL(q(z|x) || N(0, I))",
        ]
        if "beta_loss" in r:
            lines.append(f"  beta-weighted training loss {r['beta_loss']:.3f}")
        k = r.get("nll_k")
        if "nll" in r:
            lines.append(
                f"  NLL (K={k})      {r['nll']:10.3f}  nats per image (+- {r['nll_sem']:.3f} "
                f"s.e.), {r['bits_per_dim']:.4f} bits/dim: importance-sampled -log p(x)"
            )
        if "nll_density" in r:
            lines.append(
                f"  NLL (K={k})      {r['nll_density']:10.3f}  nats per image: -log density of "
                "continuous pixels, not comparable to binarized-MNIST NLLs"
            )
        if "importance_sampled_loss" in r:
            lines.append(
                f"  IS loss (K={k})  {r['importance_sampled_loss']:10.3f}  per image: the "
                "importance-sampled bound on grayscale pixels, a loss, not an NLL"
            )
        lines.append(
            f"  active units     {r['active_units']:>6d} of {r['latent_dim']}"
            f"  (Var_x E[z_u|x] > {r['active_threshold']})"
        )
    else:
        lines += [
            f"  reconstruction   {r['recon']:10.3f}  {r['unit']}",
            f"  mean squared error per pixel {r['mse_per_pixel']:.5f}",
        ]
    for name in ("probes", "probes_pca"):
        if name in r:
            p = r[name]
            who = "latent means" if name == "probes" else "PCA codes (same size)"
            lines.append(
                f"  {who}: linear probe accuracy {p['linear_probe_acc']:.4f}, "
                f"{p['k']}-NN accuracy {p['knn_acc']:.4f} (test labels)"
            )
    if "sample_quality" in r:
        q = r["sample_quality"]
        lines.append(
            f"  samples: digit-feature Frechet distance {q['fd']:.3f}, precision "
            f"{q['precision']:.3f}, recall {q['recall']:.3f} (n={q['n']}; not FID)"
        )
    lines.append(f"  meaning: {r['meaning']}")
    return "\n".join(lines)
