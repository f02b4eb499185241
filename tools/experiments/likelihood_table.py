"""The MNIST likelihood table: published models trained under the paper protocol, side by side.

Every row is one `vaelab train --protocol paper ...` command (dynamically binarized MNIST,
59,600 training / 400 validation images, Bernoulli pixels), then `vaelab evaluate RUN
--nll-samples 5000` on all 10,000 test images.  Two steps:

    # train and evaluate rows (in parallel, --jobs at once), each run into OUT/<row>-s<seed>;
    # the commands, the hardware and the times go to OUT/manifest.json
    python -m tools.experiments.likelihood_table launch --out-dir runs/table --rows vae1 \
        --epochs 1000
    python -m tools.experiments.likelihood_table launch --out-dir runs/table-gpu --budget 420 \
        --jobs 12

    # the table (docs/likelihoods.md) and the figure of NLL against training time, from the
    # manifests of one or more launches; their numbers are saved as docs/likelihoods.json
    python -m tools.experiments.likelihood_table write runs/table runs/table-gpu
    # the same page and figure again from docs/likelihoods.json (no run folders needed)
    python -m tools.experiments.likelihood_table render

    # minutes: every row for 1 epoch on 3,000 images, K=50 on 300 test images (for CI)
    python -m tools.experiments.likelihood_table --quick

`--budget SECONDS` first trains every job for 2 epochs, all at once (so at the same sharing of
the machine), and gives each row as many epochs as fit in the budget at that speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tools import ROOT
from tools.machine import cpu_name
from vaelab.compare import Row as CompareRow
from vaelab.compare import row_of
from vaelab.plots import nll_against_time
from vaelab.runs import Run

ENV = dict(os.environ)  # the environment of the vaelab commands
COMMON = ["--protocol", "paper", "--batch-size", "100", "--lr-schedule", "cosine"]


@dataclass(frozen=True)
class Row:
    label: str
    args: tuple[str, ...]
    published: float | None = None
    source: str = ""
    updates: int | None = None  # parameter updates of the published training (at most)


# Burda et al.: 3,280 epochs (stages of 3^i epochs, i = 0..7) at batch 20 on 59,600 images.
BURDA_UPDATES = 3280 * 2980
# Tomczak & Welling's code: batch 100, up to 2,000 epochs with early stopping (50 epochs
# without improvement), 100 epochs of KL warm-up, 50,000 training images.
TOMCZAK_UPDATES = 2000 * 500
OUR_BATCHES = 596  # per epoch: 59,600 images at batch 100


# Test NLL, dynamically binarized MNIST, K = 5000, nats per image.
ROWS = {
    "vae1": Row("VAE, 1 stochastic layer (784-200-200-50 tanh)", ("--lr", "3e-3"),
                86.76, "Burda et al. 2016, Table 1", BURDA_UPDATES),
    "iwae5": Row("IWAE k=5, 1 stochastic layer", ("--model", "iwae", "--k", "5", "--lr", "3e-3"),
                 85.54, "Burda et al. 2016, Table 1", BURDA_UPDATES),
    "iwae50": Row("IWAE k=50, 1 stochastic layer",
                  ("--model", "iwae", "--k", "50", "--lr", "3e-3"), 84.78,
                  "Burda et al. 2016, Table 1", BURDA_UPDATES),
    "vae2": Row("VAE, 2 stochastic layers (100 + 50 latents)",
                ("--preset", "burda2", "--lr", "3e-3"), 85.33, "Burda et al. 2016, Table 1",
                BURDA_UPDATES),
    "iwae2-50": Row("IWAE k=50, 2 stochastic layers",
                    ("--preset", "burda2", "--k", "50", "--lr", "3e-3"), 82.90,
                    "Burda et al. 2016, Table 1", BURDA_UPDATES),
    "vamp1": Row("VAE + VampPrior (500 pseudo-inputs), 1 stochastic layer, Burda MLP",
                 ("--preset", "burda", "vamp", "--lr", "3e-3"), 82.38,
                 "Tomczak & Welling 2018, Table 1 (their MLP: 300-300 gated, 40-D)",
                 TOMCZAK_UPDATES),
    "vamp2": Row("HVAE + VampPrior, 2 stochastic layers, Burda MLP",
                 ("--preset", "burda2", "vamp", "--lr", "3e-3"), 81.24,
                 "Tomczak & Welling 2018, Table 1 (their MLP: 300-300 gated, 40 + 40-D)",
                 TOMCZAK_UPDATES),
    "conv": Row("conv VAE (32-D code)", ("--preset", "conv", "--lr", "1e-3"), 79.75,
                "Tomczak & Welling 2018, Table 1: convHVAE + VampPrior, 2 layers (not the same "
                "model: the nearest published conv row)", TOMCZAK_UPDATES),
}  # fmt: skip


def hardware() -> dict:
    out = {"cpu": cpu_name(), "cpu_threads": os.cpu_count(), "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def describe_hardware(hw: dict, jobs: int) -> str:
    where = f"{hw['gpu']} GPU" if hw.get("gpu") else f"{hw['cpu']}, {hw['cpu_threads']} threads"
    share = f", {jobs} runs sharing it" if jobs > 1 else ""
    return f"{where}{share}, torch {hw['torch']}"


# --- launching ------------------------------------------------------------------------------


def vaelab(*args) -> list[str]:
    return [sys.executable, "-m", "vaelab", *map(str, args)]


def train_command(name: str, seed: int, epochs: int, out: Path, extra: list[str]) -> list[str]:
    return vaelab("train", *COMMON, *ROWS[name].args, "--epochs", epochs, "--seed", seed,
                  "--out", out, "--no-progress", "--no-figures", *extra)  # fmt: skip


def run_logged(cmd: list[str], log: Path, deadline: float | None = None) -> int:
    """Run ``cmd`` with its output appended to ``log``; past ``deadline`` (a time.time())
    it gets SIGINT, which makes `vaelab train` save its state and stop."""
    with log.open("a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV)
        while proc.poll() is None:
            if deadline is not None and time.time() > deadline:
                proc.send_signal(signal.SIGINT)
                deadline = None
            time.sleep(1)
        return proc.returncode


def metrics_seconds(out: Path) -> list[float]:
    if not (out / "config.json").exists():
        return []
    return [row["seconds"] for row in Run.load(out).metrics()]


def calibrate(jobs, out_dir: Path, extra: list[str], parallel: int) -> dict[str, float]:
    """Seconds per epoch of each row, from its second epoch, all jobs training at once."""
    cal = out_dir / "calibrate"
    cal.mkdir(parents=True, exist_ok=True)

    def one(job):
        name, seed = job
        out = cal / f"{name}-s{seed}"
        run_logged(train_command(name, seed, 2, out, extra), cal / f"{name}-s{seed}.log")
        return name, metrics_seconds(out)

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one, jobs))
    per_row: dict[str, float] = {}
    for name, secs in results:
        if secs:
            per_row[name] = max(per_row.get(name, 0.0), secs[-1])
    return per_row


def parse_jobs(specs: list[str] | None, seeds: list[int]) -> list[tuple[str, int]]:
    """(row, seed) of every run: ``specs`` name rows (default: all), each with ``seeds``;
    "row@0,1,2" gives a row its own seeds."""
    jobs = []
    for spec in specs or list(ROWS):
        name, _, own = spec.partition("@")
        if name not in ROWS:
            raise SystemExit(f"unknown row {name!r}; rows: {', '.join(ROWS)}")
        jobs += [(name, int(s)) for s in own.split(",")] if own else [(name, s) for s in seeds]
    return jobs


def child_args(args) -> list[str]:
    """The settings every `vaelab train` of the launch shares."""
    extra = ["--device", args.device]
    if args.data_dir:
        extra += ["--data-dir", args.data_dir]
    if args.train_limit:
        extra += ["--train-limit", str(args.train_limit)]
    return extra


def epochs_of(args, jobs, out_dir: Path, extra: list[str], parallel: int) -> dict[str, int]:
    """Each row's epochs: --epochs, or with --budget as many as fit at the calibrated speed."""
    names = list(dict.fromkeys(n for n, _ in jobs))
    epochs = {n: args.epochs for n in names}
    if args.budget:
        per_epoch = calibrate(jobs, out_dir, extra, parallel)
        for n in names:
            e = int(args.budget / per_epoch[n]) if n in per_epoch else 1
            epochs[n] = max(1, min(e, args.max_epochs or e))
        print("seconds per epoch (all jobs at once):", json.dumps(per_epoch), flush=True)
        print("epochs:", json.dumps(epochs), flush=True)
    return epochs


