"""Write a small folder of coloured shapes, one subfolder per class, as PNG files.

    python -m tools.experiments.make_shapes data/shapes --n 3000 --size 64

Each image is a filled circle, square or triangle of random size, position and colour on a
dark background of random colour: a stand-in for "a folder of 64x64 RGB images" that anyone
can make offline, used by docs/own-images.md.  The same arguments give the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def draw(rng: np.random.Generator, shape: str, size: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    colour = tuple(int(v) for v in rng.integers(100, 256, 3))
    im = Image.new("RGB", (size, size), background)
    r = rng.uniform(0.15 * size, 0.35 * size)
    cx, cy = rng.uniform(r, size - r, 2)
    d = ImageDraw.Draw(im)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return im


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=3000, help="images in all (default 3000)")
    p.add_argument("--size", type=int, default=64, help="side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    for name in CLASSES:
        (args.out / name).mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        shape = CLASSES[i % len(CLASSES)]
        draw(rng, shape, args.size).save(args.out / shape / f"{i:05d}.png")
    print(f"{args.n} images of {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
