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
from diffusion_lib.core.schedules import NoiseSchedule

__all__ = ["check_cosine_alpha_bar", "check_beta_from_alpha_bar", "check_log_snr"]

DT = torch.float64


# ------------------------------------------------------------------------------- cosine abar
def _f(t, T, s):
    return torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2


def _cos(t, T, s):
    return _f(t, T, s) / _f(torch.zeros_like(t), T, s)


def _cos_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("t = 0, 10, ..., 100 with T = 100, s = 0.008", torch.arange(0, 101, 10, dtype=DT), 100, 0.008),
        Case("random timesteps with T = 50 and a large offset s = 0.1", 50 * torch.rand(6, generator=g, dtype=DT), 50, 0.1),
        Case("float32 timesteps t = 1, 500, 1000 with T = 1000, s = 0.008", torch.tensor([1.0, 500.0, 1000.0]), 1000, 0.008),
        Case("a single step t = 3 of a short chain, T = 4, no offset (s = 0)", torch.tensor([3.0], dtype=DT), 4, 0.0),
    ]


_COS = Checker(
    name="cosine_alpha_bar",
    label="ex-sched-cosine",
    reference=_cos,
    cases=_cos_cases,
    arg_names=("t", "T", "s"),
    mistakes=[
        Mistake("You did not divide by f(0): without it abar(0) = cos^2(s/(1+s) pi/2) < 1, but abar_0 must be 1.",
                lambda t, T, s: _f(t, T, s), "no-normalise"),
        Mistake("You forgot to square the cosine: f(t) = cos^2(...).",
                lambda t, T, s: torch.cos((t / T + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2), "no-square"),
        Mistake("You forgot to divide by (1 + s): the argument is (t/T + s) / (1 + s) * pi/2, so that abar(T) = 0.",
                lambda t, T, s: torch.cos((t / T + s) * math.pi / 2) ** 2 / math.cos(s * math.pi / 2) ** 2, "no-1-plus-s"),
        Mistake("You used t where the formula has t / T: the cosine's clock runs from 0 to 1 over the chain, "
                "so divide the timestep by T.",
                lambda t, T, s: _f(t * T, T, s) / _f(torch.zeros_like(t), T, s), "no-t-over-T"),
        Mistake("You left out the pi/2: the argument of the cosine runs from about 0 to pi/2, so that "
                "abar falls from 1 to 0.",
                lambda t, T, s: torch.cos((t / T + s) / (1 + s)) ** 2 / math.cos(s / (1 + s)) ** 2, "no-pi-half"),
    ],
    alternatives=[
        lambda t, T, s: (torch.cos((t / T + s) / (1 + s) * torch.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)) ** 2,
        # cos^2 x = (1 + cos 2x) / 2
        lambda t, T, s: (1 + torch.cos((t / T + s) / (1 + s) * torch.pi)) / (1 + math.cos(s / (1 + s) * math.pi)),
        lambda t, T, s: torch.sin((1 - (t / T + s) / (1 + s)) * torch.pi / 2) ** 2 / math.sin((1 - s / (1 + s)) * math.pi / 2) ** 2,
    ],
)


def check_cosine_alpha_bar(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``cosine_alpha_bar(t, T, s)`` = f(t) / f(0) (exercise ``ex-sched-cosine``)."""
    __tracebackhide__ = True  # noqa: F841
    return _COS(fn)


# ------------------------------------------------------------------------------- beta from abar
def _beta(ab):
    return torch.cat([torch.zeros_like(ab[:1]), 1 - ab[1:] / ab[:-1]])


def _beta_cases(g: torch.Generator) -> list[Case]:
    b = 0.02 + 0.2 * torch.rand(8, generator=g, dtype=DT)
    ab = torch.cat([torch.ones(1, dtype=DT), torch.cumprod(1 - b, 0)])
    return [
        Case("abar of 8 random steps (length 9, abar[0] = 1)", ab),
        Case("a single step: abar = [1, 0.7], so beta_1 = 0.3", torch.tensor([1.0, 0.7], dtype=DT)),
        Case("another schedule: the library's cosine abar with T = 100, float32, whose last beta is clipped",
             NoiseSchedule.from_name("cosine", 100).alpha_bar.clone()),
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
        Mistake("You returned only beta_1..beta_T (length T): keep the library's layout, length T + 1 with "
                "beta[0] = 0 in front.",
                lambda ab: 1 - ab[1:] / ab[:-1], "no-beta0"),
        Mistake("You took differences, abar_{t-1} - abar_t: that is abar_{t-1} beta_t, the signal lost at step "
                "t. Divide by abar_{t-1}: beta_t = 1 - abar_t / abar_{t-1}.",
                lambda ab: torch.cat([torch.zeros(1, dtype=ab.dtype), ab[:-1] - ab[1:]]), "difference"),
    ],
    alternatives=[
        lambda ab: torch.nn.functional.pad(1 - ab[1:] / ab[:-1], (1, 0)),
        lambda ab: torch.cat([ab.new_zeros(1), -torch.expm1(torch.diff(torch.log(ab)))]),
        lambda ab: torch.stack([ab.new_zeros(())] + [1 - ab[t] / ab[t - 1] for t in range(1, len(ab))]),
    ],
)


def check_beta_from_alpha_bar(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``beta_from_alpha_bar(alpha_bar)`` = 1 - abar_t / abar_{t-1}, beta[0] = 0 (exercise ``ex-sched-beta``)."""
    __tracebackhide__ = True  # noqa: F841
    return _BETA(fn)


# ------------------------------------------------------------------------------- log SNR
def _log_snr(ab):
    return torch.log(ab) - torch.log1p(-ab)


def _log_snr_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("10 values of abar in (0.01, 0.99)", 0.01 + 0.98 * torch.rand(10, generator=g, dtype=DT)),
        Case("abar = 0.5 (SNR = 1, log SNR = 0) and abar = 0.9", torch.tensor([0.5, 0.9], dtype=DT)),
        Case("float32 values of abar from 0.999 down to 1e-4", torch.tensor([0.999, 0.5, 1e-2, 1e-4])),
        Case("another schedule: abar_1..abar_T of the library's linear schedule with T = 1000, float64",
             NoiseSchedule.from_name("linear", 1000, dtype=DT).alpha_bar[1:].clone()),
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
        Mistake("You used the base-10 logarithm; the log-SNR is a natural logarithm (torch.log).",
                lambda ab: torch.log10(ab / (1 - ab)), "log10"),
        Mistake("You used sqrt(abar) / sqrt(1 - abar), the ratio of the standard deviations: the SNR is the ratio "
                "of the variances, abar / (1 - abar) (your answer is half the log-SNR).",
                lambda ab: 0.5 * (torch.log(ab) - torch.log1p(-ab)), "std-ratio"),
    ],
    alternatives=[
        lambda ab: torch.log(ab / (1 - ab)),
        lambda ab: torch.logit(ab),
        lambda ab: -torch.log(1 / ab - 1),
    ],
)


def check_log_snr(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``log_snr(alpha_bar)`` = log(abar / (1 - abar)) (exercise ``ex-sched-log-snr``)."""
    __tracebackhide__ = True  # noqa: F841
    return _LOG_SNR(fn)
