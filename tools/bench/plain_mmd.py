"""vaelab's MMD-VAE (``infovae``, alpha = 1) and WAE-MMD (``wae``) against plain PyTorch
versions written from the papers, trained side by side.

    python -m tools.bench.plain_mmd --epochs 5 --train-limit 10000

Plain versions: a few dozen lines from Zhao et al. (MMD-VAE: recon + lambda MMD^2, z ~ q(z|x))
and Tolstikhin et al. (WAE-MMD, Algorithm 2: cost + lambda MMD^2, deterministic codes), with
their own kernels and U-statistic (no vaelab code but the data loading and, for vaelab's side,
``vaelab.train.train``).  Same data (the first N training images), nets (784-400-d MLPs, ReLU),
seed, batch size (100), Adam (lr 1e-3) and epochs.  MMD-VAE: dynamically binarized pixels,
Bernoulli decoder, d = 20, lambda = 100, RBF k = exp(-||a - b||^2 / (2 d)); WAE: grayscale
pixels, squared-error cost, d = 8, lambda = 10, IMQ summed over C x {.1, ..., 10}, C = 2 d.
Both are scored by the same plain metrics on the validation images: the reconstruction
(MMD-VAE: -log p(x|z) in nats per image, one z ~ q(z|x); WAE: squared error per image, summed
over pixels) and the U-statistic MMD^2 of the first 1000 validation codes against 1000 prior
draws, seed 0, in the kernel's units.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import vaelab
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.train import TrainConfig, train

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def kernel(a, b, kind):
    sq = (a[:, None] - b[None]).pow(2).sum(-1)
    c = 2.0 * a.shape[1]  # 2 d sigma_z^2, sigma_z = 1
    if kind == "rbf":
        return torch.exp(-sq / c)
    return sum(s * c / (s * c + sq) for s in SCALES)


def u_mmd2(a, b, kind):
    n, m = len(a), len(b)
    kaa, kbb = kernel(a, a, kind), kernel(b, b, kind)
    within = (kaa.sum() - kaa.trace()) / (n * (n - 1)) + (kbb.sum() - kbb.trace()) / (m * (m - 1))
    return within - 2 * kernel(a, b, kind).mean()


class Plain(nn.Module):
    """784-400-(2)d encoder, d-400-784 decoder; ``stochastic``: q(z|x) Gaussian (MMD-VAE)."""

    def __init__(self, d, stochastic):
        super().__init__()
        self.d, self.stochastic = d, stochastic
        out = 2 * d if stochastic else d
        self.enc = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, out))
        self.dec = nn.Sequential(nn.Linear(d, 400), nn.ReLU(), nn.Linear(400, 784))

    def codes(self, x, generator=None):
        h = self.enc(x)
        if not self.stochastic:
            return h
        mean, log_var = h.chunk(2, -1)
        eps = torch.randn(mean.shape, generator=generator)
        return mean + (0.5 * log_var).exp() * eps

    def recon(self, x, z):
        out = self.dec(z)
        if self.stochastic:  # Bernoulli on logits: nats per image
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        return (x - out).pow(2).sum(-1)  # the WAE's squared-error cost


def plain_train(model, x, binarize, lam, kind, cfg):
    torch.manual_seed(cfg.seed)
    with torch.no_grad():  # the decoder starts at the mean image, as in vaelab
        p = x.mean(0).clamp(1e-4, 1 - 1e-4)
        bias = torch.log(p) - torch.log1p(-p) if model.stochastic else x.mean(0)
        model.dec[-1].bias.copy_(bias)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            xb = torch.bernoulli(x[idx], generator=g) if binarize else x[idx]
            z = model.codes(xb)
            loss = model.recon(xb, z).mean() + lam * u_mmd2(z, torch.randn_like(z), kind)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def scores(codes, recon, x, kind):
    """Validation reconstruction (mean per image) and MMD^2 of the first 1000 codes."""
    g = torch.Generator().manual_seed(0)
    rec = torch.cat([recon(xb, codes(xb, g)) for xb in x.split(1000)]).mean().item()
    z = codes(x[:1000], g)
    return rec, u_mmd2(z, torch.randn(z.shape, generator=g), kind).item()


def compare(name, cfg_model, plain, binarize, args):
    data_cfg = DataConfig(binarize="dynamic" if binarize else "none", train_limit=args.train_limit)
    data = load_splits(data_cfg)
    cfg = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", name, cfg_model, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    lam, kind = (cfg_model["lambd"], "rbf") if binarize else (cfg_model["mmd_weight"], "imq")
    plain_s = plain_train(plain, data["train"].x, binarize, lam, kind, cfg)
    val = data["val"].x
    if binarize:  # vaelab's q(z|x), drawn with the same generator
        q = ours.encode

        def ours_codes(xb, g):
            d = q(xb)
            return d.mean + d.scale * torch.randn(d.mean.shape, generator=g)

        def ours_recon(xb, z):
            return -ours.decode(z).log_prob(xb)
    else:

        def ours_codes(xb, g):
            return ours.encoder(xb)

        def ours_recon(xb, z):
            return (xb - ours.decoder(z)).pow(2).sum(-1)

    a = scores(ours_codes, ours_recon, val, kind)
    b = scores(plain.codes, plain.recon, val, kind)
    unit = "nats per image" if binarize else "squared error per image"
    print(
        f"{name}: {args.epochs} epochs on the first {args.train_limit} training images, seed "
        f"{args.seed}; validation reconstruction ({unit}) vaelab {a[0]:.2f} ({ours_s:.0f} s), "
        f"plain {b[0]:.2f} ({plain_s:.0f} s), difference {a[0] - b[0]:+.2f}; validation "
        f"MMD^2 ({kind}, U-statistic, 1000 codes, kernel units) vaelab {a[1]:.5f}, "
        f"plain {b[1]:.5f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", choices=["infovae", "wae", "both"], default="both")
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    if args.model in ("infovae", "both"):
        torch.manual_seed(args.seed)  # the plain model's initial weights
        compare("infovae", {"alpha": 1.0, "lambd": 100.0}, Plain(20, True), True, args)
    if args.model in ("wae", "both"):
        torch.manual_seed(args.seed)
        compare("wae", {"mmd_weight": 10.0, "likelihood": "gaussian"}, Plain(8, False), False, args)


if __name__ == "__main__":
    main()
