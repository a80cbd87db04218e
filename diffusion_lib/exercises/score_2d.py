r"""Checkers for the exercises of the score chapter (``book/score_2d.ipynb``).

=========================  ============================  ==============================================================
checker                    exercise label                the function the student writes
=========================  ============================  ==============================================================
``check_gaussian_score``   ``ex-score-gaussian``         ``gaussian_score(x, alpha_bar_t, mean, var) -> (B, d)``
``check_langevin_step``    ``ex-score-langevin-step``    ``langevin_step(x, score, step_size, z) -> (B, d)``
``check_tweedie_denoise``  ``ex-score-tweedie``          ``tweedie_denoise(xt, score, alpha_bar_t) -> (B, d)``
=========================  ============================  ==============================================================

The equations. For data x_0 ~ N(m, s^2 I) the noisy marginal is
q_t = N(sqrt(abar_t) m, (abar_t s^2 + 1 - abar_t) I), so

.. math::

    \nabla_x \log q_t(x) = -\frac{x - \sqrt{\bar\alpha_t}\,m}{\bar\alpha_t s^2 + 1 - \bar\alpha_t};

one step of (unadjusted) Langevin dynamics with step size a and fresh noise z is

.. math::

    x' = x + \tfrac{a}{2}\,\nabla_x \log p(x) + \sqrt{a}\,z;

and Tweedie's formula gives the posterior mean of the clean data,

.. math::

    \mathbb{E}[x_0 \mid x_t] = \frac{x_t + (1 - \bar\alpha_t)\,\nabla_{x_t} \log q_t(x_t)}{\sqrt{\bar\alpha_t}}.
"""

from __future__ import annotations

import math

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_gaussian_score", "check_langevin_step", "check_tweedie_denoise"]


# --------------------------------------------------------------------------- score of Gaussian data
def _gaussian_score(x, alpha_bar_t, mean, var):
    total_var = alpha_bar_t * var + 1 - alpha_bar_t
    return -(x - alpha_bar_t.sqrt() * mean) / total_var


def _gaussian_cases(g: torch.Generator) -> list[Case]:
    ab = 0.1 + 0.8 * torch.rand(6, 1, generator=g)
    return [
        Case("6 random points, random abar_t in (0.1, 0.9), mean (0.8, -1.5), var = 0.3",
             torch.randn(6, 2, generator=g), ab, torch.tensor([0.8, -1.5]), 0.3),
        Case("abar_t = 1, i.e. the clean data N(mean, var I) itself",
             torch.randn(4, 2, generator=g), torch.ones(4, 1), torch.tensor([0.5, 0.5]), 2.0),
        Case("float64, three points in 3-D, abar_t = 0.02 (almost pure noise)",
             torch.randn(3, 3, generator=g, dtype=torch.float64), torch.full((3, 1), 0.02, dtype=torch.float64),
             torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64), 0.5),
        Case("a batch of one point, float64, abar_t = 0.6, a narrow data distribution var = 0.01",
             torch.randn(1, 2, generator=g, dtype=torch.float64), torch.full((1, 1), 0.6, dtype=torch.float64),
             torch.tensor([-0.3, 0.7], dtype=torch.float64), 0.01),
    ]


def _autograd_score(x, a, m, v):
    """grad_x log N(x; sqrt(abar) m, (abar v + 1 - abar) I) by autograd (a correct alternative)."""
    with torch.enable_grad():
        y = x.detach().clone().requires_grad_(True)
        log_q = (-0.5 * (y - a.sqrt() * m) ** 2 / (a * v + 1 - a)).sum()
        (grad,) = torch.autograd.grad(log_q, y)
    return grad


