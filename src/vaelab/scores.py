"""A model's loss terms over a whole split: the validation loss of training and the test
loss terms of evaluation come from this one function, so they cannot drift apart."""

from __future__ import annotations

import torch

from . import distributed
from .data import Split, batches
from .models.helpers import eval_mode, model_device


def evaluate_loss(
    model, split: Split, batch_size: int = 1000, *, share: bool = True
) -> dict[str, float]:
    """Mean over the images of ``split`` of each per-image term of ``model.terms``.

    In a group of processes (``distributed.current()``) with ``share`` each process scores
    its share of the images and the sums are added up (training's validation); without, every
    process scores every image, drawing what one process would (evaluation's numbers)."""
    dist = distributed.current()
    sums: dict[str, torch.Tensor] = {}
    device = model_device(model)
    shared = share and dist.active
    mine = split.take(dist.share(len(split))) if shared else split
    with eval_mode(model):
        for xb, yb in batches(mine.to(device), batch_size, shuffle=False):
            for k, v in model.terms(xb, yb).items():
                sums[k] = sums.get(k, 0) + v.sum()
    if shared:
        sums = dist.sum_values(sums)
    return {k: v.item() / max(len(split), 1) for k, v in sums.items()}


def split_diagnostics(model, split: Split) -> dict[str, float]:
    """A model's ``diagnostics`` (``abilities.Diagnostics``) over every image of ``split``,
    in evaluation mode, without gradients; every process of a group computes the same."""
    device = model_device(model)
    with eval_mode(model):
        values = model.diagnostics(split.x.to(device), split.y.to(device))
    return {k: float(v) for k, v in values.items()}
