r"""Checkers for the exercises of the chapter on the variational diffusion model (``book/vdm.ipynb``).

=========================  =======================  ===============================================================
checker                    exercise label           the function the student writes
=========================  =======================  ===============================================================
``check_posterior_mean``   ``ex-vdm-posterior``     ``posterior_mean(x0, xt, alpha_t, alpha_bar_t, alpha_bar_prev)``
``check_tweedie_x0``       ``ex-vdm-tweedie``       ``tweedie_x0(xt, score, alpha_bar_t) -> E[x0 | xt]``
``check_eps_weight``       ``ex-vdm-eps-weight``    ``eps_weight(alpha_bar_prev, alpha_bar_t) -> w_t``
=========================  =======================  ===============================================================

The equations (Ho et al., 2020; Luo, 2022; Efron, 2011):

.. math::

    \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} x_0
                + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t, \qquad
    \mathbb E[x_0 \mid x_t] = \frac{x_t + (1 - \bar\alpha_t) \nabla \log q(x_t)}{\sqrt{\bar\alpha_t}},

    w^{\varepsilon}_t = \tfrac12\Big(\frac{\mathrm{SNR}(t-1)}{\mathrm{SNR}(t)} - 1\Big),\quad
    \mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t).

with beta_t = 1 - alpha_t. Scalars are 0-d tensors, or tensors of shape ``(B, 1)`` that broadcast
against the ``(B, D)`` points (one timestep per row). The posterior mean is the mean of the
decoder in the x0 parameterisation, trained through, so its checker is ``differentiable`` in
``x0`` and ``xt``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake
from diffusion_lib.core.schedules import NoiseSchedule

__all__ = ["check_posterior_mean", "check_tweedie_x0", "check_eps_weight"]

DT = torch.float64


def _rows(schedule: NoiseSchedule, ts: list[int], *names: str) -> list[torch.Tensor]:
    """Per-row schedule values of shape (B, 1) at the timesteps ``ts``."""
    t = torch.tensor(ts)
    return [getattr(schedule, n)[t].view(-1, 1) for n in names]


# ------------------------------------------------------------------------------- posterior mean
def _post(x0, xt, alpha_t, abar_t, abar_prev):
    beta = 1 - alpha_t
    return (abar_prev.sqrt() * beta * x0 + alpha_t.sqrt() * (1 - abar_prev) * xt) / (1 - abar_t)


def _post_cases(g: torch.Generator) -> list[Case]:
    def step(alpha_t: float, abar_prev: float, dtype=DT) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, p = torch.tensor(alpha_t, dtype=dtype), torch.tensor(abar_prev, dtype=dtype)
        return a, a * p, p
    cosine = NoiseSchedule.from_name("cosine", 50, dtype=DT)
    return [
        Case("a batch of 3 points in 2-D at a middle step (alpha_t = 0.9, abar_{t-1} = 0.5)",
             torch.randn(3, 2, generator=g, dtype=DT), torch.randn(3, 2, generator=g, dtype=DT), *step(0.9, 0.5)),
        Case("a late step (alpha_t = 0.8, abar_{t-1} = 0.05)",
             torch.randn(4, 1, generator=g, dtype=DT), torch.randn(4, 1, generator=g, dtype=DT), *step(0.8, 0.05)),
        Case("t = 1 (abar_{t-1} = 1): the posterior mean must be x0 itself",
             torch.randn(2, 3, generator=g, dtype=DT), torch.randn(2, 3, generator=g, dtype=DT), *step(0.99, 1.0)),
        Case("a batch of one point in 4-D, float32 (alpha_t = 0.95, abar_{t-1} = 0.7)",
             torch.randn(1, 4, generator=g), torch.randn(1, 4, generator=g), *step(0.95, 0.7, torch.float32)),
        Case("another schedule: the cosine schedule with T = 50, one row per t = 1, 2, 25, 50 "
             "(coefficients of shape (4, 1)), float64",
             torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT),
             *_rows(cosine, [1, 2, 25, 50], "alpha", "alpha_bar", "alpha_bar_prev")),
    ]


_POST = Checker(
    name="posterior_mean",
    label="ex-vdm-posterior",
    reference=_post,
    cases=_post_cases,
    differentiable=True,
    grad_args=(0, 1),
    mistakes=[
        Mistake("You swapped the two coefficients: x0 is weighted by sqrt(abar_{t-1}) beta_t / (1 - abar_t) and "
                "xt by sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t).",
                lambda x0, xt, a, ab, abp: _post(xt, x0, a, ab, abp), "swapped"),
        Mistake("You used sqrt(abar_t) in the x0 coefficient; it is sqrt(abar_{t-1}) (x_{t-1} is one step "
                "less noisy than x_t).",
                lambda x0, xt, a, ab, abp: ((ab.sqrt() * (1 - a) * x0 + a.sqrt() * (1 - abp) * xt) / (1 - ab)), "abar-t"),
        Mistake("You forgot the square root on alpha_t in the xt coefficient: it is sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t).",
                lambda x0, xt, a, ab, abp: ((abp.sqrt() * (1 - a) * x0 + a * (1 - abp) * xt) / (1 - ab)), "no-sqrt-alpha"),
        Mistake("You used 1 - abar_t for beta_t in the x0 coefficient: beta_t = 1 - alpha_t is the variance "
                "of the one step from t-1 to t, not of all t steps.",
                lambda x0, xt, a, ab, abp: ((abp.sqrt() * (1 - ab) * x0 + a.sqrt() * (1 - abp) * xt) / (1 - ab)), "beta-as-1-abar"),
        Mistake("You forgot the square root on abar_{t-1} in the x0 coefficient: it is "
                "sqrt(abar_{t-1}) beta_t / (1 - abar_t).",
                lambda x0, xt, a, ab, abp: ((abp * (1 - a) * x0 + a.sqrt() * (1 - abp) * xt) / (1 - ab)), "no-sqrt-abar-prev"),
    ],
    alternatives=[
        # the precision-weighted form of the chapter: a point on the segment between the two ends
        lambda x0, xt, a, ab, abp: (1 - a) / (1 - ab) * abp.sqrt() * x0 + (1 - (1 - a) / (1 - ab)) * xt / a.sqrt(),
        # Gaussian conditioning: the prior mean plus a correction proportional to the surprise in x_t
        lambda x0, xt, a, ab, abp: abp.sqrt() * x0 + a.sqrt() * (1 - abp) / (1 - ab) * (xt - ab.sqrt() * x0),
        lambda x0, xt, a, ab, abp: torch.lerp(xt / a.sqrt(), abp.sqrt() * x0, (1 - a) / (1 - ab)),
    ],
)


def check_posterior_mean(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``posterior_mean(x0, xt, alpha_t, alpha_bar_t, alpha_bar_prev)`` (exercise ``ex-vdm-posterior``).

    The answer must be differentiable in ``x0`` and ``xt``.
    """
    __tracebackhide__ = True  # noqa: F841
    return _POST(fn)