_GAUSS = Checker(
    name="gaussian_score",
    label="ex-score-gaussian",
    reference=_gaussian_score,
    cases=_gaussian_cases,
    mistakes=[
        Mistake(
            "Your score points towards `mean` itself; the noisy data are centred at sqrt(abar_t) * mean, "
            "because x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps shrinks the data towards 0.",
            lambda x, a, m, v: -(x - m) / (a * v + 1 - a),
            "unscaled-mean",
        ),
        Mistake(
            "Your variance is var + 1 - abar_t; the data part is scaled too, so the variance of x_t is "
            "abar_t * var + (1 - abar_t).",
            lambda x, a, m, v: -(x - a.sqrt() * m) / (v + 1 - a),
            "unscaled-var",
        ),
        Mistake(
            "You divided by the standard deviation sqrt(abar_t var + 1 - abar_t); the score of a Gaussian "
            "divides by the variance: -(x - mu) / sigma^2.",
            lambda x, a, m, v: -(x - a.sqrt() * m) / (a * v + 1 - a).sqrt(),
            "std-not-var",
        ),
        Mistake(
            "Your score points away from the mean: the gradient of log N(x; mu, sigma^2) is -(x - mu) / sigma^2, "
            "with a minus sign, so that it points towards higher density.",
            lambda x, a, m, v: (x - a.sqrt() * m) / (a * v + 1 - a),
            "sign",
        ),
        Mistake(
            "You divided by 1 - abar_t only: that is the score of the noising kernel q(x_t | x_0) around the "
            "shrunk mean, not of the noisy data q_t. The data spread adds abar_t * var to the variance.",
            lambda x, a, m, v: -(x - a.sqrt() * m) / (1 - a),
            "kernel-variance",
        ),
    ],
    alternatives=[
        # the precision times minus the offset from the mean, written with torch.reciprocal
        lambda x, a, m, v: torch.reciprocal(a * v + 1 - a) * (a.sqrt() * m - x),
        # the gradient of log N(x; sqrt(abar) m, Var[x_t] I), by automatic differentiation
        lambda x, a, m, v: _autograd_score(x, a, m, v),
    ],
)


def check_gaussian_score(fn) -> None:
    """Check ``gaussian_score(x, alpha_bar_t, mean, var) -> (B, d)`` (exercise ``ex-score-gaussian``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _GAUSS(fn)


# --------------------------------------------------------------------------- one Langevin step
def _langevin_step(x, score, step_size, z):
    return x + 0.5 * step_size * score + step_size**0.5 * z


def _langevin_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("8 random points, random scores and noise, step_size = 0.3",
             torch.randn(8, 2, generator=g), 3 * torch.randn(8, 2, generator=g), 0.3, torch.randn(8, 2, generator=g)),
        Case("float64, step_size = 0.01",
             torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64),
             0.01, torch.randn(5, 2, generator=g, dtype=torch.float64)),
        Case("a batch of one point in 3-D, float64, step_size = 2e-4 (the chapter's last level)",
             torch.randn(1, 3, generator=g, dtype=torch.float64), 30 * torch.randn(1, 3, generator=g, dtype=torch.float64),
             2e-4, torch.randn(1, 3, generator=g, dtype=torch.float64)),
    ]


_LANGEVIN = Checker(
    name="langevin_step",
    label="ex-score-langevin-step",
    reference=_langevin_step,
    cases=_langevin_cases,
    mistakes=[
        Mistake(
            "You moved by step_size * score; Langevin dynamics moves by half of it, (step_size / 2) * score, "
            "so that the noise sqrt(step_size) * z and the drift balance and p stays invariant.",
            lambda x, s, a, z: x + a * s + a**0.5 * z,
            "no-half",
        ),
        Mistake(
            "You scaled the noise by step_size; its standard deviation is sqrt(step_size): "
            "x + (step_size / 2) * score + sqrt(step_size) * z.",
            lambda x, s, a, z: x + 0.5 * a * s + a * z,
            "noise-not-sqrt",
        ),
        Mistake(
            "You left out the noise term sqrt(step_size) * z: without it the step is gradient ascent on log p, "
            "which climbs to a mode instead of sampling p.",
            lambda x, s, a, z: x + 0.5 * a * s,
            "no-noise",
        ),
        Mistake(
            "You subtracted the score; the score points uphill in log-density, and Langevin dynamics follows it: "
            "x + (step_size / 2) * score + sqrt(step_size) * z.",
            lambda x, s, a, z: x - 0.5 * a * s + a**0.5 * z,
            "sign",
        ),
        Mistake(
            "You scaled the noise by sqrt(step_size / 2); with the drift (step_size / 2) * score the noise is "
            "sqrt(step_size) * z (its variance is twice the drift coefficient, so p stays invariant).",
            lambda x, s, a, z: x + 0.5 * a * s + (0.5 * a) ** 0.5 * z,
            "noise-half",
        ),
    ],
    alternatives=[
        # torch.add with alpha=, the square root from math
        lambda x, s, a, z: torch.add(torch.add(x, s, alpha=a / 2), z, alpha=math.sqrt(a)),
        # the drift and the noise as separate increments
        lambda x, s, a, z: x + (a * s + 2 * math.sqrt(a) * z) / 2,
    ],
)


def check_langevin_step(fn) -> None:
    """Check ``langevin_step(x, score, step_size, z) -> (B, d)`` (exercise ``ex-score-langevin-step``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _LANGEVIN(fn)


# --------------------------------------------------------------------------- Tweedie denoiser
def _tweedie(xt, score, alpha_bar_t):
    return (xt + (1 - alpha_bar_t) * score) / alpha_bar_t.sqrt()


def _tweedie_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("6 random points and scores, random abar_t in (0.05, 0.95)",
             torch.randn(6, 2, generator=g), 2 * torch.randn(6, 2, generator=g), 0.05 + 0.9 * torch.rand(6, 1, generator=g)),
        Case("abar_t = 1 (no noise: the answer is x_t itself)",
             torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g), torch.ones(3, 1)),
        Case("float64, abar_t = 0.5",
             torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64),
             torch.full((4, 1), 0.5, dtype=torch.float64)),
        Case("a batch of one point in 3-D, float64, abar_t = 0.03 (almost pure noise)",
             torch.randn(1, 3, generator=g, dtype=torch.float64), torch.randn(1, 3, generator=g, dtype=torch.float64),
             torch.full((1, 1), 0.03, dtype=torch.float64)),
    ]


