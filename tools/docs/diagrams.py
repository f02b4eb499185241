"""Diagrams of the auto-encoder and the VAE for the tutorial, drawn with matplotlib.

    python -m tools.docs.diagrams [--out docs/figures]

writes ``diagram-ae.png`` and ``diagram-vae.png``; ``tools.docs.make_docs`` calls ``draw_all``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from tools import ROOT

NET = "#dbe9f6"  # networks
DATA = "#f2f2f2"  # images
LATENT = "#fde9c9"  # codes and distributions over them
NOISE = "#e8e1f3"  # the noise of the reparameterisation
LOSS = "#f9d6d5"  # loss terms


class Canvas:
    """A figure in data coordinates (x to the right, y up) with boxes and arrows."""

    def __init__(self, width: float, height: float, scale: float = 0.62):
        self.fig = Figure(figsize=(width * scale, height * scale))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.axis("off")

    def box(self, xy, wh, text, colour, *, trapezoid=None, size=10, bold=False):
        """A rounded box centred on ``xy`` = (x, y), ``wh`` = (width, height) in size;
        ``trapezoid`` 'narrow' / 'widen' draws a network that shrinks or grows its input;
        ``size`` is the text's, in points."""
        (x, y), (w, h) = xy, wh
        if trapezoid:
            d = 0.25 * h
            left, right = (0, d) if trapezoid == "narrow" else (d, 0)
            xs = [x - w / 2, x + w / 2, x + w / 2, x - w / 2]
            ys = [y - h / 2 + left, y - h / 2 + right, y + h / 2 - right, y + h / 2 - left]
            self.ax.fill(xs, ys, facecolor=colour, edgecolor="#333333", linewidth=1.2)
        else:
            self.ax.add_patch(
                FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                               boxstyle="round,pad=0.04,rounding_size=0.12",
                               facecolor=colour, edgecolor="#333333", linewidth=1.2)
            )  # fmt: skip
        self.ax.text(x, y, text, ha="center", va="center", fontsize=size,
                     fontweight="bold" if bold else "normal")  # fmt: skip

    def arrow(self, a, b, *, style="-|>", dashed=False, colour="#333333", text=None, rad=0.0):
        self.ax.add_patch(
            FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=14, linewidth=1.2,
                            color=colour, linestyle="--" if dashed else "-",
                            connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2)
        )  # fmt: skip
        if text:
            mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
            self.ax.text(mx, my + 0.18, text, ha="center", va="bottom", fontsize=8, color=colour)

    def note(self, x, y, text, size=9, colour="#333333", **kw):
        self.ax.text(x, y, text, ha="center", va="center", fontsize=size, color=colour, **kw)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(path, dpi=130, bbox_inches="tight", facecolor="white")
        return path


def draw_ae(path: Path) -> Path:
    c = Canvas(15, 5)
    y = 3.2
    c.box((1.2, y), (1.7, 1.4), "x\n784 pixels", DATA)
    c.box((4.0, y), (2.2, 2.2), "encoder f", NET, trapezoid="narrow")
    c.box((7.0, y), (1.8, 1.0), "z = f(x)\n20 numbers", LATENT, bold=True)
    c.box((10.0, y), (2.2, 2.2), "decoder g", NET, trapezoid="widen")
    c.box((13.2, y), (1.9, 1.4), "x̂ = g(z)\n784 pixels", DATA)
    for a, b in [(2.05, 2.9), (5.1, 6.1), (7.9, 8.9), (11.1, 12.25)]:
        c.arrow((a, y), (b, y))
    c.box((7.2, 0.8), (5.6, 0.8), "loss: reconstruction error of x̂ against x", LOSS)
    c.arrow((13.2, y - 0.75), (10.0, 0.95), dashed=True, colour="#a33", rad=-0.2)
    c.arrow((1.2, y - 0.75), (4.4, 0.95), dashed=True, colour="#a33", rad=0.2)
    c.note(7.0, 4.6, "the bottleneck: a lower-dimensional latent space", size=9, style="italic")
    return c.save(path)


def draw_vae(path: Path) -> Path:
    c = Canvas(17, 7.2)
    y = 4.6
    c.box((1.2, y), (1.7, 1.4), "x\n784 pixels", DATA)
    c.box((3.9, y), (2.0, 2.2), "encoder", NET, trapezoid="narrow")
    c.box((6.6, y + 0.65), (1.3, 0.75), "μ(x)", LATENT)
    c.box((6.6, y - 0.65), (1.3, 0.75), "log σ²(x)", LATENT)
    c.note(6.6, y + 1.55, "q(z | x) = N(μ, σ²)", size=9, style="italic")
    c.box((9.4, y - 2.3), (1.7, 0.8), "ε ~ N(0, I)", NOISE)
    c.box((9.4, y), (2.1, 1.0), "z = μ + σ ⊙ ε", LATENT, bold=True)
    c.box((12.3, y), (2.0, 2.2), "decoder", NET, trapezoid="widen")
    c.box((15.4, y), (2.2, 1.4), "p(x | z)\nBernoulli logits", DATA)
    c.arrow((2.05, y), (2.9, y))
    c.arrow((4.9, y + 0.3), (5.95, y + 0.65))
    c.arrow((4.9, y - 0.3), (5.95, y - 0.65))
    c.arrow((7.25, y + 0.65), (8.35, y + 0.2))
    c.arrow((7.25, y - 0.65), (8.35, y - 0.2))
    c.arrow((9.4, y - 1.9), (9.4, y - 0.5), text=None)
    c.note(10.75, y - 1.3, "noise from outside:\ngradients flow through μ, σ", size=8,
           colour="#555555")  # fmt: skip
    c.arrow((10.45, y), (11.3, y))
    c.arrow((13.3, y), (14.3, y))
    # the two loss terms
    c.box((14.2, 0.8), (5.0, 0.9), "reconstruction: −log p(x | z)", LOSS)
    c.box((5.2, 0.8), (4.6, 0.9), "KL( q(z | x) ‖ N(0, I) )", LOSS)
    c.arrow((15.4, y - 0.75), (15.0, 1.3), dashed=True, colour="#a33")
    c.arrow((1.2, y - 0.75), (12.6, 1.3), dashed=True, colour="#a33", rad=0.12)
    c.arrow((6.6, y - 1.05), (5.6, 1.3), dashed=True, colour="#a33")
    c.note(9.7, 0.8, "+", size=16)
    c.note(9.7, 0.05, "negative ELBO = reconstruction + KL (nats per image)", size=9,
           style="italic")  # fmt: skip
    c.note(12.3, y + 1.6, "at generation: z ~ N(0, I) → decoder", size=9, style="italic")
    return c.save(path)


def draw_all(out: Path) -> list[Path]:
    return [draw_ae(out / "diagram-ae.png"), draw_vae(out / "diagram-vae.png")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    for path in draw_all(Path(ap.parse_args().out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
