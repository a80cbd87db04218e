r"""Checkers for the exercises of the chapter on noise schedules (``book/noise_schedules.ipynb``).

==============================  ==========================  ==============================================
checker                         exercise label              the function the student writes
==============================  ==========================  ==============================================
``check_cosine_alpha_bar``      ``ex-sched-cosine``         ``cosine_alpha_bar(t, T, s) -> abar``
``check_beta_from_alpha_bar``   ``ex-sched-beta``           ``beta_from_alpha_bar(alpha_bar) -> beta``
``check_log_snr``               ``ex-sched-log-snr``        ``log_snr(alpha_bar) -> log SNR``
==============================  ==========================  ==============================================

The equations (Nichol and Dhariwal, 2021; Kingma et al., 2021):

.. math::

    \bar\alpha(t) = \frac{f(t)}{f(0)},\ f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\,\frac{\pi}{2}\Big), \qquad
    \beta_t = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}, \qquad
    \log \mathrm{SNR}(t) = \log \frac{\bar\alpha_t}{1 - \bar\alpha_t}.

``t`` is a float tensor of timesteps; ``alpha_bar`` in the last two is the library's layout, length
``T + 1`` with ``alpha_bar[0] = 1``; ``beta_from_alpha_bar`` returns length ``T + 1`` with
``beta[0] = 0``. ``log_snr`` gets ``alpha_bar_1..alpha_bar_T`` (no entry equal to 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_cosine_alpha_bar", "check_beta_from_alpha_bar", "check_log_snr"]

DT = torch.float64


def _f(t, T, s):
    return torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2


def _cos(t, T, s):
    return _f(t, T, s) / _f(torch.zeros_like(t), T, s)


def _cos_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("t = 0, 10, ..., 100 with T = 100, s = 0.008", torch.arange(0, 101, 10, dtype=DT), 100, 0.008),
        Case("random timesteps with T = 50 and a large offset s = 0.1", 50 * torch.rand(6, generator=g, dtype=DT), 50, 0.1),
    ]


_COS = Checker(
    name="cosine_alpha_bar",
    label="ex-sched-cosine",
    reference=_cos,
    cases=_cos_cases,
    mistakes=[
        Mistake("You did not divide by f(0): without it abar(0) = cos^2(s/(1+s) pi/2) < 1, but abar_0 must be 1.",
                lambda t, T, s: _f(t, T, s), "no-normalise"),
        Mistake("You forgot to square the cosine: f(t) = cos^2(...).",
                lambda t, T, s: torch.cos((t / T + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2), "no-square"),
        Mistake("You forgot to divide by (1 + s): the argument is (t/T + s) / (1 + s) * pi/2, so that abar(T) = 0.",
                lambda t, T, s: torch.cos((t / T + s) * math.pi / 2) ** 2 / math.cos(s * math.pi / 2) ** 2, "no-1-plus-s"),
    ],
)


def check_cosine_alpha_bar(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``cosine_alpha_bar(t, T, s)`` = f(t) / f(0) (exercise ``ex-sched-cosine``)."""
    __tracebackhide__ = True  # noqa: F841
    return _COS(fn)


def _beta(ab):
    beta = torch.zeros_like(ab)
    beta[1:] = 1 - ab[1:] / ab[:-1]
    return beta


def _beta_cases(g: torch.Generator) -> list[Case]:
    b = 0.02 + 0.2 * torch.rand(8, generator=g, dtype=DT)
    ab = torch.cat([torch.ones(1, dtype=DT), torch.cumprod(1 - b, 0)])
    return [
        Case("abar of 8 random steps (length 9, abar[0] = 1)", ab),
        Case("a single step: abar = [1, 0.7], so beta_1 = 0.3", torch.tensor([1.0, 0.7], dtype=DT)),
    ]


_BETA = Checker(
    name="beta_from_alpha_bar",
    label="ex-sched-beta",
    reference=_beta,
    cases=_beta_cases,
    mistakes=[
        Mistake("You returned 1 - abar_t: that is the total noise variance up to t, not the variance added at "
                "step t. Use beta_t = 1 - abar_t / abar_{t-1}.",
                lambda ab: 1 - ab, "one-minus-abar"),
        Mistake("You returned alpha_t = abar_t / abar_{t-1}; beta_t = 1 - alpha_t.",
                lambda ab: torch.cat([torch.zeros(1, dtype=ab.dtype), ab[1:] / ab[:-1]]), "alpha"),
        Mistake("You took the ratio the wrong way round: beta_t = 1 - abar_t / abar_{t-1} (abar shrinks with t, "
                "so the ratio is below 1).",
                lambda ab: torch.cat([torch.zeros(1, dtype=ab.dtype), 1 - ab[:-1] / ab[1:]]), "inverted"),
    ],
)


def check_beta_from_alpha_bar(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``beta_from_alpha_bar(alpha_bar)`` = 1 - abar_t / abar_{t-1}, beta[0] = 0 (exercise ``ex-sched-beta``)."""
    __tracebackhide__ = True  # noqa: F841
    return _BETA(fn)


def _log_snr(ab):
    return torch.log(ab) - torch.log1p(-ab)


def _log_snr_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("10 values of abar in (0.01, 0.99)", 0.01 + 0.98 * torch.rand(10, generator=g, dtype=DT)),
        Case("abar = 0.5 (SNR = 1, log SNR = 0) and abar = 0.9", torch.tensor([0.5, 0.9], dtype=DT)),
    ]


_LOG_SNR = Checker(
    name="log_snr",
    label="ex-sched-log-snr",
    reference=_log_snr,
    cases=_log_snr_cases,
    mistakes=[
        Mistake("You computed log((1 - abar) / abar), the log of the inverse SNR; SNR = abar / (1 - abar).",
                lambda ab: torch.log1p(-ab) - torch.log(ab), "inverse"),
        Mistake("You returned the SNR without the log.", lambda ab: ab / (1 - ab), "no-log"),
        Mistake("You computed log(abar) only; the SNR divides the signal variance abar by the noise variance 1 - abar.",
                lambda ab: torch.log(ab), "log-abar"),
    ],
)


def check_log_snr(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``log_snr(alpha_bar)`` = log(abar / (1 - abar)) (exercise ``ex-sched-log-snr``)."""
    __tracebackhide__ = True  # noqa: F841
    return _LOG_SNR(fn)