# ------------------------------------------------------------------------------- Tweedie
def _tweedie(xt, score, abar_t):
    return (xt + (1 - abar_t) * score) / abar_t.sqrt()


def _tweedie_cases(g: torch.Generator) -> list[Case]:
    cosine = NoiseSchedule.from_name("cosine", 100, dtype=DT)
    return [
        Case("5 points in 2-D, abar_t = 0.6", torch.randn(5, 2, generator=g, dtype=DT), torch.randn(5, 2, generator=g, dtype=DT),
             torch.tensor(0.6, dtype=DT)),
        Case("very noisy, abar_t = 0.02", torch.randn(3, 1, generator=g, dtype=DT), torch.randn(3, 1, generator=g, dtype=DT),
             torch.tensor(0.02, dtype=DT)),
        Case("a batch of one point in 3-D, float32, abar_t = 0.9", torch.randn(1, 3, generator=g), torch.randn(1, 3, generator=g),
             torch.tensor(0.9)),
        Case("one row per t = 1, 50, 100 of the cosine schedule with T = 100 (abar_t of shape (3, 1))",
             torch.randn(3, 2, generator=g, dtype=DT), torch.randn(3, 2, generator=g, dtype=DT),
             *_rows(cosine, [1, 50, 100], "alpha_bar")),
    ]


_TWEEDIE = Checker(
    name="tweedie_x0",
    label="ex-vdm-tweedie",
    reference=_tweedie,
    cases=_tweedie_cases,
    mistakes=[
        Mistake("You returned E[sqrt(abar_t) x0 | xt] = xt + (1 - abar_t) score; Tweedie gives the mean of the "
                "*scaled* signal, so divide by sqrt(abar_t) to get E[x0 | xt].",
                lambda xt, s, ab: xt + (1 - ab) * s, "no-division"),
        Mistake("You scaled the score by the noise standard deviation sqrt(1 - abar_t); Tweedie's correction is the "
                "noise *variance* (1 - abar_t) times the score.",
                lambda xt, s, ab: (xt + (1 - ab).sqrt() * s) / ab.sqrt(), "std"),
        Mistake("The sign of the correction is flipped: the score points towards the data, so add (1 - abar_t) * score.",
                lambda xt, s, ab: (xt - (1 - ab) * s) / ab.sqrt(), "sign"),
        Mistake("You divided by abar_t; the signal in x_t is sqrt(abar_t) x0, so divide by sqrt(abar_t).",
                lambda xt, s, ab: (xt + (1 - ab) * s) / ab, "divide-by-abar"),
        Mistake("Only the score term was divided by sqrt(abar_t) (operator precedence): put the sum in "
                "parentheses, (xt + (1 - abar_t) * score) / sqrt(abar_t).",
                lambda xt, s, ab: xt + (1 - ab) * s / ab.sqrt(), "precedence"),
    ],
    alternatives=[
        lambda xt, s, ab: xt / ab.sqrt() + (1 - ab) / ab.sqrt() * s,
        # through the noise: E[eps | x_t] = -sqrt(1 - abar_t) * score, then x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        lambda xt, s, ab: (xt - (1 - ab).sqrt() * (-(1 - ab).sqrt() * s)) * torch.rsqrt(ab),
        lambda xt, s, ab: torch.addcmul(xt, 1 - ab, s) / torch.sqrt(ab),
    ],
)


