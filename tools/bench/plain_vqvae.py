"""vaelab's VQ-VAE against a plain PyTorch VQ-VAE (EMA codebook), trained side by side.

    python -m tools.bench.plain_vqvae --epochs 3 --train-limit 10000 --val-size 10000

The plain version is written from van den Oord et al. (2017) and its appendix A.1 (no vaelab code
but the data loading): the same nets, codebook (K = 128, D = 16), EMA decay, Laplace smoothing,
dead-code rule, data (dynamically binarized MNIST), batch size, Adam rate, seed and epochs as
``vaelab train --model vqvae``.  Both are scored on the validation images (binarized once, fixed
seed) by the same plain numbers: the reconstruction -log p(x|z_q) in nats per image and the
codebook's perplexity (exp of the entropy of the mean code distribution).  vaelab's side also
reports its PixelCNN prior's -log p(codes) in bits per grid position and the bound -ELBO =
recon + kl in nats per image.  vaelab's prior trains alongside (``vq_epochs`` = epochs), on
parameters of its own, so the VQ-VAEs see the same updates.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import vaelab
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.train import TrainConfig, train

K, D, GAMMA, EPS, DEAD = 128, 16, 0.99, 1e-5, 1.0


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1))  # fmt: skip

    def forward(self, x):
        return x + self.body(x)


class PlainVQVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1),
                                 Res(64), Res(64), nn.ReLU(), nn.Conv2d(64, D, 1))  # fmt: skip
        self.dec = nn.Sequential(nn.Conv2d(D, 64, 3, padding=1), Res(64), Res(64), nn.ReLU(),
                                 nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Flatten())  # fmt: skip
        self.register_buffer("e", torch.empty(K, D).uniform_(-1 / K, 1 / K))
        self.register_buffer("N", torch.zeros(K))
        self.register_buffer("m", torch.zeros(K, D))

    def forward(self, x):
        ze = self.enc(x.view(-1, 1, 28, 28)).permute(0, 2, 3, 1)  # (B, 7, 7, D)
        flat = ze.reshape(-1, D)
        idx = torch.cdist(flat.detach(), self.e).argmin(1)
        e = self.e[idx].view_as(ze)
        zq = ze + (e - ze).detach()
        recon = F.binary_cross_entropy_with_logits(
            self.dec(zq.permute(0, 3, 1, 2)), x, reduction="none"
        ).sum(1)
        commit = 0.25 * (ze - e).square().sum((1, 2, 3))
        return recon, commit, flat.detach(), idx

    @torch.no_grad()
    def ema(self, flat, idx):
        onehot = F.one_hot(idx, K).float()
        self.N.mul_(GAMMA).add_((1 - GAMMA) * onehot.sum(0))
        self.m.mul_(GAMMA).add_((1 - GAMMA) * onehot.T @ flat)
        n = self.N.sum()
        self.e.copy_(self.m / ((self.N + EPS) / (n + K * EPS) * n)[:, None])
        dead = self.N < DEAD
        pick = flat[torch.randint(len(flat), (K,))]
        self.e.copy_(torch.where(dead[:, None], pick, self.e))
        self.m.copy_(torch.where(dead[:, None], pick, self.m))
        self.N.copy_(torch.where(dead, torch.ones_like(self.N), self.N))


def plain_train(model, x, cfg):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            xb = torch.bernoulli(x[idx], generator=g)
            recon, commit, flat, codes = model(xb)
            opt.zero_grad()
            (recon + commit).mean().backward()
            opt.step()
            model.ema(flat, codes)
    return time.perf_counter() - t0


@torch.no_grad()
def score(recon_and_codes, x):
    """Mean -log p(x|z_q) (nats per image) and the codebook's perplexity over x."""
    recon, counts = 0.0, torch.zeros(K)
    for xb in x.split(1000):
        r, codes = recon_and_codes(xb)
        recon += r.sum().item()
        counts += torch.bincount(codes.reshape(-1), minlength=K)
    p = counts / counts.sum()
    return recon / len(x), math.exp(-(p * p.clamp_min(1e-30).log()).sum().item())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=10_000)
    ap.add_argument("--val-size", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    data_cfg = DataConfig(binarize="dynamic", train_limit=args.train_limit, val_size=args.val_size)
    data = load_splits(data_cfg)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", "vqvae", {"vq_epochs": args.epochs}, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    torch.manual_seed(args.seed)  # the plain model's initial weights
    plain = PlainVQVAE()
    plain_s = plain_train(plain, data["train"].x, cfg)
    val = data["val"].x
    ours_r, ours_p = score(lambda xb: (ours.terms(xb)["recon"], ours.code_indices(xb)), val)
    plain_r, plain_p = score(lambda xb: (lambda o: (o[0], o[3]))(plain(xb)), val)
    diag = ours.diagnostics(val)
    bound = score_bound(ours, val)
    print(
        f"VQ-VAE (K={K}, D={D}, EMA), {args.epochs} epochs on the first {len(data['train'])} "
        f"training images, seed {args.seed}, validation: the last {len(val)} of the 60,000:\n"
        f"  reconstruction -log p(x|z_q), nats per image: vaelab {ours_r:.2f} ({ours_s:.0f} s "
        f"with its prior), plain {plain_r:.2f} ({plain_s:.0f} s), difference "
        f"{ours_r - plain_r:+.2f}\n"
        f"  codebook perplexity (codes): vaelab {ours_p:.1f}, plain {plain_p:.1f}\n"
        f"  vaelab's PixelCNN prior: {diag['prior_bits_per_code']:.3f} bits per grid position; "
        f"bound -ELBO = recon + kl {bound:.2f} nats per image"
    )


@torch.no_grad()
def score_bound(model, x):
    return torch.cat([model.terms(xb)["neg_elbo"] for xb in x.split(1000)]).mean().item()


if __name__ == "__main__":
    main()
