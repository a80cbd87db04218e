r"""Checkers for the exercises of the 2-D DDPM chapter (``book/ddpm_2d.ipynb``).

=========================  ==========================  ============================================================
checker                    exercise label              the function the student writes
=========================  ==========================  ============================================================
``check_time_embedding``   ``ex-ddpm-time-embedding``  ``time_embedding(t, dim, max_period) -> (B, dim)``
``check_ddim_step``        ``ex-ddpm-ddim-step``       ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_prev) -> x_prev``
=========================  ==========================  ============================================================

The equations:

.. math::

    \omega_k = \text{max\_period}^{-k/(\text{dim}/2)},\quad
    e(t) = [\sin(t\omega_0), \dots, \sin(t\omega_{\text{dim}/2-1}), \cos(t\omega_0), \dots, \cos(t\omega_{\text{dim}/2-1})],

    \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon}{\sqrt{\bar\alpha_t}},\qquad
    x_{\text{prev}} = \sqrt{\bar\alpha_{\text{prev}}}\,\hat x_0 + \sqrt{1-\bar\alpha_{\text{prev}}}\,\varepsilon
    \quad\text{(deterministic DDIM, } \eta = 0).
"""

from __future__ import annotations

import math

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_time_embedding", "check_ddim_step"]


# --------------------------------------------------------------------------- time embedding
def _emb(t, dim, max_period):
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    angle = t.to(torch.float32)[:, None] * omega
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def _emb_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("8 random timesteps in 1..1000, dim = 16, max_period = 10000",
             torch.randint(1, 1001, (8,), generator=g), 16, 10_000.0),
        Case("timesteps 1..5, dim = 6, max_period = 400", torch.arange(1, 6), 6, 400.0),
    ]


_EMB = Checker(
    name="time_embedding",
    label="ex-ddpm-time-embedding",
    reference=_emb,
    cases=_emb_cases,
    mistakes=[
        Mistake(
            "The cosines come first in your vector: put the dim/2 sines first, then the dim/2 cosines.",
            lambda t, d, p: _emb(t, d, p).roll(d // 2, dims=1),
            "cos-first",
        ),
        Mistake(
            "Your frequencies use the exponent -k/dim; with half of the entries for sines and half for "
            "cosines the exponent is -k/(dim/2), so the slowest frequency reaches max_period^(-(dim/2-1)/(dim/2)).",
            lambda t, d, p: _emb(t, 2 * d, p)[:, [*range(d // 2), *range(d, d + d // 2)]],
            "exponent-dim",
        ),
        Mistake(
            "You interleaved sines and cosines (sin, cos, sin, cos, ...); the book's layout is all sines, "
            "then all cosines.",
            lambda t, d, p: torch.stack([_emb(t, d, p)[:, : d // 2], _emb(t, d, p)[:, d // 2:]], dim=2).reshape(len(t), d),
            "interleaved",
        ),
    ],
)


def check_time_embedding(fn) -> None:
    """Check ``time_embedding(t, dim, max_period)`` (exercise ex-ddpm-time-embedding)."""
    __tracebackhide__ = True
    _EMB(fn)


# --------------------------------------------------------------------------- DDIM step
def _ddim(xt, eps, ab, ab_prev):
    x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps


def _ddim_cases(g: torch.Generator) -> list[Case]:
    ab = 0.05 + 0.5 * torch.rand(6, 1, generator=g)
    ab_prev = ab + (0.95 - ab) * torch.rand(6, 1, generator=g)
    return [
        Case("6 random points with random abar_t < abar_prev",
             torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g), ab, ab_prev),
        Case("the last step, abar_prev = 1 (the result must be the predicted x_0)",
             torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g),
             torch.full((3, 1), 0.7), torch.ones(3, 1)),
    ]


_DDIM = Checker(
    name="ddim_step",
    label="ex-ddpm-ddim-step",
    reference=_ddim,
    cases=_ddim_cases,
    mistakes=[
        Mistake(
            "You returned the predicted x_0 itself; DDIM moves to the noise level abar_prev: "
            "x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps.",
            lambda xt, e, a, ap: (xt - (1 - a).sqrt() * e) / a.sqrt(),
            "returned-x0",
        ),
        Mistake(
            "In the noise direction you used sqrt(1 - abar_t); the noise of x_prev has the scale of the "
            "target level, sqrt(1 - abar_prev).",
            lambda xt, e, a, ap: ap.sqrt() * (xt - (1 - a).sqrt() * e) / a.sqrt() + (1 - a).sqrt() * e,
            "wrong-level",
        ),
        Mistake(
            "You forgot the square roots in the x_0 prediction: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).",
            lambda xt, e, a, ap: ap.sqrt() * (xt - (1 - a) * e) / a + (1 - ap).sqrt() * e,
            "no-sqrt",
        ),
    ],
)


def check_ddim_step(fn) -> None:
    """Check ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_prev)`` (exercise ex-ddpm-ddim-step)."""
    __tracebackhide__ = True
    _DDIM(fn)
