"""How much colour a run's reconstructions keep: the standard deviation of the C channels at a
pixel, averaged over pixels and the first ``--images`` test images, for the images and for
their reconstructions (0 for gray; docs/own-images.md uses it for the gray stage at 64x64).

    python -m tools.experiments.channel_spread RUN [RUN ...] [--images 300]
"""

from __future__ import annotations

import argparse

import torch

from vaelab.runs import Run


def spread(x: torch.Tensor, shape: tuple[int, int, int]) -> float:
    c, h, w = shape
    return x.reshape(len(x), c, h * w).std(1, correction=0).mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    for path in args.runs:
        run = Run.load(path)
        model = run.model("best")
        x = run.splits()["test"].x[: args.images]
        with torch.no_grad():
            recon = model.reconstruct(x)
        shape = tuple(model.image_shape)
        print(f"{path}: images {spread(x, shape):.3f}, reconstructions {spread(recon, shape):.3f}")


if __name__ == "__main__":
    main()
