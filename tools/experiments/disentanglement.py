"""Regenerate docs/disentanglement.md: what beta-VAE, beta-TCVAE and FactorVAE learn on the
sprites, over seeds, by every disentanglement metric vaelab computes.

Five models (beta-VAE with beta 1, 4 and 16, beta-TCVAE, FactorVAE) share one encoder and
decoder (disentanglement_lib's conv nets, `--encoder dlconv --decoder dlconv`, a 10-D code)
and one budget (the same training images, epochs, batch and learning rate); each is trained
with several seeds, then `vaelab evaluate RUN --disentanglement` scores its code (the mean of
q(z|x)) on the sprites' factor grid, and its test -ELBO (reconstruction + KL, nats per image)
is measured on the 10,000 test images.  The page gets the table (mean, sd and range over
seeds), the figure of each metric against reconstruction, the traversals of each model's best
and worst seed, and the commands.

    nohup python -m tools.experiments.disentanglement --jobs 2 > runs/disentanglement.log 2>&1 &
    python -m tools.experiments.disentanglement --quick --run-dir /tmp/d --page /tmp/d/page.md

Resumable: a run that reached its epochs is not trained again, and one whose evaluation holds
the metrics is not evaluated again; run the same command after an interruption.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from tools import ROOT
from tools.machine import cpu_name
from vaelab import plots
from vaelab.eval_config import EvalConfig
from vaelab.evaluate import disentanglement_scores, known_factors
from vaelab.runs import Run


@dataclass(frozen=True)
class Model:
    key: str  # the run folders' prefix
    label: str  # the table's row
    args: tuple[str, ...]  # `vaelab train` options of its own


MODELS = (
    Model("vae-b1", "β-VAE, β = 1 (the VAE)", ("--model", "vae", "--beta", "1")),
    Model("vae-b4", "β-VAE, β = 4", ("--model", "vae", "--beta", "4")),
    Model("vae-b16", "β-VAE, β = 16", ("--model", "vae", "--beta", "16")),
    Model("tcvae", "β-TCVAE, β = 6", ("--model", "tcvae", "--beta", "6")),
    Model("factorvae", "FactorVAE, γ = 35", ("--model", "factorvae", "--gamma", "35")),
)
LABELS = {m.key: m.label for m in MODELS}
COMMON = ("--dataset", "sprites", "--encoder", "dlconv", "--decoder", "dlconv",
          "--latent-dim", "10", "--batch-size", "64")  # fmt: skip
START, END = (
    "<!-- made by tools/experiments/disentanglement.py -->",
    "<!-- end of the made part -->",
)
QUICK_IMAGES = 500  # --quick: training, validation and test images
NOISE_MODEL = "vae-b4"  # the model whose first run is scored again under other metric seeds
NOISE_SEEDS = (1, 2, 3, 4)  # metric seeds beside 0, on one run: the metrics' own spread
RANK_BY = "mig"  # best and worst seed of a model: by this metric
METRICS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness",
           "dci_informativeness", "sap", "modularity", "explicitness")  # fmt: skip
HEADS = {"recon": "reconstruction", "kl": "KL", "beta_vae": "BetaVAE", "factor_vae": "FactorVAE",
         "mig": "MIG", "dci_disentanglement": "DCI disentanglement",
         "dci_completeness": "DCI completeness", "dci_informativeness": "DCI informativeness",
         "sap": "SAP", "modularity": "modularity", "explicitness": "explicitness"}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="training epochs of every run")
    p.add_argument("--train-limit", type=int, default=120_000, help="training images (sprites)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam's learning rate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    p.add_argument("--run-dir", default="runs/disentanglement")
    p.add_argument("--page", default="docs/disentanglement.md")
    p.add_argument("--figures", help="folder of the page's figures (default: beside the page)")
    p.add_argument("--train-only", action="store_true", help="train the runs, evaluate nothing")
    p.add_argument("--quick", action="store_true", help="a check: 500 images, 1 epoch, 2 seeds")
    args = p.parse_args(argv)
    args.limit = QUICK_IMAGES if args.quick else None
    if args.quick:
        args.epochs, args.train_limit, args.seeds = 1, QUICK_IMAGES, args.seeds[:2]
    args.run_dir, args.page = Path(args.run_dir), Path(args.page)
    args.figures = Path(args.figures) if args.figures else args.page.parent / "figures"
    return args


def vaelab(*args) -> list[str]:
    return [sys.executable, "-m", "vaelab", *map(str, args)]


def train_command(args, model: Model, seed: int, out: Path) -> list[str]:
    return vaelab("train", *COMMON, *model.args, "--lr", args.lr, "--epochs", args.epochs,
                  "--train-limit", args.train_limit, "--seed", seed, "--out", out,
                  "--no-progress", "--no-figures",
                  *(["--val-size", QUICK_IMAGES] if args.quick else []))  # fmt: skip


def evaluate_command(args, out: Path) -> list[str]:
    extra = ["--disentanglement-preset", "check", "--limit", QUICK_IMAGES] if args.quick else []
    return vaelab("evaluate", out, "--disentanglement", "--json", "--no-progress", *extra)


def run_logged(cmd: list[str], log: Path, threads: int) -> int:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    with log.open("a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env).returncode


def evaluation(out: Path, limit: int | None) -> dict:
    """The saved test evaluation (of the first ``limit`` test images, when given)."""
    path, key = out / "evaluation.json", "test" if limit is None else f"test[:{limit}]"
    return json.loads(path.read_text()).get(key, {}) if path.exists() else {}


def one(args, model: Model, seed: int) -> dict:
    """Train (unless trained) and evaluate (unless evaluated) one run; its numbers."""
    out = args.run_dir / f"{model.key}-s{seed}"
    log = args.run_dir / "logs" / f"{model.key}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    done = Run.load(out).metrics() if (out / "config.json").exists() else []
    if len(done) < args.epochs:
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run: remove it or finish it by hand")
        print(f"{out.name}: training", flush=True)
        if run_logged(train_command(args, model, seed, out), log, threads):
            raise SystemExit(f"{out.name}: training failed; see {log}")
    if args.train_only:
        return {}
    if "disentanglement" not in evaluation(out, args.limit):
        print(f"{out.name}: evaluating", flush=True)
        if run_logged(evaluate_command(args, out), log, threads):
            raise SystemExit(f"{out.name}: evaluation failed; see {log}")
    ev, rows = evaluation(out, args.limit), Run.load(out).metrics()
    commands = [line[2:] for line in log.read_text().splitlines() if line.startswith("$ ")]
    return {
        "model": model.key,
        "seed": seed,
        "run": str(out),
        "recon": ev["recon"],
        "kl": ev["kl"],
        "metrics": metric_values(ev["disentanglement"]),
        "metric_seconds": ev["disentanglement"].get("seconds"),
        "train_seconds": sum(r["seconds"] for r in rows),
        "commands": [shlex.join(["vaelab", *shlex.split(c)[3:]]) for c in commands[:2]],
    }


def metric_values(entry: dict) -> dict[str, float]:
    """The evaluation's metrics as flat {name: value}."""
    return {k: float(v) for k, v in entry["values"].items()}


