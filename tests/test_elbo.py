"""Tests of diffusion_lib.topics.vdm: both VDM ELBO estimators are unbiased for the exact ELBO of the
Gaussian-data reverse model, form (b) has lower per-term variance, Tweedie's formula, and the
SNR-difference weights of the x0 / eps / score parameterisations."""

import math

import pytest
import torch

from diffusion_lib.topics.vdm import (
    GaussianDataDenoiser,
    default_reverse_variance,
    elbo_consistency_terms,
    elbo_denoising_terms,
    kl_weights,
    total_elbo,
)
from diffusion_lib.core.losses import normal_kl
from diffusion_lib.core.schedules import NoiseSchedule

DT = torch.float64


@pytest.fixture(scope="module")
def sched():
    return NoiseSchedule.from_name("cosine", 40, dtype=DT)


@pytest.mark.parametrize("shrink", [1.0, 0.9])
def test_both_estimators_are_unbiased(sched, shrink):
    den = GaussianDataDenoiser(sched, 0.5, 0.25, shrink=shrink)
    x0 = torch.tensor([[0.3, 1.0, -0.4]], dtype=DT)
    exact = total_elbo(den.exact_terms(x0))
    g = torch.Generator().manual_seed(0)
    xr = x0.repeat(3000, 1)
    for est in (elbo_consistency_terms, elbo_denoising_terms):
        vals = total_elbo(est(sched, den.mean, xr, generator=g))
        se = vals.std() / math.sqrt(len(vals))
        assert abs(vals.mean() - exact) < 4 * se, est.__name__


def test_denoising_terms_match_exact_per_term(sched):
    den = GaussianDataDenoiser(sched, 0.0, 1.0, shrink=0.8)
    x0 = torch.tensor([[1.5, -0.5]], dtype=DT)
    g = torch.Generator().manual_seed(1)
    b = elbo_denoising_terms(sched, den.mean, x0.repeat(4000, 1), generator=g)
    ex = den.exact_terms(x0)
    se = b["denoising"].std(0) / math.sqrt(4000)
    assert ((b["denoising"].mean(0) - ex["denoising"][0]).abs() < 4.5 * se + 1e-12).all()
    assert torch.allclose(b["prior_matching"], ex["prior_matching"].expand(4000))
    assert (ex["denoising"] < 0).all()


def test_denoising_form_has_lower_per_term_variance(sched):
    den = GaussianDataDenoiser(sched, 0.5, 0.25)
    xr = torch.tensor([[0.3, 1.0]], dtype=DT).repeat(2000, 1)
    g = torch.Generator().manual_seed(2)
    a = elbo_consistency_terms(sched, den.mean, xr, generator=g)["consistency"]  # t = 1..T-1
    b = elbo_denoising_terms(sched, den.mean, xr, generator=g)["denoising"]  # t = 2..T
    va, vb = a[:, 1:].var(0), b[:, :-1].var(0)  # t = 2..T-1 in both
    assert (vb < va).float().mean() > 0.9
    assert vb.sum() < 0.3 * va.sum()


def test_tweedie_formula_and_posterior_mean(sched):
    den = GaussianDataDenoiser(sched, 0.7, 0.3)
    g = torch.Generator().manual_seed(3)
    t = 15
    ab = sched.alpha_bar[t]
    xt = torch.randn(10, 2, generator=g, dtype=DT)
    tweedie = (xt + (1 - ab) * den.score(xt, t)) / ab.sqrt()
    assert torch.allclose(tweedie, den.x0_mean(xt, t), atol=1e-12)
    # Monte Carlo: regress x0 on x_t over joint samples; the slope/intercept of E[x0|x_t]
    x0 = 0.7 + math.sqrt(0.3) * torch.randn(200_000, generator=g, dtype=DT)
    xs = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(200_000, generator=g, dtype=DT)
    slope = ((xs - xs.mean()) * (x0 - x0.mean())).mean() / xs.var()
    pred = den.x0_mean(torch.tensor([[0.0]], dtype=DT), t)
    k = den.x0_mean(torch.tensor([[1.0]], dtype=DT), t) - pred
    assert abs(slope - k.item()) < 0.01
    assert abs((x0.mean() - slope * xs.mean()) - pred.item()) < 0.01


def test_model_mean_at_optimum_equals_posterior_mean_of_tweedie(sched):
    den = GaussianDataDenoiser(sched, 0.0, 1.0)
    xt = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=DT)
    t = 10
    expect = sched.posterior_mean_coef_x0[t] * den.x0_mean(xt, t) + sched.posterior_mean_coef_xt[t] * xt
    assert torch.allclose(den.mean(xt, t), expect, atol=1e-12)


def test_kl_equals_weighted_squared_error(sched):
    g = torch.Generator().manual_seed(5)
    x0, x0_hat = torch.randn(3, 4, generator=g, dtype=DT), torch.randn(3, 4, generator=g, dtype=DT)
    eps = torch.randn(3, 4, generator=g, dtype=DT)
    w_x0, w_eps, w_score = (kl_weights(sched, p) for p in ("x0", "eps", "score"))
    assert torch.isnan(w_x0[:2]).all()
    for t in (2, 10, 40):
        ab = sched.alpha_bar[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        mean_q = sched.posterior_mean_coef_x0[t] * x0 + sched.posterior_mean_coef_xt[t] * xt
        mean_p = sched.posterior_mean_coef_x0[t] * x0_hat + sched.posterior_mean_coef_xt[t] * xt
        logv = sched.posterior_variance[t].log()
        kl = normal_kl(mean_q, logv, mean_p, logv).sum(-1)
        assert torch.allclose(kl, w_x0[t] * ((x0_hat - x0) ** 2).sum(-1), rtol=1e-9)
        eps_hat = (xt - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
        assert torch.allclose(kl, w_eps[t] * ((eps_hat - eps) ** 2).sum(-1), rtol=1e-9)
        score, score_hat = -eps / (1 - ab).sqrt(), -eps_hat / (1 - ab).sqrt()
        assert torch.allclose(kl, w_score[t] * ((score_hat - score) ** 2).sum(-1), rtol=1e-9)
    # eps weight equals DDPM's beta_t / (2 alpha_t (1 - abar_{t-1}))
    t = torch.arange(2, 41)
    ddpm = sched.beta[t] / (2 * sched.alpha[t] * (1 - sched.alpha_bar_prev[t]))
    assert torch.allclose(w_eps[2:], ddpm, rtol=1e-9)


def test_input_checks(sched):
    den = GaussianDataDenoiser(sched, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        elbo_denoising_terms(sched, den.mean, torch.zeros(3))
    with pytest.raises(ValueError, match="length T\\+1"):
        elbo_denoising_terms(sched, den.mean, torch.zeros(3, 2, dtype=DT), reverse_variance=torch.ones(5, dtype=DT))
    with pytest.raises(ValueError, match="'x0', 'eps', 'score'"):
        kl_weights(sched, "v")
    assert default_reverse_variance(sched)[1] == sched.beta[1]
