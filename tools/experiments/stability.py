"""Seed-to-seed stability of the paper-protocol VAE: train it with several seeds and report the
mean and spread of the test NLL and of the active units.

    python -m tools.experiments.stability --lr 3e-3 --seeds 0 1 2 3 4 --epochs 30 --images 2000

Each run: the 784-200-200-50 tanh VAE (preset ``burda``), dynamic binarization, the standard
50,000 training images, batch 100, Adam with a cosine schedule; then the importance-sampled
NLL with K importance samples on the first ``--images`` test images (binarized once, seed 0),
in nats per image.  Run folders go to ``--out`` (default runs/stability), kept for reuse.

Ablations: ``--lr-schedule burda`` (Burda et al.'s stages, shortened), ``--kl-warmup 10``,
``--adam-eps 1e-4`` (Burda et al.'s epsilon); ``--posterior-scale softplus`` reads
the encoder's second half as softplus(s) = sigma instead of log sigma^2, for these runs only
(``vaelab.distributions.scale_parameterisation``; vaelab's models parameterise log sigma^2, and
a run trained this way must be evaluated inside the same setting, as here).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from vaelab.config import DataConfig
from vaelab.distributions import SCALE_PARAMETERISATIONS, scale_parameterisation
from vaelab.evaluate import evaluate_run
from vaelab.runs import Run
from vaelab.settings import preset_config
from vaelab.train import TrainConfig, train


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--out", default="runs/stability")
    ap.add_argument("--adam-eps", type=float, default=TrainConfig.adam_eps)
    ap.add_argument(
        "--posterior-scale",
        choices=sorted(SCALE_PARAMETERISATIONS),
        default="log_var",
        help="how the encoder's scale output is read (vaelab.distributions.scale_parameterisation)",
    )
    ap.add_argument("--lr-schedule", default="cosine", help="cosine (default), burda, none, step")
    ap.add_argument("--kl-warmup", type=int, default=0, help="epochs of KL warm-up")
    return ap.parse_args()


def tag_of(args: argparse.Namespace) -> str:
    """What the run folders' names add for the settings that differ from the defaults."""
    tag = ""
    if args.lr_schedule != "cosine":
        tag += f"-{args.lr_schedule}"
    if args.kl_warmup:
        tag += f"-wu{args.kl_warmup}"
    if args.adam_eps != TrainConfig.adam_eps:
        tag += f"-eps{args.adam_eps:g}"
    if args.posterior_scale != "log_var":
        tag += f"-{args.posterior_scale}"
    return tag


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> tuple:
    """Train (or continue, or reuse) one seed's run and estimate its NLL: (seed, NLL, -ELBO,
    active units, training seconds)."""
    t0 = time.perf_counter()
    done = len(Run.load(out).metrics()) if (out / "config.json").exists() else 0
    if done == 0 and out.exists():
        raise SystemExit(f"{out} holds no finished epoch: remove it to start again")
    if done == 0:
        cfg = TrainConfig(epochs=args.epochs, batch_size=100, lr=args.lr,
                          lr_schedule=args.lr_schedule, seed=seed, adam_eps=args.adam_eps,
                          kl_warmup=args.kl_warmup)  # fmt: skip
        train(out, "vae", preset_config("burda"), cfg, DataConfig(binarize="dynamic"),
              progress=False)  # fmt: skip
    elif done < args.epochs:  # an interrupted run: continue it from its checkpoint
        train(out, resume=True, progress=False)
    train_s = sum(r["seconds"] for r in Run.load(out).metrics())
    r = evaluate_run(out, nll_samples=args.k, limit=args.images, progress=False, save=False)
    print(f"seed {seed}: NLL {r['nll']:.2f}  -ELBO {r['neg_elbo']:.2f}  active "
          f"{r['active_units']}/50  train {train_s:.0f} s  ({time.perf_counter() - t0:.0f} s)",
          flush=True)  # fmt: skip
    return seed, r["nll"], r["neg_elbo"], r["active_units"], train_s


def summary(args: argparse.Namespace, tag: str, rows: list[tuple]) -> str:
    nll = [r[1] for r in rows]
    au = [r[3] for r in rows]
    spread = statistics.stdev(nll) if len(nll) > 1 else float("nan")
    return (f"\nlr {args.lr:g}{tag}, {args.epochs} epochs, K={args.k} on {args.images} test "
            f"images, {len(rows)} seeds: NLL mean {statistics.mean(nll):.2f} (sd {spread:.2f}, "
            f"range {min(nll):.2f}-{max(nll):.2f}) nats per image; active units mean "
            f"{statistics.mean(au):.1f} (range {min(au)}-{max(au)}) of 50")  # fmt: skip


def main() -> None:
    args = parse_args()
    tag = tag_of(args)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with scale_parameterisation(args.posterior_scale):  # training and evaluation alike
        rows = [
            run_seed(args, seed, Path(args.out) / f"lr{args.lr:g}-e{args.epochs}{tag}-s{seed}")
            for seed in args.seeds
        ]
    print(summary(args, tag, rows))


if __name__ == "__main__":
    main()
