"""Tests of diffusion_lib.eval.digits: the bound in nats per image against closed forms, the
stratified estimate against the exact sum, the per-pixel baseline against a direct count."""

import math

import numpy as np
import pytest
import torch

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.data import load_digits_split
from diffusion_lib.eval.digits import (
    independent_pixel_nll,
    negative_bound,
    sample_digits,
    stratified_bound_timesteps,
)


def _oracle(diffusion, x_star, scale=1.0):
    """An eps-model that 'knows' the data is the single image x_star (times ``scale``)."""
    ab = diffusion.schedule.alpha_bar

    def model(xt, t):
        a = ab[t].reshape(-1, 1, 1, 1)
        return scale * (xt - a.sqrt() * x_star) / (1 - a).sqrt()

    return model


@pytest.fixture(scope="module")
def digit():
    return load_digits_split("test")[0][:1]  # (1, 1, 8, 8)


def test_bound_of_a_perfect_model_is_prior_plus_decoder(digit):
    """With pred_x0 = x_0 exactly, every KL term vanishes and the bound is L_T + L_0 in closed form."""
    T = 50
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", T, dtype=torch.float64))
    x = digit.double().repeat(3, 1, 1, 1)
    model = _oracle(diff, x[:1])
    res = negative_bound(diff, model, x, generator=torch.Generator().manual_seed(0))
    s = diff.schedule
    ab_T = float(s.alpha_bar[T])
    prior = 0.5 * (ab_T * x[0] ** 2 + (1 - ab_T) - 1 - math.log(1 - ab_T)).sum()
    sigma1 = math.exp(0.5 * float(s.posterior_log_variance_clipped[1]))  # decoder std at t = 1
    h = 1 / 16
    phi = 0.5 * (1 + math.erf(h / sigma1 / math.sqrt(2)))  # Phi(h / sigma1)
    levels = torch.round((x[0] + 1) * 8)
    edge = (levels == 0) | (levels == 16)
    decoder = -(edge.sum() * math.log(phi) + (~edge).sum() * math.log(2 * phi - 1))
    expected = float(prior + decoder)
    assert torch.allclose(res.per_image, torch.full((3,), expected, dtype=torch.float64), rtol=1e-6)
    assert res.terms[2:].abs().max() < 1e-8
    assert res.bits_per_dim == pytest.approx(expected / (64 * math.log(2)))
    est = negative_bound(diff, model, x, num_timesteps=7, generator=torch.Generator().manual_seed(1))
    assert not est.exact and est.num_timesteps == 7
    assert est.nats_per_image == pytest.approx(expected, rel=1e-6)


def test_stratified_estimate_is_unbiased(digit):
    """An imperfect model: the mean of the K-step estimate matches the exact T-step bound."""
    T = 100
    diff = GaussianDiffusion(NoiseSchedule.from_name("cosine", T, dtype=torch.float64))
    x = digit.double().repeat(400, 1, 1, 1)
    model = _oracle(diff, x[:1], scale=0.9)  # shrinks eps: the KL terms are now positive
    exact = negative_bound(diff, model, x, generator=torch.Generator().manual_seed(0))
    est = negative_bound(diff, model, x, num_timesteps=10, generator=torch.Generator().manual_seed(1))
    assert exact.terms[2:].sum() > 1.0  # the KL terms matter in this test
    se = math.hypot(exact.stderr_nats, est.stderr_nats)
    assert abs(exact.nats_per_image - est.nats_per_image) < 4 * se
    assert est.stderr_nats > exact.stderr_nats  # sampling t costs variance


def test_stratified_timesteps_cover_the_range():
    t, w = stratified_bound_timesteps(1000, 11, batch=64, generator=torch.Generator().manual_seed(0))
    assert t.shape == (10, 64) and w.sum() == 999
    assert int(t.min()) >= 2 and int(t.max()) <= 1000
    edges = torch.cumsum(torch.cat([torch.tensor([2.0]), w.float()]), 0)
    assert bool(((t >= edges[:-1, None]) & (t < edges[1:, None])).all())
    with pytest.raises(ValueError, match="between 2 and T"):
        stratified_bound_timesteps(1000, 1, batch=3)


