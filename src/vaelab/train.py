"""Training: resolve a run, then a short epoch loop around one ``train_step``.

    run = resolve_run(out, "vae", {...}, TrainConfig(...), DataConfig(...))   # or resume=True
    summary = fit(run)

``fit`` builds the model and optimizer (or restores them from the run's checkpoint), runs the
epochs, and hands every finished epoch to a ``RunWriter`` (weights, checkpoint, metrics).
Figures are the caller's business (``plots.all_figures``).  Messages go to the ``vaelab``
logger; the command line prints them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import distributed
from .config import DataConfig, TrainConfig
from .data import Split, batches, load_splits
from .devices import pick_device
from .errors import VaelabError
from .models.abilities import Diagnostics, EpochHooks, ParameterGroups, StepHook
from .precision import check_precision, products_in
from .runs import Run, RunLock, RunWriter, load_state, remove_stale_temporaries
from .scores import evaluate_loss, split_diagnostics

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "fit", "resolve_run", "train", "train_step"]


class TrainingDiverged(VaelabError):
    pass


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
        run.train = replace(run.train, epochs=epochs)  # checked as any setting is
    return run


# --- one step, one evaluation ------------------------------------------------------------


def train_step(
    model,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    kl_weight: float = 1.0,
    *,
    loss_fn=None,
    check: bool = False,
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """One Adam step on the batch's mean loss; returns the batch means (detached).

    In a group of processes (``distributed.current()``) ``x`` and ``y`` are the global batch:
    each process steps on its share, whose loss is weighted by the share's size so that
    DistributedDataParallel's average of the shares' gradients is the global batch's; the
    means returned are the share's.

    With ``check`` a NaN or infinite loss term or gradient raises ``NonFinite`` before the
    update (``--on-nan skip``).  ``loss_fn(x, y, kl_weight)`` replaces ``model.loss`` (the
    DistributedDataParallel wrapper of a group, or a compiled loss).  ``precision``: the
    format of the forward pass's network products (``precision.products_in``); the backward
    pass follows it."""
    x, y, scale = _share_of_batch(x, y)
    with products_in(precision, x.device):
        parts = (loss_fn or _model_loss(model))(x, y, kl_weight)
    opt.zero_grad(set_to_none=True)
    (parts["loss"] * scale if scale != 1.0 else parts["loss"]).backward()
    if check:
        bad = non_finite(parts, model)
        if bad:
            raise NonFinite(bad)  # before the update: the weights stay as they were
    opt.step()
    return {k: v.detach() for k, v in parts.items()}


def _share_of_batch(xb, yb) -> tuple[torch.Tensor, torch.Tensor, float]:
    """This process's share of a global batch, and the factor on its mean loss that makes
    DistributedDataParallel's average of the shares the global batch's mean."""
    dist = distributed.current()
    if not dist.active:
        return xb, yb, 1.0
    share = dist.share(len(xb))
    return xb[share], yb[share], len(xb[share]) * dist.world / len(xb)


class NonFinite(Exception):
    """A step's loss or gradients held NaN or infinity (the message says which)."""


def non_finite(parts: dict[str, torch.Tensor], model) -> str:
    """What went bad in this step, as a phrase ("" when all is finite): the loss terms that
    are NaN or infinite, else the first parameter whose gradient is.  In a group the verdict
    is shared (gradients are already summed; a term may be bad in one process only)."""
    dist = distributed.current()
    bad = any(not torch.isfinite(v).all() for v in parts.values())
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    flags = torch.stack([g.isfinite().all() for _, g in grads]) if grads else None
    bad_grad = flags is not None and not bool(flags.all())
    if dist.active:
        verdict = torch.tensor([float(bool(bad) or bad_grad)], dtype=torch.float64)
        if dist.sum_(verdict).item() and not (bad or bad_grad):
            return "the loss or a gradient of another process became non-finite"
    if bad:
        return _bad_loss(parts)
    if bad_grad:
        name = grads[int((~flags).nonzero()[0])][0]
        return f"the gradient of {name} became non-finite"
    return ""


def _bad_loss(parts: dict[str, torch.Tensor]) -> str:
    """ "the loss became nan (its kl = inf)": a step's loss and the terms that are not finite."""
    loss = parts["loss"]
    terms = [f"{k} = {v.item()}" for k, v in parts.items() if k != "loss" and not v.isfinite()]
    head = "non-finite in a term" if torch.isfinite(loss) else loss.item()
    return f"the loss became {head}" + (f" (its {', '.join(terms)})" if terms else "")


def _model_loss(model):
    return lambda x, y, kl_weight: model.loss(x, y, kl_weight=kl_weight)


