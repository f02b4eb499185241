"""q(z|x): the approximate posteriors of the VAE family, registered in ``registry.POSTERIORS``.

A posterior reads the encoder's outputs (``outputs(latent_dim)`` numbers per image) and
answers ``q = posterior(out)``; ``rsample(q, sample_shape)`` draws reparameterised z ~ q(z|x)
with their exact log-density log q(z|x) (nats, summed over latent units), and ``code(q)``
gives one deterministic code per image.

``gaussian``: the diagonal Gaussian N(mu, diag sigma^2) of Kingma & Welling (2014), ``q`` a
``distributions.Normal``.

``iaf``: inverse autoregressive flow (Kingma et al. 2016, section 3 and Algorithm 1).  The
encoder gives mu, log sigma and a context h; z_0 = mu + sigma * eps, eps ~ N(0, I), then for
t = 1..T a MADE network (Germain et al. 2015) of (z_{t-1}, h) gives m_t and s_t, and

    sigma_t = sigmoid(s_t),   z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t

(the numerically stable, LSTM-type update), with the order of the variables reversed from one
step to the next.  Each step's Jacobian is triangular with diagonal sigma_t (m_t and s_t of
unit i read only the units before i), so

    log q(z_T|x) = -sum_i (log sigma_i + eps_i^2 / 2 + log(2 pi) / 2) - sum_t sum_i log sigma_t,i

exactly (Algorithm 1): no closed-form KL, but an exact density at the sampled z, which is all
the ELBO and the importance-sampled bound need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import LOG_2PI, Normal
from .precision import at_least_fp32
from .registry import resolve

# The s_t outputs start near +2, so sigma_t = sigmoid(s_t) is near 0.88 and each step starts
# close to the identity: the forget-gate bias of Kingma et al. 2016 (section 3: "close to +1
# or +2").
FORGET_BIAS = 2.0


def gaussian(out: torch.Tensor) -> Normal:
    """A network's outputs (..., 2 D) read as the mean and log-variance of a diagonal
    Gaussian over (..., D)."""
    mean, log_var = out.chunk(2, dim=-1)
    return Normal.from_log_var(mean, log_var)


class GaussianPosterior(nn.Module):
    """q(z|x) = N(mu(x), diag sigma^2(x)): the encoder's 2 D outputs are mu and log sigma^2."""

    name = "gaussian"
    closed_form = True  # KL(q || N(0, I)) per unit exists in closed form

    def __init__(self, latent_dim: int, **_: object):
        super().__init__()
        self.latent_dim = latent_dim
        self.description = "diagonal Gaussian q(z|x)"
        self.codes = "means of q(z|x)"  # what ``code`` returns

    def outputs(self, latent_dim: int) -> int:
        return 2 * latent_dim

    def forward(self, out: torch.Tensor) -> Normal:
        return gaussian(out)

    def rsample(self, q: Normal, sample_shape: tuple[int, ...] = ()):
        """z = mu + sigma * eps and log q(z|x): shapes (*sample_shape, B, D) and
        (*sample_shape, B)."""
        z = q.rsample(sample_shape)
        return z, q.log_prob(z)

    def code(self, q: Normal) -> torch.Tensor:
        return q.mean


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in): MADE's
    connectivity (Germain et al. 2015)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_masks(order: list[int], context: int, hidden: Sequence[int]) -> list[torch.Tensor]:
    """Masks of a MADE over inputs (z, h): ``order[i]`` is z_i's degree (1..D, its place in
    the step's order), the context's degree is 0 (every unit may read it).  Hidden unit j of
    each layer has degree j mod D; a hidden unit reads inputs of degree <= its own, and the
    two outputs of z_i (m_i, s_i) read hidden units of degree < order[i]: so m_i and s_i
    depend on exactly the z_j before z_i in the order, and on h."""
    d = len(order)
    degrees = [*order, *[0] * context]
    masks = []
    for width in hidden:
        units = [j % d for j in range(width)]
        masks.append(torch.tensor([[float(u >= v) for v in degrees] for u in units]))
        degrees = units
    out = [*order, *order]  # m then s
    masks.append(torch.tensor([[float(o > v) for v in degrees] for o in out]))
    return masks


class AutoregressiveNet(nn.Module):
    """One IAF step's MADE: (z, h) -> (m, s), each (..., D), ELU between layers (the paper's
    choice); the s outputs start at ``FORGET_BIAS``."""

    def __init__(self, order: list[int], context: int, hidden: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, mask in enumerate(made_masks(order, context, hidden)):
            if i:
                layers.append(nn.ELU())
            layers.append(MaskedLinear(mask))
        self.net = nn.Sequential(*layers)
        d = len(order)
        with torch.no_grad():
            self.net[-1].bias[d:] += FORGET_BIAS

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = at_least_fp32(self.net(torch.cat([z, h.expand(*z.shape[:-1], -1)], -1)))
        return out.chunk(2, dim=-1)


class Flowing(NamedTuple):
    """q(z|x) of the IAF for a batch: the Gaussian q(z_0|x) and the context h (B, C)."""

    base: Normal
    context: torch.Tensor


class IAFPosterior(nn.Module):
    """Inverse autoregressive flow on top of a diagonal Gaussian (module docstring); the
    encoder's outputs are mu, log sigma^2 (2 D) and the context h (``context``)."""

    name = "iaf"
    closed_form = False  # log q(z|x) is exact at a sampled z, but no KL in closed form

    def __init__(
        self, latent_dim: int, steps: int = 2, hidden: Sequence[int] = (320,), context: int = 0
    ):
        super().__init__()
        self.latent_dim, self.context = latent_dim, context
        forward = list(range(1, latent_dim + 1))
        self.steps = nn.ModuleList(  # the order reverses from one step to the next
            AutoregressiveNet(forward if t % 2 == 0 else forward[::-1], context, hidden)
            for t in range(steps)
        )
        widths = "-".join(map(str, hidden))
        self.description = f"IAF q(z|x) ({steps} steps, MADE {widths}, context {context})"
        self.codes = "z_T of the IAF at eps = 0 (the flow of the mean of q(z_0|x))"

    def outputs(self, latent_dim: int) -> int:
        return 2 * latent_dim + self.context

    def forward(self, out: torch.Tensor) -> Flowing:
        d = self.latent_dim
        return Flowing(gaussian(out[..., : 2 * d]), at_least_fp32(out[..., 2 * d :]))

    def flow(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_0 (..., D) -> z_T and sum_t sum_i log sigma_t,i (...,): the update, step by step."""
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for step in self.steps:
            m, s = step(z, h)
            gate = torch.sigmoid(s)
            z = gate * z + (1 - gate) * m
            log_det = log_det + F.logsigmoid(s).sum(-1)
        return z, log_det

    def rsample(self, q: Flowing, sample_shape: tuple[int, ...] = ()):
        """z_T and log q(z_T|x) (Algorithm 1): (*sample_shape, B, D), (*sample_shape, B)."""
        mu, log_sigma = q.base.mean, q.base.log_scale
        shape = torch.Size(sample_shape) + mu.shape
        eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)
        z, log_det = self.flow(mu + log_sigma.exp() * eps, q.context)
        log_q0 = (-log_sigma - 0.5 * eps.square() - 0.5 * LOG_2PI).sum(-1)
        return z, log_q0 - log_det

    def code(self, q: Flowing) -> torch.Tensor:
        """z_T at eps = 0: the flow applied to the mean of q(z_0|x)."""
        return self.flow(q.base.mean, q.context)[0]


def build_posterior(name: str, latent_dim: int, **options: object) -> nn.Module:
    return resolve("posterior", name)(latent_dim, **options)
