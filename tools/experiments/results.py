"""Regenerate docs/results.md: what vaelab measures on MNIST, beside published numbers.

Trains (or reuses, with --reuse) these runs under runs/results/, evaluates them and writes the
table with the hardware it ran on:

  vae-gray    784-400-20 VAE, grayscale pixels, 10 epochs (the pytorch/examples yardstick)
  ae-gray     784-400-20 AE (Bernoulli cross-entropy), grayscale, 10 epochs
  linear-ae   linear AE on squared error, latent 16: the PCA comparison
  vae-paper   Burda et al. MLP 784-200-200-50 tanh, dynamic binarization, trained on 59,600
              images and validated on 400 (their code's split), --epochs-paper epochs;
              test NLL with K importance samples and the estimator's diagnostics

The likelihood table is made by `vaelab compare` (vaelab.compare), the same table a user gets
for their own runs: its headline columns on the page, every column in a collapsed block.  The
page's numbers are also saved beside it (docs/results.json).

    python -m tools.experiments.results [--epochs-paper 100] [--k 5000] [--reuse]
    python -m tools.experiments.results --quick  # minutes: small runs, to check it (for CI)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import vaelab
from tools import ROOT
from tools.machine import cpu_name
from vaelab.analysis import pca_check
from vaelab.compare import HEADER, cells, compare, notes
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.evaluate import evaluate_run
from vaelab.plots import all_figures, nll_against_time
from vaelab.quality import reference_floor
from vaelab.runs import Run
from vaelab.settings import resolve_settings
from vaelab.train import TrainConfig, train

# Test NLLs on dynamically binarized MNIST, K = 5000 (nats per image).
PUBLISHED = [
    ("VAE, 1 stochastic layer, 784-200-200-50 tanh, trained k=1", "86.76",
     "Burda et al. 2016, Table 1"),
    ("IWAE, 1 stochastic layer, trained k=5 / k=50", "85.54 / 84.78", "Burda et al. 2016, Table 1"),
    ("VAE, 2 stochastic layers (100 + 50 latents), trained k=1", "85.33",
     "Burda et al. 2016, Table 1"),
    ("IWAE, 2 stochastic layers, trained k=50", "82.90", "Burda et al. 2016, Table 1"),
    ("VAE, 1 stochastic layer (MLP), VampPrior", "82.38", "Tomczak & Welling 2018, Table 1"),
    ("HVAE, 2 stochastic layers (MLP), VampPrior", "81.24", "Tomczak & Welling 2018, Table 1"),
    ("convHVAE, 2 stochastic layers (conv), VampPrior", "79.75 (their Table 3 prints 79.78)",
     "Tomczak & Welling 2018, Tables 1 and 3"),
    ("IAF (ResNet VAE with flows)", "79.10", "Kingma et al. 2016"),
    ("NVAE (deep hierarchical conv)", "78.01", "Vahdat & Kautz 2020"),
]  # fmt: skip
# Numbers that look alike but measure something else; never set beside the rows above.
NOT_COMPARABLE = [
    "Tomczak & Welling's static-MNIST column (VAE + VampPrior 85.57, HVAE + VampPrior 83.19, "
    "convHVAE + VampPrior 81.09, PixelHVAE + VampPrior 79.78) is on the statically binarized "
    "files, not on dynamically binarized MNIST.",
    "pythae's VAE benchmark, 89.78: a 784-400-16 VAE on statically binarized MNIST (Larochelle's "
    "fixed files), 500 epochs, estimated with K = 200: another data set and another estimator, "
    "not a reproduction of Burda et al.'s setting.",
]


def log_to_stdout() -> None:
    """vaelab's messages (epochs, warnings) printed as plain lines."""
    logger = logging.getLogger("vaelab")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@dataclass
