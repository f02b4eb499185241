"""Model families.  Each is one file here plus one line in ``registry.MODELS``.

Read ``base.py`` for the core contract every model keeps, ``abilities.py`` for what some
models can do beyond it (callers ask ``isinstance(model, HasBound)``), then ``ae.py`` or
``vae.py`` for a whole model on one screen.  A model's constructor keyword arguments are
its saved configuration (``model.config``), so ``build_model(name, **model.config)`` rebuilds
it exactly.
"""

from __future__ import annotations

import torch

from ..config import type_problems
from ..errors import VaelabError
from ..registry import MODELS, resolve

__all__ = ["MODELS", "build_model", "model_class"]


def model_class(name: str) -> type:
    """The class registered as ``name`` (imports its file on first use)."""
    return resolve("model", name)


MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32 weights: larger is a mistake, not a model


def build_model(name: str, **config):
    """Instantiate the model registered as ``name`` from its configuration.

    The settings' types are checked first, then the model is built on the ``meta`` device
    (shapes, no memory) and refused when it would hold more than ``MAX_PARAMETERS``
    parameters: a mistyped or hostile size fails in one line before anything is allocated."""
    cls = model_class(name)
    problems = type_problems(cls.config_class, config)
    if problems:
        raise VaelabError(f"bad configuration for model {name!r}: {'; '.join(problems)}")
    try:
        with torch.device("meta"):
            n_params = sum(p.numel() for p in cls(**config).parameters())
        if n_params > MAX_PARAMETERS:
            raise VaelabError(
                f"model {name!r} would have {n_params:,} parameters (more than "
                f"{MAX_PARAMETERS:,}); check its sizes"
            )
        model = cls(**config)
    except TypeError as e:  # unknown or missing config keys
        raise VaelabError(f"bad configuration for model {name!r}: {e}") from None
    model.name = name
    return model