@dataclass
class Launch:
    """The runs of one launch, and its manifest (OUT/manifest.json), written after each
    change so that an interrupted launch leaves what it did."""

    out_dir: Path
    epochs: dict[str, int]
    extra: list[str]  # child_args
    where: str  # describe_hardware of this launch
    args: argparse.Namespace  # k, nll_images, device
    deadline: float | None
    manifest: dict
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, entry: dict) -> None:
        with self.lock:
            self.manifest["runs"][key] = entry
            path = self.out_dir / "manifest.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.manifest, indent=1) + "\n")
            tmp.replace(path)

    def evaluate_command(self, out: Path) -> list[str]:
        ev = vaelab("evaluate", out, "--nll-samples", self.args.k, "--json", "--no-progress",
                    "--device", self.args.device)  # fmt: skip
        if self.args.nll_images:
            ev += ["--limit", str(self.args.nll_images)]
        return ev

    def one(self, job: tuple[str, int]) -> None:
        """Train one (row, seed), then evaluate it, each step recorded in the manifest."""
        name, seed = job
        out = self.out_dir / f"{name}-s{seed}"
        log = self.out_dir / "logs" / f"{name}-s{seed}.log"
        cmd = train_command(name, seed, self.epochs[name], out, self.extra)
        started = time.time()
        self.record(out.name, {"row": name, "seed": seed,
                               "command": shlex.join(["vaelab", *cmd[3:]]),
                               "hardware": self.where, "evaluate": "(not yet)"})  # fmt: skip
        code = run_logged(cmd, log, self.deadline)
        trained = time.time()
        ev = self.evaluate_command(out)
        code_ev = run_logged(ev, log) if (out / "best.safetensors").exists() else None
        print(f"{out.name}: train exit {code}, evaluate exit {code_ev}, "
              f"{(trained - started) / 60:.1f} + {(time.time() - trained) / 60:.1f} min",
              flush=True)  # fmt: skip
        self.record(out.name, {
            "row": name,
            "seed": seed,
            "epochs_asked": self.epochs[name],
            "command": shlex.join(["vaelab", *cmd[3:]]),
            "evaluate": shlex.join(["vaelab", *ev[3:]]),
            "train_exit": code,
            "evaluate_exit": code_ev,
            "wall_train_s": round(trained - started, 1),
            "wall_evaluate_s": round(time.time() - trained, 1),
            "hardware": self.where,
        })  # fmt: skip


