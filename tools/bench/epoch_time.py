"""Epoch time of vaelab's training loop against a bare PyTorch loop, in one process.

Both train the same 784-400-20 ReLU VAE (Bernoulli decoder on logits, batch 128, Adam 1e-3)
on the same in-memory MNIST training split (50,000 images) and score the 10,000 validation
images after every epoch.  vaelab's epoch also writes its checkpoint and metrics; the bare
loop writes nothing.  Prints the median epoch times and their ratio (vaelab / bare).

    python -m tools.bench.epoch_time [--epochs 3] [--threads N] [--synthetic]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import DataConfig
from vaelab.data import Split, load_splits, put_splits
from vaelab.runs import Run
from vaelab.train import TrainConfig, train


class BareVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def bare_loss(model, x):
    logits, mu, logvar = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / len(x)


def bare_epochs(train_x, val_x, epochs, batch_size=128):
    torch.manual_seed(0)
    model = BareVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(train_x)).split(batch_size):
            loss = bare_loss(model, train_x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = sum(bare_loss(model, xb).item() * len(xb) for xb in val_x.split(1000))
        times.append(time.perf_counter() - t0)
    return times, val / len(val_x)


def vaelab_epochs(data: DataConfig, epochs):
    with tempfile.TemporaryDirectory() as d:
        train(
            f"{d}/run",
            "vae",
            {"hidden": [400], "latent_dim": 20},
            TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, device="cpu"),
            data,
            progress=True,
        )
        rows = Run.load(f"{d}/run").metrics()
    return [r["seconds"] for r in rows], rows[-1]["val_loss"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--synthetic", action="store_true", help="random data, no MNIST needed")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("vaelab").setLevel(logging.ERROR)  # only the timings are printed
    data = DataConfig()
    if args.synthetic:
        g = torch.Generator().manual_seed(0)
        splits = {
            k: Split(torch.rand(n, 784, generator=g), torch.zeros(n, dtype=torch.long))
            for k, n in [("train", 50000), ("val", 10000), ("test", 10000)]
        }
        put_splits(data, splits)  # vaelab's training reads these in place of MNIST
    else:
        splits = load_splits(data)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{len(splits['train'])} training images, {args.epochs} epochs each"
    )
    # alternate the two so that neither profits from a warmer machine
    bare1, bare_val = bare_epochs(splits["train"].x, splits["val"].x, args.epochs)
    ours, our_val = vaelab_epochs(data, args.epochs)
    bare2, _ = bare_epochs(splits["train"].x, splits["val"].x, args.epochs)
    bare = bare1 + bare2
    b, v = statistics.median(bare), statistics.median(ours)
    print(
        f"bare loop  epochs (s): {' '.join(f'{t:.2f}' for t in bare)}  median {b:.2f}  "
        f"val loss {bare_val:.2f}"
    )
    print(
        f"vaelab     epochs (s): {' '.join(f'{t:.2f}' for t in ours)}  median {v:.2f}  "
        f"val loss {our_val:.2f}"
    )
    print(f"ratio vaelab / bare (median epoch time): {v / b:.3f}")


if __name__ == "__main__":
    main()
