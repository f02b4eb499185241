"""Training: one plain epoch loop over in-memory batches, checkpointed after every epoch."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import __version__
from .batches import DataConfig, Split, batches, load_splits
from .errors import VaelabError
from .models import build_model
from .runs import (
    CHECKPOINT,
    CONFIG,
    load_checkpoint,
    load_state,
    read_config,
    read_metrics,
    save_checkpoint,
    save_weights,
    write_json,
    write_metrics,
)

SCHEDULES = ("none", "cosine", "step")


@dataclass
class TrainConfig:
    """Optimisation settings.  Adam; ``lr_schedule``: ``none``, ``cosine`` (to 0 over
    ``epochs``) or ``step`` (times ``lr_gamma`` every ``lr_step`` epochs)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "none"
    lr_step: int = 10
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"unknown lr_schedule {self.lr_schedule!r} (none, cosine, step)")
        if self.lr_step < 1:
            problems.append(f"lr_step must be >= 1, got {self.lr_step}")
        if problems:
            raise VaelabError("; ".join(problems))

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` during (0-based) ``epoch``."""
        if self.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if self.lr_schedule == "step":
            return self.lr_gamma ** (epoch // self.lr_step)
        return 1.0


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


class TrainingDiverged(VaelabError):
    pass


@torch.no_grad()
def evaluate_loss(model, x: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Mean over the images of ``x`` of each per-image term of ``model.terms`` (nats/image)."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for xb in batches(x, batch_size, shuffle=False):
        for k, v in model.terms(xb).items():
            sums[k] = sums.get(k, 0) + v.sum()
    model.train(was_training)
    return {k: v.item() / len(x) for k, v in sums.items()}


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


def run_config(model, train: TrainConfig, data: DataConfig) -> dict:
    return {
        "vaelab_version": __version__,
        "model": model.name,
        "model_config": model.config,
        "train": asdict(train),
        "data": asdict(data),
        "units": f"losses: {model.loss_unit}, averaged over images",
    }


def train(
    out: str | Path,
    model_name: str = "vae",
    model_config: dict | None = None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    splits: dict[str, Split] | None = None,
    progress: bool = True,
    figures: bool = True,
    log=print,
) -> dict[str, Any]:
    """Train a model into the run folder ``out``; returns a summary dict.

    With ``resume=True`` the configuration comes from ``out/config.json`` and training continues
    from ``out/checkpoint.pt`` up to ``epochs`` (default: the configured number).  With the same
    seed, training E1 epochs then resuming to E2 gives the same weights as E2 epochs straight.
    """
    out = Path(out)
    if resume:
        saved = read_config(out)
        if model_config is not None and model_config != saved["model_config"]:
            diff = {k: v for k, v in model_config.items() if saved["model_config"].get(k) != v}
            raise VaelabError(f"checkpoint in {out} has a different model configuration: {diff}")
        model_name, model_config = saved["model"], saved["model_config"]
        train_cfg = TrainConfig(**saved["train"])
        data_cfg = DataConfig(**saved["data"])
        if epochs is not None:
            train_cfg.epochs = epochs
    else:
        if (out / CONFIG).exists():
            raise VaelabError(
                f"{out} already holds a run; use --resume {out} to continue it or pick a new --out"
            )
        train_cfg = train_cfg or TrainConfig()
        data_cfg = data_cfg or DataConfig()
        if epochs is not None:
            train_cfg.epochs = epochs
    device = pick_device(train_cfg.device)
    torch.manual_seed(train_cfg.seed)  # before building: the seed fixes the initial weights too
    model = build_model(model_name, **(model_config or {}))
    model_config = model.config
    data_rng = torch.Generator().manual_seed(train_cfg.seed)
    if splits is None:
        splits = load_splits(data_cfg, log=log)
    train_x = splits["train"].x.to(device)
    val_x = splits["val"].x.to(device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, train_cfg.lr_factor)

    start, best_val, metrics = 0, math.inf, []
    if resume:
        ckpt = load_checkpoint(out / CHECKPOINT, map_location=device)
        load_state(model, ckpt["model"], out / CHECKPOINT)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], data_rng)
        start, best_val = int(ckpt["epoch"]), float(ckpt["best_val"])
        metrics = [m for m in read_metrics(out) if m["epoch"] <= start]
        log(f"resuming {out} at epoch {start} of {train_cfg.epochs}")
    config = run_config(model, train_cfg, data_cfg)
    write_json(out / CONFIG, config)

    dynamic = data_cfg.binarize == "dynamic"
    steps = math.ceil(len(train_x) / train_cfg.batch_size)
    epoch = start
    t_total = time.perf_counter()
    try:
        for epoch in range(start, train_cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            sums: dict[str, torch.Tensor] = {}
            bar = tqdm(
                total=steps,
                desc=f"epoch {epoch + 1}/{train_cfg.epochs}",
                disable=None if progress else True,  # None: only on a terminal
                leave=False,
                unit="batch",
            )
            for step, xb in enumerate(
                batches(train_x, train_cfg.batch_size, data_rng, dynamic_binarize=dynamic)
            ):
                parts = model.loss(xb)
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                opt.step()
                n = len(xb)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v.detach() * n
                if step % 20 == 0 or step == steps - 1:
                    loss_now = parts["loss"].item()
                    if not math.isfinite(loss_now):
                        raise TrainingDiverged(
                            f"loss became {loss_now} in epoch {epoch + 1} step {step + 1}; "
                            f"stopped, last good checkpoint (epoch {epoch}) kept in {out}"
                        )
                    bar.set_postfix(loss=f"{loss_now:.2f}")
                bar.update()
            bar.close()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            train_m = {k: v.item() / len(train_x) for k, v in sums.items()}
            if hasattr(model, "fit_latent_gaussian"):
                model.fit_latent_gaussian(_codes(model, train_x))
            val_m = evaluate_loss(model, val_x)
            if not all(math.isfinite(v) for v in [*train_m.values(), *val_m.values()]):
                raise TrainingDiverged(
                    f"non-finite loss in epoch {epoch + 1}; stopped, last good checkpoint "
                    f"(epoch {epoch}) kept in {out}"
                )
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                **{f"train_{k}": v for k, v in train_m.items()},
                **{f"val_{k}": v for k, v in val_m.items()},
                "seconds": time.perf_counter() - t0,
            }
            if val_m["loss"] < best_val:
                best_val = val_m["loss"]
                save_weights(model, out / "best.safetensors", {"epoch": str(epoch + 1)})
            save_weights(model, out / "last.safetensors", {"epoch": str(epoch + 1)})
            save_checkpoint(
                out / CHECKPOINT,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch + 1,
                    "best_val": best_val,
                    "rng": _rng_state(data_rng),
                },
            )
            metrics.append(row)
            write_metrics(out, metrics)
            log(_epoch_line(row, train_cfg.epochs, model.loss_unit))
    except KeyboardInterrupt:
        log(
            f"interrupted in epoch {epoch + 1}: the checkpoint of epoch {epoch} is kept in {out}; "
            f"continue with `vaelab train --resume {out}`"
        )
        return {"interrupted": True, "epoch": epoch, "out": str(out)}

    summary = {
        "out": str(out),
        "epochs": train_cfg.epochs,
        "best_val_loss": best_val,
        "final": metrics[-1] if metrics else {},
        "seconds": time.perf_counter() - t_total,
        "interrupted": False,
    }
    if figures and metrics:
        from .plots import all_figures

        summary["figures"] = [str(p) for p in all_figures(out, splits=splits, device=device)]
    return summary


@torch.no_grad()
def _codes(model, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    model.eval()
    z = torch.cat([model.latent_mean(xb) for xb in batches(x, batch_size, shuffle=False)])
    model.train()
    return z


def _epoch_line(row: dict, epochs: int, unit: str) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.2f}"]
    parts.append(f"val loss {row['val_loss']:.2f}")
    if "val_kl" in row:
        parts.append(f"(recon {row['val_recon']:.2f} + KL {row['val_kl']:.2f})")
    parts.append(f"[{unit}]  {row['seconds']:.1f}s")
    return "  ".join(parts)
