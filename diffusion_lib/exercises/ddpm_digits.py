r"""Checkers for the exercises of the chapter on training DDPM on digits (``book/ddpm_digits.ipynb``).

=============================  ============================  ============================================
checker                        exercise label                the function the student writes
=============================  ============================  ============================================
``check_ddpm_loss``            ``ex-ddpm-loss``              ``ddpm_loss(model, x0, t, eps, alpha_bar)``
``check_ema_step``             ``ex-ddpm-ema``               ``ema_step(ema, theta, decay)``
``check_timestep_weights``     ``ex-ddpm-timestep-weights``  ``timestep_weights(T, mix) -> (p, w)``
=============================  ============================  ============================================

The equations (Ho et al., 2020; Nichol & Dhariwal, 2021):

.. math::

    L_\text{simple} = \operatorname{mean}\big\|\boldsymbol\epsilon_\theta(\sqrt{\bar\alpha_t}\mathbf{x}_0
    + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t) - \boldsymbol\epsilon\big\|^2,
    \qquad \bar\theta \leftarrow \mu\,\bar\theta + (1-\mu)\,\theta,

    p(t) = \frac{1 - m}{T} + m\,\frac{1/t}{H_T},\quad H_T = \sum_{s=1}^{T} \frac1s,\qquad
    w(t) = \frac{1}{T\,p(t)}\quad (t = 1, \dots, T;\ m = \text{mix}).

The loss is what training differentiates, so its check runs the student's function with a small
network whose weights require gradients and compares the gradient with respect to them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_ddpm_loss", "check_ema_step", "check_timestep_weights", "toy_model"]


# ----------------------------------------------------------------------------------- L_simple
def toy_model(x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""A small stand-in for the U-Net in the checks: ``tanh(a x + b t / 100) + c x``.

    ``weights = (a, b, c)`` (default ``(0.7, 0.2, 0.1)``); the check of ``ddpm_loss`` makes them
    require gradients, so it can tell whether a gradient reaches the network's weights.
    """
    if weights is None:
        weights = torch.tensor([0.7, 0.2, 0.1], dtype=x.dtype)
    a, b, c = weights.to(x.dtype)
    return torch.tanh(a * x + b * t.to(x.dtype).reshape(-1, 1, 1, 1) / 100) + c * x


def _with_network(loss: Callable) -> Callable:
    """``loss(model, x0, t, eps, alpha_bar)`` as a function of the network's weights as well.

    The checker calls ``fn(x0, t, eps, alpha_bar, network_weights)`` and needs gradients with
    respect to ``network_weights``: they stand for the U-Net's parameters, which is what a
    training step differentiates.
    """

    def ddpm_loss_of_weights(x0, t, eps, alpha_bar, network_weights):
        __tracebackhide__ = True  # noqa: F841
        return loss(lambda x, tt: toy_model(x, tt, network_weights), x0, t, eps, alpha_bar)

    ddpm_loss_of_weights.__name__ = getattr(loss, "__name__", "ddpm_loss")
    return ddpm_loss_of_weights


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


def _loss_swapped(model, x0, t, eps, alpha_bar):
    a = alpha_bar[t].reshape(-1, 1, 1, 1)
    return ((model((1 - a).sqrt() * x0 + a.sqrt() * eps, t) - eps) ** 2).mean()


def _loss_detached(model, x0, t, eps, alpha_bar):
    return ((model(_xt(x0, t, eps, alpha_bar), t).detach() - eps) ** 2).mean()


def _loss_alt_mse(model, x0, t, eps, alpha_bar):
    abar = alpha_bar.gather(0, t).view(-1, 1, 1, 1)
    xt = torch.sqrt(abar) * x0 + torch.sqrt(1 - abar) * eps
    return F.mse_loss(model(xt, t), eps)


def _loss_alt_loop(model, x0, t, eps, alpha_bar):
    total = 0.0
    for i in range(x0.shape[0]):                     # one image at a time, as a sum of per-image means
        a = alpha_bar[t[i]]
        xt = torch.sqrt(a) * x0[i:i + 1] + torch.sqrt(1 - a) * eps[i:i + 1]
        total = total + (model(xt, t[i:i + 1]) - eps[i:i + 1]).pow(2).mean()
    return total / x0.shape[0]


def _schedule(T: int, dtype: torch.dtype) -> torch.Tensor:
    beta = torch.linspace(1e-3, 0.2, T, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)]).to(dtype)