def launch(args) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    jobs = parse_jobs(args.rows, args.seeds)
    parallel = args.jobs or len(jobs)
    # CPU threads shared out among the runs at once (unless OMP_NUM_THREADS says otherwise)
    ENV.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    extra = child_args(args)
    t0 = time.time()
    epochs = epochs_of(args, jobs, out_dir, extra, parallel)
    deadline = time.time() + args.deadline if args.deadline else None
    manifest_path = out_dir / "manifest.json"
    hw = hardware()
    manifest = {
        "launch": shlex.join(["python", "-m", "tools.experiments.likelihood_table", *sys.argv[1:]]),
        "hardware": hw,
        "jobs_at_once": min(parallel, len(jobs)),
        "epochs": epochs,
        "note": args.note,
        "runs": {},
    }
    if manifest_path.exists():  # a second launch into the same folder adds to it
        old = json.loads(manifest_path.read_text())
        manifest["runs"] = old.get("runs", {})
    where = describe_hardware(hw, min(parallel, len(jobs)))
    runs = Launch(out_dir, epochs, extra, where, args, deadline, manifest)
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(runs.one, jobs))
    print(f"done in {(time.time() - t0) / 60:.1f} min; {manifest_path}", flush=True)


# --- the table ------------------------------------------------------------------------------

DATA = "likelihoods.json"  # saved beside the page: `render` rewrites the page and figure from it


def updates(epochs: int, published: int | None) -> str:
    ours = epochs * OUR_BATCHES
    if published is None:
        return f"{ours / 1e6:.2f}M"
    return f"{ours / 1e6:.2f}M / {published / 1e6:.1f}M ({ours / published:.1%})"


def share(epochs: int, published: int | None) -> str:
    """vaelab's parameter updates as a percentage of the published run's."""
    return "" if published is None else f"{epochs * OUR_BATCHES / published:.1%}"


