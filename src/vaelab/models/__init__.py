"""Model families.  Each is one file here plus one line in ``registry.MODELS``.

Read ``base.py`` for the contract every model keeps (what callers may ask), then ``ae.py``
or ``vae.py`` for a whole model on one screen.  A model's constructor keyword arguments are
its saved configuration (``model.config``), so ``build_model(name, **model.config)`` rebuilds
it exactly.
"""

from __future__ import annotations

from ..errors import VaelabError
from ..registry import MODELS, resolve

__all__ = ["MODELS", "build_model", "model_class"]


def model_class(name: str) -> type:
    """The class registered as ``name`` (imports its file on first use)."""
    return resolve("model", name)


def build_model(name: str, **config):
    """Instantiate the model registered as ``name`` from its configuration."""
    cls = model_class(name)
    try:
        model = cls(**config)
    except TypeError as e:  # unknown or missing config keys
        raise VaelabError(f"bad configuration for model {name!r}: {e}") from None
    model.name = name
    return model
