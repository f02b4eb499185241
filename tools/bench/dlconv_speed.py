"""Training throughput of the encoder and decoder nets on 64x64 images: disentanglement_lib's
``dlconv`` against vaelab's ``conv`` (with the 400-unit hidden layer a VAE takes by default,
and without it), in images per second, measured in one process.

A step is one forward and backward pass of encoder then decoder on a batch of 64 grayscale
1x64x64 images (a 10-D code: the encoder gives 20 outputs, means and log-variances; no
optimiser).  Rounds alternate between the nets; each figure is the best round (other work on
the machine only ever slows a round down).  Set OMP_NUM_THREADS to fix the threads.

    OMP_NUM_THREADS=2 python -m tools.bench.dlconv_speed [--rounds 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from vaelab.nets import build_decoder, build_encoder

SHAPE = (1, 64, 64)
NETS = {"dlconv": ("dlconv", []), "conv, hidden 400": ("conv", [400]), "conv": ("conv", [])}


def step_of(arch: str, hidden: list[int], x: torch.Tensor):
    enc = build_encoder(arch, 20, hidden, "relu", SHAPE)
    dec = build_decoder(arch, 10, hidden, "relu", SHAPE)
    params = sum(p.numel() for p in [*enc.parameters(), *dec.parameters()])

    def step() -> None:
        out = dec(enc(x)[:, :10])
        out.square().mean().backward()

    return step, params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="batches per round")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, SHAPE[0] * SHAPE[1] * SHAPE[2])
    steps = {name: step_of(*spec, x) for name, spec in NETS.items()}
    best = dict.fromkeys(NETS, 0.0)
    for step, _ in steps.values():
        step()  # warm-up
    for _ in range(args.rounds):
        for name, (step, _) in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            best[name] = max(best[name], args.batch * args.steps / (time.perf_counter() - start))
    shape = "x".join(map(str, SHAPE))
    threads = torch.get_num_threads()
    print(f"forward+backward, batch {args.batch} of {shape} images, {threads} threads, "
          f"best of {args.rounds} rounds of {args.steps} steps")  # fmt: skip
    for name, (_, params) in steps.items():
        print(f"  {name:18s} {params:>10,} parameters  {best[name]:8.0f} images per second")


if __name__ == "__main__":
    main()
