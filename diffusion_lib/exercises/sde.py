r"""Checkers for the exercises of the chapter on the SDE view (``book/sde.ipynb``).

==============================  ==========================  ==============================================
checker                         exercise label              the function the student writes
==============================  ==========================  ==============================================
``check_vp_alpha``              ``ex-sde-alpha``            ``vp_alpha(t, beta_min, beta_max) -> alpha(t)``
``check_ddim_euler_step``       ``ex-sde-ddim-euler``       ``ddim_euler_step(x, eps, a_t, s_t, a_s, s_s)``
==============================  ==========================  ==============================================

The equations (Song et al., 2021; Song, Meng and Ermon, 2021; Karras et al., 2022):

.. math::

    \alpha(t) = \exp\!\Big(-\tfrac12 \int_0^t \beta(u)\,du\Big)
              = \exp\!\Big(-\tfrac12 \beta_\text{min} t - \tfrac14 (\beta_\text{max} - \beta_\text{min}) t^2\Big),
    \qquad
    \mathbf{x}_s = \alpha_s \frac{\mathbf{x}_t - \sigma_t \boldsymbol\epsilon}{\alpha_t} + \sigma_s \boldsymbol\epsilon.

``t`` is a float tensor of times in [0, 1]; in the second, ``a_t, s_t`` (``a_s, s_s``) are the
signal and noise scales alpha and sigma of the two times, as float tensors that broadcast with ``x``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_vp_alpha", "check_ddim_euler_step"]

DT = torch.float64


# ------------------------------------------------------------------------------- alpha(t) of the VP SDE
def _alpha(t, beta_min, beta_max):
    return torch.exp(-0.5 * beta_min * t - 0.25 * (beta_max - beta_min) * t**2)


def _alpha_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("random times in [0, 1] with the book's beta_min = 0.1, beta_max = 20", torch.rand(7, generator=g, dtype=DT),
             0.1, 20.0),
        Case("t = 0, 0.5, 1 with beta_min = 1, beta_max = 3", torch.tensor([0.0, 0.5, 1.0], dtype=DT), 1.0, 3.0),
        Case("a constant beta (beta_min = beta_max = 2) at float32 times 0.25 and 0.75",
             torch.tensor([0.25, 0.75]), 2.0, 2.0),
    ]


_ALPHA = Checker(
    name="vp_alpha",
    label="ex-sde-alpha",
    reference=_alpha,
    cases=_alpha_cases,
    mistakes=[
        Mistake("You returned alpha(t)^2 = exp(-int beta): the signal scale is its square root, "
                "alpha(t) = exp(-1/2 int_0^t beta(u) du).",
                lambda t, a, b: torch.exp(-a * t - 0.5 * (b - a) * t**2), "alpha-squared"),
        Mistake("You used beta(t) t in place of the integral of beta: for a beta that grows linearly the "
                "integral is beta_min t + (beta_max - beta_min) t^2 / 2.",
                lambda t, a, b: torch.exp(-0.5 * (a + (b - a) * t) * t), "no-integral"),
        Mistake("Your alpha(t) grows above 1: the exponent must be negative, alpha(t) = exp(-1/2 int_0^t beta), "
                "because the forward process shrinks the signal.",
                lambda t, a, b: 1 / _alpha(t, a, b), "sign"),
        Mistake("You returned sigma(t) = sqrt(1 - alpha(t)^2), the noise scale, instead of alpha(t).",
                lambda t, a, b: torch.sqrt(1 - _alpha(t, a, b) ** 2), "sigma"),
    ],
    alternatives=[
        lambda t, a, b: torch.sqrt(torch.exp(-(a * t + 0.5 * (b - a) * t**2))),
        # the integral of a linear function is the trapezoid: t (beta(0) + beta(t)) / 2
        lambda t, a, b: torch.exp(-0.25 * t * (a + (a + (b - a) * t))),
    ],
)


def check_vp_alpha(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``vp_alpha(t, beta_min, beta_max)`` = exp(-1/2 int_0^t beta) (exercise ``ex-sde-alpha``)."""
    __tracebackhide__ = True  # noqa: F841
    return _ALPHA(fn)


# ------------------------------------------------------------------------------- DDIM as an Euler step
def _step(x, eps, a_t, s_t, a_s, s_s):
    return a_s * (x - s_t * eps) / a_t + s_s * eps


def _step_cases(g: torch.Generator) -> list[Case]:
    x = torch.randn(5, 2, generator=g, dtype=DT)
    eps = torch.randn(5, 2, generator=g, dtype=DT)
    a_t = 0.3 + 0.2 * torch.rand(5, 1, generator=g, dtype=DT)
    a_s = a_t + 0.3 * torch.rand(5, 1, generator=g, dtype=DT)

    def sig(a):
        return torch.sqrt(1 - a**2)

    return [
        Case("5 points in the plane, a different pair of times for each (alpha of shape (5, 1))", x, eps, a_t, sig(a_t),
             a_s, sig(a_s)),
        Case("one step from alpha_t = 0.6 to alpha_s = 0.8 for a batch of 3 images of 2 x 2 pixels",
             torch.randn(3, 1, 2, 2, generator=g, dtype=DT), torch.randn(3, 1, 2, 2, generator=g, dtype=DT),
             torch.tensor(0.6, dtype=DT), torch.tensor(0.8, dtype=DT), torch.tensor(0.8, dtype=DT),
             torch.tensor(0.6, dtype=DT)),
        Case("the last step, to the data: alpha_s = 1, sigma_s = 0", x, eps, a_t, sig(a_t),
             torch.ones(5, 1, dtype=DT), torch.zeros(5, 1, dtype=DT)),
    ]


_STEP = Checker(
    name="ddim_euler_step",
    label="ex-sde-ddim-euler",
    reference=_step,
    cases=_step_cases,
    mistakes=[
        Mistake("You took the Euler step in x, x + (sigma_s - sigma_t) eps: the ODE has the simple form "
                "d x_tilde / d sigma_tilde = eps only in x_tilde = x / alpha and sigma_tilde = sigma / alpha, "
                "so step there and multiply by alpha_s at the end.",
                lambda x, e, at, st, as_, ss: x + (ss - st) * e, "euler-in-x"),
        Mistake("You stepped in sigma_tilde but forgot to multiply the result by alpha_s: the step gives "
                "x_tilde_s = x_s / alpha_s.",
                lambda x, e, at, st, as_, ss: x / at + (ss / as_ - st / at) * e, "no-alpha-s"),
        Mistake("You did not divide by alpha_t: the predicted data is x0_hat = (x_t - sigma_t eps) / alpha_t.",
                lambda x, e, at, st, as_, ss: as_ * (x - st * e) + ss * e, "no-divide"),
        Mistake("You used the variances sigma^2 where the formula has the scales sigma.",
                lambda x, e, at, st, as_, ss: as_ * (x - st**2 * e) / at + ss**2 * e, "variances"),
    ],
    alternatives=[
        lambda x, e, at, st, as_, ss: as_ * (x / at + (ss / as_ - st / at) * e),
        lambda x, e, at, st, as_, ss: (as_ / at) * x + (ss - as_ * st / at) * e,
    ],
)


def check_ddim_euler_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddim_euler_step(x, eps, a_t, s_t, a_s, s_s)``: DDIM (eta = 0) as one Euler step (exercise ``ex-sde-ddim-euler``)."""
    __tracebackhide__ = True  # noqa: F841
    return _STEP(fn)