def public(command: str, launch: str) -> str:
    """A recorded command with the folders of the machine that ran it written as they read
    anywhere: the launch's folder as runs/LAUNCH, the data folder as DATA_DIR."""
    command = re.sub(r"--out-dir \S+", f"--out-dir runs/{launch}", command)
    command = re.sub(r"--out \S*?([^/\s]+)(?=\s|$)", rf"--out runs/{launch}/\1", command)
    command = re.sub(r"(evaluate) \S*?([^/\s]+)(?=\s|$)", rf"\1 runs/{launch}/\2", command)
    return re.sub(r"--data-dir \S+", "--data-dir DATA_DIR", command)


def run_record(launch: str, path: Path, entry: dict) -> dict:
    """One evaluated run as the page needs it (nats per image; seconds of training)."""
    r = row_of(path)
    return {"row": entry["row"], "seed": entry["seed"], "launch": launch, "epochs": r.epochs,
            "train_s": round(r.train_seconds, 1), "neg_elbo": r.neg_elbo, "nll": r.nll,
            "nll_sem": r.nll_sem, "k": r.k, "n_images": r.n_images, "k_gap": r.k_gap,
            "ess_median": r.ess_median, "ess_p5": r.ess_p5, "active": r.active,
            "command": public(entry["command"], launch),
            "evaluate": public(entry["evaluate"], launch)}  # fmt: skip


def collect(dirs: list[str]) -> dict:
    """The launches in ``dirs`` (each a folder with its manifest.json) as the data the page is
    rendered from: each launch's command and machine, and each evaluated run's numbers."""
    data = {"units": "nll, nll_sem, neg_elbo, k_gap: nats per image; train_s: seconds of "
            "training; ess_*: samples", "launches": [], "runs": []}  # fmt: skip
    for d in map(Path, dirs):
        manifest = json.loads((d / "manifest.json").read_text())
        data["launches"].append({
            "name": d.name,
            "command": public(manifest.get("launch", "(not recorded)"), d.name),
            "where": describe_hardware(manifest["hardware"], manifest["jobs_at_once"]),
            "note": manifest.get("note") or "",
        })  # fmt: skip
        for key, entry in manifest["runs"].items():
            if (d / key / "evaluation.json").exists():
                data["runs"].append(run_record(d.name, d / key, entry))
    if not data["runs"]:
        raise SystemExit("no evaluated run in " + ", ".join(dirs))
    data["runs"] = sort_runs(data["runs"], [launch["name"] for launch in data["launches"]])
    return {**data, **summaries(data["runs"])}


def sort_runs(runs: list[dict], launches: list[str]) -> list[dict]:
    """In the table's order: by row, then launch (as given), then seed."""
    return sorted(runs, key=lambda r: (list(ROWS).index(r["row"]), launches.index(r["launch"]),
                                       r["seed"]))  # fmt: skip


HEADER = [
    "# The MNIST likelihood table",
    "",
    "<!-- made by `python -m tools.experiments.likelihood_table write DIR...` from the run "
    "folders that its `launch` trained and evaluated, or `... render` from "
    "docs/likelihoods.json (docs/contributing.md) -->",
    "",
    "The published models of Burda et al. (2016) and Tomczak & Welling (2018), trained by "
    "vaelab for minutes instead of days, and their test negative log-likelihood beside the "
    "published one.",
    "",
    "Dynamically binarized MNIST: every training image is re-binarized each time it is "
    "used; the 400 validation and 10,000 test images are binarized once (seed 0). Trained "
    "on 59,600 images (Burda et al.'s split), batch 100, Adam, cosine learning-rate "
    "decay. Test NLL: importance-sampled with K samples from q(z|x) on the first N test "
    "images, nats per image (summed over the 784 pixels, mean over images); ± is the "
    "standard error over images (their spread / sqrt(N)), not Monte Carlo error. The gap is "
    "vaelab's NLL minus the published one, in nats per image.",
]


def label(run: dict) -> str:
    return f"{run['nll']:.2f} ± {run['nll_sem']:.2f}" if run["nll"] is not None else ""