class LossModule(torch.nn.Module):
    """A model's ``loss`` as ``forward``, so that DistributedDataParallel can wrap it (it
    synchronises gradients for what goes through ``forward`` only)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, y, kl_weight: float):
        return self.model.loss(x, y, kl_weight=kl_weight)


# --- the loop ------------------------------------------------------------------------------


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The RNG states a checkpoint keeps: the data generator's (the same in every process of a
    group) and the global one of this process, or (in a group) of every process."""
    dist = distributed.current()
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    if dist.active:
        state["torch_ranks"] = dist.gather(state["torch"])
        if "cuda" in state:
            state["cuda_ranks"] = dist.gather(state["cuda"])
    return state


def _set_rng_state(state: dict[str, torch.Tensor], generator: torch.Generator, seed: int) -> None:
    dist = distributed.current()
    generator.set_state(state["data"])
    ranks = state.get("torch_ranks")
    if ranks is None and not dist.active:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(state["cuda"]))
    elif ranks is not None and len(ranks) == dist.world:
        torch.set_rng_state(ranks[dist.rank].clone())
        if "cuda_ranks" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.clone() for s in state["cuda_ranks"][dist.rank]])
    else:  # saved by a group of another size: fresh, distinct noise for each process
        saved = 1 if ranks is None else len(ranks)
        if dist.is_main:
            logger.warning(
                f"the checkpoint was written by {saved} process(es), this group has "
                f"{dist.world}: the sampling noise is reseeded, so the run will not repeat "
                "an uninterrupted one exactly"
            )
        torch.manual_seed(_rank_seed(seed, dist.rank))


def _rank_seed(seed: int, rank: int) -> int:
    """Each process's seed for its sampling noise: rank 0 keeps ``seed`` (so one process and
    rank 0 agree), the others get seeds of their own."""
    return seed + 1_000_003 * rank


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
    run: Run,
    data_rng: torch.Generator,
    epoch: int,
    *,
    progress: bool = True,
    loss_fn=None,
) -> dict[str, float]:
    """One pass over ``train`` under the run's settings (``run.train``; dynamic binarization
    as ``run.data`` says); returns the epoch's mean of each loss entry.

    In a group every process draws the same global batches and steps on its share of each
    (``loss_fn``: the DistributedDataParallel wrapper), weighted by the share's size."""
    cfg, dist = run.train, distributed.current()
    steps = math.ceil(len(train) / cfg.batch_size)
    sums: dict[str, torch.Tensor] = {}
    model.train()
    disable = None if progress and dist.is_main else True
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
               disable=disable)  # fmt: skip
    skip = cfg.on_nan == "skip"
    skipped = used = 0
    window: list[tuple[int, dict[str, torch.Tensor]]] = []  # steps since the last check
    dynamic = run.data.binarize == "dynamic"
    drawn = batches(train, cfg.batch_size, data_rng, dynamic_binarize=dynamic)
    for step, (xb, yb) in enumerate(drawn):
        mine = dist.share(len(xb))  # this process's part of the global batch
        n_global, n_mine = len(xb), mine.stop - mine.start
        kl_weight = cfg.kl_weight(epoch, step, steps)
        try:
            parts = train_step(model, opt, xb, yb, kl_weight, loss_fn=loss_fn, check=skip,
                               precision=cfg.precision)  # fmt: skip
        except NonFinite as bad:
            skipped += 1
            _skipped(str(bad), skipped, step, steps, epoch, run)
            continue
        if isinstance(model, StepHook):
            model.on_train_step(epoch * steps + step, parts)
        used += n_global
        for k, v in parts.items():
            sums[k] = sums.get(k, 0) + v * n_mine
        window.append((step, parts))
        if step % 20 == 0 or step == steps - 1:
            _check_window(window, epoch, run)  # the first bad step since the last check
            window.clear()
            now = dist.sum_(parts["loss"].double() * n_mine).item() / n_global  # global batch's
            bar.set_postfix(loss=f"{now:.2f}")
        bar.update()
    bar.close()
    sums = dist.sum_values(sums)
    out = {k: v.item() / max(used, 1) for k, v in sums.items()}  # means over the images used
    return out | ({"skipped_steps": skipped} if skip else {})


