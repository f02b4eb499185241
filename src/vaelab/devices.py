"""Which device a command runs on, by name: ``auto`` (the best one here), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``.  Training, evaluation and the figures ask the same function."""

from __future__ import annotations

import torch

from .errors import VaelabError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu; any other name as torch spells it, refused in one
    line when unknown or when CUDA is asked for and absent."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VaelabError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VaelabError("device cuda requested but CUDA is not available")
    return device