def headline_lines(runs: list[dict], launches: dict) -> list[str]:
    """Each row's best run against its published number; where each launch ran, said once."""
    lines = ["", "Where each launch ran:", ""]
    lines += [f"- `{n}`: {launch['where']}" for n, launch in launches.items()]
    lines += ["", "| model | test NLL ± s.e. (nats) | published (nats) | gap (nats) | trained "
              "| updates, % of published |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name in dict.fromkeys(r["row"] for r in runs):
        mine = [r for r in runs if r["row"] == name and r["nll"] is not None]
        if not mine:
            continue
        r = min(mine, key=lambda r: (r["nll"], r["train_s"]))  # a tie: the shorter run
        pub = ROWS[name].published
        gap = f"{r['nll'] - pub:+.2f}" if pub is not None else ""
        lines.append(f"| {ROWS[name].label} | {label(r)} | {'' if pub is None else pub} | {gap} "
                     f"| {r['epochs']} epochs, {r['train_s'] / 60:.1f} min (`{r['launch']}`) | "
                     f"{share(r['epochs'], ROWS[name].updates)} |")  # fmt: skip
    lines += ["", "Each row's best run; every run is in the full table below. Updates: parameter "
              "updates (batches) of vaelab's run against those of the published one (Burda et "
              "al.: 3,280 epochs at batch 20; Tomczak & Welling's code: at most 2,000 epochs at "
              "batch 100, stopped early)."]  # fmt: skip
    return lines


FIGURE = [
    "",
    "![test NLL against training time](figures/likelihood-vs-time.png)",
    "",
    "*Test NLL (K = 5000) against training time, one point per run: squares ran on the GPU "
    "(several runs sharing it), circles on the CPU; each panel has its own time axis. Dotted: "
    "the published numbers, reached after far more updates (see the table).*",
]


def group_runs(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """The runs of one row in one launch (its seeds), keyed (row, launch)."""
    by_launch: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        by_launch.setdefault((r["row"], r["launch"]), []).append(r)
    return by_launch


def summaries(runs: list[dict]) -> dict:
    """From the runs' unrounded numbers (nats per image), saved with them so that a page
    rendered again from the saved data prints the same digits: each row's mean and sd over its
    seeds in a launch, and within each launch each row's mean minus the 1-layer VAE's."""
    seeds, relative = [], []
    for (name, launch), rs in group_runs(runs).items():
        nlls = [r["nll"] for r in rs if r["nll"] is not None]
        if len(nlls) >= 2:
            seeds.append({"row": name, "launch": launch, "mean": statistics.mean(nlls),
                          "sd": statistics.stdev(nlls)})  # fmt: skip
    means = {(n, p): statistics.mean(r["nll"] for r in rs if r["nll"] is not None)
             for (n, p), rs in group_runs(runs).items()}  # fmt: skip
    for launch in dict.fromkeys(p for (_, p) in means):
        base = means.get(("vae1", launch))
        if base is None:
            continue
        others = {n: m - base for (n, p), m in means.items() if p == launch and n != "vae1"}
        if others:
            relative.append({"launch": launch, "vae1": base, "minus_vae1": others})
    return {"seeds": seeds, "relative": relative}


def seed_lines(data: dict, by_launch: dict) -> list[str]:
    """Rows with several seeds in one launch: the mean and spread over seeds."""
    lines = ["", "## Over seeds", "",
             "| model | launch | seeds | epochs | test NLL (nats): mean (sd over seeds) "
             "| active units |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s in data["seeds"]:
        rs = by_launch[(s["row"], s["launch"])]
        lines.append(
            f"| {ROWS[s['row']].label} | `{s['launch']}` | {len(rs)} | "
            f"{', '.join(str(r['epochs']) for r in rs)} | {s['mean']:.2f} ({s['sd']:.2f}) | "
            f"{', '.join(r['active'] or '' for r in rs)} |"
        )
    return lines


def relative_lines(data: dict) -> list[str]:
    """Within each launch, each row's NLL minus the 1-layer VAE's, beside the published
    difference."""
    lines = ["", "## Rows against each other, at equal training", "",
             "Within one launch every row trained for the same wall-clock budget on the same "
             "machine. The difference of each row's NLL from the 1-layer VAE's in the same "
             "launch (mean over seeds), beside the same difference in the published tables, in "
             "nats per image:", ""]  # fmt: skip
    pub_base = ROWS["vae1"].published
    for rel in data["relative"]:
        parts = []
        for n, diff in rel["minus_vae1"].items():
            pub = ROWS[n].published
            same_paper = ROWS[n].source.split(",")[0] == ROWS["vae1"].source.split(",")[0]
            theirs = f"{pub - pub_base:+.2f}" if pub is not None and same_paper else "n/a"
            parts.append(f"{n} {diff:+.2f} (published {theirs})")
        lines.append(f"- `{rel['launch']}` (VAE {rel['vae1']:.2f} nats): " + "; ".join(parts))
    return lines


VAMP_START = (
    "The VampPrior's pseudo-inputs start near 0, like the paper's N(0.05, 0.01); starting them "
    "at training images instead trained worse in a 5-epoch check (117.9 against 113.7 nats "
    "per image)."
)


def published_lines(runs: list[dict]) -> list[str]:
    """The rows' short names (used below) and the published numbers they are set against."""
    lines = ["", "## The rows and their published numbers", "",
             "| row | model | published NLL (nats) | source |", "|---|---|---|---|"]  # fmt: skip
    for name in dict.fromkeys(r["row"] for r in runs):
        row = ROWS[name]
        pub = "" if row.published is None else row.published
        lines.append(f"| `{name}` | {row.label} | {pub} | {row.source} |")
    return [*lines, "", VAMP_START]


def run_name(run: dict) -> str:
    return f"`{run['row']}` s{run['seed']}, `{run['launch']}`"


def detail_lines(runs: list[dict]) -> list[str]:
    """Every run, in a collapsed block: its training, then its estimates."""
    lines = ["", '<details markdown="1">', "<summary>Every run: training and estimates</summary>",
             "", "| run: row, seed, launch | epochs | train time (min) | parameter updates: ours / "
             "published |", "|---|---|---|---|"]  # fmt: skip
    for r in runs:
        share = updates(r["epochs"], ROWS[r["row"]].updates)
        lines.append(f"| {run_name(r)} | {r['epochs']} | "
                     f"{r['train_s'] / 60:.1f} | {share} |")  # fmt: skip
    sizes = {(r["k"], r["n_images"]) for r in runs if r["nll"] is not None}
    (k, n), *others = sorted(sizes) or [(None, None)]
    said = f", K = {k}, {n} images" if not others else " (K, images)"  # once, where all agree
    lines += ["", f"| run: row, seed, launch | test -ELBO (nats) | test NLL ± s.e. (nats){said} "
              "| K/5 minus K (nats) | ESS median / p5 | active units |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        k_gap = "" if r["k_gap"] is None else f"{r['k_gap']:+.3f}"
        ess = "" if r["ess_median"] is None else f"{r['ess_median']:.0f} / {r['ess_p5']:.0f}"
        estimate = label(r) + (f" ({r['k']}, {r['n_images']})" if others else "")
        lines.append(f"| {run_name(r)} | {r['neg_elbo']:.2f} | "
                     f"{estimate} | {k_gap} | {ess} | {r['active'] or ''} |")  # fmt: skip
    lines += ["", "K/5 minus K: the estimate with the first K/5 samples minus the one with all K "
              "(how far the estimate still moves with K). ESS: the effective sample size of the "
              "K importance weights, in samples (median and 5th percentile over images).", "",
              "</details>"]  # fmt: skip
    return lines


def command_lines(runs: list[dict], launches: dict) -> list[str]:
    """The commands of every launch and run, in a collapsed block."""
    lines = ["", "## Commands", "", '<details markdown="1">',
             "<summary>The launches and each run's train and evaluate commands</summary>", "",
             "Run folders are written `runs/LAUNCH/...` and the MNIST folder `DATA_DIR`.", "",
             "The launches:", ""]  # fmt: skip
    for n, launch in launches.items():
        note = f" ({launch['note']})" if launch["note"] else ""
        lines.append(f"- `{n}`: `{launch['command']}`, on {launch['where']}{note}")
    lines += ["", "Each run:", ""]
    for r in runs:
        lines.append(f"- {r['row']} s{r['seed']} (`{r['launch']}`): `{r['command']}`; then "
                     f"`{r['evaluate']}`")  # fmt: skip
    lines += ["", "</details>"]
    return lines


def figure(runs: list[dict], launches: dict, fig_dir: Path) -> Path:
    """NLL against training time: one panel per kind of machine, squares for GPU runs."""
    where = {n: ("GPU" if "GPU" in launch["where"] else "CPU") for n, launch in launches.items()}
    crows = [CompareRow(name=f"{r['row']} s{r['seed']}", model="", pixels="", epochs=r["epochs"],
                 train_seconds=r["train_s"], kind="likelihood", nll=r["nll"],
                 nll_sem=r["nll_sem"]) for r in runs]  # fmt: skip
    kind = {id(c): where[r["launch"]] for c, r in zip(crows, runs, strict=True)}
    panels = {"GPU": "on the GPU (several runs sharing it)", "CPU": "on the CPU"}
    published = [(n, ROWS[n].published) for n in dict.fromkeys(r["row"] for r in runs)
                 if ROWS[n].published is not None]  # fmt: skip
    return nll_against_time(crows, fig_dir / "likelihood-vs-time.png", published,
                            group=lambda c: c.name.split(" ")[0],
                            marker=lambda c: "s" if kind[id(c)] == "GPU" else "o",
                            panel=lambda c: panels[kind[id(c)]])  # fmt: skip


def render(data: dict, doc: Path, fig_dir: Path) -> None:
    """The page (``doc``) and its figure (in ``fig_dir``) from ``collect``'s data."""
    launches = {launch["name"]: launch for launch in data["launches"]}
    runs = sort_runs(data["runs"], list(launches))
    by_launch = group_runs(runs)
    fig = figure(runs, launches, fig_dir)
    picture = [line.replace("figures/likelihood-vs-time.png",
                            os.path.relpath(fig, doc.parent)) for line in FIGURE]  # fmt: skip
    lines = [*HEADER, *headline_lines(runs, launches), *picture, *detail_lines(runs),
             *seed_lines(data, by_launch), *relative_lines(data), *published_lines(runs),
             *command_lines(runs, launches)]  # fmt: skip
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n")
    print(f"wrote {doc} and {fig}")


def write(args) -> None:
    """The page from the launches' folders; their numbers are saved beside it for `render`."""
    data = collect(args.dirs)
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    (doc.parent / DATA).write_text(json.dumps(data, indent=1) + "\n")
    render(data, doc, Path(args.figures or doc.parent / "figures"))


def render_saved(args) -> None:
    doc = Path(args.doc)
    saved = Path(args.data or doc.parent / DATA)
    if not saved.exists():
        raise SystemExit(f"no saved numbers at {saved}: run `write DIR...` first")
    render(json.loads(saved.read_text()), doc, Path(args.figures or doc.parent / "figures"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every row briefly, to check the script")
    ap.add_argument(
        "--quick-dir",
        default=str(ROOT / "runs" / "table-quick"),
        help="--quick: run folders and table go here",
    )
    sub = ap.add_subparsers(dest="cmd")
    la = sub.add_parser("launch", help="train and evaluate rows")
    la.add_argument("--out-dir", default=str(ROOT / "runs" / "table"))
    la.add_argument(
        "--rows", nargs="+", help=f"default all: {' '.join(ROWS)}; ROW@1,2 for seeds of its own"
    )
    la.add_argument("--seeds", nargs="+", type=int, default=[0])
    la.add_argument("--epochs", type=int, default=100)
    la.add_argument("--budget", type=float, help="seconds of training per run (calibrated)")
    la.add_argument("--max-epochs", type=int)
    la.add_argument("--deadline", type=float, help="stop training (SIGINT) after this many s")
    la.add_argument("--jobs", type=int, help="runs at once (default: all)")
    la.add_argument("--k", type=int, default=5000)
    la.add_argument("--nll-images", type=int)
    la.add_argument("--train-limit", type=int)
    la.add_argument("--device", default="auto")
    la.add_argument("--data-dir")
    la.add_argument("--note", help="a remark on the machine, kept in the manifest")
    wr = sub.add_parser("write", help="the table and figure from launched runs")
    wr.add_argument("dirs", nargs="+")
    wr.add_argument("--doc", default=str(ROOT / "docs" / "likelihoods.md"))
    wr.add_argument("--figures", help="default: figures/ beside the doc")
    re_ = sub.add_parser("render", help=f"the table and figure again from the saved {DATA}")
    re_.add_argument("--data", help=f"default: {DATA} beside the doc")
    re_.add_argument("--doc", default=str(ROOT / "docs" / "likelihoods.md"))
    re_.add_argument("--figures", help="default: figures/ beside the doc")
    args = ap.parse_args()
    if args.quick:
        out = Path(args.quick_dir)
        launch(la.parse_args(["--out-dir", str(out), "--epochs", "1", "--train-limit", "3000",
                              "--k", "50", "--nll-images", "300", "--jobs", "2"]))  # fmt: skip
        write(wr.parse_args([str(out), "--doc", str(out / "likelihoods.md")]))
    elif args.cmd == "launch":
        launch(args)
    elif args.cmd == "write":
        write(args)
    elif args.cmd == "render":
        render_saved(args)
    else:
        ap.print_help()


if __name__ == "__main__":
    main()
