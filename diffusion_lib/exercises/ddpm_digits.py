r"""Checkers for the exercises of the chapter on training DDPM on digits (``book/ddpm_digits.ipynb``).

=============================  ============================  ============================================
checker                        exercise label                the function the student writes
=============================  ============================  ============================================
``check_ddpm_loss``            ``ex-ddpm-loss``              ``ddpm_loss(model, x0, t, eps, alpha_bar)``
``check_ema_step``             ``ex-ddpm-ema``               ``ema_step(ema, theta, decay)``
``check_drop_labels``          ``ex-ddpm-drop-labels``       ``drop_labels(y, u, p_uncond, num_classes)``
=============================  ============================  ============================================

The equations (Ho et al., 2020; Ho & Salimans, 2022):

.. math::

    L_\text{simple} = \operatorname{mean}\big\|\epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t) - \epsilon\big\|^2,
    \qquad \bar\theta \leftarrow \mu\,\bar\theta + (1-\mu)\,\theta,

and label dropout: ``y_i`` becomes the null label ``num_classes`` where ``u_i < p_uncond``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_ddpm_loss", "check_ema_step", "check_drop_labels", "toy_model"]


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in for the U-Net in the checks: a smooth function of x_t and t."""
    return torch.tanh(0.7 * x + 0.002 * t.to(x.dtype).reshape(-1, 1, 1, 1))


def _xt(x0, t, eps, abar, sqrt=True):
    a = abar[t].reshape(-1, 1, 1, 1)
    return (a.sqrt() * x0 + (1 - a).sqrt() * eps) if sqrt else (a * x0 + (1 - a) * eps)


def _loss(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t, eps, alpha_bar), t) - eps) ** 2).mean()


def _loss_no_sqrt(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t, eps, alpha_bar, sqrt=False), t) - eps) ** 2).mean()


def _loss_x0_target(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t, eps, alpha_bar), t) - x0) ** 2).mean()


def _loss_sum(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t, eps, alpha_bar), t) - eps) ** 2).sum()


def _loss_t_minus_1(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t - 1, eps, alpha_bar), t) - eps) ** 2).mean()


def _loss_cases(g: torch.Generator) -> list[Case]:
    T = 50
    beta = torch.linspace(1e-3, 0.2, T, dtype=torch.float64)
    alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)])
    def batch(B):
        return (torch.rand(B, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1,
                torch.randint(1, T + 1, (B,), generator=g),
                torch.randn(B, 1, 4, 4, generator=g, dtype=torch.float64))
    x0, t, eps = batch(6)
    x1, t1, e1 = batch(3)
    return [
        Case("6 images of 4 x 4 pixels at random t, T = 50 (alpha_bar has length T + 1, index 0 = data)",
             toy_model, x0, t, eps, alpha_bar),
        Case("3 images, all at t = 1", toy_model, x1, torch.ones(3, dtype=torch.long), e1, alpha_bar),
        Case("3 images at mixed t", toy_model, x1, t1, e1, alpha_bar),
    ]


_LOSS = Checker(
    name="ddpm_loss",
    label="ex-ddpm-loss",
    reference=_loss,
    cases=_loss_cases,
    mistakes=[
        Mistake("You built x_t with alpha_bar_t and (1 - alpha_bar_t) as weights; they are variances. The "
                "signal is scaled by sqrt(alpha_bar_t) and the noise by sqrt(1 - alpha_bar_t).", _loss_no_sqrt, "no-sqrt"),
        Mistake("Your loss compares the model's output with x0; in the eps parameterisation the target is the noise eps.",
                _loss_x0_target, "x0-target"),
        Mistake("You summed the squared errors; L_simple is their mean over the batch and the pixels (.mean()).",
                _loss_sum, "sum"),
        Mistake("You indexed alpha_bar with t - 1. The schedule tensors have length T + 1 and are indexed by t "
                "directly (alpha_bar[0] = 1 is the data), so use alpha_bar[t].", _loss_t_minus_1, "t-minus-1"),
    ],
)


def check_ddpm_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddpm_loss(model, x0, t, eps, alpha_bar)`` = L_simple on one batch (``ex-ddpm-loss``)."""
    __tracebackhide__ = True  # noqa: F841
    return _LOSS(fn)


# ----------------------------------------------------------------------------------------- EMA
def _ema(ema, theta, decay):
    return decay * ema + (1 - decay) * theta


_EMA = Checker(
    name="ema_step",
    label="ex-ddpm-ema",
    reference=_ema,
    cases=lambda g: [
        Case("a weight vector of 5 entries, decay 0.9", torch.randn(5, generator=g), torch.randn(5, generator=g), 0.9),
        Case("a 3 x 3 weight matrix, decay 0.999", torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g), 0.999),
    ],
    mistakes=[
        Mistake("The weights are swapped: the average keeps `decay` of its old value and takes (1 - decay) of "
                "the new weights: decay * ema + (1 - decay) * theta.", lambda e, th, d: (1 - d) * e + d * th, "swapped"),
        Mistake("You returned the new weights theta themselves; the EMA moves only a fraction (1 - decay) of "
                "the way towards them.", lambda e, th, d: th.clone(), "no-average"),
        Mistake("You forgot the factor (1 - decay) on theta: decay * ema + theta is not an average "
                "(the weights would grow without bound).", lambda e, th, d: d * e + th, "no-one-minus"),
    ],
)


def check_ema_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ema_step(ema, theta, decay) = decay * ema + (1 - decay) * theta`` (``ex-ddpm-ema``)."""
    __tracebackhide__ = True  # noqa: F841
    return _EMA(fn)


# ------------------------------------------------------------------------------- label dropout
def _drop(y, u, p_uncond, num_classes):
    return torch.where(u < p_uncond, torch.full_like(y, num_classes), y)


_DROP = Checker(
    name="drop_labels",
    label="ex-ddpm-drop-labels",
    reference=_drop,
    cases=lambda g: [
        Case("20 digit labels, p_uncond = 0.2, 10 classes", torch.randint(0, 10, (20,), generator=g),
             torch.rand(20, generator=g), 0.2, 10),
        Case("8 labels of 3 classes, p_uncond = 0.5", torch.randint(0, 3, (8,), generator=g),
             torch.rand(8, generator=g), 0.5, 3),
    ],
    mistakes=[
        Mistake("You dropped the labels where u > p_uncond, i.e. with probability 1 - p_uncond; drop where u < p_uncond.",
                lambda y, u, p, n: torch.where(u > p, torch.full_like(y, n), y), "inverted"),
        Mistake("You used -1 as the null label; the U-Net reserves the index num_classes for it (its class "
                "embedding has num_classes + 1 rows).", lambda y, u, p, n: torch.where(u < p, torch.full_like(y, -1), y), "minus-one"),
        Mistake("You used 0 as the null label, but 0 is a real class (the digit 0); the null label is num_classes.",
                lambda y, u, p, n: torch.where(u < p, torch.zeros_like(y), y), "zero"),
    ],
)


def check_drop_labels(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``drop_labels(y, u, p_uncond, num_classes)`` (``ex-ddpm-drop-labels``)."""
    __tracebackhide__ = True  # noqa: F841
    return _DROP(fn)
