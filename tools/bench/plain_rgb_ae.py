"""A plain PyTorch conv auto-encoder on RGB images, beside vaelab's on the same split.

    python -m tools.experiments.make_shapes /tmp/shapes --n 6000
    vaelab train --model ae --preset conv --likelihood gaussian --data /tmp/shapes \
        --image-size 32 --epochs 25 --out /tmp/runs/ae32
    python -m tools.bench.plain_rgb_ae /tmp/shapes  # prints the same validation error per epoch

The same nets as vaelab's ``--preset conv`` at 32x32 (two stride-2 convolutions, 256 hidden
units, a 32-D code), Adam at 1e-3, batches of 128, squared error summed over the 3,072 values,
on the split vaelab makes of the folder: a check that vaelab trains no worse than the few
dozen lines a user would write.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from vaelab.config import DataConfig
from vaelab.data import load_splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a folder of RGB images, one subfolder per class")
    args = ap.parse_args()
    torch.manual_seed(0)
    s = load_splits(DataConfig(data=args.folder, image_size=32))
    tr, va = s["train"].x.reshape(-1, 3, 32, 32), s["val"].x.reshape(-1, 3, 32, 32)
    enc = nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 64, 256), nn.ReLU(), nn.Linear(256, 32),
    )  # fmt: skip
    dec = nn.Sequential(
        nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 64 * 64), nn.ReLU(),
        nn.Unflatten(1, (64, 8, 8)), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1),
    )  # fmt: skip
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    for epoch in range(25):
        t0 = time.time()
        perm = torch.randperm(len(tr))
        for i in range(0, len(tr), 128):
            x = tr[perm[i : i + 128]]
            loss = ((dec(enc(x)) - x) ** 2).sum((1, 2, 3)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = ((dec(enc(va)) - va) ** 2).sum((1, 2, 3)).mean().item()
        print(f"epoch {epoch + 1}  val squared error {val:.2f} per image  {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
