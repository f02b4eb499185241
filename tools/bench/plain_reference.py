"""vaelab's models against plain PyTorch versions of themselves, trained side by side.

    python -m tools.bench.plain_reference --model hvae --epochs 5
    python -m tools.bench.plain_reference --model vamp --epochs 5 --kl-warmup 2

Each plain version is a few dozen lines written straight from the paper (no vaelab code but the
data loading), trained with the same data, batch size, optimiser, seed and epochs as
``vaelab train``.  Both are scored by the same plain estimate: the negative ELBO on the
(dynamically binarized, fixed-seed) validation images, in nats per image, one z per image.
A vaelab model that does clearly worse than its plain twin has a bug.
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
from vaelab.settings import preset_config
from vaelab.train import TrainConfig, train

LOG2PI = math.log(2 * math.pi)


def gauss_logp(z, mean, log_var):
    return (-0.5 * ((z - mean) ** 2 / log_var.exp() + log_var + LOG2PI)).sum(-1)


def mlp(*sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


class PlainHVAE(nn.Module):
    """Burda et al. (2016), two stochastic layers: q(z1|x) q(z2|z1), p(z2) p(z1|z2) p(x|z1)."""

    def __init__(self):
        super().__init__()
        self.q1, self.q2 = mlp(784, 200, 200, 200), mlp(100, 100, 100, 100)
        self.p1, self.px = mlp(50, 100, 100, 200), mlp(100, 200, 200, 784)

    def output_layer(self):
        return self.px[-1]

    def neg_elbo(self, x):
        m1, lv1 = self.q1(x).chunk(2, -1)
        z1 = m1 + (0.5 * lv1).exp() * torch.randn_like(m1)
        m2, lv2 = self.q2(z1).chunk(2, -1)
        z2 = m2 + (0.5 * lv2).exp() * torch.randn_like(m2)
        pm1, plv1 = self.p1(z2).chunk(2, -1)
        logits = self.px(z1)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        log_p = gauss_logp(z1, pm1, plv1) + gauss_logp(z2, 0 * z2, 0 * z2)
        log_q = gauss_logp(z1, m1, lv1) + gauss_logp(z2, m2, lv2)
        return -(log_px + log_p - log_q), log_q - log_p


class PlainVamp(nn.Module):
    """Tomczak & Welling (2018): a 784-200-200-50 tanh VAE with p(z) = mean_k q(z | u_k)."""

    def __init__(self, k=500):
        super().__init__()
        self.enc, self.dec = mlp(784, 200, 200, 100), mlp(50, 200, 200, 784)
        self.u = nn.Parameter(0.05 + 0.01 * torch.randn(k, 784))

    def output_layer(self):
        return self.dec[-1]

    def neg_elbo(self, x):
        m, lv = self.enc(x).chunk(2, -1)
        z = m + (0.5 * lv).exp() * torch.randn_like(m)
        um, ulv = self.enc(F.hardtanh(self.u, 0, 1)).chunk(2, -1)  # (K, 50)
        log_pz = torch.logsumexp(gauss_logp(z[:, None], um, ulv), 1) - math.log(len(um))
        log_px = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = gauss_logp(z, m, lv) - log_pz
        return -log_px + kl, kl


def plain_train(model, data, cfg):
    torch.manual_seed(cfg.seed)
    x = data["train"].x
    with torch.no_grad():  # the decoder starts at the logit of the mean image, as in vaelab
        p = x.mean(0).clamp(1e-4, 1 - 1e-4)
        model.output_layer().bias.copy_(torch.log(p) - torch.log1p(-p))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            xb = torch.bernoulli(x[idx], generator=g)
            w = cfg.kl_weight(epoch)
            nelbo, kl = model.neg_elbo(xb)
            loss = (nelbo - (1 - w) * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def score(neg_elbo, x):
    torch.manual_seed(0)
    return torch.cat([neg_elbo(xb) for xb in x.split(1000)]).mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["hvae", "vamp"], default="hvae")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--kl-warmup", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    data_cfg = DataConfig(binarize="dynamic")
    data = load_splits(data_cfg)
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=100, lr=1e-3, kl_warmup=args.kl_warmup, seed=args.seed
    )
    torch.manual_seed(args.seed)  # the plain model's initial weights
    if args.model == "hvae":
        name, model_cfg, plain = "hvae", {}, PlainHVAE()
    else:
        model_cfg = preset_config("burda", "vamp")
        name, plain = "vae", PlainVamp()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", name, model_cfg, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    plain_s = plain_train(plain, data, cfg)
    val = data["val"].x
    ours_nelbo = score(lambda xb: ours.terms(xb)["neg_elbo"], val)
    plain_nelbo = score(lambda xb: plain.neg_elbo(xb)[0], val)
    print(
        f"{args.model}, {args.epochs} epochs, warm-up {args.kl_warmup}, seed {args.seed}: "
        f"validation -ELBO (nats per image) vaelab {ours_nelbo:.2f} ({ours_s:.0f} s), "
        f"plain {plain_nelbo:.2f} ({plain_s:.0f} s), difference {ours_nelbo - plain_nelbo:+.2f}"
    )


if __name__ == "__main__":
    main()
