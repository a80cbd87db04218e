"""Checkers of the score chapter: references are right, solutions pass, typical mistakes are named."""

import math

import pytest
import torch

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import score_2d
from diffusion_lib.topics.langevin import langevin_dynamics, tweedie_x0
from diffusion_lib.core.schedules import NoiseSchedule


CHECKERS = [score_2d._GAUSS, score_2d._LANGEVIN, score_2d._TWEEDIE]


@pytest.mark.parametrize("checker", CHECKERS, ids=[c.name for c in CHECKERS])
def test_reference_passes_and_every_mistake_is_named(checker):
    checker.validate(min_mistakes=3, min_alternatives=2)


def test_gaussian_score_reference_is_the_gradient_of_the_simulated_marginal():
    # Simulate x_t = sqrt(ab) x0 + sqrt(1 - ab) eps with x0 ~ N(m, s2 I): its mean and variance
    # must be the ones the reference assumes, and the reference must be the gradient of that
    # Gaussian's log-density.
    g = torch.Generator().manual_seed(0)
    m = torch.tensor([0.8, -1.5], dtype=torch.float64)
    s2, ab, n = 0.3, 0.4, 400_000
    x0 = m + math.sqrt(s2) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    var_t = ab * s2 + 1 - ab
    assert torch.allclose(xt.mean(0), math.sqrt(ab) * m, atol=4 * math.sqrt(var_t / n))
    assert torch.allclose(xt.var(0), torch.full((2,), var_t, dtype=torch.float64), rtol=0.01)

    x = torch.randn(5, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    log_q = (-0.5 * ((x - math.sqrt(ab) * m) ** 2).sum(1) / var_t).sum()
    (grad,) = torch.autograd.grad(log_q, x)
    ours = score_2d._gaussian_score(x.detach(), torch.full((5, 1), ab, dtype=torch.float64), m, s2)
    assert torch.allclose(ours, grad)


def test_gaussian_score_is_minus_the_conditional_noise_over_sigma():
    # Denoising score matching: for Gaussian data the regression of eps on x_t is linear, and
    # -E[eps | x_t] / sqrt(1 - ab) must equal the score. Fit the regression by least squares.
    g = torch.Generator().manual_seed(1)
    m = torch.tensor([0.5, 0.5], dtype=torch.float64)
    s2, ab, n = 2.0, 0.3, 200_000
    x0 = m + math.sqrt(s2) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    design = torch.cat([xt, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, eps).solution
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps_hat = torch.cat([x, torch.ones(4, 1, dtype=torch.float64)], 1) @ coef
    ours = score_2d._gaussian_score(x, torch.full((4, 1), ab, dtype=torch.float64), m, s2)
    assert torch.allclose(-eps_hat / math.sqrt(1 - ab), ours, atol=0.01)


def test_langevin_reference_matches_one_library_step():
    x = torch.randn(6, 2)
    score = lambda y: -(y - 1.0) / 0.5  # noqa: E731
    out = langevin_dynamics(score, x, step_size=0.2, n_steps=1, generator=torch.Generator().manual_seed(3))
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out, score_2d._langevin_step(x, score(x), 0.2, z))


def test_tweedie_reference_matches_the_library_and_the_x0_prediction():
    sch = NoiseSchedule.from_name("linear", 100, dtype=torch.float64)
    gd = GaussianDiffusion(sch)
    xt, eps = torch.randn(2, 5, 2, dtype=torch.float64)
    t = torch.tensor([1, 10, 40, 70, 100])
    ab = sch.alpha_bar[t].unsqueeze(1)
    score = gd.score_from_eps(eps, t)
    ours = score_2d._tweedie(xt, score, ab)
    assert torch.allclose(ours, tweedie_x0(xt, score, ab))
    assert torch.allclose(ours, gd.predict_x0_from_eps(xt, t, eps))


def test_messages_students_see():
    with pytest.raises(ExerciseFeedback, match="centred at sqrt"):
        score_2d.check_gaussian_score(lambda x, a, m, v: -(x - m) / (a * v + 1 - a))
    with pytest.raises(ExerciseFeedback, match="half of it"):
        score_2d.check_langevin_step(lambda x, s, a, z: x + a * s + a**0.5 * z)
    with pytest.raises(ExerciseFeedback, match="sqrt\\(step_size\\)"):
        score_2d.check_langevin_step(lambda x, s, a, z: x + 0.5 * a * s + a * z)
    with pytest.raises(ExerciseFeedback, match="without dividing by sqrt"):
        score_2d.check_tweedie_denoise(lambda x, s, a: x + (1 - a) * s)
    with pytest.raises(ExerciseFeedback, match="draws its own random numbers"):
        score_2d.check_langevin_step(lambda x, s, a, z: x + 0.5 * a * s + a**0.5 * torch.randn_like(x))
    with pytest.raises(ExerciseFeedback, match="not implemented"):
        score_2d.check_tweedie_denoise(lambda x, s, a: (_ for _ in ()).throw(
            NotImplementedError("not implemented yet — see exercise ex-score-tweedie")))


def test_more_wrong_answers_get_their_messages():
    with pytest.raises(ExerciseFeedback, match="minus sign"):
        score_2d.check_gaussian_score(lambda x, a, m, v: (x - a**0.5 * m) / (a * v + 1 - a))
    with pytest.raises(ExerciseFeedback, match="noising kernel"):
        score_2d.check_gaussian_score(lambda x, a, m, v: (a.sqrt() * m - x) / (1 - a))
    with pytest.raises(ExerciseFeedback, match="noise term"):
        score_2d.check_langevin_step(lambda x, s, a, z: x + a / 2 * s)
    with pytest.raises(ExerciseFeedback, match="python-number|Python number|number"):
        score_2d.check_tweedie_denoise(lambda x, s, a: ((x + (1 - a) * s) / a.sqrt()).sum().item())


def test_correct_alternatives_pass():
    score_2d.check_gaussian_score(lambda x, a, m, v: -(x - torch.sqrt(a) * m) * (1 / (a * v + 1 - a)))
    score_2d.check_gaussian_score(lambda x, a, m, v: torch.div(a.sqrt() * m - x, a * v + (1 - a)))
    score_2d.check_langevin_step(lambda x, s, a, z: x + (a / 2) * s + math.sqrt(a) * z)
    score_2d.check_langevin_step(lambda x, s, a, z: torch.addcmul(x + 0.5 * a * s, torch.ones_like(z), z, value=a**0.5))
    score_2d.check_tweedie_denoise(lambda x, s, a: (x + (1 - a) * s) / torch.sqrt(a))
    score_2d.check_tweedie_denoise(lambda x, s, a: x * a.rsqrt() + (1 - a) * s * a.rsqrt())
