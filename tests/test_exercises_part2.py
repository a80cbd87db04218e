"""Checkers of Part II: references are right, solutions pass, typical mistakes are named."""

import math

import pytest
import torch

from diffusion_lib.diffusion import GaussianDiffusion
from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import ddpm_2d, swiss_roll_2015
from diffusion_lib.losses import normal_kl
from diffusion_lib.models import sinusoidal_embedding
from diffusion_lib.schedules import NoiseSchedule


@pytest.mark.parametrize("checker", [swiss_roll_2015._KL, swiss_roll_2015._POSTERIOR, ddpm_2d._EMB, ddpm_2d._DDIM])
def test_reference_passes_and_every_mistake_is_named(checker):
    checker.validate()


def test_kl_reference_matches_library_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(swiss_roll_2015._kl(mq, lq, mp, lp), normal_kl(mq, lq, mp, lp).sum(-1))
    # Monte Carlo for the first pair
    s = mq[0] + (0.5 * lq[0]).exp() * torch.randn(400_000, 2, generator=g, dtype=torch.float64)
    logq = (-0.5 * ((s - mq[0]) ** 2 / lq[0].exp() + lq[0])).sum(1)
    logp = (-0.5 * ((s - mp[0]) ** 2 / lp[0].exp() + lp[0])).sum(1)
    d = logq - logp
    assert abs(d.mean() - swiss_roll_2015._kl(mq, lq, mp, lp)[0]) < 4 * d.std() / math.sqrt(4e5)


def test_posterior_reference_matches_the_schedule():
    sch = NoiseSchedule.from_name("linear", 40, beta_start=1e-3, beta_end=0.2, dtype=torch.float64)
    gd = GaussianDiffusion(sch)
    x0, xt = torch.randn(2, 40, 2, dtype=torch.float64)
    t = torch.arange(1, 41)
    mean, var = swiss_roll_2015._posterior(x0, xt, sch.beta[t, None], sch.alpha_bar[t, None], sch.alpha_bar_prev[t, None])
    m_ref, v_ref, _ = gd.posterior_mean_variance(x0, xt, t)
    assert torch.allclose(mean, m_ref) and torch.allclose(var.expand(40, 2), v_ref)


def test_ddim_reference_matches_the_library_step():
    sch = NoiseSchedule.from_name("linear", 100, dtype=torch.float64)
    gd = GaussianDiffusion(sch)
    xt, eps = torch.randn(2, 5, 2, dtype=torch.float64)
    model = lambda x, t: eps  # noqa: E731
    out = gd.ddim_step(model, xt, 60, 40)["sample"]
    ours = ddpm_2d._ddim(xt, eps, sch.alpha_bar[60].reshape(1, 1), sch.alpha_bar[40].reshape(1, 1))
    assert torch.allclose(out, ours)


def test_embedding_reference_matches_the_library():
    t = torch.tensor([1, 7, 99])
    assert torch.allclose(ddpm_2d._emb(t, 10, 400.0), sinusoidal_embedding(t, 10, 400.0))


def test_messages_students_see():
    with pytest.raises(ExerciseFeedback, match="arguments are swapped"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: swiss_roll_2015._kl(mp, lp, mq, lq))
    with pytest.raises(ExerciseFeedback, match="forward step"):
        swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (swiss_roll_2015._posterior(x0, xt, b, a, ap)[0], b))
    with pytest.raises(ExerciseFeedback, match="predicted x_0 itself"):
        ddpm_2d.check_ddim_step(lambda xt, e, a, ap: (xt - (1 - a).sqrt() * e) / a.sqrt())
    with pytest.raises(ExerciseFeedback, match="not implemented"):
        ddpm_2d.check_time_embedding(lambda t, d, p: (_ for _ in ()).throw(
            NotImplementedError("not implemented yet — see exercise ex-ddpm-time-embedding")))
