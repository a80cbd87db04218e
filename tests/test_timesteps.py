"""Timestep sampling: p(t) is a distribution, and importance weights keep the bound unbiased."""

import math

import pytest
import torch

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.core.timesteps import sample_timesteps, timestep_probs


def test_uniform_probs_and_unit_weights():
    p = timestep_probs(50, "uniform")
    assert p.shape == (50,) and torch.allclose(p, torch.full((50,), 1 / 50, dtype=torch.float64))
    t, w = sample_timesteps(p, 1000, torch.Generator().manual_seed(0))
    assert t.min() >= 1 and t.max() <= 50 and torch.equal(w, torch.ones(1000))


def test_inverse_mix_formula():
    T = 1000
    p = timestep_probs(T, "inverse_mix", mix=0.5)
    H = sum(1 / s for s in range(1, T + 1))
    assert abs(p.sum().item() - 1) < 1e-12
    assert abs(p[0].item() - (0.5 / T + 0.5 / H)) < 1e-15          # t = 1
    assert abs(p[T - 1].item() - (0.5 / T + 0.5 / (T * H))) < 1e-15  # t = T
    assert p[0] / p[T - 1] > 50  # small t is drawn far more often


def test_draws_follow_probs():
    p = timestep_probs(10, "inverse_mix", mix=0.5)
    t, w = sample_timesteps(p, 200_000, torch.Generator().manual_seed(1))
    freq = torch.bincount(t, minlength=11)[1:].double() / t.numel()
    assert torch.allclose(freq, p, atol=4 * math.sqrt(0.2 / 200_000) + 1e-4)
    assert torch.allclose(w, (1 / (10 * p[t - 1])).float())


def test_weighted_estimate_is_unbiased():
    # E_{t~p}[w(t) f(t)] = mean_t f(t) for any f: check with f(t) = 1/t^2 by simulation
    T = 100
    p = timestep_probs(T, "inverse_mix", mix=0.7)
    t, w = sample_timesteps(p, 400_000, torch.Generator().manual_seed(2))
    f = 1.0 / t.double() ** 2
    est = (w.double() * f).mean().item()
    exact = sum(1 / s**2 for s in range(1, T + 1)) / T
    se = (w.double() * f).std().item() / math.sqrt(t.numel())
    assert abs(est - exact) < 4 * se


def test_vb_weights_scale_the_bound_term_only():
    diff = GaussianDiffusion(NoiseSchedule.from_name("cosine", 20), model_var_type="learned_range", loss_type="hybrid")
    net = lambda x, t: torch.cat([0.1 * x, torch.zeros_like(x)], dim=1)  # noqa: E731
    x0 = torch.rand(4, 3) * 2 - 1
    t = torch.tensor([1, 5, 10, 20])
    kw = dict(t=t, eps=torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    plain = diff.training_losses(net, x0, **kw)
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])
    weighted = diff.training_losses(net, x0, vb_weights=w, **kw)
    assert torch.allclose(weighted["vb"], plain["vb"]) and torch.allclose(weighted["mse"], plain["mse"])
    assert torch.allclose(weighted["loss"], plain["mse"] + diff.vb_weight * diff.T * w * plain["vb"])
    with pytest.raises(ValueError, match="vb_weights"):
        diff.training_losses(net, x0, vb_weights=torch.ones(3), **kw)


@pytest.mark.parametrize("kwargs, match", [
    (dict(T=10, kind="log"), "kind"),
    (dict(T=10, kind="inverse_mix", mix=1.0), "mix"),
    (dict(T=0), "T"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        timestep_probs(**kwargs)


def test_bad_probs():
    with pytest.raises(ValueError, match="sum to 1"):
        sample_timesteps(torch.tensor([0.5, 0.6], dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="1-D"):
        sample_timesteps(torch.ones(2, 2) / 4, 3)