class Row:
    """One run of the page: what it is, where it is, how long it trained, its evaluation."""

    label: str
    protocol: str  # the pixels it was trained and scored on
    path: Path
    epochs: int
    seconds: float
    ev: dict  # the test split's evaluation
    extra: dict | None = None  # the PCA check, for the linear AE


@dataclass
class Plan:
    """Where the runs go, whether existing ones are kept, and how much they are evaluated."""

    out_dir: Path
    reuse: bool
    quality: bool  # sample quality (not in a quick pass)


def run(plan: Plan, name: str, model: str, model_cfg: dict, train_cfg, data_cfg):
    """Train ``name`` (or reuse it): its folder, its epochs and their seconds."""
    out = plan.out_dir / name
    if plan.reuse and (out / "best.safetensors").exists():
        print(f"reusing {out}")
    else:
        if out.exists():
            raise SystemExit(f"{out} exists: pass --reuse or remove it")
        summary = train(out, model, model_cfg, train_cfg, data_cfg)
        if not summary["interrupted"]:
            all_figures(out)
    rows = Run.load(out).metrics()
    return out, len(rows), sum(r["seconds"] for r in rows)


def evaluate(path: Path, reuse: bool, k: int | None = None, quality: bool = True) -> dict:
    """Test-split evaluation with probes and sample quality (and the NLL with K = k).  With
    ``reuse``, an NLL with the same K already in RUN/evaluation.json is kept, not recomputed."""
    saved = Run.load(path).evaluation().get("test", {})
    need_nll = k is not None and not (reuse and saved.get("nll_k") == k)
    evaluate_run(path, probes=True, quality=quality, nll_samples=k if need_nll else None)
    return Run.load(path).evaluation()["test"]  # merged with what was saved before


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs-paper", type=int, default=100)
    ap.add_argument("--batch-paper", type=int, default=100)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument(
        "--nll-images", type=int, help="estimate the NLL on the first N test images only"
    )
    ap.add_argument(
        "--out-dir", help="run folders (default runs/results, quick: runs/results-quick)"
    )
    ap.add_argument("--reuse", action="store_true", help="keep runs that already exist")
    ap.add_argument("--doc", help="default docs/results.md (quick: RUN folder/results.md)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 epoch on 3,000 training images per run, K=50 on 300 test images, no sample "
        "quality: checks the whole script in minutes; writes next to its runs, not into docs/",
    )
    args = ap.parse_args()
    if args.quick:
        args.epochs_paper, args.k, args.nll_images = 1, 50, 300
    default_dir = ROOT / "runs" / ("results-quick" if args.quick else "results")
    args.out_dir = Path(args.out_dir or default_dir)
    args.doc = args.doc or str(
        args.out_dir / "results.md" if args.quick else ROOT / "docs/results.md"
    )
    return args


def grayscale_rows(plan: Plan, quick: bool, gray_data: DataConfig, gray: dict) -> list[Row]:
    """The VAE and the AE of the pytorch/examples, and the linear AE against PCA."""
    rows = []
    cfg10 = TrainConfig(epochs=1 if quick else 10)
    for name, model, label, protocol in [
        ("vae-gray", "vae", "VAE 784-400-20 ReLU", "grayscale (loss, not NLL)"),
        ("ae-gray", "ae", "AE 784-400-20 ReLU, BCE", "grayscale"),
    ]:
        path, ep, sec = run(plan, name, model, {}, cfg10, gray_data)
        ev = evaluate(path, plan.reuse, quality=plan.quality)
        rows.append(Row(label, protocol, path, ep, sec, ev))
    lin = {"encoder": "linear", "decoder": "linear", "likelihood": "gaussian", "latent_dim": 16}
    # a linear AE converges slowly along small-eigenvalue directions: a large lr, cosine decay
    lin_epochs = 1 if quick else 50
    lin_train = TrainConfig(epochs=lin_epochs, batch_size=128, lr=1e-2, lr_schedule="cosine")
    path, ep, sec = run(plan, "linear-ae", "ae", lin, lin_train, gray_data)
    ev = evaluate(path, plan.reuse, quality=plan.quality)
    pca = pca_check(vaelab.load_run(path), gray)
    rows.append(Row("linear AE, squared error, D=16", "grayscale", path, ep, sec, ev, pca))
    return rows