def _loss_cases(g: torch.Generator) -> list[Case]:
    def batch(B, T, dtype=torch.float64, t=None):
        weights = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64) + 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
        return ((torch.rand(B, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1).to(dtype),
                torch.randint(1, T + 1, (B,), generator=g) if t is None else t,
                torch.randn(B, 1, 4, 4, generator=g, dtype=torch.float64).to(dtype),
                _schedule(T, dtype), weights.to(dtype))

    return [
        Case("6 images of 4 x 4 pixels at random t, T = 50 (alpha_bar has length T + 1, index 0 = data), float64",
             *batch(6, 50)),
        Case("3 images, all at t = 1", *batch(3, 50, t=torch.ones(3, dtype=torch.long))),
        Case("3 images, all at the last step t = T = 50", *batch(3, 50, t=torch.full((3,), 50))),
        Case("a batch of one image, T = 20", *batch(1, 20)),
        Case("5 images at random t, T = 30, float32 inputs", *batch(5, 30, torch.float32)),
    ]


_LOSS = Checker(
    name="ddpm_loss",
    label="ex-ddpm-loss",
    reference=_with_network(_loss),
    cases=_loss_cases,
    differentiable=True,
    grad_args=(4,),
    arg_names=("x0", "t", "eps", "alpha_bar", "network_weights"),
    mistakes=[
        Mistake("You built x_t with alpha_bar_t and (1 - alpha_bar_t) as weights; they are variances. The "
                "signal is scaled by sqrt(alpha_bar_t) and the noise by sqrt(1 - alpha_bar_t).",
                _with_network(_loss_no_sqrt), "no-sqrt"),
        Mistake("The two coefficients of x_t are swapped: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, "
                "so that x_t is nearly the image at small t and nearly noise at t = T.",
                _with_network(_loss_swapped), "swapped"),
        Mistake("Your loss compares the model's output with x0; in the eps parameterisation the target is the noise eps.",
                _with_network(_loss_x0_target), "x0-target"),
        Mistake("You summed the squared errors; L_simple is their mean over the batch and the pixels (.mean()).",
                _with_network(_loss_sum), "sum"),
        Mistake("You indexed alpha_bar with t - 1. The schedule tensors have length T + 1 and are indexed by t "
                "directly (alpha_bar[0] = 1 is the data), so use alpha_bar[t].", _with_network(_loss_t_minus_1), "t-minus-1"),
        Mistake("The model's prediction is detached (or computed under torch.no_grad()), so the loss has the right "
                "value but no gradient reaches the network's weights and training would not change them. Remove "
                ".detach() / no_grad and return the loss tensor itself.", _with_network(_loss_detached), "detached"),
    ],
    alternatives=[_with_network(_loss_alt_mse), _with_network(_loss_alt_loop)],
)


def check_ddpm_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddpm_loss(model, x0, t, eps, alpha_bar)`` = L_simple on one batch (``ex-ddpm-loss``).

    The hidden network is :func:`toy_model` with weights that require gradients; the loss must
    return a tensor through which the gradient reaches them.
    """
    __tracebackhide__ = True  # noqa: F841
    if not callable(fn):
        return _LOSS(fn)  # the harness explains that the function itself is needed
    return _LOSS(_with_network(fn))


# ----------------------------------------------------------------------------------------- EMA
def _ema(ema, theta, decay):
    return decay * ema + (1 - decay) * theta


_EMA = Checker(
    name="ema_step",
    label="ex-ddpm-ema",
    reference=_ema,
    cases=lambda g: [
        Case("a weight vector of 5 entries, decay 0.9", torch.randn(5, generator=g), torch.randn(5, generator=g), 0.9),
        Case("a 3 x 3 weight matrix, decay 0.999, float64", torch.randn(3, 3, generator=g, dtype=torch.float64),
             torch.randn(3, 3, generator=g, dtype=torch.float64), 0.999),
        Case("a single weight (shape (1,)), decay 0.5", torch.randn(1, generator=g), torch.randn(1, generator=g), 0.5),
        Case("a 4-D convolution weight (2, 3, 3, 3), decay 0.99", torch.randn(2, 3, 3, 3, generator=g),
             torch.randn(2, 3, 3, 3, generator=g), 0.99),
    ],
    mistakes=[
        Mistake("The weights are swapped: the average keeps `decay` of its old value and takes (1 - decay) of "
                "the new weights: decay * ema + (1 - decay) * theta.", lambda e, th, d: (1 - d) * e + d * th, "swapped"),
        Mistake("You returned the new weights theta themselves; the EMA moves only a fraction (1 - decay) of "
                "the way towards them.", lambda e, th, d: th.clone(), "no-average"),
        Mistake("You forgot the factor (1 - decay) on theta: decay * ema + theta is not an average "
                "(the weights would grow without bound).", lambda e, th, d: d * e + th, "no-one-minus"),
        Mistake("Your function ignores its `decay` argument and always uses 0.9; use `decay`, so that the same "
                "code serves 0.99 for the short run and 0.999 for the long one.",
                lambda e, th, d: 0.9 * e + 0.1 * th, "hard-coded"),
        Mistake("You returned the old average unchanged; after the step it moves a fraction (1 - decay) of the "
                "way towards theta.", lambda e, th, d: e.clone(), "unchanged"),
    ],
    alternatives=[
        lambda e, th, d: torch.lerp(e, th, 1 - d),
        lambda e, th, d: e - (1 - d) * (e - th),
    ],
)


def check_ema_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ema_step(ema, theta, decay) = decay * ema + (1 - decay) * theta`` (``ex-ddpm-ema``)."""
    __tracebackhide__ = True  # noqa: F841
    return _EMA(fn)


# ------------------------------------------------------------------- timestep probabilities and weights
def _tw(T, mix):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    inverse = 1.0 / t
    p = (1 - mix) / T + mix * inverse / inverse.sum()
    return p, 1.0 / (T * p)


def _tw_unnormalised(T, mix):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    p = (1 - mix) / T + mix / t
    return p, 1.0 / (T * p)


def _tw_times(T, mix):
    p, _ = _tw(T, mix)
    return p, T * p


def _tw_no_T(T, mix):
    p, _ = _tw(T, mix)
    return p, 1.0 / p


def _tw_mix_swapped(T, mix):
    return _tw(T, 1 - mix)


def _tw_from_zero(T, mix):
    t = torch.arange(0, T, dtype=torch.float64) + 2      # 1/(t + 1) for t = 1..T: shifted by one
    inverse = 1.0 / t
    p = (1 - mix) / T + mix * inverse / inverse.sum()
    return p, 1.0 / (T * p)


def _tw_loop(T, mix):
    harmonic = 0.0
    for s in range(1, T + 1):
        harmonic += 1.0 / s
    p = torch.tensor([(1 - mix) / T + mix / (t * harmonic) for t in range(1, T + 1)], dtype=torch.float64)
    return p, (T * p).reciprocal()


def _tw_digamma(T, mix):
    # H_T = digamma(T + 1) + Euler's constant
    harmonic = torch.special.digamma(torch.tensor(T + 1.0, dtype=torch.float64)) + 0.5772156649015329
    t = torch.arange(1, T + 1, dtype=torch.float64)
    p = torch.lerp(torch.full_like(t, 1.0 / T), 1.0 / (t * harmonic), mix)
    return p, 1 / (T * p)


_WEIGHTS = Checker(
    name="timestep_weights",
    label="ex-ddpm-timestep-weights",
    reference=_tw,
    arg_names=("T", "mix"),
    cases=[
        Case("T = 1000, mix = 0.5 (the shipped model's sampler)", 1000, 0.5),
        Case("T = 250, mix = 0.8", 250, 0.8),
        Case("T = 7, mix = 0.3 (small enough to check by hand)", 7, 0.3),
        Case("mix = 0: uniform p(t) = 1/T, so every weight is 1", 40, 0.0),
        Case("T = 1: one timestep, p(1) = 1 and w(1) = 1, still returned as tensors of length 1", 1, 0.5),
    ],
    mistakes=[
        Mistake("Your 1/t part is not normalised: divide 1/t by H_T = sum_{s=1}^{T} 1/s so that it is a "
                "distribution; then p sums to one.", _tw_unnormalised, "unnormalised"),
        Mistake("Your weights are T p(t); the importance weight is the inverse, w(t) = 1 / (T p(t)), large "
                "where t is drawn rarely.", _tw_times, "times"),
        Mistake("Your weights are 1 / p(t); the book's weight is w(t) = 1 / (T p(t)), which is 1 for "
                "uniform p.", _tw_no_T, "no-T"),
        Mistake("mix and 1 - mix are swapped: a fraction `mix` of the draws follows 1/t, so "
                "p(t) = (1 - mix) / T + mix (1/t) / H_T.", _tw_mix_swapped, "mix-swapped"),
        Mistake("Your function ignores its `mix` argument and always uses 0.5; the fraction of draws that "
                "follows 1/t is `mix`.", lambda T, mix: _tw(T, 0.5), "hard-coded-mix"),
        Mistake("Your timesteps are shifted by one (1/(t + 1)): t runs over 1..T, and entry t - 1 of the "
                "tensors belongs to timestep t (torch.arange(1, T + 1)).", _tw_from_zero, "shifted"),
    ],
    alternatives=[_tw_loop, _tw_digamma],
)


def check_timestep_weights(fn: Callable[..., tuple]) -> None:
    """Check ``timestep_weights(T, mix) -> (p, w)`` of the inverse mix (``ex-ddpm-timestep-weights``).

    ``p[t - 1] = (1 - mix) / T + mix (1/t) / H_T`` and ``w[t - 1] = 1 / (T p[t - 1])``, float64.
    """
    __tracebackhide__ = True  # noqa: F841
    return _WEIGHTS(fn)
