"""Checkers of Part II: references are right, solutions pass, typical mistakes are named."""

import math

import pytest
import torch

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import ddpm_2d, swiss_roll_2015
from diffusion_lib.core.losses import normal_kl
from diffusion_lib.models import sinusoidal_embedding
from diffusion_lib.core.schedules import NoiseSchedule


CHECKERS = [swiss_roll_2015._KL, swiss_roll_2015._POSTERIOR, swiss_roll_2015._MOMENTS,
            ddpm_2d._EMB, ddpm_2d._DDIM, ddpm_2d._JUMP]


@pytest.mark.parametrize("checker", CHECKERS, ids=[c.name for c in CHECKERS])
def test_reference_passes_and_every_mistake_is_named(checker):
    checker.validate(min_mistakes=3, min_alternatives=2)


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
    ab, ab_s = sch.alpha_bar[60].reshape(1, 1), sch.alpha_bar[40].reshape(1, 1)
    assert torch.allclose(out, ddpm_2d._ddim(xt, eps, ab, ab_s, 0.0, torch.zeros_like(xt)))
    # eta = 1: the library's stochastic step with the same fresh noise
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out1 = gd.ddim_step(model, xt, 60, 40, eta=1.0, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(out1["sample"], ddpm_2d._ddim(xt, eps, ab, ab_s, 1.0, z))


def test_embedding_reference_matches_the_library():
    t = torch.tensor([1, 7, 99])
    # the reference rounds a float64 computation once; the library computes in float32
    assert torch.allclose(ddpm_2d._emb(t, 10, 400.0), sinusoidal_embedding(t, 10, 400.0), atol=1e-5)


def test_messages_students_see():
    with pytest.raises(ExerciseFeedback, match="arguments are swapped"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: swiss_roll_2015._kl(mp, lp, mq, lq))
    with pytest.raises(ExerciseFeedback, match="forward step"):
        swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (swiss_roll_2015._posterior(x0, xt, b, a, ap)[0], b))
    with pytest.raises(ExerciseFeedback, match="predicted x_0 itself"):
        ddpm_2d.check_ddim_step(lambda xt, e, a, ap, eta, z: (xt - (1 - a).sqrt() * e) / a.sqrt())
    with pytest.raises(ExerciseFeedback, match="not implemented"):
        ddpm_2d.check_time_embedding(lambda t, d, p: (_ for _ in ()).throw(
            NotImplementedError("not implemented yet — see exercise ex-ddpm-time-embedding")))


# --------------------------------------------------------------------------- typical wrong answers, written
# differently from the checkers' Mistake functions, and correct alternatives


def _kl_formula(mq, lq, mp, lp):
    return (0.5 * (lp - lq) + (lq.exp() + (mq - mp) ** 2) / (2 * lp.exp()) - 0.5).sum(-1)


def test_gaussian_kl_wrong_answers_get_their_messages():
    with pytest.raises(ExerciseFeedback, match="detached|no gradient|torch.no_grad"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: _kl_formula(mq, lq, mp, lp).detach())
    with pytest.raises(ExerciseFeedback, match="python-number|Python number|number"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: _kl_formula(mq, lq, mp, lp).detach().sum().item())
    with pytest.raises(ExerciseFeedback, match="factor 1/2"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(-1))
    with pytest.raises(ExerciseFeedback, match="- 1"):
        swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: (0.5 * (lp - lq) + (lq.exp() + (mq - mp) ** 2) / (2 * lp.exp())).sum(-1))


def test_gaussian_kl_alternatives_pass():
    swiss_roll_2015.check_gaussian_kl(_kl_formula)
    swiss_roll_2015.check_gaussian_kl(lambda mq, lq, mp, lp: torch.einsum(
        "bi->b", 0.5 * (torch.exp(lq - lp) + (mq - mp) ** 2 * torch.exp(-lp) - 1 + lp - lq)))


def test_posterior_wrong_answers_get_their_messages():
    with pytest.raises(ExerciseFeedback, match="forward step"):
        swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (swiss_roll_2015._posterior(x0, xt, b, a, ap)[0], 1.0 * b))
    with pytest.raises(ExerciseFeedback, match="sqrt\\(alpha_t\\)"):
        swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (
            (ap ** 0.5 * b * x0 + (1 - b) * (1 - ap) * xt) / (1 - a), b * (1 - ap) / (1 - a)))
    with pytest.raises(ExerciseFeedback, match="upside down"):
        swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (swiss_roll_2015._posterior(x0, xt, b, a, ap)[0], b * (1 - a) / (1 - ap)))


def test_posterior_alternatives_pass():
    swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: (
        (ap.sqrt() * b * x0 + (a / ap).sqrt() * (1 - ap) * xt) / (1 - a), (1 - ap) * b / (1 - a)))
    swiss_roll_2015.check_posterior(lambda x0, xt, b, a, ap: tuple(swiss_roll_2015._posterior(x0, xt, b, a, ap)))


def test_reverse_moments_wrong_answers_get_their_messages():
    ref = swiss_roll_2015._moments
    with pytest.raises(ExerciseFeedback, match="detached|no gradient|torch.no_grad"):
        swiss_roll_2015.check_reverse_moments(lambda x, o, b, a, lt: tuple(v.detach() for v in ref(x, o, b, a, lt)))
    with pytest.raises(ExerciseFeedback, match="sigmoid"):
        swiss_roll_2015.check_reverse_moments(lambda x, o, b, a, lt: (
            ref(x, o, b, a, lt)[0], o[:, 2:] * b.log() + (1 - o[:, 2:]) * lt) if x.shape[1] == 2 else (
            ref(x, o, b, a, lt)[0], o[:, 3:] * b.log() + (1 - o[:, 3:]) * lt))
    with pytest.raises(ExerciseFeedback, match="sign"):
        swiss_roll_2015.check_reverse_moments(lambda x, o, b, a, lt: (
            (x + b * (1 - a) ** -0.5 * o[:, :x.shape[1]]) * (1 - b) ** -0.5, ref(x, o, b, a, lt)[1]))


