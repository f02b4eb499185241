"""vaelab's beta-TCVAE against a plain PyTorch one written from Chen et al. (2018).

    python -m tools.bench.plain_tcvae --epochs 5 --train-limit 20000 --beta 6

Both have the default nets (784-400-40 encoder, 20-400-784 decoder, ReLU, Bernoulli logits),
train with the same data (dynamically binarized MNIST, the first ``--train-limit`` training
images), batch size, Adam, seed and epochs, and are scored by the same plain numbers on the
validation images (binarized once) in batches of 1000: the negative ELBO (closed-form KL, one
z per image) and the total correlation estimated by minibatch-weighted sampling, each side
with its own estimator code.  The plain side writes the paper's log q(z) ~ logsumexp_j
log q(z|n_j) - log(N M) (appendix C.1) literally, so its TC carries (D - 1) log N more than
vaelab's batch mean 1/M; both are printed.
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

LOG2PI = math.log(2 * math.pi)


def log_normal(z, mean, log_var):  # per unit, no sum
    return -0.5 * ((z - mean) ** 2 / log_var.exp() + log_var + LOG2PI)


class PlainTCVAE(nn.Module):
    def __init__(self, d=20):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 2 * d))
        self.dec = nn.Sequential(nn.Linear(d, 400), nn.ReLU(), nn.Linear(400, 784))

    def parts(self, x, n):
        """recon, closed-form KL, MI, TC, dimKL per image (eq. 2), q(z) by the paper's MWS."""
        m, lv = self.enc(x).chunk(2, -1)
        z = m + (0.5 * lv).exp() * torch.randn_like(m)
        recon = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (m**2 + lv.exp() - 1 - lv).sum(-1)
        mat = log_normal(z[:, None], m[None], lv[None])  # (M, M, D): log q(z_i,d | n_j)
        log_nm = math.log(n * len(x))
        log_qz = torch.logsumexp(mat.sum(2), 1) - log_nm
        log_prod = (torch.logsumexp(mat, 1) - log_nm).sum(1)
        log_qzx = log_normal(z, m, lv).sum(1)
        log_pz = log_normal(z, 0 * z, 0 * z).sum(1)
        return recon, kl, log_qzx - log_qz, log_qz - log_prod, log_prod - log_pz


def plain_train(model, x, cfg, beta):
    torch.manual_seed(cfg.seed)
    with torch.no_grad():  # the decoder starts at the logit of the mean image, as in vaelab
        p = x.mean(0).clamp(1e-4, 1 - 1e-4)
        model.dec[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            recon, _, mi, tc, dim_kl = model.parts(torch.bernoulli(x[idx], generator=g), len(x))
            loss = (recon + mi + beta * tc + dim_kl).mean()  # eq. 4, alpha = gamma = 1
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def score(fn, x):
    torch.manual_seed(0)
    rows = [fn(xb) for xb in x.split(1000)]
    return [torch.cat(col).mean().item() for col in zip(*rows, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-limit", type=int, default=20000)
    ap.add_argument("--beta", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    data_cfg = DataConfig(binarize="dynamic", train_limit=args.train_limit)
    data = load_splits(data_cfg)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed)
    x, val = data["train"].x, data["val"].x
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", "tcvae", {"beta": args.beta}, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    torch.manual_seed(args.seed)  # the plain model's initial weights
    plain = PlainTCVAE()
    t0 = time.perf_counter()
    plain_train(plain, x, cfg, args.beta)
    plain_s = time.perf_counter() - t0
    ours_nelbo, ours_tc = score(lambda b: (ours.terms(b)[k] for k in ("neg_elbo", "tc")), val)
    n = len(x)
    plain_nelbo, plain_tc = score(lambda b: (lambda p: (p[0] + p[1], p[3]))(plain.parts(b, n)), val)
    shift = 19 * math.log(n)  # (D - 1) log N
    print(
        f"beta-TCVAE, beta {args.beta:g}, MWS, {args.epochs} epochs on the first {n} training "
        f"images, seed {args.seed}; validation (10,000 images, batches of 1000), nats per image:\n"
        f"  -ELBO: vaelab {ours_nelbo:.2f} ({ours_s:.0f} s), plain {plain_nelbo:.2f} "
        f"({plain_s:.0f} s), difference {ours_nelbo - plain_nelbo:+.2f}\n"
        f"  TC:    vaelab {ours_tc:.2f}, plain {plain_tc:.2f} with the paper's 1/(NM) weights, "
        f"{plain_tc - shift:.2f} without their (D-1) log N = {shift:.2f}"
    )


if __name__ == "__main__":
    main()
