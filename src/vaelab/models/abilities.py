"""What a model may be able to do beyond the core contract (``base.Model``), one small class
per ability.

A model declares an ability by inheriting its class (``class VAE(Model, HasBound, ...)``),
and must then give the methods listed there.  Callers ask ``isinstance(model, HasBound)`` (or
``issubclass(cls, HasBound)`` of a class that is not built yet) and refuse in one line with
``require(model, HasBound, "importance sampling")``; they never ask a model's name.

=================== =============================================================================
``HasBound``        a bound on log p(x): ``log_importance_weights(x, k, y)`` and a prior
                    ``prior`` whose codes ``sample_codes`` draws
``Samples``         ``sample_codes(n, generator, y)`` and with it ``sample(n, generator, y)``
``Conditional``     reads labels y: ``num_classes`` and ``default_labels(n)``
``StepHook``        ``on_train_step(step, losses)`` after every optimizer step
``EpochHooks``      ``on_train_start(train)`` before the first epoch, ``on_epoch_end(train)``
``ShapedCodes``     codes that are not flat (B, D): ``code_shape`` and how to flatten them
``KLPerUnit``       ``kl_units(x, y)``: KL(q(z_u|x) ‖ p(z_u)) per latent unit
``LatentPictures``  ``latent_grid(n)`` and ``browser_decoder()`` for pictures of a 2-D code
``Diagnostics``     ``diagnostics(x, y)``: numbers about a split that are not per-image terms
                    (a codebook's usage), after every epoch and in ``evaluate``
``ParameterGroups`` ``parameter_groups(lr)``: parts trained with optimizer settings of their
                    own (a discriminator's rate and betas)
=================== =============================================================================
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from ..errors import VaelabError

__all__ = [
    "Conditional",
    "Diagnostics",
    "EpochHooks",
    "HasBound",
    "KLPerUnit",
    "LatentPictures",
    "ParameterGroups",
    "Samples",
    "ShapedCodes",
    "StepHook",
    "flatten_codes",
    "require",
    "shape_codes",
]


class Ability(ABC):  # noqa: B024  (a marker: the abilities below add the abstract methods)
    """An ability a model declares by inheriting it; ``needs`` completes "X needs ..."."""

    needs = "an ability"


class Samples(Ability):
    """Draws codes, and so images: from a prior, or (an AE) from a stand-in that the model's
    ``about.samples`` names."""

    needs = "a way to draw codes"

    @abstractmethod
    def sample_codes(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n codes, shaped as ``code`` returns them, on the model's device."""

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n images (n, C*H*W): means of p(x|z) at codes z from ``sample_codes``."""
        if y is None and isinstance(self, Conditional):
            y = self.default_labels(n)
        return self.decode(self.sample_codes(n, generator, y), y).mean


class HasBound(Samples):
    """A latent-variable model with a prior p(z): its ELBO bounds log p(x) (log p(x|y) for a
    conditional one), its terms include ``neg_elbo``, ``recon`` and ``kl``, and importance
    sampling tightens the bound."""

    needs = "a bound on log p(x) (a latent-variable model with a prior)"
    prior: Any  # priors.Prior

    @abstractmethod
    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log p(x, z_i) - log q(z_i | x)`` for k draws z_i ~ q(z|x): (k, B), nats."""

    @property
    def standard_normal_prior(self) -> bool:
        """Whether p(z) is N(0, I) (so codes can be drawn without the model)."""
        return bool(getattr(self.prior, "is_standard_normal", False))


class Conditional(Ability):
    """Every method takes labels y (B,) in 0 .. num_classes - 1, and needs them."""

    needs = "labels (a conditional model)"

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """How many labels there are."""

    def default_labels(self, n: int) -> torch.Tensor:
        """Labels for ``n`` samples when none are given: the classes in turn."""
        return torch.arange(n, device=self.device()) % self.num_classes


