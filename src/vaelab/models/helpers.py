"""Small helpers every caller of a model needs: evaluation mode, flat codes in batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..nets import init_output_bias
from .abilities import flatten_codes


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


def flat_codes(
    model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 2000
) -> torch.Tensor:
    """``model.code`` of every image of ``x``, in batches, in evaluation mode, flattened
    (``abilities.flatten_codes``): (N, latent_dim) on the CPU."""
    device = model_device(model)
    out = []
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = None if y is None else y[start : start + batch_size].to(device)
            out.append(flatten_codes(model, model.code(xb, yb)).cpu())
    if not out:
        return torch.empty(0, model.latent_dim)
    return torch.cat(out)


@torch.no_grad()
def start_at_mean_image(model, train) -> None:
    """Set the decoder's output bias so that it starts at the data's mean image (for a
    Bernoulli, the logit of each pixel's mean): training does not first spend epochs learning
    the marginal, a plateau in which a VampPrior can collapse for good."""
    init_output_bias(model.decoder, train.x.mean(0), model.likelihood.output_for_mean)
