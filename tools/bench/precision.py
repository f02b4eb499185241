"""What the number format of the networks' products does to the K = 5000 estimate and to
training, and how fast each format runs, on the device found, measured in one process.

**The estimate.**  For each trained run given (``--run``; without one, the Burda et al. MLP
is trained for ``--epochs`` epochs first), the K-sample estimate of log p(x) on the first
``--images`` test images in each format, on the same draws (the same seed per batch of
images).  Reported: images per second (best of the rounds, interleaved), the mean shift of
log p(x) against fp32, nats per image, and the largest shift of one image.  A likelihood
table can bear a mean shift of 0.01 nats.

On a CPU, ``tf32`` cannot run, so its rounding is emulated: every operand of a product is
rounded to tf32's 10 mantissa bits (round to nearest, ties away from zero, as a CUDA GPU
does) and the product is taken in float32.  Its shift is measured; its speed is not.

**Training.**  Each model of ``--train-models`` (default: the 784-400-20 VAE of the
pytorch/examples; ``all``: eight of vaelab's families and likelihoods) on MNIST (50,000
images, batch 128, Adam 1e-3) for ``--train-epochs`` epochs in each training format, epochs
interleaved: seconds per epoch (best epoch) and the validation loss at the end, from two seeds
each (the spread between seeds is the yardstick for a format's effect).

    python -m tools.bench.precision [--run RUN ...] [--images 100] [--k 5000] [--train-epochs 5]
    python -m tools.bench.precision --device cuda --compile   # on a GPU: tf32 for real, and speeds
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from vaelab.config import PRECISIONS, TRAIN_PRECISIONS, DataConfig, TrainConfig
from vaelab.data import load_splits
from vaelab.devices import pick_device
from vaelab.models import build_model
from vaelab.nll import EstimateSettings, importance_sampled
from vaelab.runs import Run
from vaelab.scores import evaluate_loss
from vaelab.settings import preset_config
from vaelab.train import make_optimizer, train_epoch

TOLERANCE = 0.01  # nats per image


def round_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 values rounded to tf32 (10 mantissa bits): nearest, ties away from zero."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32).view_as(t)


class EmulatedTF32(TorchFunctionMode):
    """Products whose two operands are rounded to tf32 first, while float32 matmul precision
    is "high" (``vaelab.precision.full_precision`` sets "highest": then left exact)."""

    PRODUCTS = {
        F.linear, F.conv2d, F.conv_transpose2d, torch.matmul, torch.mm, torch.bmm,
        torch.Tensor.__matmul__, torch.Tensor.matmul,
    }  # fmt: skip

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.PRODUCTS and torch.get_float32_matmul_precision() == "high":
            args = tuple(
                round_tf32(a) if i < 2 and torch.is_tensor(a) and a.dtype == torch.float32 else a
                for i, a in enumerate(args)
            )
        return func(*args, **kwargs)


@contextmanager
def emulated_tf32():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with EmulatedTF32():
            yield
    finally:
        torch.set_float32_matmul_precision(before)


def formats(device: torch.device, compile: bool) -> dict[str, tuple[object, str, bool]]:
    """Each format's (context, precision, compiled): real where the device runs it, tf32
    emulated on a CPU; with ``compile`` also fp32 (and tf32) through torch.compile."""
    out = {}
    for name in PRECISIONS:
        if name == "tf32" and device.type != "cuda":
            out["tf32 (emulated)"] = (emulated_tf32, "fp32", False)
        else:
            out[name] = (nullcontext, name, False)
    if compile:  # the formats safe for the estimate that run fast: fp32, and tf32 on a GPU
        for name in [n for n in ("fp32", "tf32") if n in out]:
            out[f"{name}, compiled"] = (nullcontext, name, True)
    return out


def load_trained(path: str, device: torch.device) -> torch.nn.Module:
    return Run.load(path).model("best", device)


def quick_run(epochs: int, device: torch.device, data: DataConfig) -> tuple[str, torch.nn.Module]:
    """Burda et al.'s MLP trained ``epochs`` epochs (when no run is given)."""
    torch.manual_seed(0)
    model = build_model("vae", **preset_config("burda")).to(device)
    train = load_splits(data)["train"].to(device)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3)
    opt = make_optimizer(model, cfg, device)
    run = Run.create(Path(tempfile.mkdtemp()) / "run", "vae", model.config, cfg, data)
    gen = torch.Generator().manual_seed(0)
    model.on_train_start(train)
    for epoch in range(epochs):
        train_epoch(model, opt, train, run, gen, epoch, progress=False)
    return f"Burda MLP, {epochs} epochs here", model.eval()


