"""The core contract every model keeps, and the configuration they share.

Callers (training, evaluation, figures, the explorer, the command line) ask a model what it
can do, never what it is called.  Every model answers:

=========================== ===============================================================
``encode(x, y)``            q(z|x) (a ``Normal``) or, for a deterministic model, its codes
``decode(z, y)``            p(x|z): a distribution over (B, C*H*W) pixels with ``.mean`` and
                            ``.log_prob``
``code(x, y)``              the code a caller may use as features: (B, *code_shape)
``terms(x, y, kl_weight)``  per-image values (B,) in nats (or the AE's loss unit): ``loss``,
                            what training minimises, and its parts
``loss(x, y, kl_weight)``   the batch means of ``terms`` (derived here, never overridden)
``reconstruct(x, y)``       the mean of p(x|z) at the image's code
``numbers_mean(binary)``    what the reported numbers are on such pixels
``about``                   an ``About`` record for printing: label, summary, loss unit and
                            parts, what the codes and samples are
``image_shape``             (C, H, W); ``code_shape``: one image's code, (D,) by default;
                            ``latent_dim``: the size of a flattened code
=========================== ===============================================================

Images enter every method that takes them as (B, C, H, W) or flat (B, C*H*W); the base turns
them into the flat form before the model's own code runs (``images``), and refuses other
shapes in one line.  What some models can do beyond this (a bound on log p(x), labels,
hooks, shaped codes, ...) is declared in ``abilities.py``.  Unconditional models accept and
ignore ``y``, so callers may always pass the labels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from ..config import SIZE_MAX, field_problems, setting
from ..errors import VaelabError
from ..likelihoods import SCALES, Likelihood, build_likelihood
from ..registry import check_choice, resolve
from .helpers import model_device


@dataclass
class ModelConfig:
    """Architecture of an auto-encoder; these are the model's constructor arguments.

    ``hidden`` lists the encoder's hidden sizes (conv: sizes after the conv stack); the
    decoder mirrors them unless ``decoder_hidden`` is given.  ``likelihood`` is p(x|z)
    (``registry.LIKELIHOODS``): ``bernoulli`` (decoder outputs logits), ``gaussian`` (decoder
    outputs the mean; scale ``sigma``, one scalar, ``fixed`` or ``learned``) or ``cbernoulli``
    (continuous Bernoulli on logits).  ``image_shape``: the images' (channels, height, width);
    training sets it from the data.
    """

    latent_dim: int = setting(20, "latent size", low=1, high=SIZE_MAX)
    encoder: str = setting("mlp", "encoder network", choices="architecture")
    decoder: str = setting("mlp", "decoder network", choices="architecture")
    hidden: Sequence[int] = setting(
        [400],
        "encoder hidden sizes (conv: after the conv stack); the decoder mirrors them",
        metavar="N",
        low=1,
        high=SIZE_MAX,
    )
    decoder_hidden: Sequence[int] | None = setting(
        None,
        "decoder hidden sizes (unset: the encoder's, mirrored)",
        metavar="N",
        low=1,
        high=SIZE_MAX,
    )
    activation: str = setting("relu", "activation between layers", choices="activation")
    likelihood: str = setting(
        "bernoulli",
        "p(x|z): bernoulli on logits, gaussian, or cbernoulli (continuous Bernoulli, a density "
        "on [0, 1]); for the AE: BCE, squared error, or its -log density",
        choices="likelihood",
    )
    scale: str = setting(
        "fixed", "gaussian decoder scale: fixed at sigma, or learned", choices=SCALES
    )
    sigma: float = setting(1.0, "gaussian decoder scale (initial)")
    image_shape: Sequence[int] = setting(
        [1, 28, 28], "the images' (channels, height, width)", cli=False, low=1, high=SIZE_MAX
    )

    def __post_init__(self) -> None:
        for f in fields(self):  # sizes given as tuples or strings of digits: lists of ints
            value = getattr(self, f.name)
            if isinstance(value, list | tuple):
                try:
                    setattr(self, f.name, [int(v) for v in value])
                except (TypeError, ValueError):
                    pass  # problems() names it
        problems = field_problems(self) or self.problems()
        if problems:
            raise VaelabError("; ".join(problems))

    def problems(self) -> list[str]:
        """Everything wrong with these settings that the fields' declarations (types and
        ranges: ``config.field_problems``) do not say, one phrase each (subclasses extend it)."""
        problems = []
        shape = list(self.image_shape)
        if len(shape) != 3:
            problems.append(f"image_shape must be [channels, height, width], got {shape}")
        for kind, value in [
            ("architecture", self.encoder),
            ("architecture", self.decoder),
            ("activation", self.activation),
            ("likelihood", self.likelihood),
        ]:
            problem = check_choice(kind, value)
            if problem:
                problems.append(problem)
        if self.scale not in SCALES:
            problems.append(f"unknown scale {self.scale!r} (choose from {', '.join(SCALES)})")
        if not self.sigma > 0:
            problems.append(f"sigma must be > 0, got {self.sigma}")
        return problems

    @property
    def decoder_sizes(self) -> list[int]:
        return list(self.decoder_hidden if self.decoder_hidden is not None else self.hidden[::-1])


@dataclass(frozen=True)
class About:
    """What a model is, for printing: titles, logs, reports and the explorer page."""

    label: str  # short display name ("VAE", "AE", ...)
    summary: str  # one line: family, networks, code size, likelihood
    loss_unit: str = "nats per image, summed over pixels"
    loss_parts: tuple[tuple[str, str], ...] = ()  # (key, description) plotted beside the loss
    codes: str = "latent means"  # what ``code`` returns
    samples: str = "samples: mean of p(x|z)"  # what ``sample`` draws


# The methods that take images first: the base normalises their shape (``Model.images``).
IMAGE_INPUTS = ("encode", "code", "terms", "log_importance_weights", "kl_units")


def _taking_images(method):
    @functools.wraps(method)
    def takes_images(self, x, *args, **kwargs):
        return method(self, self.images(x), *args, **kwargs)

    takes_images.takes_images = True
    return takes_images


class Model(nn.Module):
    """The core contract (see the module docstring); abilities come from ``abilities.py``."""

    name = "model"  # the registry name, set by ``build_model``
    config_class: type = ModelConfig

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in IMAGE_INPUTS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "takes_images", False):
                setattr(cls, name, _taking_images(method))

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.likelihood: Likelihood = build_likelihood(
            cfg.likelihood, scale=cfg.scale, sigma=cfg.sigma
        )

    # --- configuration and description -----------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments: ``type(self)(**self.config)`` rebuilds it."""
        return asdict(self.cfg)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The images' (channels, height, width)."""
        c, h, w = self.cfg.image_shape
        return c, h, w

    @property
    def code_shape(self) -> tuple[int, ...]:
        """The shape of one image's code; flat (D,) unless the model has ``ShapedCodes``."""
        return (self.cfg.latent_dim,)

    @property
    def latent_dim(self) -> int:
        """The size of a flattened code."""
        return math.prod(self.code_shape)

    @property
    def about(self) -> About:
        """What this model is, for printing (subclasses ``replace`` what they know better)."""
        cfg = self.cfg
        nets = f"{cfg.encoder} encoder, {cfg.decoder} decoder"
        if any(getattr(resolve("architecture", a), "takes_hidden", True)
               for a in (cfg.encoder, cfg.decoder)):  # fmt: skip
            nets += f", hidden {list(cfg.hidden)}"
        label = self.name.upper()
        code = "x".join(map(str, self.code_shape))
        summary = f"{label}: {nets}, {code}-D code, {cfg.likelihood} p(x|z)"
        return About(label=label, summary=summary)

    def describe(self) -> str:
        """One line: family, networks, code size, likelihood (``about.summary``)."""
        return self.about.summary

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) or (B, C*H*W) as the flat (B, C*H*W) the nets read."""
        c, h, w = self.image_shape
        if x.dim() == 4 and tuple(x.shape[1:]) == (c, h, w):
            return x.reshape(len(x), c * h * w)
        if x.dim() == 2 and x.shape[1] == c * h * w:
            return x
        raise VaelabError(
            f"model {self.name!r} takes images of shape (B, {c}, {h}, {w}) or (B, {c * h * w}), "
            f"not {tuple(x.shape)}"
        )

    # --- the networks ----------------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z|x), or a deterministic model's codes."""
        raise NotImplementedError

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code of each image for features and pictures, (B, *code_shape)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x | z) for codes (B, *code_shape): a distribution over (B, C*H*W) pixels."""
        return self.likelihood(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x | z) at the image's ``code``: images (B, C*H*W) in pixel units."""
        return self.decode(self.code(x, y), y).mean

    # --- objectives ------------------------------------------------------------------------

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per-image values (B,): ``loss`` and its parts.  ``kl_weight`` scales a KL term
        (warm-up); models without one ignore it."""
        raise NotImplementedError

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per-batch scalars, each the mean over images of a per-image term of ``terms``;
        ``loss`` is what training minimises."""
        return {k: v.mean() for k, v in self.terms(x, y, kl_weight).items()}

    def numbers_mean(self, binary: bool) -> dict[str, Any]:
        """What the reported numbers are on binary (or grayscale) pixels."""
        kind = self.likelihood.kind(binary)
        return {
            "kind": kind,
            "is_likelihood": kind == "likelihood",
            "meaning": self.likelihood.meaning(binary),
        }

    def device(self) -> torch.device:
        return model_device(self)
