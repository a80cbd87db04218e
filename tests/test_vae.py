"""Tests of diffusion_lib.topics.vae: Gaussian closed forms against scipy / Monte Carlo, the two gradient
estimators against the exact gradient, PPCA's exact evidence / posterior / ELBO gap, and the VAE."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from diffusion_lib.topics.vae import (
    PPCA,
    VAE,
    fit_ppca,
    gradient_samples,
    kl_diag_gaussians,
    kl_diag_gaussians_mc,
    kl_mvn,
    mvn_log_prob,
    reparameterize,
    train_vae,
)

DT = torch.float64


def _spd(k, gen):
    a = torch.randn(k, k, generator=gen, dtype=DT)
    return a @ a.T + 0.5 * torch.eye(k, dtype=DT)


def test_mvn_log_prob_matches_scipy():
    g = torch.Generator().manual_seed(0)
    cov, mean = _spd(3, g), torch.randn(3, generator=g, dtype=DT)
    x = torch.randn(5, 3, generator=g, dtype=DT)
    ref = multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(mvn_log_prob(x, mean, cov).numpy(), ref, rtol=1e-10)


def test_kl_mvn_matches_monte_carlo_and_is_zero_at_equality():
    g = torch.Generator().manual_seed(1)
    m0, m1 = torch.randn(2, generator=g, dtype=DT), torch.randn(2, generator=g, dtype=DT)
    s0, s1 = _spd(2, g), _spd(2, g)
    kl = kl_mvn(m0, s0, m1, s1)
    z = m0 + torch.randn(200_000, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(s0).T
    vals = mvn_log_prob(z, m0, s0) - mvn_log_prob(z, m1, s1)
    se = vals.std() / math.sqrt(len(vals))
    assert abs(vals.mean() - kl) < 4 * se
    assert kl_mvn(m0, s0, m0, s0).abs() < 1e-10
    assert kl > 0


def test_kl_diag_matches_full_and_mc():
    g = torch.Generator().manual_seed(2)
    mq, lq = torch.randn(4, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)
    mp, lp = torch.randn(4, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)
    full = kl_mvn(mq, torch.diag(lq.exp()), mp, torch.diag(lp.exp()))
    assert torch.allclose(kl_diag_gaussians(mq, lq, mp, lp), full, atol=1e-10)
    # closed form against N(0, I) vs the Monte Carlo estimator
    vals = kl_diag_gaussians_mc(mq, lq, 100_000, g)
    assert abs(vals.mean() - kl_diag_gaussians(mq, lq)) < 4 * vals.std() / math.sqrt(len(vals))


def test_kl_diag_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        kl_diag_gaussians(torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="floating"):
        kl_diag_gaussians(torch.zeros(3, dtype=torch.long), torch.zeros(3))


def test_reparameterize_moments_and_gradient():
    g = torch.Generator().manual_seed(3)
    mean = torch.tensor([1.0, -2.0], dtype=DT, requires_grad=True)
    logvar = torch.tensor([0.5, -1.0], dtype=DT, requires_grad=True)
    z = reparameterize(mean, logvar, 100_000, g)
    assert z.shape == (100_000, 2)
    assert torch.allclose(z.mean(0), mean.detach(), atol=0.02)
    assert torch.allclose(z.var(0), logvar.detach().exp(), rtol=0.02)
    z.mean(0).sum().backward()  # d mean(z) / d mean = 1
    assert torch.allclose(mean.grad, torch.ones(2, dtype=DT))


@pytest.mark.parametrize("estimator", ["reparam", "score"])
def test_gradient_estimators_are_unbiased(estimator):
    # E_{N(mu, s^2)}[(z - c)^2] = (mu - c)^2 + s^2: d/dmu = 2 (mu - c), d/dlog s = 2 s^2
    g = torch.Generator().manual_seed(4)
    mu, log_s, c = torch.tensor([0.3, -0.5], dtype=DT), torch.tensor([0.0, -0.7], dtype=DT), 1.0
    f = lambda z: ((z - c) ** 2).sum(-1)  # noqa: E731
    est = gradient_samples(f, mu, log_s, 200_000, estimator, g)
    exact = torch.stack([2 * (mu - c), 2 * torch.exp(2 * log_s)])
    se = est.std(0) / math.sqrt(est.shape[0])
    assert ((est.mean(0) - exact).abs() < 4 * se + 1e-12).all()


def test_reparam_gradient_has_much_lower_variance():
    g = torch.Generator().manual_seed(5)
    mu, log_s = torch.zeros(3, dtype=DT), torch.zeros(3, dtype=DT)
    f = lambda z: ((z - 1.0) ** 2).sum(-1)  # noqa: E731
    var_r = gradient_samples(f, mu, log_s, 20_000, "reparam", g).var(0)
    var_s = gradient_samples(f, mu, log_s, 20_000, "score", g).var(0)
    assert (var_s > 5 * var_r).all()


def test_gradient_samples_checks_f_output():
    with pytest.raises(ValueError, match="one value per sample"):
        gradient_samples(lambda z: z, torch.zeros(2), torch.zeros(2), 10)
    with pytest.raises(ValueError, match="'reparam', 'score'"):
        gradient_samples(lambda z: z.sum(-1), torch.zeros(2), torch.zeros(2), 10, "pathwise")


@pytest.fixture
def ppca():
    g = torch.Generator().manual_seed(6)
    return PPCA(torch.randn(5, 2, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT), 0.4), g


def test_ppca_evidence_and_posterior_against_joint_gaussian(ppca):
    model, g = ppca
    W, mu, s2 = model.W.numpy(), model.mu.numpy(), model.sigma2
    x = torch.randn(4, 5, generator=g, dtype=DT)
    C = W @ W.T + s2 * np.eye(5)
    ref = multivariate_normal(mu, C).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_evidence(x).numpy(), ref, rtol=1e-10)
    # posterior by conditioning the joint Gaussian of (z, x): Cov(z, x) = W^T
    gain = W.T @ np.linalg.inv(C)
    post_mean = (x.numpy() - mu) @ gain.T
    post_cov = np.eye(2) - gain @ W
    m, S = model.posterior(x)
    np.testing.assert_allclose(m.numpy(), post_mean, atol=1e-10)
    np.testing.assert_allclose(S.numpy(), post_cov, atol=1e-10)


def test_ppca_elbo_gap_equals_kl_to_posterior(ppca):
    model, g = ppca
    x, _ = model.sample(3, g)
    log_px = model.log_evidence(x)
    pm, pc = model.posterior(x)
    assert torch.allclose(model.elbo(x, pm, pc), log_px, atol=1e-10)  # exact posterior: no gap
    for shift, scale in [(0.5, 1.0), (0.0, 3.0), (-1.0, 0.2)]:
        qm, qc = pm + shift, pc * scale
        elbo = model.elbo(x, qm, qc)
        assert (elbo < log_px).all()
        assert torch.allclose(log_px - elbo, kl_mvn(qm, qc, pm, pc), atol=1e-9)


def test_ppca_elbo_closed_form_matches_monte_carlo(ppca):
    model, g = ppca
    x, _ = model.sample(2, g)
    qm, qc = torch.zeros(2, 2, dtype=DT), 0.5 * torch.eye(2, dtype=DT)
    vals = model.elbo_mc(x, qm, qc, 100_000, g)
    se = vals.std(0) / math.sqrt(vals.shape[0])
    assert ((vals.mean(0) - model.elbo(x, qm, qc)).abs() < 4 * se).all()


def test_fit_ppca_recovers_the_model(ppca):
    model, g = ppca
    x, _ = model.sample(100_000, g)
    fit = fit_ppca(x, 2)
    assert abs(fit.sigma2 - model.sigma2) < 0.02
    assert torch.allclose(fit.marginal_cov(), model.marginal_cov(), atol=0.1)
    # the maximum-likelihood fit beats the true parameters on the training sample
    assert fit.log_evidence(x).mean() >= model.log_evidence(x).mean()


def test_ppca_rejects_bad_input():
    with pytest.raises(ValueError, match="sigma2"):
        PPCA(torch.zeros(3, 1), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="mu must have shape"):
        PPCA(torch.zeros(3, 1), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="k must be"):
        fit_ppca(torch.zeros(10, 3), 3)


def test_vae_elbo_terms_and_training_improves_elbo():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(256, 1, 4, 4, generator=g))
    model = VAE(data_dim=16, latent_dim=2, hidden=32)
    terms = model.elbo_terms(x, generator=g)
    assert set(terms) == {"reconstruction", "kl", "elbo"}
    assert all(v.shape == (256,) for v in terms.values())
    assert (terms["kl"] >= 0).all()
    assert torch.allclose(terms["elbo"], terms["reconstruction"] - terms["kl"])
    with torch.no_grad():
        before = model.elbo_terms(x, n_samples=8, generator=g)["elbo"].mean()
    train_vae(model, x, steps=150, batch_size=64, generator=g, progress=False)
    with torch.no_grad():
        after = model.elbo_terms(x, n_samples=8, generator=g)["elbo"].mean()
        log_px = model.log_evidence_is(x, 64, g).mean()
    assert after > before + 5.0
    assert log_px >= after  # the importance-sampled bound is tighter than the ELBO
    assert model.sample(3, g).shape == (3, 16)
    with pytest.raises(ValueError, match="expects 16 values"):
        model.elbo_terms(torch.zeros(2, 10))
