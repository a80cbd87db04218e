r"""The variational bound, checked where it is known exactly: Gaussian data and single-point data.

For data x_0 ~ N(m, s^2) every marginal of the forward process is Gaussian,
q(x_t) = N(sqrt(abar_t) m, v_t) with v_t = abar_t s^2 + 1 - abar_t, and so is every reverse
conditional: Var(x_{t-1} | x_t) = r_t = v_{t-1} beta_t / v_t. The optimal eps-predictor
E[eps | x_t] is affine in x_t (written out in ``optimal_eps``), and with it the model's mean
equals E[x_{t-1} | x_t] exactly. The expected bound then exceeds the expected exact NLL by

    gap = KL(q(x_T) || N(0, 1)) + sum_{t=1}^{T} KL( N(0, r_t) || N(0, sigma_t^2) )

(the chain rule of KL for q(x_{0:T}) against p(x_{0:T}), factorising q in reverse time), where
sigma_t^2 is the model's variance (sigma_1^2 is the t = 1 decoder's). Each piece of the bound has
a closed-form expectation too; the tests compare Monte Carlo averages with all of them, within
5 standard errors. Everything reference-side is computed here from the betas, in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from diffusion_lib import GaussianDiffusion, NoiseSchedule, make_beta

torch.set_num_threads(1)
Z = 5.0


def gaussian_theory(betas: np.ndarray, m: float, s: float, var_type: str) -> dict[str, float]:
    """Closed-form expectations of the bound's pieces for N(m, s^2) data and the optimal predictor."""
    T = len(betas)
    beta = np.concatenate([[0.0], betas])
    abar = np.cumprod(1.0 - beta)  # abar_0 = 1
    v = abar * s * s + 1.0 - abar  # Var(x_t), t = 0..T
    t = np.arange(1, T + 1)
    r = v[t - 1] * beta[t] / v[t]  # Var(x_{t-1} | x_t)
    tilde = beta[t] * (1.0 - abar[t - 1]) / (1.0 - abar[t])  # posterior variance (0 at t = 1)
    sigma2 = (tilde if var_type == "fixed_small" else beta[t]).copy()
    sigma2[0] = tilde[1]  # the t = 1 decoder variance: tilde beta_2 for both fixed types (DDPM)
    # E[L_{t-1}] for t >= 2: KL of Gaussians with variances tilde beta_t, sigma_t^2 plus the expected
    # squared mean mismatch E[(tilde mu - mu)^2] = r_t - tilde beta_t, over 2 sigma_t^2
    kl_terms = 0.5 * (np.log(sigma2[1:] / tilde[1:]) + r[1:] / sigma2[1:] - 1.0)
    decoder = 0.5 * math.log(2 * math.pi * sigma2[0]) + r[0] / (2 * sigma2[0])
    prior = 0.5 * (-math.log(1 - abar[T]) + (1 - abar[T]) + abar[T] * (m * m + s * s) - 1.0)
    nll = 0.5 * math.log(2 * math.pi * s * s) + 0.5  # E[-log N(x_0; m, s^2)]
    gap_terms = 0.5 * (r / sigma2 - 1.0 - np.log(r / sigma2))
    prior_gap = 0.5 * (v[T] + abar[T] * m * m - 1.0 - math.log(v[T]))
    return {
        "kl_sum": float(kl_terms.sum()),
        "decoder": decoder,
        "prior": prior,
        "nll": nll,
        "gap": float(gap_terms.sum() + prior_gap),
    }


class optimal_eps:
    """E[eps | x_t] = sqrt(1 - abar_t) (x_t - sqrt(abar_t) m) / (abar_t s^2 + 1 - abar_t), times ``scale``."""

    def __init__(self, betas: np.ndarray, m: float, s: float, scale: float = 1.0) -> None:
        self.abar = torch.from_numpy(np.concatenate([[1.0], np.cumprod(1.0 - betas)]))
        self.m, self.s, self.scale = m, s, scale

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
        return self.scale * torch.sqrt(1 - a) * (xt - torch.sqrt(a) * self.m) / (a * self.s**2 + 1 - a)


def within(samples: torch.Tensor, expected: float, what: str) -> None:
    se = samples.std().item() / math.sqrt(samples.numel())
    got = samples.mean().item()
    assert abs(got - expected) <= Z * se, f"{what}: Monte Carlo {got:.4f} +- {se:.4f} vs exact {expected:.4f}"