def check_tweedie_x0(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``tweedie_x0(xt, score, alpha_bar_t)`` = (xt + (1 - abar_t) score) / sqrt(abar_t) (``ex-vdm-tweedie``)."""
    __tracebackhide__ = True  # noqa: F841
    return _TWEEDIE(fn)


# ------------------------------------------------------------------------------- the eps weight
def _snr(ab):
    return ab / (1 - ab)


def _eps_w(abar_prev, abar_t):
    return 0.5 * (_snr(abar_prev) / _snr(abar_t) - 1.0)


def _eps_cases(g: torch.Generator) -> list[Case]:
    abar = torch.cumprod(1 - torch.linspace(0.01, 0.2, 12, dtype=DT), 0)
    cosine = NoiseSchedule.from_name("cosine", 1000, dtype=DT)
    return [
        Case("11 consecutive steps of a linear schedule (vectors of abar_{t-1} and abar_t)", abar[:-1], abar[1:]),
        Case("one step with abar_{t-1} = 0.7, abar_t = 0.5", torch.tensor(0.7, dtype=DT), torch.tensor(0.5, dtype=DT)),
        Case("one step, float32: abar_{t-1} = 0.9, abar_t = 0.85", torch.tensor(0.9), torch.tensor(0.85)),
        Case("another schedule: the cosine schedule with T = 1000 at t = 2, 500 and t = T (its clipped last step)",
             cosine.alpha_bar[torch.tensor([1, 499, 999])], cosine.alpha_bar[torch.tensor([2, 500, 1000])]),
    ]


_EPS_W = Checker(
    name="eps_weight",
    label="ex-vdm-eps-weight",
    reference=_eps_w,
    cases=_eps_cases,
    mistakes=[
        Mistake("That is the weight on the x0 error, (SNR(t-1) - SNR(t)) / 2. The eps error is the x0 error times "
                "sqrt(SNR(t)), so its weight is divided by SNR(t): (SNR(t-1) / SNR(t) - 1) / 2.",
                lambda p, t: 0.5 * (_snr(p) - _snr(t)), "x0-weight"),
        Mistake("The ratio is upside down: SNR falls with t, so the weight is (SNR(t-1) / SNR(t) - 1) / 2 > 0.",
                lambda p, t: 0.5 * (_snr(t) / _snr(p) - 1.0), "inverted"),
        Mistake("You forgot the factor 1/2 (it comes from the Gaussian KL, 1 / (2 sigma_t^2)).",
                lambda p, t: _snr(p) / _snr(t) - 1.0, "no-half"),
        Mistake("You forgot the -1: the weight is (SNR(t-1) / SNR(t) - 1) / 2, which is 0 when the step adds no noise.",
                lambda p, t: 0.5 * _snr(p) / _snr(t), "no-minus-one"),
        Mistake("You multiplied the x0 weight by SNR(t) instead of dividing by it: ||x0_hat - x0||^2 = "
                "||eps_hat - eps||^2 / SNR(t), so w_eps = w_x0 / SNR(t).",
                lambda p, t: 0.5 * (_snr(p) - _snr(t)) * _snr(t), "times-snr"),
    ],
    alternatives=[
        # beta_t / (2 alpha_t (1 - abar_{t-1})) with alpha_t = abar_t / abar_{t-1}
        lambda p, t: (1 - t / p) / (2 * (t / p) * (1 - p)),
        lambda p, t: 0.5 * (p - t) / (t * (1 - p)),
        lambda p, t: 0.5 * torch.expm1(torch.logit(p) - torch.logit(t)),
    ],
)


def check_eps_weight(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``eps_weight(alpha_bar_prev, alpha_bar_t)`` = (SNR(t-1)/SNR(t) - 1)/2 (exercise ``ex-vdm-eps-weight``)."""
    __tracebackhide__ = True  # noqa: F841
    return _EPS_W(fn)
