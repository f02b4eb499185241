"""Train the small 2-D VAE that the Explorer page shows, and keep it with the docs.

    nice -n 15 python -m tools.docs.explorer_model [--epochs 60] [--out docs/assets/explorer-vae]

A VAE with a 2-D latent space and one hidden layer of 64 units in its MLP encoder and decoder
(Bernoulli p(x|z), the defaults otherwise), trained on MNIST with one CPU thread (its time is
printed, and docs/explorer.md states it).  Only its config.json and best.safetensors (some
100,000 float32 weights) are kept: the site build
(tools/docs/build_site.py) makes the explorer page from them with ``vaelab explore``, so the page
needs no training and works offline on any static host.  Run it once; commit what it writes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import ROOT

OUT = ROOT / "docs" / "assets" / "explorer-vae"
KEEP = ("config.json", "best.safetensors")
SETTINGS = ["--model", "vae", "--latent-dim", "2", "--hidden", "64", "--seed", "0"]


def train(out: Path, epochs: int) -> float:
    """Train into a temporary run folder, copy the kept files to ``out``; returns seconds."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "explorer-vae"
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "vaelab", "train", *SETTINGS, "--epochs", str(epochs),
               "--out", str(run), "--no-progress", "--no-figures"]  # fmt: skip
        subprocess.run(cmd, check=True, env=env)
        seconds = time.perf_counter() - start
        out.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            shutil.copyfile(run / name, out / name)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60, help="passes over the training images")
    ap.add_argument("--out", default=str(OUT), help="folder for config.json and best.safetensors")
    args = ap.parse_args()
    seconds = train(Path(args.out), args.epochs)
    size = sum((Path(args.out) / n).stat().st_size for n in KEEP) / 1024
    print(f"trained in {seconds:.0f} s (wall clock, one thread); wrote {args.out} ({size:.0f} KiB)")


if __name__ == "__main__":
    main()