@pytest.mark.parametrize("var_type", ["fixed_small", "fixed_large"])
def test_bound_on_gaussian_data_matches_closed_form(var_type: str) -> None:
    """T = 1000 linear schedule, x_0 ~ N(0.3, 0.5^2), gaussian decoder, 4000 examples.

    The exact gap is 0.570 nats (fixed_small) and 0.115 nats (fixed_large); about 0.114 of it is the
    t = 1 decoder, whose variance tilde beta_2 ~ beta_1 / 2 is half the true Var(x_0 | x_1) ~ beta_1.
    """
    T, B, m, s = 1000, 4000, 0.3, 0.5
    betas = make_beta("linear", T).numpy()
    theory = gaussian_theory(betas, m, s, var_type)
    diffusion = GaussianDiffusion(NoiseSchedule(torch.from_numpy(betas), dtype=torch.float64), model_var_type=var_type)
    g = torch.Generator().manual_seed(0)
    x0 = m + s * torch.randn(B, 1, generator=g, dtype=torch.float64)
    vb = diffusion.variational_bound(optimal_eps(betas, m, s), x0, decoder="gaussian", generator=g)
    nll = -torch.distributions.Normal(m, s).log_prob(x0).squeeze(1)

    within(vb["terms"][:, 2:].sum(1), theory["kl_sum"], "sum of KL terms L_1..L_{T-1}")
    within(vb["terms"][:, 1], theory["decoder"], "decoder term L_0")
    within(vb["prior"], theory["prior"], "prior term L_T")
    within(nll, theory["nll"], "exact NLL")
    within(vb["total"] - nll, theory["gap"], "bound minus exact NLL")
    # the bound is above the NLL on average, by a margin the schedule and variance choice explain
    assert 0.0 < theory["gap"] < (0.6 if var_type == "fixed_small" else 0.12)
    expected_gap = {"fixed_small": 0.5699, "fixed_large": 0.1147}[var_type]
    assert theory["gap"] == pytest.approx(expected_gap, abs=1e-3)


def test_worse_predictors_give_a_larger_bound() -> None:
    """Same x_0 and the same noise (common random numbers) for each predictor, so the paired
    difference of bounds is measured precisely."""
    T, B, m, s = 1000, 1000, 0.3, 0.5
    betas = make_beta("linear", T).numpy()
    diffusion = GaussianDiffusion(NoiseSchedule(torch.from_numpy(betas), dtype=torch.float64), model_var_type="fixed_large")
    x0 = m + s * torch.randn(B, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def bound(model: optimal_eps) -> torch.Tensor:
        return diffusion.variational_bound(model, x0, decoder="gaussian", generator=torch.Generator().manual_seed(2))["total"]

    best = bound(optimal_eps(betas, m, s))
    for worse in (optimal_eps(betas, m, s, scale=0.9), optimal_eps(betas, m + 0.2, s)):
        diff = bound(worse) - best
        se = diff.std().item() / math.sqrt(B)
        assert diff.mean().item() > Z * se, (diff.mean().item(), se)


def test_float32_bound_agrees_with_closed_form() -> None:
    """The default float32 schedule and data give the same bound within Monte Carlo error."""
    T, B, m, s = 1000, 1500, 0.3, 0.5
    betas = make_beta("linear", T).numpy()
    theory = gaussian_theory(betas, m, s, "fixed_large")
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T), model_var_type="fixed_large")
    g = torch.Generator().manual_seed(3)
    x0 = m + s * torch.randn(B, 1, generator=g)
    vb = diffusion.variational_bound(optimal_eps(betas, m, s), x0, decoder="gaussian", generator=g)
    assert vb["total"].dtype == torch.float32
    nll = -torch.distributions.Normal(m, s).log_prob(x0.double()).squeeze(1)
    within(vb["total"].double() - nll, theory["gap"], "float32 bound minus exact NLL")


