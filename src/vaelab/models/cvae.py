"""Conditional VAE (Sohn et al. 2015; Doersch 2016, section 4): q(z | x, y) and p(x | z, y).

The label y (a digit) enters encoder and decoder as a one-hot vector appended to their
inputs; the prior stays p(z) = N(0, I), independent of y.  So z is free to carry what the
label does not say (slant, thickness: the style), and ``sample(n, y=...)`` draws a chosen
digit.  Its importance-sampled numbers are -log p(x | y), not -log p(x).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import SIZE_MAX, setting
from ..errors import VaelabError
from .abilities import Conditional
from .base import About
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    """The VAE's settings plus ``num_classes`` (10 digits).  MLP or linear encoder (the label
    is appended to the pixels); any decoder (the label is appended to the code).

    The code is 2-D by default: a small code holds the style and leaves the digit to the
    label.  With a larger one the encoder also stores the digit in z, and prior samples drawn
    for a chosen label come out as other digits more and more often as the code grows
    (docs/tutorial.md gives the measurement)."""

    latent_dim: int = setting(
        2, "latent size (small: the code keeps the style only)", low=1, high=SIZE_MAX
    )
    num_classes: int = setting(
        10, "cvae: number of labels (the data's, when labelled)", low=2, high=SIZE_MAX
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.encoder not in ("mlp", "linear"):
            problems.append(f"a cvae takes an mlp or linear encoder, not {self.encoder!r}")
        if self.prior != "standard":
            problems.append("a cvae uses the standard prior")
        return problems


def one_hot(y: torch.Tensor | None, n: int, rows: int, like: torch.Tensor) -> torch.Tensor:
    """(rows, n) one-hot codes of labels ``y``; a clear error when labels are missing."""
    if y is None:
        raise VaelabError("this model is conditional: it needs the labels y")
    if len(y) != rows:
        raise VaelabError(f"{rows} inputs but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
        raise VaelabError(f"labels must lie in 0..{n - 1}")
    return torch.nn.functional.one_hot(y.long().to(like.device), n).to(like.dtype)


class CVAE(VAE, Conditional):
    config_class = CVAEConfig

    @property
    def label_dim(self) -> int:  # read by VAE.__init__ to widen encoder and decoder inputs
        return self.cfg.num_classes

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def about(self) -> About:
        base = super().about
        return replace(
            base,
            loss_parts=(
                ("recon", "reconstruction −log p(x|z, y)"),
                ("kl", "KL(q(z|x, y) ‖ p(z))"),
            ),
            codes=base.codes.replace("|x)", "|x, y)"),
            samples="samples: mean of p(x|z, y), z ~ N(0, I), one digit y per row",
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z | x, y): the posterior (``posteriors.py``) of the encoder's outputs."""
        return self.posterior(
            self.encoder(torch.cat([x, one_hot(y, self.num_classes, len(x), x)], -1))
        )

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        h = torch.cat([z, one_hot(y, self.num_classes, len(z), z)], -1)
        return self.likelihood(self.decoder(h))

    def numbers_mean(self, binary: bool) -> dict:
        out = super().numbers_mean(binary)
        out["meaning"] += "; conditional on the label: -log p(x|y), not comparable to -log p(x)"
        out["conditional"] = True
        return out

    def browser_decoder(self) -> None:
        return None  # the decoder reads a label beside the code