def paper_row(plan: Plan, args: argparse.Namespace, limit: int | None) -> Row:
    """Burda et al.'s MLP under the paper protocol, with the K-sample NLL."""
    paper = resolve_settings(  # as `vaelab train --protocol paper` resolves it
        {"protocol": "paper", "epochs": args.epochs_paper, "batch_size": args.batch_paper,
         "train_limit": limit}
    )  # fmt: skip
    path, ep, sec = run(plan, "vae-paper", *paper)
    if args.nll_images:  # the first N test images only, saved as the run's test evaluation
        evaluate(path, plan.reuse, quality=plan.quality)
        evaluate_run(path, nll_samples=args.k, limit=args.nll_images, progress=False)
        saved = Run.load(path).evaluation()  # the whole test set's, and the first N images'
        ev = saved["test"] | saved[f"test[:{args.nll_images}]"]
    else:
        ev = evaluate(path, plan.reuse, k=args.k, quality=plan.quality)
    label = "VAE 784-200-200-50 tanh (Burda et al.)"
    return Row(label, "dynamic binarization", path, ep, sec, ev)


def main() -> None:
    args = parse_args()
    log_to_stdout()
    t_start = time.perf_counter()
    limit = 3000 if args.quick else None
    gray_data = DataConfig(train_limit=limit)
    gray = load_splits(gray_data)
    plan = Plan(args.out_dir, args.reuse, quality=not args.quick)
    rows = grayscale_rows(plan, args.quick, gray_data, gray)
    rows.append(paper_row(plan, args, limit))
    floor = reference_floor(gray["train"].x, gray["test"].x) if plan.quality else None
    write_doc(Path(args.doc), rows, args, time.perf_counter() - t_start, floor)
    print(f"wrote {args.doc}")


def hardware() -> str:
    return f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU"


def fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def likelihood_sentence(label: str, ev: dict) -> str:
    """What the estimate of one run says, computed from its numbers (never assumed)."""
    n = ev["n_images"]
    below = ev["nll"] < ev["neg_elbo"]
    relation = (
        f"below its negative ELBO on the same images ({ev['neg_elbo']:.2f}), as a tighter "
        "bound must be"
        if below
        else f"NOT below its negative ELBO on the same images ({ev['neg_elbo']:.2f}): "
        "the estimate is suspect"
    )
    return (
        f"**{label}**: the K = {ev['nll_k']} estimate over {n} test images, "
        f"{ev['nll']:.2f} nats ({ev['bits_per_dim']:.4f} bits per dimension), is {relation}. "
        f"It took {ev['nll_seconds'] / 60:.1f} minutes ({n / ev['nll_seconds']:.1f} images/s). "
        f"With the first {ev['nll_k_sub']} of the same samples it is {ev['nll_k_gap']:+.3f} "
        f"nats higher; the effective sample size of the {ev['nll_k']} weights has median "
        f"{ev['ess_median']:.0f} and 5th percentile {ev['ess_p5']:.0f} over images."
    )


def header_lines(args: argparse.Namespace, total_seconds: float) -> list[str]:
    """The title, and the command, machine and time that made the page."""
    command = (
        "`python -m tools.experiments.results --quick`"
        if args.quick
        else f"`python -m tools.experiments.results --epochs-paper {args.epochs_paper} "
        f"--batch-paper {args.batch_paper} --k {args.k}`"
    )
    return [
        "# Results",
        "",
        f"Measured by {command} on {hardware()}; "
        + (
            f"this pass reused trained runs and saved K = {args.k} estimates and took "
            f"{total_seconds / 60:.0f} minutes (train times below come from the runs' metrics)."
            if args.reuse
            else f"the whole script took {total_seconds / 60:.1f} minutes."
        ),
        "",
    ]


