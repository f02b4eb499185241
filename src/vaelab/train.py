"""Training: resolve a run, then a short epoch loop around one ``train_step``.

    run = resolve_run(out, "vae", {...}, TrainConfig(...), DataConfig(...))   # or resume=True
    summary = fit(run)

``fit`` builds the model and optimizer (or restores them from the run's checkpoint), runs the
epochs, and hands every finished epoch to a ``RunWriter`` (weights, checkpoint, metrics).
Figures are the caller's business (``plots.all_figures``).  Messages go to the ``vaelab``
logger; the command line prints them.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from .batches import Split, batches, load_splits
from .config import DataConfig, TrainConfig
from .errors import VaelabError
from .models.helpers import eval_mode, model_device
from .runs import Run, RunWriter, load_state

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "fit", "resolve_run", "train", "train_step", "evaluate_loss"]


class TrainingDiverged(VaelabError):
    pass


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VaelabError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VaelabError("device cuda requested but CUDA is not available")
    return device


# --- resolving the configuration -----------------------------------------------------------


def resolve_run(
    out,
    model_name: str = "vae",
    model_config: dict | None = None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
) -> Run:
    """The run to train: a new one in ``out``, or (``resume``) the one there, whose saved
    settings win; a ``model_config`` given on resume must equal the saved one.  ``epochs``
    overrides the number of epochs in both cases."""
    if resume:
        run = Run.load(out)
        if model_config is not None:
            run.check_resume(model_config)
    else:
        run = Run.create(out, model_name, model_config, train_cfg, data_cfg)
    if epochs is not None:
        run.train.epochs = epochs
    return run


# --- one step, one evaluation ------------------------------------------------------------


def train_step(
    model, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, kl_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """One Adam step on the batch's mean loss; returns the batch means (detached)."""
    parts = model.loss(x, y, kl_weight=kl_weight)
    opt.zero_grad(set_to_none=True)
    parts["loss"].backward()
    opt.step()
    return {k: v.detach() for k, v in parts.items()}


def evaluate_loss(model, split: Split, batch_size: int = 1000) -> dict[str, float]:
    """Mean over the images of ``split`` of each per-image term of ``model.terms``."""
    sums: dict[str, torch.Tensor] = {}
    device = model_device(model)
    with eval_mode(model):
        for xb, yb in batches(split.to(device), batch_size, shuffle=False):
            for k, v in model.terms(xb, yb).items():
                sums[k] = sums.get(k, 0) + v.sum()
    return {k: v.item() / max(len(split), 1) for k, v in sums.items()}


# --- the loop ------------------------------------------------------------------------------


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def _check_finite(values: dict[str, float], where: str, run: Run, epoch: int) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise TrainingDiverged(
            f"{bad[0]} became {values[bad[0]]} {where}; stopped, last good checkpoint "
            f"(epoch {epoch}) kept in {run.path}"
        )


def train_epoch(
    model,
    opt,
    train: Split,
    cfg: TrainConfig,
    data_rng,
    epoch: int,
    *,
    run: Run,
    dynamic: bool,
    progress: bool,
) -> dict[str, float]:
    """One pass over ``train``; returns the epoch's mean of each loss entry."""
    steps = math.ceil(len(train) / cfg.batch_size)
    sums: dict[str, torch.Tensor] = {}
    model.train()
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        unit="batch",
        disable=None if progress else True,
    )
    for step, (xb, yb) in enumerate(
        batches(train, cfg.batch_size, data_rng, dynamic_binarize=dynamic)
    ):
        parts = train_step(model, opt, xb, yb, cfg.kl_weight(epoch, step, steps))
        for k, v in parts.items():
            sums[k] = sums.get(k, 0) + v * len(xb)
        if step % 20 == 0 or step == steps - 1:
            now = parts["loss"].item()
            _check_finite({"loss": now}, f"in epoch {epoch + 1} step {step + 1}", run, epoch)
            bar.set_postfix(loss=f"{now:.2f}")
        bar.update()
    bar.close()
    return {k: v.item() / len(train) for k, v in sums.items()}