def test_discretized_bound_for_a_single_data_point() -> None:
    """Data = one fixed image on the 256-level grid. The optimal predictor knows it, so with
    fixed_small every KL term L_1..L_{T-1} is 0 (the model's step *is* the posterior) and the bound is
    L_T + L_0 with L_0 = -sum log P(bin of x_0 | N(x_0, tilde beta_2)), i.e. per dimension
    -log(2 Phi(h / sigma) - 1) for interior levels and -log Phi(h / sigma) at the two edge levels."""
    T = 200
    betas = make_beta("linear", T).numpy()
    diffusion = GaussianDiffusion(NoiseSchedule(torch.from_numpy(betas), dtype=torch.float64))
    g = torch.Generator().manual_seed(4)
    point = (torch.randint(0, 256, (1, 2, 3, 3), generator=g).double() / 127.5 - 1.0)
    point[0, 0, 0, 0], point[0, 1, 2, 2] = -1.0, 1.0  # include both edge levels
    x0 = point.expand(3, 2, 3, 3).contiguous()
    abar = torch.from_numpy(np.concatenate([[1.0], np.cumprod(1.0 - betas)]))

    def oracle(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t].reshape(-1, 1, 1, 1)
        return (xt - a.sqrt() * point) / (1 - a).sqrt()

    vb = diffusion.variational_bound(oracle, x0, generator=g)
    assert float(vb["terms"][:, 2:].abs().max()) < 1e-8
    tilde_2 = betas[1] * (1 - (1 - betas[0])) / (1 - (1 - betas[0]) * (1 - betas[1]))
    zh = (1.0 / 255.0) / math.sqrt(tilde_2)
    std = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    interior = -math.log(2 * std.cdf(torch.tensor(zh, dtype=torch.float64)).item() - 1)
    edge = -math.log(std.cdf(torch.tensor(zh, dtype=torch.float64)).item())
    n_edge = int(((point == -1) | (point == 1)).sum())
    expected_decoder = n_edge * edge + (18 - n_edge) * interior
    torch.testing.assert_close(vb["terms"][:, 1], torch.full((3,), expected_decoder, dtype=torch.float64))
    # layout: index 0 unused, total = prior + sum of terms, bits per dimension
    assert bool((vb["terms"][:, 0] == 0).all())
    torch.testing.assert_close(vb["total"], vb["prior"] + vb["terms"].sum(1))
    torch.testing.assert_close(vb["bits_per_dim"], vb["total"] / (18 * math.log(2)))


def test_prior_term_is_negligible_for_linear_T1000() -> None:
    """L_T = 1/2 sum_d [abar_T x_d^2 - log(1 - abar_T) - abar_T] (closed form), < 1e-4 nats per dim."""
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 1000, dtype=torch.float64))
    abar_T = float(np.prod(1.0 - make_beta("linear", 1000).numpy()))
    x0 = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    x0[0] = 1.0  # the worst case: every pixel at the edge of [-1, 1]
    prior = diffusion.prior_kl(x0)
    expected = 0.5 * (abar_T * x0**2 - math.log(1 - abar_T) - abar_T).sum(dim=(1, 2, 3))
    torch.testing.assert_close(prior, expected, rtol=1e-9, atol=1e-15)
    per_dim = prior / (3 * 8 * 8)
    assert float(per_dim.max()) < 1e-4


@pytest.mark.parametrize("var_type", ["fixed_small", "fixed_large"])
def test_vb_term_equals_independent_kl_and_decoder_nll(var_type: str) -> None:
    """Deterministic check of single terms for a given x_t: the KL for t >= 2 and the gaussian decoder
    NLL for t = 1, each rebuilt here from the betas with torch.distributions."""
    T, B = 100, 6
    betas = make_beta("linear", T).numpy()
    beta = np.concatenate([[0.0], betas])
    abar = np.cumprod(1.0 - beta)
    diffusion = GaussianDiffusion(NoiseSchedule(torch.from_numpy(betas), dtype=torch.float64), model_var_type=var_type)
    g = torch.Generator().manual_seed(6)
    x0 = torch.rand(B, 4, generator=g, dtype=torch.float64) * 2 - 1
    xt = torch.randn(B, 4, generator=g, dtype=torch.float64)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.sin(3 * x) + 0.01 * t.to(x.dtype)[:, None]

    tilde_2 = beta[2] * (1 - abar[1]) / (1 - abar[2])
    for t in (1, 2, 37, 100):
        eps_hat = model(xt, torch.full((B,), t))
        x0_hat = (xt - math.sqrt(1 - abar[t]) * eps_hat) / math.sqrt(abar[t])

        def posterior(x_start: torch.Tensor) -> torch.Tensor:
            return (
                math.sqrt(abar[t - 1]) * beta[t] / (1 - abar[t]) * x_start
                + math.sqrt(1 - beta[t]) * (1 - abar[t - 1]) / (1 - abar[t]) * xt
            )

        tilde_t = beta[t] * (1 - abar[t - 1]) / (1 - abar[t])
        model_var = tilde_2 if t == 1 else (tilde_t if var_type == "fixed_small" else beta[t])
        p = Normal(posterior(x0_hat), math.sqrt(model_var))
        if t == 1:
            expected = -p.log_prob(x0).sum(1)
        else:
            q = Normal(posterior(x0), math.sqrt(tilde_t))
            expected = torch.distributions.kl_divergence(q, p).sum(1)
        got = diffusion.vb_term(model, x0, xt, t, decoder="gaussian")
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