HEADLINE = {  # columns of `vaelab compare`'s table shown above the fold, with their units
    "run": "run",
    "epochs": "epochs",
    "train time": "train time",
    "test -ELBO or loss (nats per image)": "test -ELBO or loss (nats per image)",
    "test -log p(x) estimate ± s.e. over images": "test -log p(x) ± s.e. (nats per image)",
    "active units": "active units",
}


def table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body),
    ]


def compare_lines(table_rows) -> list[str]:
    """`vaelab compare`'s table in parts, so that it fits the page: the numbers a reader
    compares (units in the headers), then in a collapsed block each run's model and pixels and
    the other columns (the estimate's diagnostics; empty columns left out)."""
    body = [cells(r) for r in table_rows]

    def part(names: list[str], header: list[str] | None = None) -> list[str]:
        picked = [HEADER.index(h) for h in names]
        return table(header or names, [[row[i] for i in picked] for row in body])

    described = ["run", "model", "pixels"]
    rest = [h for i, h in enumerate(HEADER) if h not in HEADLINE and h not in described
            and any(row[i] for row in body)]  # fmt: skip
    return [
        *part(list(HEADLINE), list(HEADLINE.values())),
        "",
        *("\n\n".join(notes(table_rows)).split("\n")),
        "",
        '<details markdown="1">',
        "<summary>Each run's model and pixels, and the estimate's diagnostics</summary>",
        "",
        *part(described),
        "",
        *(part(["run", *rest]) if rest else []),
        "",
        "</details>",
    ]


def likelihood_lines(rows: list[Row], figures: Path, quick: bool) -> list[str]:
    """`vaelab compare`'s table, what each estimate says, and the NLL against training time."""
    lines = [
        "## Likelihoods and losses",
        "",
        "Made by `vaelab compare` on the run folders:",
        "",
        *compare_lines(compare([r.path for r in rows])),
        "",
    ]
    for r in rows:
        if "nll" in r.ev and "nll_k_gap" in r.ev:
            lines += [likelihood_sentence(r.label, r.ev), ""]
    figure = figures / "nll-vs-time.png"
    published = [("VAE (Burda)", 86.76), ("IWAE k=50 (Burda)", 84.78), ("2-layer IWAE", 82.90)]
    nll_against_time(compare([r.path for r in rows]), figure, published)
    lines += [f"![test NLL against training time](figures/{figure.name})", ""]
    subset = " (this quick pass: the first 3,000 training images only)" if quick else ""
    return lines + [
        "The paper-protocol row trains on 59,600 images and validates on 400, as Burda et al.'s "
        "code does; training images are binarized afresh each time they are used, validation "
        f"and test images once (seed 0). The other rows use 50,000 / 10,000{subset}.",
        "",
    ]


def features_lines(rows: list[Row], floor: dict | None) -> list[str]:
    """Linear and 5-NN probes of each run's codes, and its samples' quality."""
    lines = [
        "## Features and samples",
        "",
        "| model | pixels | linear probe | 5-NN | PCA probe / 5-NN | samples: FD / P / R |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, pp, q = (
            r.ev.get("probes", {}),
            r.ev.get("probes_pca", {}),
            r.ev.get("sample_quality", {}),
        )
        lines.append(
            f"| {r.label} | {r.protocol} "
            f"| {fmt(p.get('linear_probe_acc'), 4)} | {fmt(p.get('knn_acc'), 4)} "
            f"| {fmt(pp.get('linear_probe_acc'), 4)} / {fmt(pp.get('knn_acc'), 4)} "
            f"| {fmt(q.get('fd'), 1)} / {fmt(q.get('precision'), 2)} / {fmt(q.get('recall'), 2)} |"
        )
    floor_text = (
        f" Real grayscale training images in place of samples score FD {floor['fd']:.1f}, "
        f"P {floor['precision']:.2f}, R {floor['recall']:.2f}."
        if floor
        else " (Not measured in this pass.)"
    )
    return lines + [
        "",
        "Probes are test accuracies of a logistic regression and of 5-nearest neighbours fitted "
        "on the latent means of the training images (binarized once for the binarized model, "
        "so that they are fitted and scored on pixels of one kind); the PCA column gives the "
        "same probes on PCA codes of the same size. FD / P / R: Frechet distance and k-NN "
        "precision / recall of 10,000 samples (decoder means) against the run's own test "
        "images (binarized ones for the binarized model, so that row is not comparable with "
        "the grayscale rows), in the features of vaelab's small MNIST classifier: not FID."
        + floor_text,
    ]