def estimate_table(label: str, model, x, k: int, rounds: int, device, compile: bool) -> list[str]:
    ctxs = formats(device, compile)
    est, times, compile_s = {}, {name: [] for name in ctxs}, {}

    def estimate(name: str) -> float:
        ctx, precision, compiled = ctxs[name]
        sync(device)
        t0 = time.perf_counter()
        with ctx():
            est[name] = importance_sampled(
                model,
                x,
                k,
                seed=0,
                progress=False,
                settings=EstimateSettings(compile=compiled, precision=precision),
            ).log_px
        sync(device)
        return time.perf_counter() - t0

    for name, (_, _, compiled) in ctxs.items():
        if compiled:  # the first call compiles (once per format and chunk shape)
            compile_s[name] = estimate(name)
    for r in range(rounds):
        for name in ctxs:
            if not (r and "emulated" in name):  # an emulation's time means nothing
                times[name].append(estimate(name))
    fp32 = min(times["fp32"])
    lines = [
        f"**{label}** ({model.describe()}), K={k}, {len(x)} test images, {device_name(device)}:",
        "",
        "| products | images/s | speed vs fp32 | mean shift of log p(x), nats "
        "| largest shift of one image | within 0.01 |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in times.items():
        shift = est[name] - est["fp32"]
        speed = "" if "emulated" in name else f"{len(x) / min(t):.1f}"
        ratio = "" if "emulated" in name else f"{fp32 / min(t):.2f}"
        ok = "yes" if abs(shift.mean().item()) <= TOLERANCE else "**no**"
        lines.append(
            f"| {name} | {speed} | {ratio} | {shift.mean().item():+.4f} | "
            f"{shift.abs().max().item():.4f} | {ok} |"
        )
    mean = est["fp32"].mean().item()
    lines += ["", f"fp32: mean log p(x) = {mean:.3f} nats per image"]
    for name, first in compile_s.items():
        extra = first - min(times[name])
        lines.append(f"{name}: the first call (compiling) took {extra:.1f} s more")
    return lines + [""]


# name: (model, its settings, binarize, what it is)
FAMILIES = {
    "pytorch-examples": ("vae", preset_config("pytorch-examples"), "dynamic", "784-400-20 VAE"),
    "burda": ("vae", preset_config("burda"), "dynamic", "784-200-200-50 tanh VAE"),
    "burda2": ("hvae", preset_config("burda2"), "dynamic", "two stochastic layers"),
    "iwae5": ("iwae", preset_config("burda") | {"k": 5}, "dynamic", "IWAE, k = 5"),
    "vamp": ("vae", preset_config("burda", "vamp"), "dynamic", "VampPrior"),
    "conv": ("vae", preset_config("conv"), "dynamic", "conv VAE"),
    "cbernoulli": (
        "vae", preset_config("pytorch-examples") | {"likelihood": "cbernoulli"}, "none",
        "784-400-20 VAE, continuous Bernoulli, grayscale",
    ),
    "gaussian-ae": (
        "ae", preset_config("pytorch-examples") | {"likelihood": "gaussian"}, "none",
        "784-400-20 AE, squared error, grayscale",
    ),
}  # fmt: skip


def train_table(families: list[str], epochs: int, device: torch.device, data_dir) -> list[str]:
    """Each family trained ``epochs`` epochs in each training format from seeds 0 and 1,
    epochs interleaved: the best epoch time and the validation loss at the end."""
    names = [p for p in TRAIN_PRECISIONS if p != "tf32" or device.type == "cuda"]
    lines = [
        f"**Training**: MNIST, batch 128, Adam 1e-3, {epochs} epochs, {device_name(device)}; "
        "the validation loss at the end (nats per image: -ELBO, or the AE's squared error):",
        "",
        "| model | products | s per epoch (best) | validation, seed 0 | seed 1 | mean - fp32's |",
        "|---|---|---|---|---|---|",
    ]
    for family in families:
        model_name, settings, binarize, label = FAMILIES[family]
        data = DataConfig(binarize=binarize, data_dir=data_dir)
        splits = load_splits(data)
        train, val = splits["train"].to(device), splits["val"].to(device)
        state = {}
        for precision in names:
            for seed in (0, 1):
                torch.manual_seed(seed)
                model = build_model(model_name, **settings).to(device)
                cfg = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, precision=precision)
                run = Run.create(
                    Path(tempfile.mkdtemp()) / "r", model_name, model.config, cfg, data
                )
                model.on_train_start(train)
                opt = make_optimizer(model, cfg, device)
                gen = torch.Generator().manual_seed(seed)
                state[(precision, seed)] = (model, opt, run, gen, [])
        for epoch in range(epochs):
            for model, opt, run, gen, times in state.values():
                sync(device)
                t0 = time.perf_counter()
                train_epoch(model, opt, train, run, gen, epoch, progress=False)
                sync(device)
                times.append(time.perf_counter() - t0)
                model.on_epoch_end(train)
        final = {}
        for key, (model, *_) in state.items():
            terms = evaluate_loss(model, val)
            final[key] = terms.get("neg_elbo", terms.get("recon"))
        base = (final[("fp32", 0)] + final[("fp32", 1)]) / 2
        for precision in names:
            a, b = final[(precision, 0)], final[(precision, 1)]
            best = min(min(state[(precision, seed)][-1]) for seed in (0, 1))
            lines.append(
                f"| {label} | {precision} | {best:.2f} | {a:.3f} | {b:.3f} | "
                f"{(a + b) / 2 - base:+.3f} |"
            )
    return lines + [""]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], help="a trained run (repeatable)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", help="MNIST's IDX files, when not in the cache")
    ap.add_argument("--images", type=int, default=100, help="0: no estimate table")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per format (best)")
    ap.add_argument("--epochs", type=int, default=5, help="training of the run made without --run")
    ap.add_argument("--train-epochs", type=int, default=5, help="0: no training table")
    ap.add_argument(
        "--train-models",
        default="pytorch-examples",
        help=f"comma-separated, or all: {', '.join(FAMILIES)}",
    )
    ap.add_argument("--threads", type=int)
    ap.add_argument("--compile", action="store_true", help="also each format compiled")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    device = pick_device(args.device)
    data = DataConfig(binarize="dynamic", data_dir=args.data_dir)
    models = [(p, load_trained(p, device)) for p in args.run]
    if not args.images:
        models = []
    elif not models:
        models = [quick_run(args.epochs, device, data)]
    x = load_splits(data)["test"].x[: args.images].to(device)
    print(f"torch {torch.__version__}, {device_name(device)}\n")
    for label, model in models:
        with torch.no_grad():
            table = estimate_table(label, model, x, args.k, args.rounds, device, args.compile)
        print("\n".join(table))
    if args.train_epochs:
        families = list(FAMILIES) if args.train_models == "all" else args.train_models.split(",")
        print("\n".join(train_table(families, args.train_epochs, device, args.data_dir)))


if __name__ == "__main__":
    main()
