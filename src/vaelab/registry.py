"""Every pluggable part of vaelab, by name: models, likelihoods, priors, posteriors,
networks, presets.

A new model (likelihood, prior, network) is one file plus one line here; named settings
(presets, the paper protocol) are in ``settings.py``.  Entries are
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
    "tcvae": "vaelab.models.tcvae:TCVAE",
    "infovae": "vaelab.models.infovae:InfoVAE",
    "wae": "vaelab.models.wae:WAE",
    "vqvae": "vaelab.models.vqvae:VQVAE",
    "factorvae": "vaelab.models.factorvae:FactorVAE",
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

# q(z|x) of the VAE family (posteriors.py).
POSTERIORS: dict[str, str] = {
    "gaussian": "vaelab.posteriors:GaussianPosterior",
    "iaf": "vaelab.posteriors:IAFPosterior",
}

# Encoder / decoder networks (nets.py); each module holds a builder for both directions.
ARCHS: dict[str, str] = {
    "mlp": "vaelab.nets:MLPNet",
    "linear": "vaelab.nets:LinearNet",
    "conv": "vaelab.nets:ConvNet",
    "resnet": "vaelab.nets:ResNet",
    "dlconv": "vaelab.nets:DLConvNet",
}

# Data sets by name: their catalogue entries (data/catalogue.py: files, checksums, classes).
DATASETS: dict[str, str] = {
    "mnist": "vaelab.data.catalogue:MNIST_DATASET",
    "fashion-mnist": "vaelab.data.catalogue:FASHION_MNIST",
    "kmnist": "vaelab.data.catalogue:KMNIST",
    "sprites": "vaelab.data.catalogue:SPRITES",
    "sprites-colour": "vaelab.data.catalogue:SPRITES_COLOUR",
    "dsprites": "vaelab.data.catalogue:DSPRITES",
}

ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "leaky_relu")

_TABLES = {
    "model": MODELS,
    "likelihood": LIKELIHOODS,
    "prior": PRIORS,
    "posterior": POSTERIORS,
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


def check_choice(kind: str, name: str) -> str | None:
    """A problem message when ``name`` is not a registered ``kind``, else None."""
    table = _TABLES[kind] if kind in _TABLES else dict.fromkeys(ACTIVATIONS)
    if name in table:
        return None
    return f"unknown {kind} {name!r} (choose from {', '.join(sorted(table))})"


def names(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind`` (model, likelihood, prior, posterior, architecture,
    dataset, activation), sorted: the choices the command line offers."""
    return tuple(sorted(_TABLES[kind] if kind in _TABLES else ACTIVATIONS))
