"""Tests of diffusion_lib.topics.hvae: the two-level linear-Gaussian HVAE's closed-form ELBO terms against
Monte Carlo, the gap against KL(q || exact posterior), and the exactness of the Markovian encoder."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from diffusion_lib.topics.hvae import LinearGaussianHVAE, MarkovEncoder, fit_encoder, gaussian_condition

DT = torch.float64


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(1)
    A, a = torch.randn(2, 1, generator=g, dtype=DT), torch.randn(2, generator=g, dtype=DT)
    B, b = torch.randn(4, 2, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)
    model = LinearGaussianHVAE(A, a, 0.5, B, b, 0.2)
    x = torch.randn(5, 4, generator=g, dtype=DT)
    return model, x, MarkovEncoder(4, 2, 1, generator=g), g


def test_log_evidence_matches_ancestral_covariance(setup):
    model, x, _, g = setup
    A, a, B, b = (t.numpy() for t in (model.A, model.a, model.B, model.b))
    cov = B @ (A @ A.T + 0.5 * np.eye(2)) @ B.T + 0.2 * np.eye(4)
    ref = multivariate_normal(B @ a + b, cov).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_evidence(x).numpy(), ref, rtol=1e-10)


def test_gaussian_condition_on_a_bivariate_example():
    mean = torch.tensor([1.0, 2.0], dtype=DT)
    cov = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=DT)
    m, c = gaussian_condition(mean, cov, [1], torch.tensor([[3.0]], dtype=DT))
    assert torch.allclose(m, torch.tensor([[1.0 + 0.6 * 1.0]], dtype=DT))
    assert torch.allclose(c, torch.tensor([[2.0 - 0.36]], dtype=DT))
    with pytest.raises(ValueError, match="distinct indices"):
        gaussian_condition(mean, cov, [1, 1], torch.zeros(1, 2, dtype=DT))


def test_closed_form_terms_match_monte_carlo_and_sum_to_elbo(setup):
    model, x, enc, g = setup
    exact = model.elbo_terms(x, enc)
    mc = model.elbo_terms_mc(x, enc, 100_000, g)
    for key in ("reconstruction", "consistency", "prior_matching", "elbo"):
        se = mc[key].std(0) / math.sqrt(mc[key].shape[0])
        assert ((mc[key].mean(0) - exact[key].detach()).abs() < 4 * se).all(), key
    total = exact["reconstruction"] + exact["consistency"] + exact["prior_matching"]
    assert torch.allclose(total, exact["elbo"])
    assert (exact["prior_matching"] <= 0).all()  # minus a KL


def test_gap_is_kl_to_posterior_and_vanishes_for_the_optimal_encoder(setup):
    model, x, enc, _ = setup
    log_px = model.log_evidence(x)
    elbo = model.elbo_terms(x, enc)["elbo"].detach()
    assert (elbo < log_px).all()
    assert torch.allclose(log_px - elbo, model.gap(x, enc).detach(), atol=1e-9)
    opt = model.optimal_encoder()
    assert torch.allclose(model.elbo_terms(x, opt)["elbo"].detach(), log_px, atol=1e-9)


def test_fit_encoder_closes_the_gap(setup):
    model, x, enc, _ = setup
    hist = fit_encoder(model, x, enc, steps=150, lr=0.1)
    gaps = hist["gap"]
    assert gaps[0] > 1.0 and gaps[-1] < 1e-2
    assert min(gaps) >= -1e-9  # ELBO <= log p(x) at every step
    total = [r + c + p for r, c, p in zip(hist["reconstruction"], hist["consistency"], hist["prior_matching"])]
    assert max(abs(t - e) for t, e in zip(total, hist["elbo"])) < 1e-9


def test_model_rejects_bad_shapes():
    with pytest.raises(ValueError, match="A of shape"):
        LinearGaussianHVAE(torch.zeros(2, 1), torch.zeros(2), 1.0, torch.zeros(4, 3), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="noise variances"):
        LinearGaussianHVAE(torch.zeros(2, 1), torch.zeros(2), 0.0, torch.zeros(4, 2), torch.zeros(4), 1.0)
