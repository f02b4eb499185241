"""beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"): the VAE
with its KL term split into three parts, each with a weight of its own.

With n the index of a training image, q(z|n) the encoder's posterior, q(z) = (1/N) sum_n
q(z|n) the aggregate posterior and p(z) = prod_j p(z_j), the KL term of the ELBO averaged over
the data decomposes (eq. 2 of the paper) into

    MI     = E[log q(z|n) - log q(z)]                   index-code mutual information
    TC     = E[log q(z) - sum_j log q(z_j)]             total correlation of q(z)
    dimKL  = E[sum_j log q(z_j) - log p(z_j)]           dimension-wise KL

and beta-TCVAE minimises recon + alpha MI + beta TC + gamma dimKL (eq. 4; the paper keeps
alpha = gamma = 1 and tunes beta).  Per image the three terms add up to log q(z|n) - log p(z)
at the same z whatever q(z) is estimated as, so their mean is the KL in expectation.

q(z) and q(z_j) are estimated on the minibatch {n_1 .. n_B}, at z_i ~ q(z|n_i), as
log sum_j w_ij q(z_i | n_j) (and the same per unit j), with the weights w of

* ``mws``, minibatch-weighted sampling (section 4.1, appendix C.1): w_ij = 1/B, the batch
  mean of the posteriors.  The paper writes 1/(N B); those weights sum to 1/N, which lowers
  the estimates of log q(z) and of each log q(z_j) by log N, so adds log N to MI, (D-1) log N
  to TC and -D log N to dimKL: constants without gradient (training is the same), but the
  terms would then not estimate what they are named.
* ``mss``, minibatch-stratified sampling (appendix C.2): with M = B - 1 other images in the
  batch, w_ii = 1/N for the image's own posterior, w_ij = 1/M for M - 1 of the others, and
  (N - M)/(N M) for the last one, j = i + 1 (mod B).  They sum to one and are unbiased for
  q(z_i) = (1/N) q(z_i | n_i) + (1/N) sum_{n != n_i} q(z_i | n).

N is the training set's size, taken when training starts (``on_train_start``) and kept in the
buffer ``dataset_size`` so that a saved or resumed model has it.  Until then (a model built
but not trained) it is 0 and the batch counts as the data set, N = B; N below the batch size
(an evaluation batch larger than the training set) also counts as B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..config import setting
from ..distributions import Normal
from .base import About
from .vae import VAE, VAEConfig

ESTIMATORS = ("mws", "mss")


@dataclass
class TCVAEConfig(VAEConfig):
    """The VAE's settings with ``beta`` the weight of the total correlation; ``alpha`` weighs
    the index-code mutual information and ``gamma`` the dimension-wise KL (alpha = beta =
    gamma = 1: the negative ELBO).  ``estimator``: how q(z) is estimated on the minibatch."""

    alpha: float = setting(1.0, "weight of the index-code mutual information", low=0.0)
    beta: float = setting(6.0, "weight of the total correlation (1: the ELBO)", low=0.0)
    gamma: float = setting(1.0, "weight of the dimension-wise KL", low=0.0)
    estimator: str = setting(
        "mws",
        "q(z) on the minibatch: weighted (mws) or stratified (mss) sampling",
        choices=ESTIMATORS,
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.k > 1:
            problems.append("tcvae splits the ELBO's KL term: k must be 1")
        if self.prior != "standard":
            problems.append("tcvae needs the standard prior (a log p(z_j) per unit)")
        if self.posterior != "gaussian":
            problems.append("tcvae needs the gaussian posterior (a density q(z_j|x) per unit)")
        if self.free_bits > 0:
            problems.append("tcvae has no free bits (its KL is split over the batch, not units)")
        if self.estimator not in ESTIMATORS:
            problems.append(
                f"unknown estimator {self.estimator!r} (choose from {', '.join(ESTIMATORS)})"
            )
        return problems


def log_density_matrix(q: Normal, z: torch.Tensor) -> torch.Tensor:
    """log q(z_id | n_j) for every image i, posterior j and unit d: (B, B, D) nats, from the
    posteriors q (B, D) and one draw z (B, D) per image."""
    scale = q.log_scale.expand_as(q.mean)
    one_d = Normal(q.mean[None, :, :, None], scale[None, :, :, None])  # (1, B, D, 1)
    return one_d.log_prob(z[:, None, :, None])  # the last axis has one unit: (B, B, D)


def mws_log_weights(batch: int, dataset_size: int) -> torch.Tensor:
    """log w (B, B) of minibatch-weighted sampling: w_ij = 1/B (see the module docstring for
    the paper's 1/(N B))."""
    return torch.full((batch, batch), -math.log(batch), dtype=torch.float64)


def mss_log_weights(batch: int, dataset_size: int) -> torch.Tensor:
    """log w (B, B) of minibatch-stratified sampling (Chen et al. 2018, appendix C.2): with
    M = B - 1 and N = ``dataset_size`` >= B, w_ii = 1/N, w_i,i+1 (mod B) = (N - M)/(N M), and
    1/M elsewhere; each row sums to one.  A batch of one image has w = 1/N."""
    n, m = dataset_size, batch - 1
    if m == 0:
        return torch.full((1, 1), -math.log(n), dtype=torch.float64)
    w = torch.full((batch, batch), 1 / m, dtype=torch.float64)
    i = torch.arange(batch)
    w[i, i] = 1 / n
    w[i, (i + 1) % batch] = (n - m) / (n * m)
    return w.log()


WEIGHTS = {"mws": mws_log_weights, "mss": mss_log_weights}


def aggregate_log_densities(
    log_q: torch.Tensor, log_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """From log q(z_id | n_j) (B, B, D) and log weights (B, B): the estimates of log q(z_i)
    and of sum_d log q(z_id), (B,) each: log sum_j w_ij q(z_i | n_j), joint and per unit."""
    log_w = log_w.to(log_q)
    log_qz = torch.logsumexp(log_w + log_q.sum(-1), dim=1)
    log_marginals = torch.logsumexp(log_w[..., None] + log_q, dim=1).sum(-1)
    return log_qz, log_marginals


def decomposed_kl(
    log_qzx: torch.Tensor, log_qz: torch.Tensor, log_marginals: torch.Tensor, log_pz: torch.Tensor
) -> dict[str, torch.Tensor]:
    """MI, TC and dimKL per image (B,), nats (eq. 2): they add up to log q(z|n) - log p(z)."""
    return {
        "mi": log_qzx - log_qz,
        "tc": log_qz - log_marginals,
        "dim_kl": log_marginals - log_pz,
    }


class TCVAE(VAE):
    """The VAE trained on recon + kl_weight * (alpha MI + beta TC + gamma dimKL).

    ``terms(x)`` gives per image (B,), in nats summed over pixels or latent units: ``recon``
    = -log p(x|z) at one z ~ q(z|x); ``kl``, the closed-form KL(q(z|x) || N(0, I)) as in the
    VAE; ``mi``, ``tc`` and ``dim_kl`` at that z with q(z) from the batch (``estimator``);
    ``neg_elbo = recon + kl``; and ``loss = recon + kl_weight * (kl + (alpha - 1) mi +
    (beta - 1) tc + (gamma - 1) dim_kl)``.  Since mi + tc + dim_kl = log q(z|x) - log p(z),
    whose expectation is ``kl``, this has the expectation of eq. 4 and the closed form's
    lower variance, and with alpha = beta = gamma = 1 it is the VAE's loss.  The warm-up
    ``kl_weight`` multiplies the whole weighted KL, as it multiplies beta * KL in the VAE.
    """

    config_class = TCVAEConfig

    def __init__(self, **config):
        super().__init__(**config)
        self.register_buffer("dataset_size", torch.zeros((), dtype=torch.long))

    @property
    def about(self) -> About:
        base = super().about
        cfg = self.cfg
        weights = f"alpha {cfg.alpha:g}, beta {cfg.beta:g}, gamma {cfg.gamma:g}"
        return replace(
            base,
            summary=f"{base.summary}, {weights}, q(z) by {cfg.estimator}",
            loss_parts=(
                ("recon", "reconstruction −log p(x|z)"),
                ("mi", "index-code mutual information"),
                ("tc", "total correlation of q(z)"),
                ("dim_kl", "dimension-wise KL ∑ KL(q(z_j) ‖ p(z_j))"),
            ),
        )

    def on_train_start(self, train) -> None:
        super().on_train_start(train)
        self.dataset_size.fill_(len(train))

    def decomposed(self, q: Normal, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """MI, TC and dimKL (B,) at the draws z (B, D) of the batch's posteriors q."""
        batch = len(z)
        n = max(int(self.dataset_size), batch)
        log_w = WEIGHTS[self.cfg.estimator](batch, n)
        log_qz, log_marginals = aggregate_log_densities(log_density_matrix(q, z), log_w)
        return decomposed_kl(q.log_prob(z), log_qz, log_marginals, self.log_prior(z))

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        q = self.encode(x, y)
        z = q.rsample()  # reparameterisation, the VAE's draw
        recon = -self.decode(z, y).log_prob(x)  # (B,)
        kl = self.prior.kl_units(q).sum(-1)  # closed form (the prior is N(0, I))
        parts = self.decomposed(q, z)
        cfg = self.cfg
        penalty = kl
        for weight, key in ((cfg.alpha, "mi"), (cfg.beta, "tc"), (cfg.gamma, "dim_kl")):
            if weight != 1:  # a weight of one adds nothing: the loss stays the VAE's exactly
                penalty = penalty + (weight - 1) * parts[key]
        return {
            "loss": recon + kl_weight * penalty,
            "recon": recon,
            "kl": kl,
            **parts,
            "neg_elbo": recon + kl,
        }