def test_independent_pixel_baseline_matches_direct_count():
    rng = np.random.default_rng(0)
    tr_lv = rng.integers(0, 17, size=(30, 1, 8, 8))
    te_lv = rng.integers(0, 17, size=(5, 1, 8, 8))
    tr = torch.from_numpy(tr_lv).float() / 8 - 1
    te = torch.from_numpy(te_lv).float() / 8 - 1
    got = independent_pixel_nll(tr, te, alpha=0.5)
    expected = np.zeros(5)
    for n in range(5):
        for j in range(64):
            v = te_lv.reshape(5, 64)[n, j]
            count = (tr_lv.reshape(30, 64)[:, j] == v).sum()
            expected[n] -= math.log((count + 0.5) / (30 + 17 * 0.5))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    # on the book's split: about 106 nats per test image
    nll = independent_pixel_nll(load_digits_split("train")[0], load_digits_split("test")[0]).mean()
    assert 105.0 < float(nll) < 108.0
    with pytest.raises(ValueError, match="alpha must be > 0"):
        independent_pixel_nll(tr, te, alpha=0.0)


def test_bound_rejects_off_grid_images(digit):
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 50))
    with pytest.raises(ValueError, match="quantize_digits"):
        negative_bound(diff, lambda x, t: x, digit + 0.01)


def test_sample_digits_ddim_recovers_the_point(digit):
    """Deterministic DDIM with the exact eps of a one-image data set lands on that image."""
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 200, dtype=torch.float64))
    model = _oracle(diff, digit.double())
    res = sample_digits(diff, model, 6, method="ddim", num_steps=10, batch_size=4, clip_x0=False,
                        generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (6, 1, 8, 8) and res.network_calls == 20
    torch.testing.assert_close(res.samples, digit.double().expand(6, -1, -1, -1), atol=1e-6, rtol=0)
    # respaced DDPM (10 of the 200 steps): its last step returns x̂0, which the exact eps makes the image
    res = sample_digits(diff, model, 6, method="ddpm", num_steps=10, batch_size=4, clip_x0=False,
                        generator=torch.Generator().manual_seed(0))
    assert res.network_calls == 20
    torch.testing.assert_close(res.samples, digit.double().expand(6, -1, -1, -1), atol=1e-6, rtol=0)


def test_ddim_invert_then_decode_reconstructs():
    """Exact eps of Gaussian data N(0.5, 0.3^2): encoding with DDIM and decoding returns the input."""
    from diffusion_lib.eval.digits import ddim_invert

    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 1000, dtype=torch.float64))
    ab, m, v = diff.schedule.alpha_bar, 0.5, 0.09

    def model(xt, t):
        a = ab[t].reshape(-1, 1)
        return (1 - a).sqrt() * (xt - a.sqrt() * m) / (a * v + 1 - a)

    x0 = m + 0.3 * torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    taus = diff.ddim_timesteps(200)
    z = ddim_invert(diff, model, x0, taus)
    assert float(z.std()) == pytest.approx(1.0, abs=0.15)  # the latent looks like noise
    back = diff.ddim_sample_loop(model, x0.shape, timesteps=taus, x_T=z)
    err = (back - x0).abs()  # first-order steps: small discretisation error, not zero
    assert float(err.max()) < 0.06 and float(err.mean()) < 0.02


def test_slerp_endpoints_and_norm():
    from diffusion_lib.eval.digits import slerp

    z0 = torch.tensor([3.0, 0.0])
    z1 = torch.tensor([0.0, 3.0])
    torch.testing.assert_close(slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(slerp(z0, z1, 1.0), z1)
    mid = slerp(z0, z1, 0.5)
    torch.testing.assert_close(mid, torch.tensor([3.0, 3.0]) / math.sqrt(2))  # on the circle of radius 3
    lerp_mid = 0.5 * (z0 + z1)
    assert float(lerp_mid.norm()) < float(mid.norm())
    with pytest.raises(ValueError, match="lam must lie"):
        slerp(z0, z1, 1.5)
