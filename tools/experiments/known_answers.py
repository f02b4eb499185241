"""The disentanglement metrics on representations whose answers are known, as a Markdown
table (docs/disentanglement.md), and the time all six take on a convolutional VAE's codes of
64x64 images.

    OMP_NUM_THREADS=1 python -m tools.experiments.known_answers [--code-train N] [--timing]
        [--boosting]

The grid has 5 factors of 4, 5, 6, 8 and 10 values whose "images" are the factor indices
(``vaelab.disentangle.known``).  ``--timing``: the quick preset on a randomly initialised
``conv`` VAE encoder (latent size 10) of (1, 64, 64) images drawn from a dSprites-sized grid
(3 x 6 x 40 x 32 x 32) of squares, encoded 1,000 at a time without gradients.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vaelab.data.factors import FactorGrid
from vaelab.disentangle import DisentangleSettings
from vaelab.disentangle.known import IndexGrid, representations
from vaelab.disentangle.suite import disentanglement
from vaelab.models import build_model

COLUMNS = ["beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness",
           "dci_informativeness", "sap", "modularity", "explicitness"]  # fmt: skip


class Squares(FactorGrid):
    """dSprites-sized factors drawn as filled squares: brightness level (3), side (6),
    a stand-in for orientation that shifts the square's brightness (40), x and y (32)."""

    names = ("level", "side", "shade", "x", "y")
    sizes = (3, 6, 40, 32, 32)
    values = tuple(np.arange(s, dtype=np.float64) for s in sizes)
    shape = (1, 64, 64)
    title = "squares (3 x 6 x 40 x 32 x 32)"

    def render(self, factors: np.ndarray) -> np.ndarray:
        out = np.zeros((len(factors), 64, 64), dtype=np.uint8)
        for i, (level, side, shade, x, y) in enumerate(factors):
            s = 6 + 2 * side
            out[i, y : y + s, x : x + s] = 80 + 50 * level + shade
        return out.reshape(len(factors), -1)


def table(code_train: int) -> str:
    grid = IndexGrid((4, 5, 6, 8, 10))
    s = DisentangleSettings(
        beta_vae_train=1000, beta_vae_eval=500, factor_vae_variance=5000,
        factor_vae_train=1000, factor_vae_eval=500, code_train=code_train,
        code_test=code_train // 2,
    )  # fmt: skip
    lines = ["| representation | " + " | ".join(COLUMNS) + " | sap (tree) |",
             "|---" * (len(COLUMNS) + 2) + "|"]  # fmt: skip
    for name, rep in representations(grid, seed=0).items():
        v = disentanglement(grid, rep, s)["values"]
        tree = DisentangleSettings(**{**s.as_dict(), "sap_classifier": "tree"})
        v_tree = disentanglement(grid, rep, tree, only=("sap",))["values"]["sap"]
        cells = " | ".join(f"{v[c]:.3f}" for c in COLUMNS)
        lines.append(f"| {name} | {cells} | {v_tree:.3f} |")
    return "\n".join(lines)


def timing(boosting: bool) -> str:
    """All six metrics with the quick preset; the FactorVAE threshold is 0 so that its votes
    are counted (a random encoder's units vary by less than 0.05, which would skip them)."""
    torch.manual_seed(0)
    model = build_model("vae", encoder="conv", decoder="conv", image_shape=[1, 64, 64],
                        latent_dim=10).eval()  # fmt: skip

    @torch.no_grad()
    def represent(images: np.ndarray) -> np.ndarray:
        return model.code(torch.from_numpy(images).float() / 255.0).double().numpy()

    t0 = time.perf_counter()
    out = disentanglement(Squares(), represent, DisentangleSettings(factor_vae_threshold=0.0))
    total = time.perf_counter() - t0
    per = ", ".join(f"{k} {v:.1f} s" for k, v in out["seconds"].items())
    values = ", ".join(f"{k} {v:.3f}" for k, v in out["values"].items())
    text = f"quick preset, conv VAE (random init), 64x64: {total:.1f} s in all ({per})\n{values}"
    if boosting:
        gbt = DisentangleSettings(dci_model="boosting")
        slow = disentanglement(Squares(), represent, gbt, only=("dci",))
        text += f"\nDCI with gradient boosting instead: {slow['seconds']['dci']:.1f} s"
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code-train", type=int, default=10_000)
    p.add_argument("--timing", action="store_true", help="time the quick preset on a conv VAE")
    p.add_argument("--boosting", action="store_true", help="with --timing: DCI by boosting too")
    args = p.parse_args()
    print(table(args.code_train))
    if args.timing:
        print()
        print(timing(args.boosting))


if __name__ == "__main__":
    main()
