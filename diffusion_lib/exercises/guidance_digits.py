r"""Checkers for the exercises of the chapter on classifier-free guidance (``book/guidance_digits.ipynb``).

=======================  =========================  ==============================================
checker                  exercise label             the function the student writes
=======================  =========================  ==============================================
``check_cfg_eps``        ``ex-guide-cfg-eps``       ``cfg_eps(eps_cond, eps_uncond, w)``
``check_drop_labels``    ``ex-guide-drop-labels``   ``drop_labels(labels, u, p_uncond, null_label)``
=======================  =========================  ==============================================

The equations (Ho & Salimans, 2022):

.. math::

    \tilde\epsilon_w = (1 + w)\,\epsilon(x_t, t, y) - w\,\epsilon(x_t, t, \varnothing);
    \qquad y' = \varnothing \text{ where } u < p_\text{uncond}, \text{ else } y.

``u`` holds one Uniform(0, 1) number per label (given, so the answer is deterministic).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_cfg_eps", "check_drop_labels"]

DT = torch.float64


def _cfg(ec, eu, w):
    return (1 + w) * ec - w * eu


def _cfg_cases(g: torch.Generator) -> list[Case]:
    ec = torch.randn(3, 1, 8, 8, generator=g, dtype=DT)
    eu = torch.randn(3, 1, 8, 8, generator=g, dtype=DT)
    return [
        Case("a batch of 3 predictions, w = 2", ec, eu, 2.0),
        Case("w = 0.5", ec, eu, 0.5),
        Case("w = 0 (no guidance: the conditional prediction)", ec, eu, 0.0),
    ]


_CFG = Checker(
    name="cfg_eps",
    label="ex-guide-cfg-eps",
    reference=_cfg,
    cases=_cfg_cases,
    mistakes=[
        Mistake("You computed eps_uncond + w (eps_cond - eps_uncond): that uses w as the *total* scale s = 1 + w, "
                "so w = 0 would give the unconditional model. In this book w = 0 means plain conditional "
                "sampling: (1 + w) eps_cond - w eps_uncond.",
                lambda ec, eu, w: eu + w * (ec - eu), "s-convention"),
        Mistake("The roles are swapped: the conditional prediction gets weight (1 + w) and the unconditional "
                "one weight -w, which pushes *away* from the unconditional model.",
                lambda ec, eu, w: (1 + w) * eu - w * ec, "swapped"),
        Mistake("The unconditional prediction is subtracted, not added: (1 + w) eps_cond - w eps_uncond.",
                lambda ec, eu, w: (1 + w) * ec + w * eu, "sign"),
    ],
)


def check_cfg_eps(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``cfg_eps(eps_cond, eps_uncond, w)`` (exercise ``ex-guide-cfg-eps``)."""
    __tracebackhide__ = True  # noqa: F841
    _CFG(fn)


def _drop(labels, u, p, null):
    return torch.where(u < p, torch.full_like(labels, null), labels)


def _drop_cases(g: torch.Generator) -> list[Case]:
    labels = torch.randint(0, 10, (20,), generator=g)
    u = torch.rand(20, generator=g, dtype=DT)
    return [
        Case("20 labels, p_uncond = 0.2, null label 10", labels, u, 0.2, 10),
        Case("p_uncond = 0.5, null label 10", labels, u, 0.5, 10),
        Case("p_uncond = 0 drops nothing", labels, u, 0.0, 10),
    ]


_DROP = Checker(
    name="drop_labels",
    label="ex-guide-drop-labels",
    reference=_drop,
    cases=_drop_cases,
    mistakes=[
        Mistake("You dropped the labels where u > p_uncond, i.e. a fraction 1 - p_uncond of them. Drop where "
                "u < p_uncond.",
                lambda y, u, p, n: torch.where(u > p, torch.full_like(y, n), y), "inverted"),
        Mistake("Dropped labels must become the null label (here `null_label`, one past the last class), not 0: "
                "0 is the real class 'digit zero'.",
                lambda y, u, p, n: torch.where(u < p, torch.zeros_like(y), y), "zero"),
        Mistake("You dropped every label: keep the label where u >= p_uncond.",
                lambda y, u, p, n: torch.full_like(y, n), "all"),
    ],
)


def check_drop_labels(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``drop_labels(labels, u, p_uncond, null_label)`` (exercise ``ex-guide-drop-labels``)."""
    __tracebackhide__ = True  # noqa: F841
    _DROP(fn)
