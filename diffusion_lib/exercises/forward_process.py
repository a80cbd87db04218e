r"""Checkers for the exercises of the chapter on the forward process (``book/forward_process.ipynb``).

=====================  ==========================  ==============================================
checker                exercise label              the function the student writes
=====================  ==========================  ==============================================
``check_alpha_bar``    ``ex-forward-alpha-bar``    ``alpha_bar_from_beta(beta) -> alpha_bar``
``check_q_sample``     ``ex-forward-q-sample``     ``q_sample(x0, alpha_bar_t, eps) -> xt``
``check_x0_from_eps``  ``ex-forward-x0-from-eps``  ``x0_from_eps(xt, alpha_bar_t, eps) -> x0``
=====================  ==========================  ==============================================

The equations (Ho et al., 2020):

.. math::

    \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s), \qquad
    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon, \qquad
    x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\, \varepsilon}{\sqrt{\bar\alpha_t}}.

``alpha_bar_from_beta`` returns one value per entry of ``beta``: entry ``i`` is the product of
``1 - beta`` over entries ``0..i``. Given ``beta_1..beta_T`` (length ``T``) it returns
``alpha_bar_1..alpha_bar_T``; given the library's layout (length ``T + 1`` with ``beta[0] = 0``)
the same code returns ``alpha_bar[0] = 1, alpha_bar_1, ..., alpha_bar_T``. The checker tries both.
``alpha_bar_t`` in the other two exercises is a tensor that broadcasts against ``x0``
(a 0-d tensor, or shape ``(B, 1)`` for ``x0`` of shape ``(B, D)``, or ``(B, 1, 1, 1)`` for images).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_alpha_bar", "check_q_sample", "check_x0_from_eps"]

# --------------------------------------------------------------------------- alpha_bar_from_beta


def _alpha_bar(beta: torch.Tensor) -> torch.Tensor:
    # Running product written as exp(cumulative sum of logs): independent of the obvious cumprod.
    return torch.exp(torch.cumsum(torch.log1p(-beta.to(torch.float64)), dim=0)).to(beta.dtype)


def _alpha_bar_cases(g: torch.Generator) -> list[Case]:
    T = 1000
    ddpm = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return [
        Case("8 random values of beta between 0.05 and 0.4", 0.05 + 0.35 * torch.rand(8, generator=g)),
        Case("DDPM's linear schedule, T = 1000, beta from 1e-4 to 0.02, float64", ddpm),
        Case("a single step, T = 1, beta_1 = 0.3", torch.tensor([0.3])),
        Case(
            "the library's layout: length T + 1 = 6 with beta[0] = 0, so alpha_bar[0] must be 1",
            torch.cat([torch.zeros(1), 0.1 + 0.2 * torch.rand(5, generator=g)]),
        ),
        Case(
            "another schedule, float64: 49 betas rising to 0.3, then a last beta of 0.999 (as the cosine schedule ends)",
            torch.cat([torch.linspace(0.002, 0.3, 49, dtype=torch.float64), torch.tensor([0.999], dtype=torch.float64)]),
        ),
    ]


_ALPHA_BAR = Checker(
    name="alpha_bar_from_beta",
    label="ex-forward-alpha-bar",
    reference=_alpha_bar,
    cases=_alpha_bar_cases,
    mistakes=[
        Mistake(
            "You added the factors up (torch.cumsum) instead of multiplying them: alpha_bar_t is "
            "the running product of (1 - beta_s) for s = 1..t. Use torch.cumprod.",
            lambda beta: torch.cumsum(1 - beta, dim=0),
            "cumsum",
        ),
        Mistake(
            "You multiplied the betas themselves: alpha_bar_t is the running product of "
            "alpha_s = 1 - beta_s, not of beta_s. Use torch.cumprod(1 - beta, dim=0).",
            lambda beta: torch.cumprod(beta, dim=0),
            "cumprod-beta",
        ),
        Mistake(
            "You computed 1 - (running product of beta); the product must be taken of the "
            "alphas: alpha_bar_t = prod over s <= t of (1 - beta_s).",
            lambda beta: 1 - torch.cumprod(beta, dim=0),
            "one-minus-cumprod-beta",
        ),
        Mistake(
            "Your answer is shifted by one step: your entry t is the product up to t - 1 (it "
            "starts at 1). alpha_bar_t includes its own factor (1 - beta_t): the first entry is "
            "1 - beta[0].",
            lambda beta: torch.cat([torch.ones_like(beta[:1]), torch.cumprod(1 - beta, dim=0)[:-1]]),
            "exclusive",
        ),
        Mistake(
            "You returned one more value than you were given: you put a 1 (alpha_bar_0) in front. "
            "Return exactly one value per entry of beta; entry i is the product of (1 - beta) up "
            "to and including entry i.",
            lambda beta: torch.cat([torch.ones_like(beta[:1]), torch.cumprod(1 - beta, dim=0)]),
            "prepended-one",
        ),
        Mistake(
            "You returned the product over all steps, a single number. alpha_bar is the "
            "running (cumulative) product, one value per step: use torch.cumprod(1 - beta, dim=0).",
            lambda beta: torch.prod(1 - beta),
            "total-product",
        ),
    ],
    alternatives=[
        lambda beta: torch.cumprod(1 - beta, dim=0),
        lambda beta: torch.stack([torch.prod(1 - beta[: i + 1]) for i in range(len(beta))]),
        lambda beta: torch.exp(torch.cumsum(torch.log(1 - beta), dim=0)),
    ],
)


def check_alpha_bar(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    r"""Check ``alpha_bar_from_beta(beta) -> alpha_bar`` (exercise ``ex-forward-alpha-bar``).

    :math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`, one value per entry of ``beta``, in the
    dtype of ``beta``. Prints a ✓ line, or raises
    :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    return _ALPHA_BAR(fn)


# ------------------------------------------------------------------------------------ q_sample


def _q_sample(x0: torch.Tensor, alpha_bar_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    xt = a.sqrt() * x0.to(torch.float64) + (1 - a).sqrt() * eps.to(torch.float64)
    return xt.to(x0.dtype)


def _forward_cases(g: torch.Generator, edge_alpha_bar: tuple[float, float]) -> list[Case]:
    """Shared inputs of q_sample and x0_from_eps: (first tensor, alpha_bar_t, eps) per case."""
    x = torch.randn(4, 3, generator=g)
    ab = 0.05 + 0.9 * torch.rand(4, 1, generator=g)
    e = torch.randn(4, 3, generator=g)
    img = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64)
    ab_img = torch.tensor([0.9, 0.2], dtype=torch.float64).view(2, 1, 1, 1)
    e_img = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64)
    v = torch.randn(6, generator=g)
    e_v = torch.randn(6, generator=g)
    x_edge = torch.randn(2, 3, generator=g)
    e_edge = torch.randn(2, 3, generator=g)
    x_one = torch.randn(1, 4, generator=g, dtype=torch.float64)
    e_one = torch.randn(1, 4, generator=g, dtype=torch.float64)
    return [
        Case("a batch of 4 points in 3-D, one alpha_bar_t per row (shape (4, 1))", x, ab, e),
        Case("a batch of 2 images of shape (1, 5, 5), alpha_bar_t of shape (2, 1, 1, 1), float64", img, ab_img, e_img),
        Case("a single vector of length 6 with a 0-d alpha_bar_t = 0.3", v, torch.tensor(0.3), e_v),
        Case(
            "a batch of one point in 4-D, float64, at a late step (alpha_bar_t = 4.04e-5, t = T of DDPM)",
            x_one, torch.tensor([[4.04e-5]], dtype=torch.float64), e_one,
        ),
        Case(
            f"edge values alpha_bar_t = {edge_alpha_bar[0]:g} and {edge_alpha_bar[1]:g}",
            x_edge, torch.tensor(edge_alpha_bar).view(2, 1), e_edge,
        ),
    ]


def _q_sample_cases(g: torch.Generator) -> list[Case]:
    return _forward_cases(g, (1.0, 0.0))


def _sqrt(a: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a).sqrt()


_Q_SAMPLE = Checker(
    name="q_sample",
    label="ex-forward-q-sample",
    reference=_q_sample,
    cases=_q_sample_cases,
    mistakes=[
        Mistake(
            "You used alpha_bar_t and (1 - alpha_bar_t) without square roots. Those are the "
            "variances; the coefficients are their square roots: "
            "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps.",
            lambda x0, a, eps: a * x0 + (1 - a) * eps,
            "no-sqrt",
        ),
        Mistake(
            "You multiplied x0 by alpha_bar_t; the mean of q(x_t | x_0) is sqrt(alpha_bar_t) * x0 "
            "(take the square root).",
            lambda x0, a, eps: a * x0 + _sqrt(1 - a) * eps,
            "alpha-bar-on-x0",
        ),
        Mistake(
            "You multiplied the noise by (1 - alpha_bar_t), which is its variance. Scale eps by "
            "the standard deviation sqrt(1 - alpha_bar_t).",
            lambda x0, a, eps: _sqrt(a) * x0 + (1 - a) * eps,
            "variance-on-eps",
        ),
        Mistake(
            "You swapped the two coefficients: x0 gets sqrt(alpha_bar_t) and eps gets "
            "sqrt(1 - alpha_bar_t) (alpha_bar_t near 1 means little noise).",
            lambda x0, a, eps: _sqrt(1 - a) * x0 + _sqrt(a) * eps,
            "swapped",
        ),
        Mistake(
            "You forgot the noise: add sqrt(1 - alpha_bar_t) * eps to the scaled x0.",
            lambda x0, a, eps: _sqrt(a) * x0,
            "no-noise",
        ),
        Mistake(
            "You returned only the noise term: add the signal sqrt(alpha_bar_t) * x0.",
            lambda x0, a, eps: _sqrt(1 - a) * eps,
            "only-noise",
        ),
        Mistake(
            "You did not scale x0: the forward process shrinks the signal to sqrt(alpha_bar_t) * x0.",
            lambda x0, a, eps: x0 + _sqrt(1 - a) * eps,
            "unscaled-x0",
        ),
        Mistake(
            "The noise coefficient is sqrt(1 - alpha_bar_t), not 1 - sqrt(alpha_bar_t).",
            lambda x0, a, eps: _sqrt(a) * x0 + (1 - _sqrt(a)) * eps,
            "one-minus-sqrt",
        ),
        Mistake(
            "You subtracted the noise. For a given eps the sign matters: "
            "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps.",
            lambda x0, a, eps: _sqrt(a) * x0 - _sqrt(1 - a) * eps,
            "minus-noise",
        ),
    ],
    alternatives=[
        lambda x0, a, eps: a.sqrt() * x0 + (1 - a).sqrt() * eps,
        lambda x0, a, eps: torch.addcmul(torch.sqrt(a) * x0, torch.sqrt(1 - a), eps),
        lambda x0, a, eps: x0 * a**0.5 + eps * (1 - a) ** 0.5,
    ],
)


def check_q_sample(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    r"""Check ``q_sample(x0, alpha_bar_t, eps) -> xt`` (exercise ``ex-forward-q-sample``).

    :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon`, with
    ``alpha_bar_t`` a tensor that broadcasts against ``x0``. Prints a ✓ line, or raises
    :class:`~diffusion_lib.exercises.ExerciseFeedback`.
    """
    __tracebackhide__ = True  # noqa: F841
    return _Q_SAMPLE(fn)


# -------------------------------------------------------------------------------- x0_from_eps


def _x0_from_eps(xt: torch.Tensor, alpha_bar_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    x0 = (xt.to(torch.float64) - (1 - a).sqrt() * eps.to(torch.float64)) / a.sqrt()
    return x0.to(xt.dtype)


def _x0_from_eps_cases(g: torch.Generator) -> list[Case]:
    # alpha_bar_t = 0 would divide by zero: the edge case uses 1 (x0 = xt) and a small value.
    return _forward_cases(g, (1.0, 0.01))


_X0_FROM_EPS = Checker(
    name="x0_from_eps",
    label="ex-forward-x0-from-eps",
    reference=_x0_from_eps,
    cases=_x0_from_eps_cases,
    mistakes=[
        Mistake(
            "You forgot to divide by sqrt(alpha_bar_t): after removing the noise, "
            "xt - sqrt(1 - alpha_bar_t) * eps equals sqrt(alpha_bar_t) * x0, not x0.",
            lambda xt, a, eps: xt - _sqrt(1 - a) * eps,
            "no-division",
        ),
        Mistake(
            "Wrong sign: you added the noise term. Solve x_t = sqrt(alpha_bar_t) x0 + "
            "sqrt(1 - alpha_bar_t) eps for x0: subtract sqrt(1 - alpha_bar_t) * eps, then divide.",
            lambda xt, a, eps: (xt + _sqrt(1 - a) * eps) / _sqrt(a),
            "plus-noise",
        ),
        Mistake(
            "You subtracted (1 - alpha_bar_t) * eps, the variance times eps; the noise in x_t is "
            "sqrt(1 - alpha_bar_t) * eps (standard deviation, not variance).",
            lambda xt, a, eps: (xt - (1 - a) * eps) / _sqrt(a),
            "variance-on-eps",
        ),
        Mistake(
            "You divided by alpha_bar_t; x0 is scaled by sqrt(alpha_bar_t) in x_t, so divide by "
            "sqrt(alpha_bar_t).",
            lambda xt, a, eps: (xt - _sqrt(1 - a) * eps) / a,
            "divide-by-alpha-bar",
        ),
        Mistake(
            "You used variances instead of standard deviations in both places: subtract "
            "sqrt(1 - alpha_bar_t) * eps and divide by sqrt(alpha_bar_t).",
            lambda xt, a, eps: (xt - (1 - a) * eps) / a,
            "no-sqrt",
        ),
        Mistake(
            "You multiplied by sqrt(alpha_bar_t) where you should divide by it: "
            "x0 = (xt - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            lambda xt, a, eps: _sqrt(a) * (xt - _sqrt(1 - a) * eps),
            "multiply",
        ),
        Mistake(
            "Only xt was divided by sqrt(alpha_bar_t): operator precedence. Put the difference in "
            "parentheses: (xt - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            lambda xt, a, eps: xt / _sqrt(a) - _sqrt(1 - a) * eps,
            "precedence-xt",
        ),
        Mistake(
            "Only the noise term was divided by sqrt(alpha_bar_t): operator precedence. Put the "
            "difference in parentheses: (xt - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            lambda xt, a, eps: xt - _sqrt(1 - a) * eps / _sqrt(a),
            "precedence-eps",
        ),
        Mistake(
            "You swapped the two coefficients: the noise is scaled by sqrt(1 - alpha_bar_t) and "
            "x0 by sqrt(alpha_bar_t), so x0 = (xt - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            lambda xt, a, eps: (xt - _sqrt(a) * eps) / _sqrt(1 - a),
            "swapped",
        ),
    ],
    alternatives=[
        lambda xt, a, eps: (xt - (1 - a).sqrt() * eps) / a.sqrt(),
        lambda xt, a, eps: xt * torch.rsqrt(a) - torch.sqrt(1 / a - 1) * eps,
        lambda xt, a, eps: (xt - (1 - a) ** 0.5 * eps) * a ** -0.5,
    ],
)


def check_x0_from_eps(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    r"""Check ``x0_from_eps(xt, alpha_bar_t, eps) -> x0`` (exercise ``ex-forward-x0-from-eps``).

    :math:`x_0 = (x_t - \sqrt{1-\bar\alpha_t}\, \varepsilon) / \sqrt{\bar\alpha_t}`, the inverse of
    ``q_sample`` for a known ``eps``. Prints a ✓ line, or raises
    :class:`~diffusion_lib.exercises.ExerciseFeedback`.
    """
    __tracebackhide__ = True  # noqa: F841
    return _X0_FROM_EPS(fn)
