"""Model registry: a new model family is one file plus one ``@register`` line.

A model's constructor keyword arguments are its saved configuration (``model.config``), so
``build_model(name, **model.config)`` rebuilds it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import VaelabError

MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        MODELS[name] = cls
        cls.name = name
        return cls

    return wrap


def build_model(name: str, **config):
    """Instantiate the model registered as ``name`` from its configuration."""
    if name not in MODELS:
        raise VaelabError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**config)
    except TypeError as e:  # unknown or missing config keys
        raise VaelabError(f"bad configuration for model {name!r}: {e}") from None


from . import ae, vae  # noqa: E402,F401  (registers the built-in models)