def _skipped(bad: str, skipped: int, step: int, steps: int, epoch: int, run: Run) -> None:
    """--on-nan skip: say that the batch was dropped; stop when more than a tenth of the
    epoch's steps were."""
    logger.warning(
        f"{bad} in epoch {epoch + 1} step {step + 1}: batch skipped ({skipped} this epoch)"
    )
    if skipped > max(1, steps // 10):
        raise TrainingDiverged(
            f"{skipped} of the {step + 1} steps so far in epoch {epoch + 1} went bad "
            f"(last: {bad}); stopped, last good checkpoint (epoch {epoch}) kept in {run.path}"
        )


def _check_window(window: list[tuple[int, dict[str, torch.Tensor]]], epoch: int, run: Run) -> None:
    """Stop at the first step of ``window`` whose loss is NaN or infinite, naming the step and
    the terms that went bad.  The losses stay on the device until here: one synchronisation
    per check, not per step.  (A gradient that goes bad while the loss is finite shows at the
    next step's loss; ``--on-nan skip`` checks the gradients themselves at every step.)"""
    finite = torch.stack([parts["loss"] for _, parts in window]).isfinite()
    flag = (~finite).any().double().reshape(1)
    if not distributed.current().sum_(flag).item():
        return
    if bool(finite.all()):  # the bad batch was another process's share
        bad, step = "the loss of another process became non-finite", window[-1][0]
    else:
        step, parts = window[int((~finite).nonzero()[0])]
        bad = _bad_loss(parts)
    raise TrainingDiverged(
        f"{bad} in epoch {epoch + 1} step {step + 1}; stopped, last good checkpoint (epoch "
        f"{epoch}) kept in {run.path} (--on-nan skip drops such batches instead)"
    )


@dataclass
class Training:
    """What a run's training holds between epochs: the model, its optimizer and learning-rate
    schedule, the generator of the batches, the splits on the device, and (in a group) the
    model's loss wrapped in DistributedDataParallel."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    data_rng: torch.Generator
    train: Split
    val: Split
    loss_fn: Any = None


def _start(run: Run, device: torch.device) -> tuple[Training, RunWriter, int]:
    """The model (seeded), optimizer, schedule and data of ``run`` on ``device``, restored from
    its checkpoint when it is resumed; the writer that records it, and the first epoch."""
    cfg, dist = run.train, distributed.current()
    resuming = _resuming(run)
    torch.manual_seed(cfg.seed)  # before building: the seed fixes the initial weights too
    model = run.build_model().to(device)
    if dist.rank:  # sampling noise of its own for each process of a group
        torch.manual_seed(_rank_seed(cfg.seed, dist.rank))
    data_rng = torch.Generator().manual_seed(cfg.seed)
    splits = load_splits(run.data)
    train, val = splits["train"].to(device), splits["val"].to(device)
    check_group(train, val, cfg.batch_size)
    opt = make_optimizer(model, cfg, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    state = Training(model, opt, sched, data_rng, train, val)
    if resuming:
        writer, start = _restore(run, state, device)
    else:
        writer, start = RunWriter(run, write=dist.is_main), 0
        if isinstance(model, EpochHooks):
            model.on_train_start(train)
    state.loss_fn = _group_loss(model, device, cfg)
    return state, writer, start


def _restore(run: Run, state: Training, device: torch.device) -> tuple[RunWriter, int]:
    """Load the run's checkpoint into the model, optimizer, scheduler and data RNG; the writer
    that continues the run, and the epoch to start from."""
    writer, ckpt = RunWriter.resume(run, device, write=distributed.current().is_main)
    load_state(state.model, ckpt["model"], run.checkpoint_path)
    opt = state.opt
    kernel = {key: opt.param_groups[0][key] for key in ("fused", "foreach")}
    opt.load_state_dict(ckpt["optimizer"])
    for group in opt.param_groups:  # the kernel suits this device, whatever saved the state
        group.update(kernel)
    state.sched.load_state_dict(ckpt["scheduler"])
    start = int(ckpt["epoch"])
    _set_rng_state(ckpt["rng"], state.data_rng, seed=run.train.seed + 7919 * start)
    logger.info(f"resuming {run.path} at epoch {start} of {run.train.epochs}")
    return writer, start


def _group_loss(model, device: torch.device, cfg: TrainConfig):
    """In a group, the model's loss wrapped in DistributedDataParallel (None alone)."""
    dist = distributed.current()
    if not dist.active:
        return None
    ids = [device.index] if device.type == "cuda" else None
    logger.info(
        f"{dist.world} processes: global batch {cfg.batch_size}, "
        f"{cfg.batch_size / dist.world:g} images per process and step"
    )
    return DistributedDataParallel(LossModule(model), device_ids=ids)


def _claim_folder(run: Run, writer: RunWriter, held: contextlib.ExitStack) -> None:
    """The right to write the folder, held until training ends; what a killed write left is
    removed, and TensorBoard's writer opened when asked."""
    held.enter_context(RunLock(run.path).acquire())
    for stale in remove_stale_temporaries(run.path):
        logger.info(f"removed {stale.name}, left by an interrupted write")
    if run.train.tensorboard:
        held.callback(writer.open_tensorboard())


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    """Adam, as one fused kernel per step on the devices where PyTorch has one (CPU, CUDA):
    the same update as the per-parameter loop up to floating-point rounding, and faster on
    the CPU (docs/performance.md; tools/bench/floor.py measures it)."""
    params = list(model.parameters())
    fused = device.type in ("cpu", "cuda") and all(p.dtype.is_floating_point for p in params)
    groups = model.parameter_groups(cfg.lr) if isinstance(model, ParameterGroups) else None
    return torch.optim.Adam(
        groups or params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
        fused=fused or None,
    )  # fmt: skip


def check_group(train: Split, val: Split, batch_size: int) -> None:
    """Every process needs a non-empty share of every batch."""
    dist = distributed.current()
    if not dist.active:
        return
    last = len(train) - (math.ceil(len(train) / batch_size) - 1) * batch_size
    if min(batch_size, last) < dist.world:
        raise VaelabError(
            f"{dist.world} processes need at least {dist.world} images in every batch; the "
            f"last batch of {len(train)} images in batches of {batch_size} has {last}: "
            "change --batch-size"
        )
    if len(val) < dist.world:
        raise VaelabError(f"{len(val)} validation images for {dist.world} processes")


def fit(run: Run, *, progress: bool = True) -> dict[str, Any]:
    """Train ``run`` (new, or resumed from its checkpoint) up to ``run.train.epochs``.

    With the same seed, training E1 epochs then resuming to E2 gives the same weights as E2
    epochs straight.  Ctrl-C or SIGTERM keeps the checkpoint of the last finished epoch.  The
    run folder is locked while training (``RunLock``): a second trainer is refused.
    """
    with contextlib.ExitStack() as held:  # the SIGTERM handler, then the folder's lock
        held.enter_context(_sigterm_as_interrupt())
        return _fit(run, progress, held)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a batch system's stop) ends training as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resuming(run: Run) -> bool:
    """Whether training continues the run in its folder (``Run.create`` refuses a folder that
    holds a run, so a config there means a resume).  A run stopped in its first epoch, before
    any checkpoint, has nothing to resume from: it starts over (the same seed gives the same
    run).  With more epochs recorded, a missing checkpoint is an error (``_restore`` says
    so), never a silent restart."""
    if not run.config_path.exists():
        return False
    if not run.checkpoint_path.exists() and len(run.metrics()) <= 1:
        logger.info(f"{run.path} has no checkpoint yet: starting it from epoch 0")
        return False
    return True


def _fit(run: Run, progress: bool, held: contextlib.ExitStack) -> dict[str, Any]:
    """Start (or restore) the run, then train it epoch by epoch, each recorded by the writer;
    a summary."""
    cfg, dist = run.train, distributed.current()
    device = dist.device(pick_device(cfg.device))
    check_precision(cfg.precision, device)  # the name TrainConfig checked; here the device
    state, writer, start = _start(run, device)
    if dist.is_main:
        _claim_folder(run, writer, held)
    dist.barrier()  # every process has read the folder before rank 0 writes into it
    writer.start()
    model, size = state.model, "x".join(map(str, state.model.image_shape))
    logger.info(
        f"training {model.about.summary} on {len(state.train)} images of {size} "
        f"({run.data.describe()})"
    )
    epoch, t_total = start, time.perf_counter()
    try:
        for epoch in range(start, cfg.epochs):
            row = _epoch(run, state, epoch, progress)
            opt, sched = state.opt, state.sched
            checkpoint = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
            writer.epoch_end(model, row, checkpoint | {"rng": _rng_state(state.data_rng)})
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


def _epoch(run: Run, state: Training, epoch: int, progress: bool) -> dict[str, Any]:
    """Train (0-based) ``epoch``, step the schedule, validate; the epoch's row of metrics."""
    cfg, model = run.train, state.model
    t0 = time.perf_counter()
    lr = state.opt.param_groups[0]["lr"]
    train_m = train_epoch(model, state.opt, state.train, run, state.data_rng, epoch,
                          progress=progress, loss_fn=state.loss_fn)  # fmt: skip
    state.sched.step()
    if isinstance(model, EpochHooks):
        model.on_epoch_end(state.train)
    val_m = evaluate_loss(model, state.val)
    if isinstance(model, Diagnostics):
        val_m |= split_diagnostics(model, state.val)
    _check_finite(train_m | val_m, f"in epoch {epoch + 1}", run, epoch)
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "kl_weight": cfg.kl_weight(epoch + 1) if cfg.kl_warmup else 1.0,
        **{f"train_{k}": v for k, v in train_m.items()},
        **{f"val_{k}": v for k, v in val_m.items()},
        "seconds": time.perf_counter() - t0,
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
    about = model.about
    shown = [f"{key} {row[f'val_{key}']:.2f}" for key, _ in about.loss_parts if f"val_{key}" in row]
    if shown:
        parts.append(f"({' + '.join(shown)})")
    parts.append(f"[{about.loss_unit}]  {row['seconds']:.1f}s")
    return "  ".join(parts)
