r"""Checkers for the exercises of the chapter on sampling digits (``book/sampling_digits.ipynb``).

==========================  ========================  ==================================================
checker                     exercise label            the function the student writes
==========================  ========================  ==================================================
``check_ddim_step``         ``ex-sample-ddim-step``   ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_prev)``
``check_slerp``             ``ex-sample-slerp``       ``slerp(z0, z1, lam)``
==========================  ========================  ==================================================

The equations (Song, Meng & Ermon, 2021, eq. 12 with sigma = 0; spherical interpolation):

.. math::

    \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}}, \qquad
    x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'}}\,\hat\epsilon;

    \mathrm{slerp}(z_0, z_1; \lambda) = \frac{\sin((1-\lambda)\theta)}{\sin\theta} z_0
    + \frac{\sin(\lambda\theta)}{\sin\theta} z_1, \quad
    \cos\theta = \frac{\langle z_0, z_1\rangle}{\lVert z_0\rVert\,\lVert z_1\rVert}.

``alpha_bar_t`` and ``alpha_bar_prev`` are Python floats; ``z0``, ``z1`` are 1-D tensors (one
flattened noise image each) and ``lam`` a float in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_ddim_step", "check_slerp"]

DT = torch.float64


def _ddim(xt, eps, a, ap):
    x0 = (xt - math.sqrt(1 - a) * eps) / math.sqrt(a)
    return math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps


def _ddim_cases(g: torch.Generator) -> list[Case]:
    xt = torch.randn(4, 1, 8, 8, generator=g, dtype=DT)
    eps = torch.randn(4, 1, 8, 8, generator=g, dtype=DT)
    return [
        Case("a batch of 4 noisy digits, abar_t = 0.3 -> abar_prev = 0.6", xt, eps, 0.3, 0.6),
        Case("a big jump, abar_t = 0.01 -> abar_prev = 0.9", xt[:2], eps[:2], 0.01, 0.9),
        Case("the last step, abar_prev = 1 (t' = 0)", xt[:1], eps[:1], 0.8, 1.0),
    ]


_DDIM = Checker(
    name="ddim_step",
    label="ex-sample-ddim-step",
    reference=_ddim,
    cases=_ddim_cases,
    mistakes=[
        Mistake("You returned the prediction of x_0 itself. Step to x_{t'} instead: put the predicted noise back "
                "at the lower level, sqrt(abar_prev) * x0_hat + sqrt(1 - abar_prev) * eps.",
                lambda xt, e, a, ap: (xt - math.sqrt(1 - a) * e) / math.sqrt(a), "returned-x0"),
        Mistake("The noise term uses the noise level of the *target* time: sqrt(1 - abar_prev) * eps, not "
                "sqrt(1 - abar_t) * eps.",
                lambda xt, e, a, ap: math.sqrt(ap) * (xt - math.sqrt(1 - a) * e) / math.sqrt(a) + math.sqrt(1 - a) * e,
                "wrong-noise-level"),
        Mistake("You multiplied x0_hat by abar_prev; the signal coefficient is its square root, sqrt(abar_prev).",
                lambda xt, e, a, ap: ap * (xt - math.sqrt(1 - a) * e) / math.sqrt(a) + math.sqrt(1 - ap) * e,
                "no-sqrt"),
        Mistake("x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): you divided by abar_t instead of its square root.",
                lambda xt, e, a, ap: math.sqrt(ap) * (xt - math.sqrt(1 - a) * e) / a + math.sqrt(1 - ap) * e,
                "x0-no-sqrt"),
    ],
)


def check_ddim_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_prev)`` (exercise ``ex-sample-ddim-step``)."""
    __tracebackhide__ = True  # noqa: F841
    _DDIM(fn)


def _slerp(z0, z1, lam):
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    return (torch.sin((1 - lam) * theta) * z0 + torch.sin(lam * theta) * z1) / torch.sin(theta)


def _slerp_cases(g: torch.Generator) -> list[Case]:
    z0 = torch.randn(64, generator=g, dtype=DT)
    z1 = torch.randn(64, generator=g, dtype=DT)
    return [
        Case("two noise images (64 pixels), lam = 0.3", z0, z1, 0.3),
        Case("the same noise images, lam = 0.5", z0, z1, 0.5),
        Case("lam = 0 returns z0", z0, z1, 0.0),
    ]


def _lerp(z0, z1, lam):
    return (1 - lam) * z0 + lam * z1


_SLERP = Checker(
    name="slerp",
    label="ex-sample-slerp",
    reference=_slerp,
    cases=_slerp_cases,
    mistakes=[
        Mistake("That is linear interpolation (1 - lam) z0 + lam z1. Its middle has a norm about 1/sqrt(2) of a "
                "typical noise sample, so it is not a likely x_T; interpolate along the great circle (slerp).",
                _lerp, "lerp"),
        Mistake("The weights are swapped: z0 gets sin((1 - lam) theta) / sin(theta), so that lam = 0 gives z0.",
                lambda z0, z1, lam: _slerp(z1, z0, lam), "swapped"),
        Mistake("You forgot to divide by sin(theta): the two weights are sin((1 - lam) theta) / sin(theta) and "
                "sin(lam theta) / sin(theta).",
                lambda z0, z1, lam: _slerp(z0, z1, lam) * torch.sin(torch.arccos(torch.dot(z0, z1) / (z0.norm() * z1.norm()))),
                "no-sin-theta"),
        Mistake("theta is the angle between z0 and z1: divide the dot product by both norms before arccos "
                "(cos theta = <z0, z1> / (|z0| |z1|)).",
                lambda z0, z1, lam: (torch.sin((1 - lam) * torch.arccos((torch.dot(z0, z1) / 64).clamp(-1, 1))) * z0
                                     + torch.sin(lam * torch.arccos((torch.dot(z0, z1) / 64).clamp(-1, 1))) * z1)
                / torch.sin(torch.arccos((torch.dot(z0, z1) / 64).clamp(-1, 1))), "no-norm"),
    ],
)


def check_slerp(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``slerp(z0, z1, lam)`` (exercise ``ex-sample-slerp``)."""
    __tracebackhide__ = True  # noqa: F841
    _SLERP(fn)