_TWEEDIE = Checker(
    name="tweedie_denoise",
    label="ex-score-tweedie",
    reference=_tweedie,
    cases=_tweedie_cases,
    mistakes=[
        Mistake(
            "You returned x_t + (1 - abar_t) * score without dividing by sqrt(abar_t): that is the posterior "
            "mean of sqrt(abar_t) x_0, the shrunk data. Divide by sqrt(abar_t) to undo the shrinking.",
            lambda x, s, a: x + (1 - a) * s,
            "no-rescale",
        ),
        Mistake(
            "You weighted the score by sqrt(1 - abar_t); Tweedie's formula weights it by the noise variance "
            "1 - abar_t (the score is -eps / sqrt(1 - abar_t), so (1 - abar_t) * score = -sqrt(1 - abar_t) * eps).",
            lambda x, s, a: (x + (1 - a).sqrt() * s) / a.sqrt(),
            "std-not-var",
        ),
        Mistake(
            "You divided by abar_t; the signal in x_t is sqrt(abar_t) * x_0, so divide by sqrt(abar_t).",
            lambda x, s, a: (x + (1 - a) * s) / a,
            "abar-not-sqrt",
        ),
        Mistake(
            "You subtracted the score term; Tweedie's formula adds it: "
            "(x_t + (1 - abar_t) * score) / sqrt(abar_t) moves x_t uphill, towards the data.",
            lambda x, s, a: (x - (1 - a) * s) / a.sqrt(),
            "sign",
        ),
        Mistake(
            "You multiplied by sqrt(abar_t) instead of dividing: x_t carries sqrt(abar_t) x_0, so the clean "
            "point is (x_t + (1 - abar_t) score) / sqrt(abar_t).",
            lambda x, s, a: (x + (1 - a) * s) * a.sqrt(),
            "times-sqrt",
        ),
    ],
    alternatives=[
        # two terms, each divided by sqrt(abar_t), with torch.rsqrt
        lambda x, s, a: x * torch.rsqrt(a) + (1 - a) * torch.rsqrt(a) * s,
        # through the noise: eps_hat = -sqrt(1 - abar) score, then x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar)
        lambda x, s, a: (x - (1 - a).sqrt() * (-(1 - a).sqrt() * s)) / a.sqrt(),
    ],
)


def check_tweedie_denoise(fn) -> None:
    """Check ``tweedie_denoise(xt, score, alpha_bar_t) -> (B, d)`` (exercise ``ex-score-tweedie``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _TWEEDIE(fn)
