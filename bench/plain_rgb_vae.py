"""A plain PyTorch conv VAE on 64x64 RGB images (Gaussian p(x|z), learned scale), beside
vaelab's ``--preset conv --likelihood gaussian --scale learned --sigma 0.1`` on the same split.

    python scripts/make_shapes.py /tmp/shapes --n 6000
    python bench/plain_rgb_vae.py /tmp/shapes     # validation -ELBO and colour spread per epoch

The colour spread is the standard deviation over the three channels, averaged over pixels, of
the reconstructions at the encoder's mean (the data's own is printed beside it).
"""

import math
import sys
import time

import torch
from torch import nn

from vaelab.config import DataConfig
from vaelab.data import load_splits

torch.manual_seed(0)
s = load_splits(DataConfig(data=sys.argv[1]))
tr, va = s["train"].x.reshape(-1, 3, 64, 64), s["val"].x.reshape(-1, 3, 64, 64)
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
log_sigma = nn.Parameter(torch.tensor(math.log(0.1)))
opt = torch.optim.Adam([*enc.parameters(), *dec.parameters(), log_sigma], lr=1e-3)


def loss_fn(x):
    mu, lv = enc(x).chunk(2, -1)
    z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
    m = dec(z)
    nll = (0.5 * ((x - m) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)).sum(
        (1, 2, 3)
    )
    kl = 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(1)
    return (nll + kl).mean(), m


for epoch in range(20):
    t0 = time.time()
    perm = torch.randperm(len(tr))
    for i in range(0, len(tr), 128):
        loss, _ = loss_fn(tr[perm[i : i + 128]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        vl, _ = loss_fn(va)
        mu, _ = enc(va[:200]).chunk(2, -1)
        r = dec(mu)
    print(
        f"epoch {epoch + 1} val -ELBO {vl.item():.1f} colour spread recon "
        f"{r.std(1).mean():.4f} data {va[:200].std(1).mean():.4f} {time.time() - t0:.1f}s",
        flush=True,
    )
