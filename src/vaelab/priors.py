"""p(z): the priors of the latent-variable models, registered in ``registry.PRIORS``.

A prior is a module with ``log_prob(z, encode)`` (summed over latent units, nats), ``sample``
and, where it exists, the closed-form KL per unit.  ``encode`` maps images to q(z|x); only
priors built from the encoder (the VampPrior) use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .distributions import LOG_2PI, Normal
from .nets import IMAGE_DIM
from .objectives import kl_normal_std_normal_units
from .precision import full_precision
from .registry import resolve

Encode = Callable[[torch.Tensor], Normal]


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I)."""

    name = "standard"
    description = "N(0, I)"
    is_standard_normal = True

    def __init__(self, latent_dim: int, **_: object):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        return (-0.5 * z.square() - 0.5 * LOG_2PI).sum(-1)

    def kl_units(self, q: Normal) -> torch.Tensor | None:
        """KL(q || p) per latent unit in closed form, (B, D)."""
        return kl_normal_std_normal_units(q)

    def sample(
        self, n: int, encode: Encode | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


PSEUDO_START = 0.05  # mean of the pseudo-inputs' weights at the start (the authors': -0.05)
EXACT_COMPONENTS = 32  # components per row whose log-density is recomputed from differences


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k): the mixture of the encoder's posteriors at K learned
    pseudo-inputs u_k (Tomczak & Welling 2018).  u_k = hardtanh(w_k) in [0, 1], w_k initialised
    at N(+0.05, 0.01^2) (starting them at training images trained worse: docs/likelihoods.md).
    A deliberate deviation: the authors' code starts w at N(-0.05, 0.01^2), where hardtanh
    clamps every pixel to 0 and passes no gradient (its slope is 0 below 0), so the pseudo-inputs
    would start as blank images that training cannot move; at +0.05 they start just inside
    (0, 1), near blank, and learn.  No closed-form KL: the models estimate
    KL(q || p) with the sample z ~ q(z|x) as log q(z|x) - log p(z)."""

    name = "vamp"
    description = "VampPrior"
    is_standard_normal = False

    def __init__(self, latent_dim: int, pseudo_inputs: int = 500, input_dim: int = IMAGE_DIM):
        super().__init__()
        self.latent_dim = latent_dim
        self.pseudo = nn.Parameter(PSEUDO_START + 0.01 * torch.randn(pseudo_inputs, input_dim))
        self.description = f"VampPrior ({pseudo_inputs} pseudo-inputs)"

    def inputs(self) -> torch.Tensor:
        return torch.nn.functional.hardtanh(self.pseudo, 0.0, 1.0)  # (K, C*H*W)

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        """log (1/K) sum_k N(z; m_k, s_k^2), summed over units: shape z.shape[:-1].

        All K Gaussians are first evaluated as matmuls, sum_d (z_d - m_d)^2 / s_d^2 =
        z^2 . (1/s^2) - 2 z . (m/s^2) + sum_d m_d^2/s_d^2 (memory (rows, K), not (rows, K, D)),
        whose terms cancel in float32 with an error that grows as (|z|^2 + |m|^2) / s^2.  The
        ``EXACT_COMPONENTS`` largest of each row, which carry the mixture wherever that error
        matters (small s: the nearest components; at large s the error is small anyway), are
        then recomputed from the differences (z_d - m_d) / s_d, which do not cancel.
        """
        assert encode is not None, "the VampPrior needs the encoder"
        q = encode(self.inputs())
        m, log_s = q.mean, q.log_scale.expand_as(q.mean)  # (K, D)
        inv_var = torch.exp(-2 * log_s)  # (K, D)
        flat = z.reshape(-1, z.shape[-1])  # (R, D)
        const = -log_s.sum(-1) - 0.5 * z.shape[-1] * LOG_2PI  # (K,)
        with full_precision(z.device):  # no 16-bit products here
            quad = flat.square() @ inv_var.T - 2 * flat @ (m * inv_var).T  # (R, K)
            quad = quad + (m.square() * inv_var).sum(-1)
            top = (
                (-0.5 * quad.detach() + const)
                .topk(min(EXACT_COMPONENTS, len(m)), -1, sorted=False)
                .indices
            )
            diff = (flat[:, None, :] - m[top]) * torch.exp(-log_s)[top]  # (R, J, D)
            quad = quad.scatter(-1, top, diff.square().sum(-1))
        out = torch.logsumexp(-0.5 * quad + const, dim=-1) - math.log(len(m))
        return out.reshape(z.shape[:-1])

    def kl_units(self, q: Normal) -> None:
        return None

    def sample(
        self, n: int, encode: Encode | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        assert encode is not None, "the VampPrior needs the encoder"
        with torch.no_grad():
            q = encode(self.inputs())
        pick = torch.randint(len(q.mean), (n,), generator=generator).to(q.mean.device)
        eps = torch.randn(n, self.latent_dim, generator=generator).to(q.mean)
        return (q.mean[pick] + q.scale.expand_as(q.mean)[pick] * eps).cpu()


def build_prior(name: str, latent_dim: int, **options: object) -> nn.Module:
    return resolve("prior", name)(latent_dim, **options)
