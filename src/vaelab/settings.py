"""Named settings and how a run's settings are put together: presets, the paper protocol, a
settings file, and the split of flat settings into the model's, training's and data's.

One place for all of it, used by the command line, ``vaelab.train(...)``, ``--config FILE`` and
the scripts alike.  Precedence, lowest first: the model's defaults, presets (in the order
given), a settings file, explicit settings.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .config import DataConfig, TrainConfig, preview, setting, type_problems
from .errors import VaelabError
from .registry import MODELS, resolve

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

# What a settings file may hold, checked before anything walks it: a YAML alias bomb
# ("billion laughs") parses into a few shared lists that expand to billions of items.
FILE_NODES = 10_000  # values in all, counted as reached (an alias counts every time)
FILE_DEPTH = 32
FILE_BYTES = 1_000_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a number (YAML 1.2 and JSON do; YAML 1.1
    wants ``1.0e-3``, and would read a learning rate of ``1e-3`` as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class Choices:
    """The settings that pick the others: the family, named presets, the protocol, and both
    networks at once.  They are resolved here, before the model's own settings apply."""

    model: str = setting(
        "vae", "the model family (its settings: --model M --help)", choices="model"
    )
    preset: Sequence[str] | None = setting(
        None,
        "named settings, applied in order; explicit settings override them",
        choices=tuple(sorted(PRESETS)),
        metavar="NAME",
    )
    protocol: str | None = setting(
        None,
        "paper: Bernoulli decoder, dynamic binarization, 59,600 training / 400 validation "
        f"images; the {PAPER_PRESET} preset unless --model or --preset says otherwise",
        choices=("paper",),
    )
    arch: str | None = setting(None, "encoder and decoder at once", choices="architecture")


class RunSettings(NamedTuple):
    """A run's settings resolved: the family's name, its config's settings, training's and the
    data's.  Unpacks into ``train.train(out, *settings)`` and ``train.resolve_run``."""

    model_name: str
    model_config: dict[str, Any]
    train: TrainConfig
    data: DataConfig


