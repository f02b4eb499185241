"""vaelab's FactorVAE against a plain PyTorch FactorVAE written from Kim & Mnih (2018),
Algorithm 2, trained side by side.

    python -m tools.bench.plain_factorvae --epochs 3 --train-limit 10000

The plain version has two Adam optimisers (the VAE's at ``--lr``, betas (0.9, 0.999); the
discriminator's at 1e-4, betas (0.5, 0.9)) and takes both updates from the gradients of one
batch: the VAE's loss recon + KL + gamma * TC on every image, with TC = D's logit difference
at the same z; D's cross-entropy on the batch's first half (joint) and its second half,
permuted (in place of the paper's second batch, as vaelab does).  The same data (dynamically
binarized MNIST, the first ``--train-limit`` training images), nets (784-400-2x20 ReLU
encoder, 20-400-784 decoder starting at the mean image, 6 x 1000 leaky-ReLU discriminator),
seed, batch size, gamma and epochs as ``vaelab train --model factorvae``.  Both are scored by
the same plain estimates on the validation images: the negative ELBO (nats per image, one z
per image), the TC estimate (nats) and D's accuracy on joint vs permuted codes.
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


def mlp(*sizes, act=nn.ReLU):
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), act()]
    return nn.Sequential(*layers[:-1])


def permute_dims(z):
    return torch.stack([col[torch.randperm(len(z))] for col in z.T], 1)  # Algorithm 1


class PlainFactorVAE(nn.Module):
    def __init__(self, d=20, gamma=6.4):
        super().__init__()
        self.enc, self.dec = mlp(784, 400, 2 * d), mlp(d, 400, 784)
        self.disc = mlp(d, *[1000] * 6, 2, act=lambda: nn.LeakyReLU(0.2))
        self.gamma = gamma

    def losses(self, x):
        mu, log_var = self.enc(x).chunk(2, -1)
        z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        recon = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)
        logits = self.disc(z)
        tc = logits[:, 0] - logits[:, 1]  # log D(z) / (1 - D(z)); output 0 = "joint"
        vae_loss = (recon + kl + self.gamma * tc).mean()
        h = (len(z) + 1) // 2
        zd = z.detach()
        joint, perm = self.disc(zd[:h]), self.disc(permute_dims(zd[h:]))
        zeros, ones = torch.zeros(h, dtype=torch.long), torch.ones(len(z) - h, dtype=torch.long)
        d_loss = 0.5 * (F.cross_entropy(joint, zeros) + F.cross_entropy(perm, ones))
        return vae_loss, d_loss


def plain_train(model, x, cfg):
    torch.manual_seed(cfg.seed)
    with torch.no_grad():  # the decoder starts at the logit of the mean image, as in vaelab
        p = x.mean(0).clamp(1e-4, 1 - 1e-4)
        model.dec[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
    vae_params = [*model.enc.parameters(), *model.dec.parameters()]
    opt_vae = torch.optim.Adam(vae_params, lr=cfg.lr, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(model.disc.parameters(), lr=1e-4, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
            vae_loss, d_loss = model.losses(torch.bernoulli(x[idx], generator=g))
            opt_vae.zero_grad()
            vae_loss.backward(retain_graph=True)
            opt_d.zero_grad()  # D's gradient from its own loss only
            d_loss.backward()
            opt_vae.step()
            opt_d.step()
    return time.perf_counter() - t0


@torch.no_grad()
def score(enc, dec, disc, x):
    """Validation -ELBO (nats per image), TC estimate (nats), D's accuracy (fraction)."""
    torch.manual_seed(0)
    nelbo, tc, correct = [], [], []
    for xb in x.split(1000):
        mu, log_var = enc(xb).chunk(2, -1)
        z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        recon = F.binary_cross_entropy_with_logits(dec(z), xb, reduction="none").sum(-1)
        nelbo.append(recon + 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1))
        logits = disc(z)
        tc.append(logits[:, 0] - logits[:, 1])
        h = len(z) // 2
        correct += [disc(z[:h]).argmax(-1) == 0, disc(permute_dims(z[h:])).argmax(-1) == 1]
    return [torch.cat(v).float().mean().item() for v in (nelbo, tc, correct)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--gamma", type=float, default=6.4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    data_cfg = DataConfig(binarize="dynamic", train_limit=args.train_limit)
    data = load_splits(data_cfg)
    cfg = TrainConfig(epochs=args.epochs, batch_size=100, lr=args.lr, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", "factorvae", {"gamma": args.gamma}, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    torch.manual_seed(args.seed)  # the plain model's initial weights
    plain = PlainFactorVAE(gamma=args.gamma)
    plain_s = plain_train(plain, data["train"].x, cfg)
    val = data["val"].x
    a = score(ours.encoder, ours.decoder, ours.discriminator, val)
    b = score(plain.enc, plain.dec, plain.disc, val)
    print(
        f"factorvae, {args.epochs} epochs on the first {len(data['train'])} training images, "
        f"gamma {args.gamma}, lr {args.lr}, seed {args.seed}; validation ({len(val)} images):"
    )
    print(f"{'':24}{'vaelab':>10}{'plain':>10}")
    for name, u, v in zip(
        ["-ELBO (nats per image)", "TC estimate (nats)", "D accuracy (fraction)"], a, b,
        strict=True,
    ):  # fmt: skip
        print(f"{name:24}{u:10.3f}{v:10.3f}")
    print(f"{'training time (s)':24}{ours_s:10.0f}{plain_s:10.0f}")


if __name__ == "__main__":
    main()