def mean_sd(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    jobs = [(m, s) for m in MODELS for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda ms: one(args, *ms), jobs))
    if args.train_only:
        return
    (args.run_dir / "results.json").write_text(json.dumps(results, indent=1))
    write_page(args, results, time.time() - started)
    print(args.page)


def metric_noise(args, run: str) -> dict[str, list[float]]:
    """The metrics of one trained run under other metric seeds (their own sampling spread):
    {metric: [value with seed 0, 1, 2, ...]}; kept in RUN/metric-seeds.json."""
    path = Path(run) / "metric-seeds.json"
    seeds = NOISE_SEEDS[:1] if args.quick else NOISE_SEEDS
    if path.exists() and json.loads(path.read_text()).get("seeds") == list(seeds):
        return json.loads(path.read_text())["values"]
    r = Run.load(run)
    model = r.model("best", "cpu")
    grid = known_factors(model, r.data, run)
    preset = "check" if args.quick else "quick"
    got = [disentanglement_scores(model, grid, EvalConfig(seed=s, disentanglement_preset=preset),
                                  "cpu")["values"] for s in seeds]  # fmt: skip
    saved = evaluation(Path(run), args.limit)["disentanglement"]["values"]
    values = {n: [saved[n], *(g[n] for g in got)] for n in METRICS}
    path.write_text(json.dumps({"seeds": list(seeds), "values": values}, indent=1))
    return values


def result_tables(by_model: dict[str, list[dict]]) -> list[str]:
    """The two tables of mean ± sd over seeds: the loss terms and three metrics, then the rest."""
    out = []
    for group in (("recon", "kl", *METRICS[:3]), METRICS[3:]):
        head = ["model (seeds)", *(HEADS[n] for n in group)]
        rows = []
        for m in MODELS:
            rs = by_model[m.key]
            rows.append([f"{m.label} ({len(rs)})", *(mean_sd([value(r, n) for r in rs])
                                                     for n in group)])  # fmt: skip
        out += [*table(head, rows), ""]
    return out


def value(r: dict, name: str) -> float:
    return r[name] if name in ("recon", "kl") else r["metrics"][name]