def test_reverse_moments_alternatives_pass():
    def split_with_chunk(x, o, b, a, lt):
        f, r = torch.chunk(o, 2, dim=1)
        rho = 1 / (1 + torch.exp(-r))
        return (x - b * f / torch.sqrt(1 - a)) / torch.sqrt(1 - b), lt + rho * (torch.log(b) - lt)
    swiss_roll_2015.check_reverse_moments(split_with_chunk)
    swiss_roll_2015.check_reverse_moments(lambda x, o, b, a, lt: tuple(swiss_roll_2015._moments(x, o, b, a, lt)))


def test_time_embedding_wrong_answers_get_their_messages():
    def cos_first(t, d, p):
        w = p ** (-torch.arange(d // 2) / (d // 2))
        return torch.cat([torch.cos(t[:, None] * w), torch.sin(t[:, None] * w)], 1).float()
    with pytest.raises(ExerciseFeedback, match="cosines come first"):
        ddpm_2d.check_time_embedding(cos_first)

    def exponent_over_dim(t, d, p):
        w = p ** (-torch.arange(d // 2) / d)
        return torch.cat([torch.sin(t[:, None] * w), torch.cos(t[:, None] * w)], 1).float()
    with pytest.raises(ExerciseFeedback, match="-k/dim"):
        ddpm_2d.check_time_embedding(exponent_over_dim)

    def squeezed(t, d, p):  # breaks the batch of one: .squeeze() drops the batch dimension
        w = p ** (-torch.arange(d // 2) / (d // 2))
        return torch.cat([torch.sin(t[:, None] * w), torch.cos(t[:, None] * w)], 1).float().squeeze()
    with pytest.raises(ExerciseFeedback, match="shape"):
        ddpm_2d.check_time_embedding(squeezed)


def test_time_embedding_alternatives_pass():
    def via_exp_log(t, d, p):
        w = torch.exp(-math.log(p) * torch.arange(d // 2, dtype=torch.float32) / (d // 2))
        a = t.float().unsqueeze(1) * w.unsqueeze(0)
        return torch.cat([a.sin(), a.cos()], dim=-1)
    ddpm_2d.check_time_embedding(via_exp_log)
    ddpm_2d.check_time_embedding(lambda t, d, p: sinusoidal_embedding(t, d, p))


def test_ddim_step_wrong_answers_get_their_messages():
    def coef_without_sigma(xt, e, a, a_s, eta, z):
        s = eta * torch.sqrt((1 - a_s) / (1 - a) * (1 - a / a_s))
        return torch.sqrt(a_s / a) * (xt - torch.sqrt(1 - a) * e) + torch.sqrt(1 - a_s) * e + s * z
    with pytest.raises(ExerciseFeedback, match="leave room for the fresh noise"):
        ddpm_2d.check_ddim_step(coef_without_sigma)
    with pytest.raises(ExerciseFeedback, match="ignores eta"):
        ddpm_2d.check_ddim_step(lambda xt, e, a, a_s, eta, z: torch.sqrt(a_s / a) * (xt - torch.sqrt(1 - a) * e)
                                + torch.sqrt(1 - a_s) * e)
    with pytest.raises(ExerciseFeedback, match="square roots"):
        ddpm_2d.check_ddim_step(lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a) * e) / a
                                + (1 - a_s - eta**2 * (1 - a_s) / (1 - a) * (1 - a / a_s)).sqrt() * e
                                + eta * ((1 - a_s) / (1 - a) * (1 - a / a_s)).sqrt() * z)


def test_ddim_step_alternatives_pass():
    def sigma_squared_first(xt, e, a, a_s, eta, z):
        var = eta**2 * (1 - a_s) / (1 - a) * (1 - a / a_s)
        x0 = (xt - (1 - a) ** 0.5 * e) / a**0.5
        return a_s**0.5 * x0 + (1 - a_s - var) ** 0.5 * e + var**0.5 * z
    ddpm_2d.check_ddim_step(sigma_squared_first)
    ddpm_2d.check_ddim_step(lambda xt, e, a, a_s, eta, z: ddpm_2d._ddim(xt, e, a, a_s, eta, z).clone())


def test_ddim_jump_variance_wrong_answers_get_their_messages():
    with pytest.raises(ExerciseFeedback, match="marginal"):
        ddpm_2d.check_ddim_jump_variance(lambda a, a_s, v: 1 - a_s * (1 - v))
    with pytest.raises(ExerciseFeedback, match="independent"):
        ddpm_2d.check_ddim_jump_variance(lambda a, a_s, v: a_s * a * v**2 / (a * v + 1 - a) + (1 - a_s) * (1 - a) / (a * v + 1 - a))
    with pytest.raises(ExerciseFeedback, match="python-number|Python number|number"):
        ddpm_2d.check_ddim_jump_variance(lambda a, a_s, v: ddpm_2d._jump_var(a, a_s, v).sum().item())


def test_ddim_jump_variance_alternatives_pass():
    def via_k(a, a_s, v):
        var_t = a * v + 1 - a
        k = (torch.sqrt(a_s * a) * v + torch.sqrt((1 - a_s) * (1 - a))) / var_t
        return k * k * var_t
    ddpm_2d.check_ddim_jump_variance(via_k)
    ddpm_2d.check_ddim_jump_variance(lambda a, a_s, v: torch.square(
        torch.sqrt(a_s * a) * v + torch.sqrt((1 - a_s) * (1 - a))) / (a * v + 1 - a))
