"""MNIST variational auto-encoder (Kingma & Welling 2014), 784-400-20, Bernoulli decoder.

python examples/mnist_vae.py --epochs 10 --out runs/example-vae
"""

import argparse

import torch

import vaelab
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.evaluate import evaluate_run
from vaelab.plots import all_figures
from vaelab.train import TrainConfig, train

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--out", default="runs/example-vae")
ap.add_argument("--train-limit", type=int, help="use the first N training images only")
ap.add_argument("--data-dir", help="MNIST-format files instead of the cache")
ap.add_argument("--no-verify", action="store_true", help="accept non-canonical files")
args = ap.parse_args()

data = DataConfig(train_limit=args.train_limit, data_dir=args.data_dir, verify=not args.no_verify)
splits = load_splits(data)  # grayscale pixels in [0, 1], images as (N, 784)

model_config = {"hidden": [400], "latent_dim": 20, "likelihood": "bernoulli", "beta": 1.0}
train(args.out, "vae", model_config, TrainConfig(epochs=args.epochs), data)
all_figures(args.out)  # reconstructions, samples, latents, ... in RUN/figures

# Grayscale pixels: the Bernoulli terms are a loss, not a log-likelihood, so an importance-
# sampled "likelihood" would estimate nothing (with --binarize dynamic it is an NLL).
r = evaluate_run(args.out, split="test", progress=False)
print(
    f"test loss {r['neg_elbo']:.2f} = recon {r['recon']:.2f} + KL {r['kl']:.2f} "
    "nats per image (Bernoulli loss on grayscale pixels)"
)
print(f"active units: {r['active_units']} of {r['latent_dim']}")

vae = vaelab.load_run(args.out)
x = splits["test"].x[:8]
q = vae.encode(x)  # q(z|x): a diagonal Gaussian per image
z = q.mean + q.scale * torch.randn_like(q.scale)  # the reparameterisation trick
print("posterior std of the first test image:", q.scale[0, :5].detach().numpy().round(3))
print("decoded pixel probabilities:", tuple(vae.decode(z).mean.shape))
