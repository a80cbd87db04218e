"""Likelihoods, KL divergences and regression losses against independent references."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from diffusion_lib import (
    bits_per_dim,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    mean_flat,
    normal_kl,
    simple_loss,
    sum_flat,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "m1, v1, m2, v2",
    [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -0.2, 2.0), (1.0, 0.01, 0.0, 1.0), (-2.0, 3.0, 0.5, 0.7)],
)
def test_normal_kl_matches_monte_carlo_and_torch(m1: float, v1: float, m2: float, v2: float) -> None:
    mean1, mean2 = torch.tensor([m1], dtype=torch.float64), torch.tensor([m2], dtype=torch.float64)
    lv1, lv2 = torch.tensor([math.log(v1)], dtype=torch.float64), torch.tensor([math.log(v2)], dtype=torch.float64)
    kl = normal_kl(mean1, lv1, mean2, lv2).item()
    # independent closed form from torch.distributions
    def normal(m: float, v: float) -> Normal:
        return Normal(torch.tensor(m, dtype=torch.float64), torch.tensor(math.sqrt(v), dtype=torch.float64))

    reference = kl_divergence(normal(m1, v1), normal(m2, v2)).item()
    assert kl == pytest.approx(reference, rel=1e-12, abs=1e-15)
    # Monte Carlo: KL = E_{x ~ N1}[log N1(x) - log N2(x)], within 5 standard errors
    N = 400_000
    g = torch.Generator().manual_seed(0)
    x = m1 + math.sqrt(v1) * torch.randn(N, generator=g, dtype=torch.float64)
    log_ratio = normal(m1, v1).log_prob(x) - normal(m2, v2).log_prob(x)
    se = log_ratio.std().item() / math.sqrt(N)
    assert abs(log_ratio.mean().item() - kl) <= 5 * se + 1e-12
    assert kl >= 0.0


def test_normal_kl_broadcasts_float_logvars() -> None:
    mean1 = torch.zeros(4, 3)
    out = normal_kl(mean1, 0.0, torch.ones(3), 0.0)
    torch.testing.assert_close(out, torch.full((4, 3), 0.5))


def test_gaussian_log_likelihood_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64) * 3
    mean = torch.randn(50, 3, generator=g, dtype=torch.float64)
    log_var = torch.randn(50, 3, generator=g, dtype=torch.float64)
    got = gaussian_log_likelihood(x, mean, log_var)
    ref = Normal(mean, torch.exp(0.5 * log_var)).log_prob(x)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_levels", [2, 5, 256])
@pytest.mark.parametrize("mean, sigma", [(0.0, 0.3), (0.9, 0.002), (-3.0, 0.5), (0.1, 20.0), (0.37, 1e-4)])
def test_discretized_likelihood_sums_to_one(num_levels: int, mean: float, sigma: float) -> None:
    levels = torch.linspace(-1, 1, num_levels, dtype=torch.float64)
    log_p = discretized_gaussian_log_likelihood(
        levels, torch.full_like(levels, mean), torch.full_like(levels, math.log(sigma)), num_levels
    )
    assert bool(torch.isfinite(log_p).all())  # log space: even 1e-8 sigma away bins stay finite
    assert torch.exp(log_p).sum().item() == pytest.approx(1.0, abs=1e-9)
    assert bool((log_p <= 0).all())


def test_discretized_likelihood_matches_cdf_differences() -> None:
    """Interior bins are Phi(upper) - Phi(lower); the edge bins extend to -inf / +inf."""
    L = 256
    h = 1.0 / (L - 1)
    g = torch.Generator().manual_seed(2)
    k = torch.randint(0, L, (500,), generator=g)
    k[:3] = torch.tensor([0, L - 1, 1])
    x = -1 + 2 * k.double() / (L - 1)
    mean = torch.randn(500, generator=g, dtype=torch.float64) * 0.5
    sigma = torch.exp(torch.randn(500, generator=g, dtype=torch.float64) - 2)
    # reference in 50-digit arithmetic (mpmath ships with torch's sympy dependency)
    mpmath.mp.dps = 50
    expected = []
    for xi, mi, si, ki in zip(x.tolist(), mean.tolist(), sigma.tolist(), k.tolist()):
        # P = Phi(u) - Phi(l) = Phi(-l) - Phi(-u); take the form whose terms are not close to 1
        u = mpmath.inf if ki == L - 1 else (mpmath.mpf(xi) + h - mi) / si
        lo = -mpmath.inf if ki == 0 else (mpmath.mpf(xi) - h - mi) / si
        p = mpmath.ncdf(-lo) - mpmath.ncdf(-u) if lo > 0 else mpmath.ncdf(u) - mpmath.ncdf(lo)
        expected.append(float(mpmath.log(p)))
    got = discretized_gaussian_log_likelihood(x, mean, sigma.log(), num_levels=L)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    # off-grid values are snapped to their nearest level
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x + 0.3 * h, mean, sigma.log(), L), got)


def test_discretized_likelihood_is_stable_in_the_far_tails() -> None:
    """Far from the mean the bin probability underflows in plain float; in log space it stays finite
    and agrees with the Gaussian tail asymptotics log(Phi(b) - Phi(a)) ~ log(phi(a)/|a|) for a << 0
    when the bin is wide relative to the tail (b - a >> 1/|a|)."""
    x = torch.tensor([0.0, 0.5, -0.5], dtype=torch.float64)  # interior levels of a 3-level grid
    mean = torch.tensor([-5.0, 20.0, -20.0], dtype=torch.float64)
    log_scale = torch.full_like(x, math.log(0.1))
    log_p = discretized_gaussian_log_likelihood(x, mean, log_scale, num_levels=5)
    assert bool(torch.isfinite(log_p).all())
    h = 0.25
    z = torch.where(x > mean, (x - h - mean) / 0.1, (mean - x - h) / 0.1)  # distance of the near edge
    approx = -0.5 * z**2 - torch.log(z * math.sqrt(2 * math.pi))
    torch.testing.assert_close(log_p, approx, rtol=1e-3, atol=0)
    # gradients are finite too
    m = mean.clone().requires_grad_(True)
    discretized_gaussian_log_likelihood(x, m, log_scale, num_levels=5).sum().backward()
    assert bool(torch.isfinite(m.grad).all())


def test_simple_loss_values() -> None:
    pred = torch.tensor([[0.0, 2.0, -0.5, 3.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[0.5, 0.0, -0.5, -1.0], [1.0, 1.0, 1.0, 1.0]])
    # d = pred - target = [-0.5, 2, 0, 4]
    torch.testing.assert_close(simple_loss(pred, target), torch.tensor([(0.25 + 4 + 0 + 16) / 4, 0.0]))


def test_reductions_and_bits() -> None:
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    torch.testing.assert_close(mean_flat(x), torch.tensor([5.5, 17.5]))
    torch.testing.assert_close(sum_flat(x), torch.tensor([66.0, 210.0]))
    assert bits_per_dim(math.log(2) * 3072, 3072) == pytest.approx(1.0)
    torch.testing.assert_close(bits_per_dim(torch.tensor([math.log(8.0) * 10]), 10), torch.tensor([3.0]))
