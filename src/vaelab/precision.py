"""The number format of the networks' matrix products: ``fp32`` (the default), ``tf32``,
``bf16`` or ``fp16``.

Only the products of the encoder and decoder layers change format (``torch.autocast``; for
``tf32``, float32 products on a CUDA GPU's tensor cores, whose inputs keep 10 of float32's 23
mantissa bits).  Everything that makes a reported number stays in float32: every
distribution's parameters are taken up to float32 before its log-probability
(``distributions``), the VampPrior's mixture is computed in float32, and the estimate's
logsumexps in float64.

What each format does to the K = 5000 estimate is measured on the same draws by
``tools/bench/precision.py`` and shown in docs/performance.md: ``fp16`` and ``tf32`` (10
mantissa bits) keep it well within the 0.01 nats a likelihood table can bear, ``bf16`` (7 bits)
does not.  The default is ``fp32`` on every device; ``tools/bench/precision.py`` also times the
formats on the device it finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from .config import PRECISIONS
from .errors import VaelabError

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str, device: torch.device | str) -> None:
    """A one-line refusal for a format that is unknown, or that this device cannot run.
    (Which formats training takes, ``TRAIN_PRECISIONS``, ``TrainConfig`` checks.)"""
    if name not in PRECISIONS:
        raise VaelabError(f"unknown precision {name!r}: choose from {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if name == "tf32" and kind != "cuda":
        raise VaelabError(f"tf32 runs on a CUDA GPU's tensor cores, not on {kind}: use fp32")
    if name in _AUTOCAST and kind not in ("cpu", "cuda", "mps"):
        raise VaelabError(f"{name} autocast is not available on {kind}: use fp32")


def products_in(name: str, device: torch.device | str) -> AbstractContextManager:
    """A context that runs its block with the networks' products in format ``name`` on
    ``device``.  fp32 (every training step's default) costs nothing and checks nothing."""
    if name == "fp32":
        return nullcontext()
    check_precision(name, device)
    if name == "tf32":
        return _matmuls("high", cudnn_tf32=True)
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST[name])


@contextmanager
def full_precision(device: torch.device | str) -> Iterator[None]:
    """float32 products inside a ``products_in`` block (for sums that cancel, not layers):
    autocast off, and float32 products at full precision (not tf32)."""
    with _matmuls("highest"), torch.autocast(torch.device(device).type, enabled=False):
        yield


@contextmanager
def _matmuls(level: str, cudnn_tf32: bool | None = None) -> Iterator[None]:
    """float32 matmul precision ``level`` (and cuDNN's tf32 switch) within the block."""
    before, before_cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision(level)
    if cudnn_tf32 is not None:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)
        torch.backends.cudnn.allow_tf32 = before_cudnn


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 when it is a 16-bit float (an autocast layer's output); else as is."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