def seed_effect(
    by_model: dict[str, list[dict]], noise: dict[str, list[float]]
) -> tuple[list[str], list[str]]:
    """Per metric: the range of the models' means against the range over seeds within a model
    and the metric's own spread (``noise``: one run's values under several metric seeds).
    Returns the table and the metrics whose seeds spread as far as the models do."""
    rows, alike = [], []
    for n in METRICS:
        means = [statistics.mean(value(r, n) for r in rs) for rs in by_model.values()]
        within = [max(value(r, n) for r in rs) - min(value(r, n) for r in rs)
                  for rs in by_model.values()]  # fmt: skip
        between = max(means) - min(means)
        own = noise[n]
        rows.append([HEADS[n], f"{between:.2f}", f"{statistics.mean(within):.2f}",
                     f"{max(within):.2f}", f"{max(own) - min(own):.2f}"])  # fmt: skip
        if max(within) >= between:
            alike.append(HEADS[n])
    head = ["metric", "range of the 5 models' means", "range over seeds, mean over models",
            "largest range over seeds", f"range over {len(own)} metric seeds, one run"]  # fmt: skip
    return table(head, rows), alike


def write_page(args, results: list[dict], seconds: float) -> None:
    args.figures.mkdir(parents=True, exist_ok=True)
    by_model = {m.key: [r for r in results if r["model"] == m.key] for m in MODELS}
    figure = plots.metric_against_reconstruction(
        results, METRICS, args.figures / "disentanglement-metrics.png",
        labels={m.key: m.label for m in MODELS}, titles=HEADS,
    )  # fmt: skip
    noise_run = by_model[NOISE_MODEL][0]
    effect, alike = seed_effect(by_model, metric_noise(args, noise_run["run"]))
    train_minutes = statistics.mean(r["train_seconds"] for r in results) / 60
    metric_seconds = statistics.mean(sum(r["metric_seconds"].values()) for r in results)
    commands = [c.replace(" --no-progress --no-figures", "")
                for c in (by_model[m.key][0]["commands"][0] for m in MODELS)]  # fmt: skip
    made = [
        START,
        f"Measured on {cpu_name()} ({os.cpu_count()} threads, {args.jobs} runs side by side, "
        f"torch {torch.__version__}): {len(results)} runs, training {train_minutes:.1f} minutes "
        f"per run, the metrics {metric_seconds:.0f} s per run (the commands are at the end of "
        "this section).",
        "",
        "Mean ± sd over seeds; reconstruction and KL in nats per image (summed over the 4,096 "
        f"pixels, mean over the {args.limit or 10_000:,} test images); the metrics between 0 "
        "and 1.",
        "",
        *result_tables(by_model),
        f"![Each metric against reconstruction]({figure.relative_to(args.page.parent)})",
        "",
        "**Seeds against models.** For each metric, how far apart the five models' means are, "
        "beside how far apart one model's seeds are, and how far the metric itself moves when "
        f"only its own seed changes ({LABELS[NOISE_MODEL]}, seed {noise_run['seed']}, "
        "scored again with other metric seeds: the quick preset's sampling error):",
        "",
        *effect,
        "",
        f"Metrics whose seeds of one model spread at least as far as the models' means: "
        f"{', '.join(alike) or 'none'}.",
        "",
        *traversal_figures(args, by_model),
        "",
        '<details markdown="1">',
        "<summary>The commands (the first seed of each model; the others differ in --seed)"
        "</summary>",
        "",
        "```bash",
        *commands,
        f"vaelab evaluate {results[0]['run']} --disentanglement",
        "```",
        "",
        "</details>",
        END,
    ]
    text = args.page.read_text() if args.page.exists() else f"# Disentanglement\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(before + "\n".join(made) + after)
    print(f"{len(results)} runs in {seconds / 60:.1f} minutes on {cpu_name()}")


def traversal_figures(args, by_model: dict[str, list[dict]]) -> list[str]:
    """Traversals of each model's best and worst seed (by ``RANK_BY``), side by side."""
    out = ["", "| model | best seed | worst seed |", "|---|---|---|"]
    for m in MODELS:
        rs = sorted(by_model[m.key], key=lambda r: r["metrics"][RANK_BY])
        cells = []
        for r, which in ((rs[-1], "best"), (rs[0], "worst")):
            run = Run.load(Path(r["run"]))
            model, test = run.model("best", "cpu"), run.splits()["test"]
            path = args.figures / f"disentanglement-{m.key}-{which}.png"
            plots.traversal_grid(
                model, test.take(slice(0, 2000)), path, units=10, order_by="factor"
            )
            cells.append(f"![seed {r['seed']}]({path.relative_to(args.page.parent)}) "
                         f"seed {r['seed']}, {RANK_BY} {r['metrics'][RANK_BY]:.2f}")  # fmt: skip
        out.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    main()
