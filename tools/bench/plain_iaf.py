"""vaelab's VAE with an IAF posterior against a plain PyTorch VAE + IAF, trained side by side.

    python -m tools.bench.plain_iaf --epochs 3 --train-limit 5000

The plain version is written from Kingma et al. (2016, section 3, Algorithm 1; no vaelab code
but the data loading): Burda et al.'s 784-200-200-50 tanh MLP VAE whose encoder also gives a
context h, then T steps z <- sigma * z + (1 - sigma) * m with [m, s] from a MADE of (z, h),
sigma = sigmoid(s), s biased by +2 at the start, the variables' order reversed between steps.
Both are trained with the same data (dynamically binarized MNIST, the first --train-limit
training images), batch size 100, Adam at 1e-3, seed and epochs, and scored by the same plain
estimate: the negative ELBO on the fixed-seed binarized validation images (the last 10,000
training images), in nats per image, one z per image.  A vaelab model that does clearly worse
than its plain twin has a bug.
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
from tools.bench.plain_reference import mlp, plain_train, score
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.models import build_model
from vaelab.settings import preset_config
from vaelab.train import TrainConfig, train

LOG2PI = math.log(2 * math.pi)


class MADE(nn.Module):
    """(z, h) -> (m, s); output i reads z_j for j before i in ``order`` and all of h."""

    def __init__(self, order, context, hidden):
        super().__init__()
        d = len(order)
        deg_in = torch.cat([order + 1, torch.zeros(context, dtype=torch.long)])
        deg_hid = torch.arange(hidden) % d
        self.l1, self.l2 = nn.Linear(d + context, hidden), nn.Linear(hidden, 2 * d)
        self.register_buffer("m1", (deg_hid[:, None] >= deg_in[None]).float())
        self.register_buffer("m2", (torch.cat([order + 1, order + 1])[:, None] > deg_hid).float())
        with torch.no_grad():
            self.l2.bias[d:] += 2.0  # sigma = sigmoid(s) starts near 0.88: near the identity

    def forward(self, z, h):
        a = F.elu(F.linear(torch.cat([z, h], -1), self.l1.weight * self.m1, self.l1.bias))
        return F.linear(a, self.l2.weight * self.m2, self.l2.bias).chunk(2, -1)


class PlainIAF(nn.Module):
    def __init__(self, d=50, context=50, hidden=320, steps=2):
        super().__init__()
        self.d = d
        self.enc, self.dec = mlp(784, 200, 200, 2 * d + context), mlp(d, 200, 200, 784)
        ar = torch.arange(d)
        self.steps = nn.ModuleList(
            MADE(ar if t % 2 == 0 else ar.flip(0), context, hidden) for t in range(steps)
        )

    def output_layer(self):
        return self.dec[-1]

    def neg_elbo(self, x):
        out = self.enc(x)
        mu, log_var, h = out[:, : self.d], out[:, self.d : 2 * self.d], out[:, 2 * self.d :]
        eps = torch.randn_like(mu)
        z = mu + (0.5 * log_var).exp() * eps
        log_q = (-0.5 * eps**2 - 0.5 * log_var - 0.5 * LOG2PI).sum(-1)
        for step in self.steps:
            m, s = step(z, h)
            sigma = torch.sigmoid(s)
            z = sigma * z + (1 - sigma) * m
            log_q = log_q - F.logsigmoid(s).sum(-1)
        log_pz = (-0.5 * z**2 - 0.5 * LOG2PI).sum(-1)
        log_px = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = log_q - log_pz
        return -log_px + kl, kl


class Ours(nn.Module):
    """vaelab's model as the plain loop trains it (``--same-init``)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def output_layer(self):
        return self.m.decoder[-1]

    def neg_elbo(self, x):
        t = self.m.terms(x)
        return t["neg_elbo"], t["kl"]


@torch.no_grad()
def copy_weights(plain: PlainIAF, ours) -> None:
    """vaelab's initial weights into the plain model, layer by layer."""
    pairs = [(plain.enc[i], ours.encoder[i]) for i in (0, 2, 4)]
    pairs += [(plain.dec[i], ours.decoder[i]) for i in (0, 2, 4)]
    for a, b in zip(plain.steps, ours.posterior.steps, strict=True):
        pairs += [(a.l1, b.net[0]), (a.l2, b.net[2])]
    for a, b in pairs:
        a.weight.copy_(b.weight)
        a.bias.copy_(b.bias)


def same_init(args, model_cfg, cfg, data) -> None:
    """Both models from vaelab's initial weights, both trained by the plain loop: equal
    numbers say the two compute the same objective and gradients."""
    torch.manual_seed(args.seed)
    ours = build_model("vae", **model_cfg)
    plain = PlainIAF(steps=args.flow_steps)
    copy_weights(plain, ours)
    plain_train(Ours(ours), data, cfg)
    plain_train(plain, data, cfg)
    val = data["val"].x
    a = score(lambda xb: ours.terms(xb)["neg_elbo"], val)
    b = score(lambda xb: plain.neg_elbo(xb)[0], val)
    print(
        f"same initial weights, both by the plain loop, {args.epochs} epochs: validation -ELBO "
        f"(nats per image) vaelab's model {a:.4f}, plain model {b:.4f}, difference {a - b:+.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=5000)
    ap.add_argument("--flow-steps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-init", action="store_true", help="vaelab's initial weights in both")
    args = ap.parse_args()
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    data_cfg = DataConfig(binarize="dynamic", train_limit=args.train_limit)
    data = load_splits(data_cfg)
    cfg = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed)
    flow = {"posterior": "iaf", "flow_steps": args.flow_steps, "flow_hidden": [320]}
    model_cfg = preset_config("burda") | flow | {"flow_context": 50}
    if args.same_init:
        return same_init(args, model_cfg, cfg, data)
    torch.manual_seed(args.seed)  # the plain model's initial weights
    plain = PlainIAF(steps=args.flow_steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(f"{tmp}/run", "vae", model_cfg, cfg, data_cfg, progress=False)
        ours_s = time.perf_counter() - t0
        ours = vaelab.load_run(f"{tmp}/run", which="last")
    plain_s = plain_train(plain, data, cfg)
    val = data["val"].x
    ours_nelbo = score(lambda xb: ours.terms(xb)["neg_elbo"], val)
    plain_nelbo = score(lambda xb: plain.neg_elbo(xb)[0], val)
    print(
        f"vae + IAF ({args.flow_steps} steps, MADE 320, context 50), {args.epochs} epochs on the "
        f"first {args.train_limit:,} training images, seed {args.seed}: validation -ELBO (nats "
        f"per image, {len(val):,} images) vaelab {ours_nelbo:.2f} ({ours_s:.0f} s), plain "
        f"{plain_nelbo:.2f} ({plain_s:.0f} s), difference {ours_nelbo - plain_nelbo:+.2f}"
    )


if __name__ == "__main__":
    main()
