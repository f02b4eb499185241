"""Every pluggable part of vaelab, by name: models, likelihoods, priors, networks, presets.

A new model (likelihood, prior, network) is one file plus one line here.  Entries are
``"module:attribute"`` strings, imported only when used, so that the command line can offer
the names as choices (and answer ``--help``) without importing torch.

A model file defines one ``Model`` subclass (see ``models/base.py`` for the contract) whose
constructor takes keyword arguments only: they are its saved configuration.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import VaelabError

MODELS: dict[str, str] = {
    "ae": "vaelab.models.ae:AE",
    "vae": "vaelab.models.vae:VAE",
    "iwae": "vaelab.models.iwae:IWAE",
    "cvae": "vaelab.models.cvae:CVAE",
    "hvae": "vaelab.models.hvae:HVAE",
}

# p(x | z): what the decoder's outputs parameterise (likelihoods.py).
LIKELIHOODS: dict[str, str] = {
    "bernoulli": "vaelab.likelihoods:BernoulliLikelihood",
    "gaussian": "vaelab.likelihoods:GaussianLikelihood",
    "cbernoulli": "vaelab.likelihoods:ContinuousBernoulliLikelihood",
}

# p(z) of the latent-variable models (priors.py).
PRIORS: dict[str, str] = {
    "standard": "vaelab.priors:StandardNormalPrior",
    "vamp": "vaelab.priors:VampPrior",
}

# Encoder / decoder networks (nets.py); each module holds a builder for both directions.
ARCHS: dict[str, str] = {
    "mlp": "vaelab.nets:MLPNet",
    "linear": "vaelab.nets:LinearNet",
    "conv": "vaelab.nets:ConvNet",
    "resnet": "vaelab.nets:ResNet",
}

# Data sets by name besides MNIST (which data.py fetches itself): read from your files and
# checked against their published checksums (datasets.py).
DATASETS: dict[str, str] = {
    "mnist": "vaelab.data:MNIST_DATASET",
    "fashion-mnist": "vaelab.datasets:FASHION_MNIST",
    "kmnist": "vaelab.datasets:KMNIST",
}

ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "leaky_relu")

# Named variants (like timm's): model settings that go together.  "model" picks the family
# when the user names none; explicit settings override the rest.
PRESETS: dict[str, dict[str, Any]] = {
    # Kingma & Welling's MLP as in the pytorch/examples VAE: 784-400-20, ReLU.
    "pytorch-examples": {"arch": "mlp", "hidden": [400], "latent_dim": 20, "activation": "relu"},
    # Burda et al. 2016, one stochastic layer: 784-200-200-50, tanh.
    "burda": {"arch": "mlp", "hidden": [200, 200], "latent_dim": 50, "activation": "tanh"},
    # Burda et al. 2016, two stochastic layers: 784-200-200-100 (z1), 100-100-50 (z2), tanh.
    "burda2": {
        "model": "hvae",
        "arch": "mlp",
        "hidden": [200, 200],
        "z1_dim": 100,
        "z1_hidden": [100, 100],
        "latent_dim": 50,
        "activation": "tanh",
    },
    # Tomczak & Welling 2018: a VampPrior with 500 learned pseudo-inputs.
    "vamp": {"prior": "vamp", "pseudo_inputs": 500},
    # Convolutional encoder, transposed-convolution decoder.
    "conv": {"arch": "conv", "hidden": [256], "latent_dim": 32, "activation": "relu"},
    # Small residual conv nets (two residual blocks per resolution).
    "resnet": {"arch": "resnet", "hidden": [256], "latent_dim": 32, "activation": "relu"},
}

# --protocol paper: the setting of published MNIST likelihoods (Burda et al. 2016): Bernoulli
# pixels, dynamic binarization, and their code's split of the 60,000 training images into 59,600
# for training and 400 for validation (fixed); their 784-200-200-50 tanh net unless a preset is
# given; any family with an ELBO on p(x) (a VAE by default) may be trained under it.
PAPER = {
    "dataset": "mnist",
    "binarize": "dynamic",
    "likelihood": "bernoulli",
    "val_size": 400,
}
PAPER_PRESET = "burda"  # the net when no --preset is given

_TABLES = {
    "model": MODELS,
    "likelihood": LIKELIHOODS,
    "prior": PRIORS,
    "architecture": ARCHS,
    "dataset": DATASETS,
}


def resolve(kind: str, name: str) -> Any:
    """The object registered as ``name`` among the ``kind`` entries (model, likelihood, ...)."""
    table = _TABLES[kind]
    if name not in table:
        raise VaelabError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(table))}")
    module, attr = table[name].split(":")
    return getattr(importlib.import_module(module), attr)


def merge_presets(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The settings of presets ``names`` merged in order (later ones win), as written."""
    out: dict[str, Any] = {}
    for name in names:
        if name not in PRESETS:
            raise VaelabError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
        out |= PRESETS[name]
    return out


def spell_arch(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``arch`` replaced by the encoder and decoder it names; an explicit
    ``encoder`` or ``decoder`` setting wins over it."""
    out = dict(settings)
    arch = out.pop("arch", None)
    return ({"encoder": arch, "decoder": arch} if arch else {}) | out


def preset_config(*names: str) -> dict[str, Any]:
    """The settings of presets ``names`` merged in order, ``arch`` spelled out as encoder and
    decoder, without the family (``"model"``): ready for ``build_model`` or ``train``."""
    out = merge_presets(names)
    out.pop("model", None)
    return spell_arch(out)


def check_choice(kind: str, name: str) -> str | None:
    """A problem message when ``name`` is not a registered ``kind``, else None."""
    table = _TABLES[kind] if kind in _TABLES else dict.fromkeys(ACTIVATIONS)
    if name in table:
        return None
    return f"unknown {kind} {name!r} (choose from {', '.join(sorted(table))})"