def merge_presets(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The settings of presets ``names`` merged in order (later ones win), as written."""
    out: dict[str, Any] = {}
    for name in names:
        if not isinstance(name, str) or name not in PRESETS:
            raise VaelabError(
                f"unknown preset {preview(name)}; choose from {', '.join(sorted(PRESETS))}"
            )
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


def _bounds_px(model_name: str) -> bool:
    """Whether the family bounds the unconditional log-likelihood log p(x)."""
    cls = resolve("model", model_name)
    # loaded with the model (torch), never when this module is: `vaelab --help` stays quick
    abilities = importlib.import_module("vaelab.models.abilities")
    return issubclass(cls, abilities.HasBound) and not issubclass(cls, abilities.Conditional)


def _presets(flat: dict[str, Any]) -> list[str]:
    presets = flat.get("preset") or []
    return list(presets) if isinstance(presets, list | tuple) else [presets]


def family_of(flat: dict[str, Any]) -> str:
    """The family that flat settings pick: their ``model``, else their presets', else vae."""
    if "model" in flat:
        return str(flat["model"])
    named = merge_presets(_presets(flat) or [PAPER_PRESET] * (flat.get("protocol") == "paper"))
    return str(named.get("model", "vae"))


def resolve_settings(flat: dict[str, Any]) -> RunSettings:
    """Flat settings (flag names as keys) resolved into a run's typed settings.

    Order of precedence, lowest first: the model's defaults, presets (in the order given),
    the settings themselves.  ``protocol: paper`` fixes the paper's settings.
    """
    name, model, train, data = _split(flat)
    return RunSettings(name, model, TrainConfig(**train), DataConfig(**data))


def _split(flat: dict) -> tuple[str, dict, dict, dict]:
    flat = dict(flat)
    picks = {k: flat[k] for k in ("model", "preset", "protocol", "arch") if k in flat}
    if isinstance(picks.get("preset"), str):
        picks["preset"] = [picks["preset"]]
    problems = type_problems(Choices, picks)
    if problems:
        raise VaelabError("; ".join(problems))
    if flat.get("protocol") not in (None, "paper"):
        raise VaelabError(f"unknown protocol {flat['protocol']!r}; the only one is 'paper'")
    paper = flat.pop("protocol", None) == "paper"
    if paper:
        clash = {k: flat[k] for k in PAPER if k in flat and flat[k] != PAPER[k]}
        if clash:
            k, v = next(iter(clash.items()))
            raise VaelabError(f"--protocol paper needs {k}={PAPER[k]!r}, got {v!r}")
        if flat.get("data") is not None:
            raise VaelabError("--protocol paper is MNIST's protocol; it does not take --data")
        flat = PAPER | flat
        flat.setdefault("preset", PAPER_PRESET)
    from_presets = merge_presets(_presets(flat))
    flat.pop("preset", None)
    model_name = flat.pop("model", from_presets.pop("model", "vae"))
    cls = resolve("model", model_name)
    if paper and not _bounds_px(model_name):
        fits = [n for n in sorted(MODELS) if _bounds_px(n)]
        raise VaelabError(
            f"--protocol paper needs a model with an ELBO on p(x) ({', '.join(fits)}), "
            f"got {model_name!r}"
        )
    settings = spell_arch(from_presets | flat)
    model_keys = {f.name for f in fields(cls.config_class)}
    train_keys = {f.name for f in fields(TrainConfig)}
    data_keys = {f.name for f in fields(DataConfig)}
    unknown = set(settings) - model_keys - train_keys - data_keys
    if unknown:
        raise VaelabError(
            f"setting(s) that model {model_name!r} does not take: {', '.join(sorted(unknown))}"
        )
    model = {k: v for k, v in settings.items() if k in model_keys}
    problems = type_problems(cls.config_class, model)  # before the data are asked about them
    if problems:
        raise VaelabError("; ".join(problems))
    return (
        model_name,
        model,
        {k: v for k, v in settings.items() if k in train_keys},
        {k: v for k, v in settings.items() if k in data_keys},
    )


def read_settings_file(path: str) -> dict:
    """A YAML or JSON file of settings: flat (flag names) or a run's config.json (sections)."""
    p = Path(path)
    if not p.is_file():
        raise VaelabError(f"config file {path} not found")
    if p.stat().st_size > FILE_BYTES:
        raise VaelabError(f"config file {path} is over {FILE_BYTES:,} bytes; not a settings file")
    try:
        text = p.read_text()
        if _bracket_depth(text) > FILE_DEPTH:  # PyYAML would take seconds to find out
            raise RecursionError
        obj = json.loads(text) if p.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise VaelabError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise VaelabError(f"config file {path} nests deeper than {FILE_DEPTH}") from None
    if not isinstance(obj, dict):
        raise VaelabError(f"config file {path} must hold a mapping of settings")
    _check_size(obj, path)
    flat = {}
    for key, value in obj.items():
        if key in ("model_config", "train", "data") and isinstance(value, dict):
            flat |= {k.replace("-", "_"): v for k, v in value.items()}
        elif key not in ("vaelab_version", "units"):
            flat[key.replace("-", "_")] = value
    return flat


def _bracket_depth(text: str) -> int:
    """The deepest nesting of brackets in ``text`` (an upper bound on a YAML or JSON file's
    nesting in flow style)."""
    depth = most = 0
    for c in re.sub(r"[^][{}]", "", text):
        depth += 1 if c in "[{" else -1
        most = max(most, depth)
    return most


def _check_size(obj: Any, path: str) -> None:
    """Refuses a settings file of more than ``FILE_NODES`` values, nesting deeper than
    ``FILE_DEPTH``, or with a key that is not a string; walks without recursion and stops at
    the limit, so an alias bomb costs no more than the limit."""
    stack, nodes = [(obj, 0)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > FILE_NODES or depth > FILE_DEPTH:
            raise VaelabError(
                f"config file {path} holds more than {FILE_NODES:,} values or nests deeper "
                f"than {FILE_DEPTH}; settings are a flat mapping of short values"
            )
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise VaelabError(f"config file {path}: every setting's name must be a string")
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list | tuple):
            stack += [(v, depth + 1) for v in value]
