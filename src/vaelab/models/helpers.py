"""Small helpers every caller of a model needs: evaluation mode, latent means in batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Switch ``model`` to evaluation mode (and no gradients) for the block, then restore."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def latent_means(
    model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 2000
) -> torch.Tensor:
    """``model.latent_mean`` of every image of ``x`` (N, 784), in batches, in evaluation mode:
    (N, latent_dim) on the CPU."""
    device = model_device(model)
    out = []
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = None if y is None else y[start : start + batch_size].to(device)
            z = model.latent_mean(xb) if yb is None else model.latent_mean(xb, yb)
            out.append(z.cpu())
    if not out:
        return torch.empty(0, model.latent_dim)
    return torch.cat(out)
