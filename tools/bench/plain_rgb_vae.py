"""A plain PyTorch conv VAE on 64x64 RGB images (Gaussian p(x|z), learned scale), beside
vaelab's ``--preset conv --likelihood gaussian --scale learned --sigma 0.1`` on the same split.

    python -m tools.experiments.make_shapes /tmp/shapes --n 6000
    python -m tools.bench.plain_rgb_vae /tmp/shapes  # validation -ELBO, colour spread per epoch

The colour spread is the standard deviation over the three channels, averaged over pixels, of
the reconstructions at the encoder's mean (the data's own is printed beside it).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from vaelab.config import DataConfig
from vaelab.data import load_splits


def nets() -> tuple[nn.Module, nn.Module]:
    """Three stride-2 convolutions down to a 32-D code (mean and log-variance), and back."""
    enc = nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(64, 128, 4, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(128 * 64, 256),
        nn.ReLU(),
        nn.Linear(256, 64),
    )
    dec = nn.Sequential(
        nn.Linear(32, 256),
        nn.ReLU(),
        nn.Linear(256, 128 * 64),
        nn.ReLU(),
        nn.Unflatten(1, (128, 8, 8)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1),
    )
    return enc, dec


def loss_fn(enc, dec, log_sigma, x):
    """The negative ELBO, nats per image (mean over the batch), and the decoder's means."""
    mu, lv = enc(x).chunk(2, -1)
    z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
    m = dec(z)
    nll = (0.5 * ((x - m) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)).sum(
        (1, 2, 3)
    )
    kl = 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(1)
    return (nll + kl).mean(), m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a folder of 64x64 RGB images, one subfolder per class")
    args = ap.parse_args()
    torch.manual_seed(0)
    s = load_splits(DataConfig(data=args.folder))
    tr, va = s["train"].x.reshape(-1, 3, 64, 64), s["val"].x.reshape(-1, 3, 64, 64)
    enc, dec = nets()
    log_sigma = nn.Parameter(torch.tensor(math.log(0.1)))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters(), log_sigma], lr=1e-3)
    for epoch in range(20):
        t0 = time.time()
        perm = torch.randperm(len(tr))
        for i in range(0, len(tr), 128):
            loss, _ = loss_fn(enc, dec, log_sigma, tr[perm[i : i + 128]])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            vl, _ = loss_fn(enc, dec, log_sigma, va)
            mu, _ = enc(va[:200]).chunk(2, -1)
            r = dec(mu)
        print(
            f"epoch {epoch + 1} val -ELBO {vl.item():.1f} colour spread recon "
            f"{r.std(1).mean():.4f} data {va[:200].std(1).mean():.4f} {time.time() - t0:.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