def pca_lines(rows: list[Row]) -> list[str]:
    """The linear AE against PCA: its error, PCA's, and the angle between their subspaces."""
    lines = []
    for r in rows:
        if isinstance(r.extra, dict):
            extra = r.extra
            angles = extra.get("max_angle_deg")
            conclusion = extra["verdict"].rsplit(": ", 1)[-1]
            lines += [
                "",
                f"**{r.label} against PCA** (k = {extra['k']}, MSE per pixel on the training "
                f"set): AE {extra['ae_train_mse']:.6f}, PCA {extra['pca_train_mse']:.6f} "
                f"(ratio {extra['train_mse_ratio']:.4f}); largest principal angle between the "
                f"decoder's columns and the top-{extra['k']} principal directions "
                f"{fmt(angles, 1)} degrees: it {conclusion}.",
            ]
    return lines


def published_lines(args: argparse.Namespace) -> list[str]:
    """The published numbers, and those that look alike but are not comparable."""
    return [
        "",
        "## Published test NLLs (dynamically binarized MNIST, K = 5000)",
        "",
        "| model | NLL (nats) | source |",
        "|---|---|---|",
        *[f"| {m} | {v} | {s} |" for m, v, s in PUBLISHED],
        "",
        "Burda et al. trained for 3,280 epochs (batch 20, Adam with a decaying learning rate); "
        f"the vaelab paper-protocol row above trained for {args.epochs_paper} epochs.",
        "",
        "vaelab's runs of these published models (1- and 2-layer VAE and IWAE, VampPrior, conv), "
        "each with its command, epochs, training time and hardware, and the longest runs: "
        "[likelihoods.md](likelihoods.md) (`python -m tools.experiments.likelihood_table`).",
        "",
        "Not comparable with the table above: " + " ".join(NOT_COMPARABLE),
        "",
        "Raw results: `evaluation.json` and `metrics.jsonl` in each run folder after running "
        "the script.",
        "",
    ]


def write_doc(path: Path, rows: list[Row], args, total_seconds: float, floor: dict | None) -> None:
    lines = [
        *header_lines(args, total_seconds),
        *likelihood_lines(rows, path.parent / "figures", args.quick),
        *features_lines(rows, floor),
        *pca_lines(rows),
        *published_lines(args),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    save_numbers(path.with_suffix(".json"), rows, args, total_seconds, floor)


def save_numbers(path: Path, rows: list[Row], args, total_seconds: float, floor) -> None:
    """The page's numbers beside it (nats per image, seconds, accuracies in [0, 1]), so that the
    page can be rewritten in another shape without the run folders."""
    data = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "hardware": hardware(),
        "total_seconds": total_seconds,
        "floor": floor,
        "compare": [asdict(r) for r in compare([r.path for r in rows])],
        "runs": [{"label": r.label, "protocol": r.protocol, "name": r.path.name,
                  "epochs": r.epochs, "seconds": r.seconds, "test": r.ev, "extra": r.extra}
                 for r in rows],
    }  # fmt: skip
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