def _restore(run: Run, model, opt, sched, data_rng, device) -> tuple[RunWriter, int]:
    """Load the run's checkpoint into the model, optimizer, scheduler and data RNG; the writer
    that continues the run, and the epoch to start from."""
    writer, ckpt = RunWriter.resume(run, device)
    load_state(model, ckpt["model"], run.checkpoint_path)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    _set_rng_state(ckpt["rng"], data_rng)
    start = int(ckpt["epoch"])
    logger.info(f"resuming {run.path} at epoch {start} of {run.train.epochs}")
    return writer, start


def fit(run: Run, *, progress: bool = True) -> dict[str, Any]:
    """Train ``run`` (new, or resumed from its checkpoint) up to ``run.train.epochs``.

    With the same seed, training E1 epochs then resuming to E2 gives the same weights as E2
    epochs straight.  Ctrl-C keeps the checkpoint of the last finished epoch.
    """
    cfg = run.train
    device = pick_device(cfg.device)
    resuming = run.config_path.exists()  # Run.create refuses a folder that holds a run
    torch.manual_seed(cfg.seed)  # before building: the seed fixes the initial weights too
    model = run.build_model().to(device)
    data_rng = torch.Generator().manual_seed(cfg.seed)
    splits = load_splits(run.data)
    train, val = splits["train"].to(device), splits["val"].to(device)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    if resuming:
        writer, start = _restore(run, model, opt, sched, data_rng, device)
    else:
        writer, start = RunWriter(run), 0
        model.on_train_start(train)
    writer.start()
    logger.info(f"training {model.describe()} on {len(train)} images ({run.data.describe()})")

    epoch, t_total = start, time.perf_counter()
    try:
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            lr = opt.param_groups[0]["lr"]
            train_m = train_epoch(
                model,
                opt,
                train,
                cfg,
                data_rng,
                epoch,
                run=run,
                dynamic=run.data.binarize == "dynamic",
                progress=progress,
            )
            sched.step()
            model.on_epoch_end(train)
            val_m = evaluate_loss(model, val)
            _check_finite(train_m | val_m, f"in epoch {epoch + 1}", run, epoch)
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "kl_weight": cfg.kl_weight(epoch + 1) if cfg.kl_warmup else 1.0,
                **{f"train_{k}": v for k, v in train_m.items()},
                **{f"val_{k}": v for k, v in val_m.items()},
                "seconds": time.perf_counter() - t0,
            }
            state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
            writer.epoch_end(model, row, state | {"rng": _rng_state(data_rng)})
            logger.info(epoch_line(row, cfg.epochs, model))
    except KeyboardInterrupt:
        logger.warning(
            f"interrupted in epoch {epoch + 1}: the checkpoint of epoch {epoch} is kept in "
            f"{run.path}; continue with `vaelab train --resume {run.path}`"
        )
        return {"interrupted": True, "epoch": epoch, "out": str(run.path)}
    return {
        "out": str(run.path),
        "epochs": cfg.epochs,
        "best_val_loss": writer.best,
        "final": writer.rows[-1] if writer.rows else {},
        "trained_epochs": cfg.epochs - start,
        "seconds": time.perf_counter() - t_total,
        "interrupted": False,
    }


def train(
    out,
    model_name: str = "vae",
    model_config: dict | None = None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``fit(resolve_run(...))``: train a model into the run folder ``out``; a summary dict."""
    run = resolve_run(
        out, model_name, model_config, train_cfg, data_cfg, resume=resume, epochs=epochs
    )
    return fit(run, progress=progress)


def epoch_line(row: dict, epochs: int, model) -> str:
    """One line per epoch: the losses and the model's parts of the validation loss."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train_loss']:.2f}",
        f"val loss {row['val_loss']:.2f}",
    ]
    shown = [f"{key} {row[f'val_{key}']:.2f}" for key, _ in model.loss_parts if f"val_{key}" in row]
    if shown:
        parts.append(f"({' + '.join(shown)})")
    parts.append(f"[{model.loss_unit}]  {row['seconds']:.1f}s")
    return "  ".join(parts)
