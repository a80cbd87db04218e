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

with beta_t = 1 - alpha_t. Scalars are 0-d tensors (or tensors broadcasting against ``x0``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_posterior_mean", "check_tweedie_x0", "check_eps_weight"]

DT = torch.float64


def _post(x0, xt, alpha_t, abar_t, abar_prev):
    beta = 1 - alpha_t
    return (abar_prev.sqrt() * beta * x0 + alpha_t.sqrt() * (1 - abar_prev) * xt) / (1 - abar_t)


def _post_cases(g: torch.Generator) -> list[Case]:
    def step(alpha_t: float, abar_prev: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, p = torch.tensor(alpha_t, dtype=DT), torch.tensor(abar_prev, dtype=DT)
        return a, a * p, p
    return [
        Case("a batch of 3 points in 2-D at a middle step (alpha_t = 0.9, abar_{t-1} = 0.5)",
             torch.randn(3, 2, generator=g, dtype=DT), torch.randn(3, 2, generator=g, dtype=DT), *step(0.9, 0.5)),
        Case("a late step (alpha_t = 0.8, abar_{t-1} = 0.05)",
             torch.randn(4, 1, generator=g, dtype=DT), torch.randn(4, 1, generator=g, dtype=DT), *step(0.8, 0.05)),
        Case("t = 1 (abar_{t-1} = 1): the posterior mean must be x0 itself",
             torch.randn(2, 3, generator=g, dtype=DT), torch.randn(2, 3, generator=g, dtype=DT), *step(0.99, 1.0)),
    ]


_POST = Checker(
    name="posterior_mean",
    label="ex-vdm-posterior",
    reference=_post,
    cases=_post_cases,
    mistakes=[
        Mistake("You swapped the two coefficients: x0 is weighted by sqrt(abar_{t-1}) beta_t / (1 - abar_t) and "
                "xt by sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t).",
                lambda x0, xt, a, ab, abp: _post(xt, x0, a, ab, abp), "swapped"),
        Mistake("You used sqrt(abar_t) in the x0 coefficient; it is sqrt(abar_{t-1}) (x_{t-1} is one step "
                "less noisy than x_t).",
                lambda x0, xt, a, ab, abp: ((ab.sqrt() * (1 - a) * x0 + a.sqrt() * (1 - abp) * xt) / (1 - ab)), "abar-t"),
        Mistake("You forgot the square root on alpha_t in the xt coefficient: it is sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t).",
                lambda x0, xt, a, ab, abp: ((abp.sqrt() * (1 - a) * x0 + a * (1 - abp) * xt) / (1 - ab)), "no-sqrt-alpha"),
    ],
)


def check_posterior_mean(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``posterior_mean(x0, xt, alpha_t, alpha_bar_t, alpha_bar_prev)`` (exercise ``ex-vdm-posterior``)."""
    __tracebackhide__ = True  # noqa: F841
    return _POST(fn)


def _tweedie(xt, score, abar_t):
    return (xt + (1 - abar_t) * score) / abar_t.sqrt()


def _tweedie_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("5 points in 2-D, abar_t = 0.6", torch.randn(5, 2, generator=g, dtype=DT), torch.randn(5, 2, generator=g, dtype=DT),
             torch.tensor(0.6, dtype=DT)),
        Case("very noisy, abar_t = 0.02", torch.randn(3, 1, generator=g, dtype=DT), torch.randn(3, 1, generator=g, dtype=DT),
             torch.tensor(0.02, dtype=DT)),
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
    ],
)


def check_tweedie_x0(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``tweedie_x0(xt, score, alpha_bar_t)`` = (xt + (1 - abar_t) score) / sqrt(abar_t) (``ex-vdm-tweedie``)."""
    __tracebackhide__ = True  # noqa: F841
    return _TWEEDIE(fn)


def _snr(ab):
    return ab / (1 - ab)


def _eps_w(abar_prev, abar_t):
    return 0.5 * (_snr(abar_prev) / _snr(abar_t) - 1.0)


def _eps_cases(g: torch.Generator) -> list[Case]:
    abar = torch.cumprod(1 - torch.linspace(0.01, 0.2, 12, dtype=DT), 0)
    return [
        Case("11 consecutive steps of a linear schedule (vectors of abar_{t-1} and abar_t)", abar[:-1], abar[1:]),
        Case("one step with abar_{t-1} = 0.7, abar_t = 0.5", torch.tensor(0.7, dtype=DT), torch.tensor(0.5, dtype=DT)),
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
    ],
)


def check_eps_weight(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``eps_weight(alpha_bar_prev, alpha_bar_t)`` = (SNR(t-1)/SNR(t) - 1)/2 (exercise ``ex-vdm-eps-weight``)."""
    __tracebackhide__ = True  # noqa: F841
    return _EPS_W(fn)
