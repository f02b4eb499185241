import math

import torch
import torch.nn.functional as F

from vaelab.distributions import Bernoulli, Normal, scale_parameterisation
from vaelab.models import build_model
from vaelab.objectives import iwae_bound, kl_normal_std_normal


def test_bernoulli_log_prob_is_minus_summed_bce_with_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 784, generator=g) * 3
    x = torch.rand(7, 784, generator=g)
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(Bernoulli(logits).log_prob(x), expected)


def test_bernoulli_log_prob_broadcasts_k_samples_over_images_with_the_same_gradient():
    """Logits (K, B, 784) against images (B, 784), as the K-sample bound evaluates them: the
    values and the gradients of the element-wise formula, to fp32 summation order."""
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(5, 3, 784, generator=g) * 3).requires_grad_()
    x = torch.bernoulli(torch.rand(3, 784, generator=g))
    got = Bernoulli(logits).log_prob(x)
    want = (x * logits - F.softplus(logits)).sum(-1)
    assert got.shape == (5, 3)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-3)
    (g_got,) = torch.autograd.grad(got.sum(), logits)
    (g_want,) = torch.autograd.grad(want.sum(), logits)
    torch.testing.assert_close(g_got, g_want)


def test_bernoulli_log_prob_is_stable_for_extreme_logits():
    logits = torch.tensor([[200.0, -200.0]])
    lp = Bernoulli(logits).log_prob(torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(lp).all() and lp.item() > -1e-6


def test_normal_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, log_scale, x = (torch.randn(5, 9, generator=g) for _ in range(3))
    ours = Normal(mean, log_scale).log_prob(x)
    ref = torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, ref)


def test_closed_form_kl_agrees_with_monte_carlo():
    torch.manual_seed(0)
    q = Normal(torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[-0.3, 0.2, -1.0]]))
    z = q.rsample((200_000,))  # (S, 1, 3)
    prior = Normal(torch.zeros(3), torch.zeros(3))
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    exact = kl_normal_std_normal(q)
    # Monte Carlo standard error here is ~0.005 nats
    assert abs(mc.item() - exact.item()) < 0.03
    # and the closed form matches torch's own KL
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(exact, ref)


def test_kl_is_zero_only_at_the_prior():
    zero = Normal(torch.zeros(1, 4), torch.zeros(1, 4))
    assert kl_normal_std_normal(zero).item() == 0.0
    assert kl_normal_std_normal(Normal(torch.full((1, 4), 0.1), torch.zeros(1, 4))).item() > 0


def test_iwae_with_one_sample_equals_elbo_in_expectation_and_bound_grows_with_k():
    torch.manual_seed(0)
    model = build_model("vae", hidden=[32], latent_dim=4).eval()
    x = torch.bernoulli(torch.rand(6, 784))
    with torch.no_grad():
        terms = model.terms(x)
        elbo = -(terms["recon"] + terms["kl"])  # one-sample ELBO with analytic KL
        # many one-sample IWAE (k = 1) estimates average to the ELBO
        lw1 = model.log_importance_weights(x, 4000)  # (4000, 6): each row a k=1 estimate
        k1_mean = lw1.mean(0)
        elbo_mean = torch.stack([-model.terms(x)["neg_elbo"] for _ in range(400)]).mean(0)
        assert torch.allclose(k1_mean, elbo_mean, atol=2.0)
        assert torch.isfinite(elbo).all()
        bounds = [
            iwae_bound(model.log_importance_weights(x, k)).mean().item() for k in (1, 10, 200)
        ]
    assert bounds[0] < bounds[1] < bounds[2]


def test_iwae_bound_of_equal_weights_is_that_weight():
    lw = torch.full((50, 3), -7.0)
    torch.testing.assert_close(iwae_bound(lw), torch.full((3,), -7.0))
    assert math.isclose(
        iwae_bound(torch.tensor([[0.0], [math.log(3.0)]])).item(), math.log(2.0), rel_tol=1e-6
    )


def test_scale_parameterisation_is_log_var_outside_its_block():
    """from_log_var reads log sigma^2 by default; softplus(s) + 1e-6 = sigma only inside
    scale_parameterisation("softplus"), and a model's encoder follows it."""
    mean, s = torch.zeros(3, 4), torch.linspace(-3, 3, 12).reshape(3, 4)
    assert torch.equal(Normal.from_log_var(mean, s).log_scale, 0.5 * s)
    with scale_parameterisation("softplus"):
        assert torch.allclose(Normal.from_log_var(mean, s).log_scale.exp(), F.softplus(s) + 1e-6)
        model = build_model("vae", hidden=[8], latent_dim=2)
        x = torch.rand(5, 784)
        raw = model.encoder(x).chunk(2, -1)[1]
        assert torch.allclose(model.encode(x).log_scale.exp(), F.softplus(raw) + 1e-6)
    assert torch.equal(Normal.from_log_var(mean, s).log_scale, 0.5 * s)
