"""Variational auto-encoder (Kingma & Welling 2014): q(z|x) (a diagonal Gaussian, or an inverse
autoregressive flow: ``posteriors.py``), a prior, p(x|z)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..config import K_MAX, SIZE_MAX, setting
from ..distributions import Normal
from ..nets import build_decoder, build_encoder
from ..objectives import free_bits_kl_per_image, sample_terms
from ..posteriors import build_posterior, gaussian
from ..priors import build_prior
from ..registry import check_choice
from .abilities import EpochHooks, HasBound, KLPerUnit, LatentPictures
from .base import About, Model, ModelConfig
from .helpers import start_at_mean_image


@dataclass
class VAEConfig(ModelConfig):
    """``beta`` weighs the KL term (beta = 1: the negative ELBO).  ``k`` is the number of
    importance samples of the training bound (1: the ELBO; more: the IWAE bound of Burda et al.
    2016).  ``prior``: ``standard`` N(0, I) or ``vamp`` (``pseudo_inputs`` learned inputs).
    ``free_bits``: nats per latent unit below which the KL is not pushed down (Kingma et al.
    2016); 0 = off.  ``posterior``: q(z|x), ``gaussian`` or ``iaf`` (inverse autoregressive flow,
    Kingma et al. 2016: ``flow_steps`` steps, each a MADE with hidden sizes ``flow_hidden``
    reading z and a context of ``flow_context`` numbers from the encoder)."""

    beta: float = setting(1.0, "KL weight (1: the ELBO)", low=0.0)
    k: int = setting(1, "importance samples of the training bound (1: the ELBO)", low=1, high=K_MAX)
    prior: str = setting("standard", "p(z): standard N(0, I) or vamp", choices="prior")
    pseudo_inputs: int = setting(
        500, "VampPrior components (learned pseudo-inputs)", low=1, high=SIZE_MAX
    )
    free_bits: float = setting(
        0.0, "nats per latent unit kept free of KL pressure (0: off)", low=0.0
    )
    posterior: str = setting(
        "gaussian", "q(z|x): diagonal gaussian or iaf (inverse autoregressive flow)",
        choices="posterior",
    )  # fmt: skip
    flow_steps: int = setting(2, "iaf: number of flow steps", low=0, high=1000)
    flow_hidden: Sequence[int] = setting(
        [320], "iaf: hidden sizes of each step's autoregressive net", low=1, high=SIZE_MAX
    )
    flow_context: int = setting(
        50, "iaf: size of the context h the encoder gives the flow", low=0, high=SIZE_MAX
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.k > 1 and self.beta != 1:
            problems.append("beta != 1 has no meaning in the importance-weighted bound (k > 1)")
        if self.free_bits > 0 and (self.k > 1 or self.prior != "standard"):
            problems.append("free_bits needs k = 1 and the standard prior (a KL per unit)")
        for kind, value in [("prior", self.prior), ("posterior", self.posterior)]:
            problem = check_choice(kind, value)
            if problem:
                problems.append(problem)
        if self.posterior != "gaussian" and (self.free_bits > 0 or self.prior != "standard"):
            problems.append(
                f"posterior {self.posterior!r} needs free_bits = 0 and the standard prior "
                "(no KL per unit; the VampPrior is built from a Gaussian q)"
            )
        return problems


__all__ = ["VAE", "VAEConfig", "gaussian"]  # gaussian: posteriors.gaussian, for the subclasses


class VAE(Model, HasBound, KLPerUnit, LatentPictures, EpochHooks):
    """q(z|x) = N(mu(x), diag sigma^2(x)) (or an IAF on top of it: ``posteriors.py``), a prior
    p(z), p(x|z) from the likelihood.

    ``terms(x)`` gives per-image values in nats (summed over pixels / latent units):
    ``recon = -log p(x|z)`` at one reparameterised z ~ q(z|x), ``kl = KL(q(z|x) || p(z))``
    (closed form for a Gaussian q and N(0, I), else log q(z|x) - log p(z) at that z, the
    one-sample estimate), ``neg_elbo = recon + kl``
    and ``loss = recon + beta * kl_weight * kl``; with k > 1 samples, ``loss`` is minus the
    k-sample bound and ``recon``, ``kl`` are averaged over the k samples.
    """

    config_class = VAEConfig

    def __init__(self, **config):
        cfg = self.config_class(**config)
        super().__init__(cfg)
        d, extra = cfg.latent_dim, self.label_dim
        shape = cfg.image_shape
        self.posterior = build_posterior(
            cfg.posterior, d, steps=cfg.flow_steps, hidden=cfg.flow_hidden, context=cfg.flow_context
        )  # a Gaussian has no weights: a gaussian VAE's weights are drawn as before
        self.encoder = build_encoder(
            cfg.encoder, self.posterior.outputs(d), cfg.hidden, cfg.activation, shape, extra=extra
        )
        self.decoder = build_decoder(
            cfg.decoder, d + extra, cfg.decoder_sizes, cfg.activation, shape
        )
        self.prior = build_prior(
            cfg.prior, d, pseudo_inputs=cfg.pseudo_inputs, input_dim=math.prod(shape)
        )

    label_dim = 0  # extra inputs of encoder and decoder (a conditional model's one-hot label)

    @property
    def about(self) -> About:
        base = super().about
        extra = f", k={self.cfg.k}" if self.cfg.k > 1 else ""
        if self.cfg.posterior != "gaussian":  # the default goes unsaid, as before
            extra += f", posterior {self.posterior.description}"
        return replace(
            base,
            summary=f"{base.summary}, prior {self.prior.description}{extra}",
            loss_parts=(("recon", "reconstruction −log p(x|z)"), ("kl", "KL(q(z|x) ‖ p(z))")),
            codes=self.posterior.codes,
            samples=f"samples: mean of p(x|z), z ~ {self.prior.description}",
        )

    # --- networks ----------------------------------------------------------------------------

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z | x) for images (B, C*H*W): a diagonal Gaussian over (B, D) (a ``Normal``), or
        what the posterior reads (``posteriors.Flowing``: q(z_0|x) and the flow's context)."""
        return self.posterior(self.encoder(x))

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.posterior.code(self.encode(x, y))

    def _prior_encode(self, u: torch.Tensor) -> Normal:
        """q(z | u) for the prior's pseudo-inputs (VampPrior)."""
        return self.encode(u)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(z, self._prior_encode)

    def sample_codes(self, n, generator=None, y=None) -> torch.Tensor:
        return self.prior.sample(n, self._prior_encode, generator).to(self.device())

    def on_train_start(self, train) -> None:
        start_at_mean_image(self, train)

    # --- objectives ------------------------------------------------------------------------

    def _log_parts(self, x, k: int, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-log p(x|z_i) and log q(z_i|x) - log p(z_i) for k draws z_i ~ q(z|x): (k, B) each."""
        q = self.encode(x, y)
        z, log_q = self.posterior.rsample(q, (k,))  # (k, B, D), (k, B)
        yk = None if y is None else y.repeat(k)  # rows of z.reshape are sample-major
        px = self.decode(z.reshape(-1, z.shape[-1]), yk).reshape(k, len(x), -1)  # (k, B, 784)
        recon = -px.log_prob(x)  # x broadcasts over the k samples: (k, B)
        kl = log_q - self.log_prior(z)  # (k, B)
        return recon, kl

    def kl_units(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        if not self.posterior.closed_form:
            return None  # a flow's KL has no closed form, per unit or whole
        return self.prior.kl_units(self.encode(x, y))

    def log_importance_weights(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log p(x|z_i) + log p(z_i) - log q(z_i|x)``, z_i ~ q(z|x): (k, B) nats, the log
        importance weights of Burda et al. 2016 (eq. 8), shared by training and evaluation."""
        recon, kl = self._log_parts(x, k, y)
        return -recon - kl

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """The KL enters ``loss`` with weight ``beta * kl_weight`` and, with ``free_bits``, per
        unit as the batch's free-bits term (``objectives.free_bits_kl_per_image``)."""
        if self.cfg.k > 1 or not self.posterior.closed_form:
            # -log (1/k) sum_i w_i and the k-sample average of the parts (beta is 1 when
            # k > 1); a flow at k = 1: the ELBO with the one-sample KL log q(z|x) - log p(z)
            recon, kl = self._log_parts(x, self.cfg.k, y)  # (k, B) each
            return sample_terms(recon, kl, self.cfg.beta, kl_weight)
        q = self.encode(x, y)
        z = q.rsample()  # reparameterisation: z = mu + sigma * eps, eps ~ N(0, I)
        recon = -self.decode(z, y).log_prob(x)  # (B,)
        kl_units = self.prior.kl_units(q)  # (B, D) in closed form, or None
        if kl_units is not None:
            kl = kl_units.sum(-1)
        else:  # one-sample estimate of KL(q || p) at the same z
            kl = q.log_prob(z) - self.log_prior(z)
        fb = self.cfg.free_bits
        kl_term = free_bits_kl_per_image(kl_units, fb) if fb else kl
        return {
            "loss": recon + self.cfg.beta * kl_weight * kl_term,
            "recon": recon,
            "kl": kl,
            "neg_elbo": recon + kl,
        }
