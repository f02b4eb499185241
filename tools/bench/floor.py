"""The hardware floor of one training epoch, and how far vaelab and a bare loop are above it.

The floor is the time of the epoch's matrix products alone: for every ``nn.Linear`` of the
model, the forward product (B x in) @ (in x out) and the two backward ones (the weight gradient,
and the input gradient except for the first layer), each timed on this machine at its exact
shape (fp32, median of repeated runs), summed over a step and multiplied by the steps of an
epoch.  Nothing can train the model faster than that on this machine with these kernels.

With ``--nll``, the same for the K = 5000 importance-sampled estimate: the decoder's products on
K rows per image (the encoder's, once per image) plus one pass over the K x 784 logits (a
softplus and a sum, timed), against vaelab's estimator on the same model, in images per second.

Then, in the same process and interleaved, one training epoch of the same model on the same
in-memory data (dynamic shapes aside, identical work): through vaelab's ``train_step`` and
through a bare PyTorch loop.  Prints the FLOPs, the floor and both epoch times as multiples
of it.

    python -m tools.bench.floor [--batch-size 128] [--repeats 2] [--threads N]
    python -m tools.bench.floor --nll [--preset burda] [--k 5000] [--nll-images 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import TrainConfig
from vaelab.data import Split, batches
from vaelab.models import build_model
from vaelab.nll import log_likelihood_estimates, plan_chunks
from vaelab.settings import preset_config
from vaelab.train import make_optimizer, train_step


def timed(fn, repeats: int = 30, warmup: int = 5) -> float:
    """Median seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def step_products(model: nn.Module, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matrix product of one training step: m x k times k x n."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    out = []
    for i, lin in enumerate(linears):
        n_in, n_out = lin.in_features, lin.out_features
        out.append((batch, n_in, n_out))  # forward
        out.append((n_out, batch, n_in))  # weight gradient: grad_y^T @ x
        if i > 0:  # no input gradient for the layer that reads the data
            out.append((batch, n_out, n_in))  # input gradient: grad_y @ W
    return out


def floor_seconds(
    products: list[tuple[int, int, int]], dtype: torch.dtype = torch.float32
) -> tuple[float, float]:
    """(seconds, FLOPs) of one step's products, each timed at its shape (in ``dtype``)."""
    total, flops = 0.0, 0.0
    for m, k, n in products:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        total += timed(lambda a=a, b=b: torch.mm(a, b))
        flops += 2.0 * m * k * n
    return total, flops


class BareVAE(nn.Module):
    """784-400-20 ReLU VAE with one 400 -> 2 x 20 head, Bernoulli decoder on logits."""

    def __init__(self, hidden: int = 400, latent: int = 20):
        super().__init__()
        self.enc, self.head = nn.Linear(784, hidden), nn.Linear(hidden, 2 * latent)
        self.dec1, self.dec2 = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

    def loss(self, x):
        mu, logvar = self.head(F.relu(self.enc(x))).chunk(2, -1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.dec2(F.relu(self.dec1(z)))
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (bce + kl) / len(x)


def bare_epoch(model, opt, x, batch_size) -> float:
    t0 = time.perf_counter()
    for idx in torch.randperm(len(x)).split(batch_size):
        loss = model.loss(x[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def vaelab_epoch(model, opt, split, batch_size, gen) -> float:
    t0 = time.perf_counter()
    for xb, yb in batches(split, batch_size, gen):
        train_step(model, opt, xb, yb)
    return time.perf_counter() - t0


def nll_floor(model: nn.Module, k: int, images: int, rows: int) -> float:
    """Seconds per image of the K-sample estimate's floor when each decoder call takes
    ``rows`` (sample, image) rows and each encoder call ``images`` images."""
    enc = dec = 0.0
    encoder = model.encoder.modules() if hasattr(model, "encoder") else []
    for part, m in ((encoder, images), (model.decoder.modules(), rows)):
        for lin in part:
            if isinstance(lin, nn.Linear):
                a = torch.randn(m, lin.in_features)
                b = torch.randn(lin.in_features, lin.out_features)
                t = timed(lambda a=a, b=b: torch.mm(a, b), repeats=5, warmup=1)
                if m == rows:
                    dec += t
                else:
                    enc += t
    logits = torch.randn(rows, 784)
    dec += timed(lambda: F.softplus(logits).sum(), repeats=5, warmup=1)
    return enc / images + dec * k / rows


def nll_main(args) -> None:
    torch.manual_seed(0)
    model = build_model("vae", **preset_config(args.preset)).eval()
    x = torch.bernoulli(torch.rand(args.nll_images, 784))
    chunk = plan_chunks(model, args.k, args.nll_images)
    rows = chunk.batch * chunk.k_chunk  # rows per decoder call, as vaelab's estimator plans them
    per_image = nll_floor(model, args.k, chunk.batch, rows)
    print(f"model: {model.describe()}; {threads()} threads, torch {torch.__version__}")
    print(f"K = {args.k}: floor (decoder products on K rows per image, the encoder's once, one "
          f"softplus-and-sum pass over the logits; {rows} rows per decoder call): "
          f"{1 / per_image:.1f} images/s")  # fmt: skip
    with torch.no_grad():
        t0 = time.perf_counter()
        log_likelihood_estimates(model, x, args.k, progress=False)
        secs = time.perf_counter() - t0
    rate = args.nll_images / secs
    print(f"vaelab's estimator: {rate:.1f} images/s = {(1 / rate) / per_image:.2f} x the floor "
          f"({args.nll_images} images)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--images", type=int, default=50_000, help="training images per epoch")
    ap.add_argument("--repeats", type=int, default=2, help="epochs of each loop, interleaved")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--nll", action="store_true", help="the K-sample estimate instead")
    ap.add_argument("--preset", default="burda", help="--nll: the model's preset")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--nll-images", type=int, default=20)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.nll:
        nll_main(args)
        return
    torch.manual_seed(0)
    # Random pixels in [0, 1]: the same products and element-wise work as MNIST's.
    x = torch.rand(args.images, 784)
    split = Split(x, torch.zeros(args.images, dtype=torch.long))
    model = build_model("vae", **preset_config("pytorch-examples")).train()
    bare = BareVAE().train()
    steps = -(-args.images // args.batch_size)

    per_step, flops = floor_seconds(step_products(model, args.batch_size))
    floor = per_step * steps
    print(f"model: {model.describe()}; {threads()} threads, torch {torch.__version__}")
    print(f"one epoch: {steps} steps of batch {args.batch_size}, "
          f"{flops * steps / 1e9:.1f} GFLOP of matrix products")  # fmt: skip
    print(f"floor (the products alone, each timed at its shape): {floor:.2f} s per epoch "
          f"({flops * steps / floor / 1e9:.0f} GFLOP/s)")  # fmt: skip

    opt_v = make_optimizer(model, TrainConfig(lr=1e-3), torch.device("cpu"))  # vaelab's Adam
    opt_b = torch.optim.Adam(bare.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    t_vaelab, t_bare = [], []
    for _ in range(args.repeats):  # interleaved, so drifts of the machine hit both alike
        t_bare.append(bare_epoch(bare, opt_b, x, args.batch_size))
        t_vaelab.append(vaelab_epoch(model, opt_v, split, args.batch_size, gen))
    vb, bb = statistics.median(t_vaelab), statistics.median(t_bare)
    print(f"bare PyTorch loop: {bb:.2f} s per epoch = {bb / floor:.2f} x the floor")
    print(f"vaelab train_step: {vb:.2f} s per epoch = {vb / floor:.2f} x the floor "
          f"({vb / bb:.2f} x the bare loop)")  # fmt: skip


def threads() -> int:
    return torch.get_num_threads()


if __name__ == "__main__":
    main()
