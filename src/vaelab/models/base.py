"""The model contract: what every model can be asked, and the configuration they share.

Callers (training, evaluation, figures, the explorer, the command line) ask a model what it
can do, never what it is called.  A model answers:

=========================== ===============================================================
``encode(x, y)``            q(z|x) (a ``Normal``) or, for a deterministic AE, codes (B, D)
``latent_mean(x, y)``       the code used for features and pictures, (B, latent_dim)
``decode(z, y)``            p(x|z): a distribution over pixels with ``.mean`` and ``.log_prob``
``terms(x, y)``             per-image values (B,) in nats (or the AE's loss unit): ``loss``
                            and its parts
``loss(x, y, kl_weight)``   the batch means of the terms; ``loss`` is what training minimises
``loss_parts``              ``(key, description)`` of the parts plotted beside the loss
``loss_unit``               the unit of ``loss`` ("nats per image, summed over pixels", ...)
``has_elbo``                terms include ``neg_elbo``, ``recon``, ``kl``, and
                            ``log_importance_weights(x, k, y)`` gives (k, B) log-weights
``has_prior``               ``sample(n)`` draws z from a prior p(z) (otherwise from a stand-in,
                            which ``sample_description`` names)
``conditional``             every method above takes labels ``y`` (B,) and needs them
``numbers_mean(binary)``    what the reported numbers are on such pixels (likelihood / loss /
                            density) and a sentence saying so
``on_train_start(train)``   called before the first epoch of a new run (data-based init)
``on_epoch_end(train)``     called by the training loop after each epoch
``kl_units(x, y)``           KL(q(z_u|x) ‖ p(z_u)) per latent unit in closed form, (B, D),
                            or None where the model has no such per-unit split
``latent_grid(n)``          the axes of a picture of a 2-D latent space
``browser_decoder()``       an MLP of the codes for the browser explorer, or None
=========================== ===============================================================

Unconditional models accept and ignore ``y``, so callers may always pass the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import VaelabError
from ..likelihoods import SCALES, Likelihood, build_likelihood
from ..nets import init_output_bias
from ..registry import check_choice
from .helpers import model_device


@dataclass
class ModelConfig:
    """Architecture of an auto-encoder; these are the model's constructor arguments.

    ``hidden`` lists the encoder's hidden sizes (conv: sizes after the conv stack);
    the decoder mirrors them unless ``decoder_hidden`` is given.  ``likelihood`` is p(x|z)
    (``registry.LIKELIHOODS``): ``bernoulli`` (decoder outputs logits), ``gaussian`` (decoder
    outputs the mean; scale ``sigma``, one scalar, ``fixed`` or ``learned``) or ``cbernoulli``
    (continuous Bernoulli on logits).  ``image_shape``: the images' (channels, height, width),
    MNIST's (1, 28, 28) by default; training sets it from the data.
    """

    latent_dim: int = 20
    encoder: str = "mlp"
    decoder: str = "mlp"
    hidden: Sequence[int] = field(default_factory=lambda: [400])
    decoder_hidden: Sequence[int] | None = None
    activation: str = "relu"
    likelihood: str = "bernoulli"
    scale: str = "fixed"
    sigma: float = 1.0
    image_shape: Sequence[int] = field(default_factory=lambda: [1, 28, 28])

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise VaelabError("; ".join(problems))

    def problems(self) -> list[str]:
        """Everything wrong with these settings, one phrase each (subclasses extend it)."""
        self.hidden = [int(h) for h in self.hidden]
        if self.decoder_hidden is not None:
            self.decoder_hidden = [int(h) for h in self.decoder_hidden]
        problems = []
        if len(self.image_shape) != 3 or any(int(s) < 1 for s in self.image_shape):
            problems.append(
                f"image_shape must be [channels, height, width], got {list(self.image_shape)}"
            )
        else:
            self.image_shape = [int(s) for s in self.image_shape]
        if self.latent_dim < 1:
            problems.append(f"latent_dim must be >= 1, got {self.latent_dim}")
        if any(h < 1 for h in [*self.hidden, *(self.decoder_hidden or [])]):
            problems.append("hidden sizes must be >= 1")
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


class Model(nn.Module):
    """The contract (see the module docstring); subclasses fill in what they can do."""

    name = "model"  # the registry name, set by ``build_model``
    config_class: type = ModelConfig
    has_elbo = False
    has_prior = False
    conditional = False
    loss_parts: tuple[tuple[str, str], ...] = ()
    loss_unit = "nats per image, summed over pixels"
    code_description = "latent means"
    sample_description = "samples: mean of p(x|z)"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.likelihood: Likelihood = build_likelihood(
            cfg.likelihood, scale=cfg.scale, sigma=cfg.sigma
        )

    # --- configuration -------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments: ``type(self)(**self.config)`` rebuilds it."""
        return asdict(self.cfg)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The images' (channels, height, width); inputs and outputs are flat (B, C*H*W)."""
        c, h, w = self.cfg.image_shape
        return c, h, w

    @property
    def latent_dim(self) -> int:
        """Size of the code ``latent_mean`` returns."""
        return self.cfg.latent_dim

    @property
    def label(self) -> str:
        """Short display name for titles ("VAE", "AE", ...)."""
        return self.name.upper()

    def describe(self) -> str:
        """One line: family, networks, latent size, likelihood."""
        cfg = self.cfg
        nets = f"{cfg.encoder} encoder, {cfg.decoder} decoder"
        if "linear" not in (cfg.encoder, cfg.decoder) or cfg.encoder != cfg.decoder:
            nets += f", hidden {list(cfg.hidden)}"
        return f"{self.label}: {nets}, {self.latent_dim}-D code, {cfg.likelihood} p(x|z)"

    # --- the networks ----------------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    def latent_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x | z) for codes (B, D): a distribution over (B, C*H*W) pixels."""
        return self.likelihood(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x | z) at the encoder's mean code: images (B, C*H*W) in pixel units."""
        return self.decode(self.latent_mean(x, y), y).mean

    # --- objectives ------------------------------------------------------------------------

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Per-batch scalars, each the mean over images of a per-image term.

        ``loss`` is what training minimises; the other entries are its parts.  ``kl_weight``
        scales the KL term (warm-up); models without one ignore it.
        """
        return {k: v.mean() for k, v in self.terms(x, y).items()}

    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log p(x, z_i) - log q(z_i | x)`` for k draws z_i ~ q(z|x): (k, B), nats."""
        raise VaelabError(
            f"a {self.label} defines no likelihood: importance sampling needs a latent-variable "
            "model with a prior (vae, iwae, cvae, hvae)"
        )

    def numbers_mean(self, binary: bool) -> dict[str, Any]:
        """What the reported numbers are on binary (or grayscale) pixels."""
        kind = self.likelihood.kind(binary)
        return {
            "kind": kind,
            "is_likelihood": kind == "likelihood",
            "meaning": self.likelihood.meaning(binary),
        }

    # --- generation and pictures -----------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, C*H*W): means of p(x|z) at codes z from ``sample_codes``."""
        z = self.sample_codes(n, generator, y)
        return self.decode(z, y if y is not None else self.default_labels(n)).mean

    def sample_codes(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def default_labels(self, n: int) -> torch.Tensor | None:
        """Labels for ``n`` samples when none are given (conditional models: cycle the classes)."""
        return None

    def kl_units(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """KL(q(z_u|x) ‖ p(z_u)) per latent unit u in closed form, (B, D) nats; None when the
        model has no such split (no prior, a prior that is not factorised, several layers)."""
        return None

    def latent_grid(self, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The n values of z1 and of z2 for a picture of a 2-D latent space, and how."""
        z = torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()
        return z, z, f"z = Φ⁻¹(p) of the N(0, 1) prior, p = 0.05 ... 0.95 in {n} even steps"

    @property
    def standard_normal_prior(self) -> bool:
        """Whether p(z) is N(0, I) (so codes can be drawn without the model)."""
        return bool(getattr(getattr(self, "prior", None), "is_standard_normal", False))

    def browser_decoder(self) -> nn.Module | None:
        """The decoder as a module of the code alone (for the explorer page), or None."""
        return self.decoder

    # --- training hooks ----------------------------------------------------------------------

    def on_train_start(self, train: Any) -> None:
        """Called once before the first epoch of a new run with the training split.

        Starts the decoder at the data's mean image (its output bias at, for a Bernoulli, the
        logit of each pixel's mean), so training does not first spend epochs learning the
        marginal, a plateau in which a VampPrior can collapse for good."""
        if self.decoder is not None:
            init_output_bias(self.decoder, train.x.mean(0), self.likelihood.output_for_mean)

    def on_epoch_end(self, train: Any) -> None:
        """Called after each training epoch with the training split (``batches.Split``)."""

    def device(self) -> torch.device:
        return model_device(self)
