"""MNIST auto-encoder: 784 -> 400 -> 20 -> 400 -> 784, Bernoulli cross-entropy on logits.

python examples/mnist_ae.py --epochs 10 --out runs/example-ae
"""

import argparse

import vaelab
from vaelab.analysis import pca_probes, probes
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.evaluate import evaluate_run
from vaelab.plots import all_figures
from vaelab.train import TrainConfig, train

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--out", default="runs/example-ae")
ap.add_argument("--train-limit", type=int, help="use the first N training images only")
ap.add_argument("--data-dir", help="MNIST-format files instead of the cache")
ap.add_argument("--no-verify", action="store_true", help="accept non-canonical files")
args = ap.parse_args()

data = DataConfig(train_limit=args.train_limit, data_dir=args.data_dir, verify=not args.no_verify)
splits = load_splits(data)  # cached: train 50,000 / val 10,000 / test 10,000 images as (N, 784)

model_config = {"encoder": "mlp", "decoder": "mlp", "hidden": [400], "latent_dim": 20}
train(args.out, "ae", model_config, TrainConfig(epochs=args.epochs), data)
all_figures(args.out)  # reconstructions, samples, latents, ... in RUN/figures

result = evaluate_run(args.out, split="test")  # also saved in RUN/evaluation.json
print(f"test reconstruction loss: {result['recon']:.2f} ({result['unit']})")

ae = vaelab.load_run(args.out)  # the trained encoder and decoder
codes = probes(ae, splits)  # features learned without labels, used to predict labels
pca = pca_probes(splits, k=20)
print(
    f"linear probe on the 20-D codes: {codes['linear_probe_acc']:.3f} test accuracy "
    f"(PCA with 20 components: {pca['linear_probe_acc']:.3f})"
)
