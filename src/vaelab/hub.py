"""Trained models in the Hugging Face convention: a folder (or a Hub repository) holding
``config.json`` and ``model.safetensors``, written and read through ``huggingface_hub``'s
``PyTorchModelHubMixin``.  No pickle anywhere: the configuration is JSON and the weights are
safetensors, and a loaded configuration goes through ``build_model``'s checks (types, sizes)
before anything is allocated.

    vaelab.save_pretrained("runs/vae", "export/vae")       # or: vaelab export runs/vae export/vae
    model = vaelab.from_pretrained("export/vae")            # a folder, or a Hub repo id
    vaelab.push_to_hub("runs/vae", "you/vae-mnist")         # or: vaelab push runs/vae you/vae-mnist

``huggingface_hub`` is an optional dependency (``pip install 'vaelab[hub]'``); only
``push_to_hub`` and ``from_pretrained`` with a repo id contact the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

try:
    from huggingface_hub import PyTorchModelHubMixin
except ImportError:  # an optional dependency (vaelab[hub]): refused when used
    PyTorchModelHubMixin = None

from .errors import VaelabError
from .models import build_model
from .runs import Run

__all__ = ["from_pretrained", "push_to_hub", "save_pretrained"]


def _mixin():
    if PyTorchModelHubMixin is None:
        raise VaelabError(
            "saving and loading in the Hugging Face convention needs huggingface_hub: "
            "pip install 'vaelab[hub]'"
        ) from None
    return PyTorchModelHubMixin


_CLASS: type | None = None


def hub_class() -> type:
    """The ``nn.Module`` + ``PyTorchModelHubMixin`` class that carries a vaelab model: its
    constructor's keyword arguments (the model's registry name and configuration, and the
    data it was trained on) are what the mixin writes to config.json."""
    global _CLASS
    if _CLASS is None:

        class VaelabHubModel(nn.Module, _mixin(), library_name="vaelab", tags=["vae", "vaelab"]):
            def __init__(self, model: str, model_config: dict[str, Any], data: dict | None = None):
                super().__init__()
                self.net = build_model(model, **model_config)

        _CLASS = VaelabHubModel
    return _CLASS


def _carrier(run_dir: str | Path, which: str = "best"):
    run = Run.load(run_dir)
    model = run.model(which)
    data = {"dataset": run.data.dataset, "pixels": run.data.describe()}
    carrier = hub_class()(model=run.model_name, model_config=dict(run.model_config), data=data)
    carrier.net.load_state_dict(model.state_dict())
    return carrier


def save_pretrained(run_dir: str | Path, out_dir: str | Path, which: str = "best") -> Path:
    """Write the run's ``which`` weights and configuration to ``out_dir`` (config.json,
    model.safetensors, README.md model card); returns ``out_dir``."""
    out = Path(out_dir)
    if (out / "config.json").exists() and not (out / "model.safetensors").exists():
        raise VaelabError(f"{out} holds a config.json that is not a saved vaelab model")
    _carrier(run_dir, which).save_pretrained(out)
    return out


def from_pretrained(path_or_repo_id: str | Path, **kwargs):
    """The model saved by ``save_pretrained`` (a local folder, or a Hub repo id), in eval mode,
    with the same interface as ``vaelab.load_run``'s."""
    try:
        carrier = hub_class().from_pretrained(path_or_repo_id, **kwargs)
    except (TypeError, KeyError) as e:
        raise VaelabError(f"{path_or_repo_id}: not a saved vaelab model ({e})") from None
    return carrier.net.eval()


def push_to_hub(run_dir: str | Path, repo_id: str, which: str = "best", **kwargs) -> str:
    """Upload the run's model to the Hub repository ``repo_id`` (needs a login: ``hf auth
    login`` or ``HF_TOKEN``); returns the commit URL."""
    return str(_carrier(run_dir, which).push_to_hub(repo_id, **kwargs))
