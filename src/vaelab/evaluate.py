"""Evaluation of a trained run on a data split, every number with its unit and meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .batches import DataConfig, Split, load_splits
from .errors import VaelabError
from .runs import load_run
from .train import evaluate_loss, pick_device

SPLITS = ("train", "val", "test")


def data_protocol(model, data: DataConfig) -> dict[str, Any]:
    """What the reported numbers mean, given the decoder and the pixels it was scored on."""
    likelihood = model.cfg.likelihood
    binary = data.binarize == "dynamic"
    if model.name == "ae":
        meaning = f"reconstruction loss ({model.loss_unit}); an AE defines no likelihood"
        is_likelihood = False
    elif likelihood == "bernoulli" and binary:
        meaning = "negative ELBO: an upper bound on -log p(x) of binarized MNIST, in nats"
        is_likelihood = True
    elif likelihood == "bernoulli":
        meaning = (
            "Bernoulli loss on grayscale pixels: a loss, not a log-likelihood; "
            "not comparable to published MNIST NLLs"
        )
        is_likelihood = False
    else:
        meaning = (
            "negative ELBO of a Gaussian density on continuous pixels: "
            "not comparable to NLLs of binarized MNIST"
        )
        is_likelihood = False
    return {"pixels": data.describe(), "meaning": meaning, "is_likelihood": is_likelihood}


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    *,
    which: str = "best",
    device: str = "auto",
    seed: int = 0,
    splits: dict[str, Split] | None = None,
    batch_size: int = 1000,
    log=print,
) -> dict[str, Any]:
    """Mean per-image loss terms of a run on ``split``; VAE terms use one z per image (``seed``)."""
    if split not in SPLITS:
        raise VaelabError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    dev = pick_device(device)
    model = load_run(run_dir, which=which, device=dev)
    data = DataConfig(**model.run_config["data"])
    if splits is None:
        splits = load_splits(data, log=log)
    x = splits[split].x.to(dev)
    torch.manual_seed(seed)
    terms = evaluate_loss(model, x, batch_size=batch_size)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "model": model.name,
        "weights": which,
        "split": split,
        "n_images": len(x),
        "unit": model.loss_unit + ", mean over images",
        **data_protocol(model, data),
        "seed": seed,
    }
    if model.name == "vae":
        result |= {"neg_elbo": terms["neg_elbo"], "recon": terms["recon"], "kl": terms["kl"]}
        if model.cfg.beta != 1:
            result["beta_loss"] = terms["loss"]
    else:
        result["recon"] = terms["recon"]
        result["mse_per_pixel"] = _mse_per_pixel(model, x, batch_size)
    return result


@torch.no_grad()
def _mse_per_pixel(model, x: torch.Tensor, batch_size: int) -> float:
    total = sum(
        (model.reconstruct(x[i : i + batch_size]) - x[i : i + batch_size]).square().sum().item()
        for i in range(0, len(x), batch_size)
    )
    return total / x.numel()


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
    else:
        lines += [
            f"  reconstruction   {r['recon']:10.3f}  {r['unit']}",
            f"  mean squared error per pixel {r['mse_per_pixel']:.5f}",
        ]
    lines.append(f"  meaning: {r['meaning']}")
    return "\n".join(lines)
