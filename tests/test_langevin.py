"""Tests of diffusion_lib.topics.langevin: Langevin sampling and Tweedie's formula against closed forms."""

import pytest
import torch

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.topics.langevin import (
    annealed_langevin,
    annealed_step_sizes,
    langevin_dynamics,
    score_from_eps_model,
    tweedie_x0,
)
from diffusion_lib.core.schedules import NoiseSchedule

M = torch.tensor([0.5, -1.0])
S2 = 0.25  # data ~ N(M, S2 I)


def _exact_eps(schedule):
    # For Gaussian data q_t = N(sqrt(abar) M, (abar S2 + 1 - abar) I), so
    # E[eps | x_t] = -sqrt(1 - abar) * score = sqrt(1 - abar) (x - sqrt(abar) M) / (abar S2 + 1 - abar).
    def eps(x, t):
        ab = schedule.alpha_bar[t].unsqueeze(1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * M) / (ab * S2 + 1 - ab)

    return eps


def test_langevin_samples_a_gaussian():
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(20000, 2, generator=g)
    score = lambda y: -(y - M) / S2  # noqa: E731
    x = langevin_dynamics(score, x, step_size=0.01, n_steps=400, generator=g)
    assert torch.allclose(x.mean(0), M, atol=0.02)
    # ULA's stationary variance for a Gaussian is S2 / (1 - a / (4 S2)): 1% above S2 here
    assert x.var(0).mean().item() == pytest.approx(S2 / (1 - 0.01 / (4 * S2)), rel=0.04)


def test_tweedie_recovers_the_posterior_mean():
    sch = NoiseSchedule.from_name("linear", 50)
    score = score_from_eps_model(_exact_eps(sch), sch)
    x = torch.tensor([[0.3, 0.7], [-1.0, 2.0]])
    t = torch.tensor([10, 10])
    ab = sch.alpha_bar[10].item()
    # Gaussian conjugacy: E[x0 | x_t] = M + S2 sqrt(ab) (x - sqrt(ab) M) / (ab S2 + 1 - ab)
    expected = M + S2 * ab**0.5 * (x - ab**0.5 * M) / (ab * S2 + 1 - ab)
    got = tweedie_x0(x, score(x, t), ab)
    assert torch.allclose(got, expected, atol=1e-5)
    # and agrees with the diffusion's own x0 prediction from eps
    gd = GaussianDiffusion(sch)
    assert torch.allclose(got, gd.predict_x0_from_eps(x, t, _exact_eps(sch)(x, t)), atol=1e-5)


def test_annealed_langevin_with_exact_scores_reaches_the_data():
    sch = NoiseSchedule.from_name("linear", 50)
    score = score_from_eps_model(_exact_eps(sch), sch)
    ts = list(range(50, 0, -5))
    sizes = annealed_step_sizes(sch, ts, eps=2e-2)
    assert sizes[-1] == pytest.approx(2e-2) and sizes[0] > sizes[-1]
    g = torch.Generator().manual_seed(1)
    traj = annealed_langevin(score, torch.randn(10000, 2, generator=g), ts, sizes, 60, g, return_trajectory=True)
    x = traj[-1]
    assert len(traj) == len(ts) + 1
    # q_5 is N(sqrt(ab5) M, (ab5 S2 + 1 - ab5) I): the chain ends there
    ab = sch.alpha_bar[5].item()
    assert torch.allclose(x.mean(0), ab**0.5 * M, atol=0.03)
    assert x.var(0).mean().item() == pytest.approx(ab * S2 + 1 - ab, rel=0.08)


def test_bad_arguments():
    sch = NoiseSchedule.from_name("linear", 50)
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(lambda x, t: x, torch.zeros(2, 2), [1, 5], [0.1, 0.1], 1)
    with pytest.raises(ValueError, match="one step size per level"):
        annealed_langevin(lambda x, t: x, torch.zeros(2, 2), [5, 1], [0.1], 1)
    with pytest.raises(ValueError, match="alpha_bar_t"):
        tweedie_x0(torch.zeros(2, 2), torch.zeros(2, 2), 0.0)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        score_from_eps_model(lambda x, t: x, "linear")
    with pytest.raises(ValueError, match="positive"):
        annealed_step_sizes(sch, [3, 2], eps=0.0)