class StepHook(Ability):
    """Told about every training step, after the optimizer has updated the weights."""

    needs = "a per-step hook"

    @abstractmethod
    def on_train_step(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        """``step``: the batch's index in the run (epoch * batches per epoch + batch,
        0-based); ``losses``: the step's batch means (detached, on the model's device)."""


class EpochHooks(Ability):
    """Told when training starts (a new run, not a resumed one) and after each epoch, with the
    training split (``batches.Split``)."""

    needs = "training hooks"

    def on_train_start(self, train: Any) -> None:
        """Called once before the first epoch of a new run (data-based initialisation)."""

    def on_epoch_end(self, train: Any) -> None:
        """Called after each training epoch."""


class ShapedCodes(Ability):
    """Codes that are not flat: ``code`` returns (B, *code_shape).  Probes, scatter plots,
    ``vaelab encode`` and the explorer read them flattened to (B, latent_dim)."""

    needs = "shaped codes"

    @property
    @abstractmethod
    def code_shape(self) -> tuple[int, ...]:
        """The shape of one image's code, e.g. (4, 7, 7)."""

    @property
    def latent_dim(self) -> int:
        return math.prod(self.code_shape)

    def flatten_code(self, z: torch.Tensor) -> torch.Tensor:
        """(B, *code_shape) -> (B, latent_dim)."""
        return z.reshape(len(z), -1)

    def shape_code(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, *code_shape), the inverse of ``flatten_code``."""
        return z.reshape(len(z), *self.code_shape)


class KLPerUnit(Ability):
    """A KL term that splits over latent units in closed form (one stochastic layer)."""

    needs = "a KL per latent unit"

    @abstractmethod
    def kl_units(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """KL(q(z_u|x) ‖ p(z_u)) per latent unit u, (B, D) nats; None where this model's
        settings give no closed form (a VampPrior)."""


class LatentPictures(Ability):
    """Codes a decoder reads alone, so that a 2-D code space can be pictured and explored."""

    needs = "a decoder of the code alone"

    def latent_grid(self, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The n values of z1 and of z2 for a picture of a 2-D latent space, and how."""
        z = torch.special.ndtri(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()
        return z, z, f"z = Φ⁻¹(p) of the N(0, 1) prior, p = 0.05 ... 0.95 in {n} even steps"

    def browser_decoder(self) -> nn.Module | None:
        """The decoder as a module of the code alone (for the explorer page); None where it
        needs more than the code (a label)."""
        return self.decoder


class Diagnostics(Ability):
    """Numbers about the model on a set of images that are not means of per-image terms (a
    codebook's usage and perplexity): measured on the validation split after every epoch
    (metrics ``val_<name>``) and on the evaluated split by ``evaluate`` (``diagnostics``)."""

    needs = "diagnostics"

    @abstractmethod
    def diagnostics(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """Named numbers over the images x (flat, on the model's device), computed without
        gradients; their meanings and units are ``diagnostics_about``."""

    @property
    @abstractmethod
    def diagnostics_about(self) -> dict[str, str]:
        """What each of ``diagnostics``' numbers is, with its unit (for printing)."""


class ParameterGroups(Ability):
    """Parts of the model trained with optimizer settings of their own (a FactorVAE's
    discriminator, with its own Adam rate and betas).  Adam keeps its state per parameter, so
    one Adam with a group per part takes the same steps as one Adam per part; the run's
    learning-rate schedule scales every group's rate alike."""

    needs = "parameter groups"

    @abstractmethod
    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """``torch.optim`` parameter groups covering every parameter once; ``lr`` is the
        run's rate, which groups without their own ``lr`` take."""


def require(model, ability: type[Ability], what: str) -> None:
    """Refuse in one line when ``model`` (an instance or a class) lacks ``ability``:
    "importance sampling needs a bound on log p(x) ...; model 'ae' has none"."""
    has = issubclass(model, ability) if isinstance(model, type) else isinstance(model, ability)
    if not has:
        name = model.__name__ if isinstance(model, type) else model.name
        raise VaelabError(f"{what} needs {ability.needs}; model {name!r} has none")


def flatten_codes(model, z: torch.Tensor) -> torch.Tensor:
    """Codes as ``model.code`` returns them -> (B, latent_dim)."""
    return model.flatten_code(z) if isinstance(model, ShapedCodes) else z


def shape_codes(model, z: torch.Tensor) -> torch.Tensor:
    """Flat codes (B, latent_dim) -> the shape ``model.decode`` reads."""
    return model.shape_code(z) if isinstance(model, ShapedCodes) else z
