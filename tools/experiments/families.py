"""Regenerate docs/families.md: every family of vaelab trained under one budget on MNIST.

Each row is trained with the command the page prints (dynamically binarized MNIST, 50,000 /
10,000 split, batch 128, Adam at 1e-3, the same number of epochs), evaluated on the 10,000 test
images (the importance-sampled NLL where the model has a bound on log p(x)), and its figures
drawn in its run folder.  The MLP families share one network (784-400-20, ReLU); the VQ-VAE has
its own convolutional nets.

    python -m tools.experiments.families [--epochs 5] [--k 100] [--reuse]
    python -m tools.experiments.families --quick   # minutes: 1 epoch on 3,000 images, K = 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import vaelab
from tools import ROOT
from tools.experiments.results import log_to_stdout
from tools.machine import cpu_name
from vaelab.evaluate import evaluate_run
from vaelab.models.abilities import HasBound
from vaelab.plots import all_figures
from vaelab.runs import Run
from vaelab.settings import resolve_settings
from vaelab.train import train

# name, the flags after `vaelab train`, what the model optimises.  The first six are the
# families vaelab had before these five were added.
ROWS = [
    ("ae", "--model ae", "reconstruction: Bernoulli cross-entropy of x given its code"),
    ("vae", "--model vae", "the negative ELBO: -log p(x|z) + KL(q(z|x) ‖ N(0, I))"),
    ("iwae", "--model iwae --k 5", "minus the 5-sample importance-weighted bound"),
    ("cvae", "--model cvae", "the negative ELBO of p(x|y), the label y given"),
    ("hvae", "--model hvae", "the negative ELBO of two stochastic layers"),
    ("vamp", "--model vae --prior vamp", "the negative ELBO with a learned mixture prior"),
    ("vae-iaf", "--model vae --posterior iaf --flow-steps 2",
     "the negative ELBO with an inverse autoregressive flow in q(z|x)"),
    ("vqvae", "--model vqvae",
     "reconstruction + commitment (EMA codebook), then a PixelCNN prior's NLL of the codes"),
    ("infovae", "--model infovae",
     "reconstruction + weighted MMD(q(z), p(z)) (MMD-VAE: alpha = 1)"),
    ("wae", "--model wae", "reconstruction cost + lambda MMD(q(z), p(z)), deterministic encoder"),
    ("tcvae", "--model tcvae",
     "reconstruction + MI + beta TC + dimension-wise KL (minibatch-weighted sampling)"),
    ("factorvae", "--model factorvae",
     "the negative ELBO + gamma TC, TC from a discriminator with its own Adam"),
]  # fmt: skip
READING = (
    "Reading the rows: at this budget the VQ-VAE's KL column is its PixelCNN prior's NLL of the "
    "code grids (q(z|x) is a point mass, so the NLL equals the -ELBO), from a prior that trains "
    "alone only after `--vq-epochs` (10 by default); the InfoVAE's -ELBO carries a large KL "
    "because its training does not minimise it (alpha = 1), though it reconstructs better than "
    "the VAE; the CVAE's code is 2-D by default (for its pictures) and its NLL is of x given "
    "the label; the IWAE's -ELBO is above the VAE's while its NLL is below, as the tighter "
    "training bound trades one for the other."
)
START, END = "<!-- made by tools/experiments/families.py -->", "<!-- end of the made part -->"
BEFORE = 6  # rows above that were vaelab's families before this page


def flags_to_settings(flags: str) -> dict:
    """``--model vae --prior vamp`` as flat settings ({"model": "vae", "prior": "vamp"})."""
    words = flags.split()
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--"):
            value = (
                words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
            )
            out[w[2:].replace("-", "_")] = int(value) if str(value).isdigit() else value
    return out


def train_row(name: str, flags: str, args) -> Path:
    out = args.out_dir / name
    if args.reuse and (out / "best.safetensors").exists():
        return out
    if out.exists():
        raise SystemExit(f"{out} exists: pass --reuse or remove it")
    flat = flags_to_settings(flags) | {"epochs": args.epochs, "binarize": "dynamic"}
    if args.quick:
        flat["train_limit"] = 3000
    train(out, *resolve_settings(flat))
    all_figures(out)
    return out


def evaluate_row(path: Path, run: Run, model, args) -> dict:
    k = args.k if isinstance(model, HasBound) else None
    limit = 300 if args.quick else None
    saved = run.evaluation().get("test", {})
    if args.reuse and not args.quick and saved.get("nll_k") == k:  # kept from an earlier pass
        return saved
    return evaluate_run(path, nll_samples=k, limit=limit, progress=False)


def own_numbers(ev: dict, rows: list[dict]) -> str:
    """The model's own numbers: its loss parts beyond recon and KL (last epoch, validation)
    and its diagnostics (test)."""
    last = rows[-1]
    skip = {"loss", "recon", "kl", "neg_elbo", *ev.get("diagnostics", {})}
    parts = [
        f"{k[4:]} {v:.3g}" for k, v in last.items() if k.startswith("val_") and k[4:] not in skip
    ]
    parts += [f"{k} {v:.3g} (test)" for k, v in ev.get("diagnostics", {}).items()]
    return ", ".join(parts)


def cells(name: str, flags: str, shape: tuple[int, ...], rows: list[dict], ev: dict) -> list[str]:
    per_epoch = sum(r["seconds"] for r in rows) / len(rows)
    if ev.get("has_elbo"):
        first = f"{ev['neg_elbo']:.2f} = {ev['recon']:.2f} + {ev['kl']:.2f}"
    else:
        first = f"{ev['recon']:.2f} (reconstruction)"
    nll = f"{ev['nll']:.2f} ± {ev['nll_sem']:.2f}" if "nll" in ev else "no bound"
    code = f"{shape[0]}-D" if len(shape) == 1 else "x".join(map(str, shape))
    family = f"**{name}**, {code} code: `{flags}`"
    return [family, first, nll, own_numbers(ev, rows), f"{per_epoch:.1f}"]


def write_page(args, table: list[list[str]], seconds: float, trained: set[str]) -> None:
    nll = f"test NLL, K = {args.k} (nats per image)"
    first = "test -ELBO = recon + KL, or loss (nats per image)"
    head = ["family: `vaelab train ...`", first, nll, "its own numbers", "s per epoch"]
    lines = [
        "# The families",
        "",
        f"Every family of vaelab trained for {args.epochs} epochs under one budget by "
        f"`python -m tools.experiments.families --epochs {args.epochs} --k {args.k}` on "
        f"{cpu_name()}, {torch.get_num_threads()} thread(s), torch {torch.__version__} "
        f"(training all {len(table)} took {seconds / 60:.0f} minutes).  Dynamically binarized "
        "MNIST (50,000 training images, "
        "10,000 validation, the 10,000 test images binarized once with seed 0), batch 128, Adam "
        "at 1e-3; the MLP families share one network (784-400-20, ReLU), the VQ-VAE has its own "
        "convolutional nets.  Each command takes `--epochs`, `--binarize dynamic` and `--out RUN`.",
        "",
        "All numbers are nats per image, summed over the 784 pixels and averaged over the test "
        "images, except where the column says otherwise.  The NLL is importance-sampled with K "
        "draws from q(z|x) (± its standard error over images); a model without a density q(z|x) "
        "(the AE, the WAE) has no bound to estimate.  *Its own numbers* are the last epoch's "
        "validation means of the model's other terms and its diagnostics on the test images "
        "(their units: see each model's page of the API).",
        "",
        "The machine was shared with other work while these ran, so the seconds per epoch are "
        f"an upper bound. The first {BEFORE} rows are the families vaelab had before; the last "
        f"{len(table) - BEFORE} were added with their own checks against plain PyTorch versions "
        "(tools/bench/plain_*.py, their outputs in tools/bench/results/).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table]
    lines += ["", "What each optimises:", ""]
    lines += [f"- **{name}**: {optimises}" for name, _, optimises in ROWS if name in trained]
    lines += ["", READING]
    block = "\n".join(lines[2:])  # below the title
    old = args.doc.read_text() if args.doc.exists() else ""
    if START in old and END in old:  # keep what the page says around the table
        head, rest = old.split(START, 1)
        page = f"{head}{START}\n{block}\n{END}{rest.split(END, 1)[1]}"
    else:
        page = f"{lines[0]}\n\n{START}\n{block}\n{END}\n"
    args.doc.write_text(page)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="train only these rows")
    ap.add_argument("--out-dir", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.k = 1, 10
    args.out_dir = args.out_dir or ROOT / "runs" / ("families-quick" if args.quick else "families")
    args.doc = args.out_dir / "families.md" if args.quick else ROOT / "docs/families.md"
    log_to_stdout()
    table, seconds, done = [], 0.0, set()
    for name, flags, _ in ROWS:
        if args.only and name not in args.only:
            continue
        path = train_row(name, flags, args)
        run, model = Run.load(path), vaelab.load_run(path)
        rows = run.metrics()
        table.append(
            cells(name, flags, model.code_shape, rows, evaluate_row(path, run, model, args))
        )
        done.add(name)
        seconds += sum(row["seconds"] for row in rows)
    write_page(args, table, seconds, done)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
