r"""Checkers for the exercises of the chapter on classifier-free guidance (``book/guidance_digits.ipynb``).

=======================  =========================  ==============================================
checker                  exercise label             the function the student writes
=======================  =========================  ==============================================
``check_cfg_eps``        ``ex-guide-cfg-eps``       ``cfg_eps(eps_cond, eps_uncond, w)``
``check_drop_labels``    ``ex-guide-drop-labels``   ``drop_labels(labels, u, p_uncond, null_label)``
=======================  =========================  ==============================================

The equations (Ho & Salimans, 2022):

.. math::

    \tilde{\boldsymbol{\epsilon}}_w = (1 + w)\,\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, y)
    - w\,\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, \varnothing);
    \qquad y' = \varnothing \text{ where } u < p_\text{uncond}, \text{ else } y.

``u`` holds one Uniform[0, 1) number per label (given, so the answer is deterministic); the null
label is an argument (10 for the book's ten digit classes, but any index a model reserves for it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_cfg_eps", "check_drop_labels"]

DT = torch.float64


# ------------------------------------------------------------------------ guided prediction
def _cfg(ec, eu, w):
    return (1 + w) * ec - w * eu


def _cfg_cases(g: torch.Generator) -> list[Case]:
    ec = torch.randn(3, 1, 8, 8, generator=g, dtype=DT)
    eu = torch.randn(3, 1, 8, 8, generator=g, dtype=DT)
    return [
        Case("a batch of 3 predictions, w = 2", ec, eu, 2.0),
        Case("w = 0.5", ec, eu, 0.5),
        Case("a batch of one prediction in float32, w = 3 (an int)", ec[:1].float(), eu[:1].float(), 3),
        Case("w = 0 (no guidance: the conditional prediction)", ec, eu, 0.0),
        Case("w = -1 (the unconditional prediction)", ec, eu, -1.0),
    ]


_CFG = Checker(
    name="cfg_eps",
    label="ex-guide-cfg-eps",
    reference=_cfg,
    cases=_cfg_cases,
    arg_names=("eps_cond", "eps_uncond", "w"),
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
        Mistake("You returned only the guidance direction w (eps_cond - eps_uncond); it is added to the "
                "conditional prediction: eps_cond + w (eps_cond - eps_uncond).",
                lambda ec, eu, w: w * (ec - eu), "direction-only"),
        Mistake("You scaled the whole difference by (1 + w); the weights are (1 + w) on eps_cond and -w (not "
                "-(1 + w)) on eps_uncond, so that they sum to 1.",
                lambda ec, eu, w: (1 + w) * (ec - eu), "weights-sum-zero"),
    ],
    alternatives=[
        lambda ec, eu, w: ec + w * (ec - eu),
        lambda ec, eu, w: torch.lerp(eu, ec, torch.full_like(ec, float(w + 1))),
        lambda ec, eu, w: torch.add(ec, ec - eu, alpha=w),
    ],
)


def check_cfg_eps(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``cfg_eps(eps_cond, eps_uncond, w)`` (exercise ``ex-guide-cfg-eps``)."""
    __tracebackhide__ = True  # noqa: F841
    return _CFG(fn)


# ------------------------------------------------------------------------------ label dropout
def _drop(labels, u, p, null):
    return torch.where(u < p, torch.full_like(labels, null), labels)


def _drop_cases(g: torch.Generator) -> list[Case]:
    labels = torch.randint(0, 10, (20,), generator=g)
    u = torch.rand(20, generator=g, dtype=DT)
    u_tie = u.clone()
    u_tie[:3] = torch.tensor([0.0, 0.25, 0.25], dtype=DT)  # values torch.rand can return, exactly at p
    many = torch.randint(0, 100, (12,), generator=g)
    return [
        Case("20 labels, p_uncond = 0.2, null label 10", labels, u, 0.2, 10),
        Case("a model with 100 classes: labels 0..99, null label 100, p_uncond = 0.3", many, u[:12], 0.3, 100),
        Case("null label 0 reserved by a model whose classes are 1..9, p_uncond = 0.5",
             labels.clamp(min=1), u, 0.5, 0),
        Case("a batch of one label with u below p_uncond = 0.9 (it must be dropped)", labels[:1], u[:1] * 0 + 0.1, 0.9, 10),
        Case("u values exactly equal to p_uncond = 0.25, and u = 0 with p_uncond = 0: a label is dropped only "
             "where u < p_uncond", labels, u_tie, 0.25, 10),
        Case("p_uncond = 0 drops nothing, even where u = 0", labels, u_tie, 0.0, 10),
        Case("p_uncond = 1 drops every label", labels, u, 1.0, 10),
    ]


_DROP = Checker(
    name="drop_labels",
    label="ex-guide-drop-labels",
    reference=_drop,
    cases=_drop_cases,
    arg_names=("labels", "u", "p_uncond", "null_label"),
    mistakes=[
        Mistake("You dropped the labels where u > p_uncond, i.e. a fraction 1 - p_uncond of them. Drop where "
                "u < p_uncond.",
                lambda y, u, p, n: torch.where(u > p, torch.full_like(y, n), y), "inverted"),
        Mistake("You wrote the null label as the number 10. Use the argument `null_label`: a model with 100 "
                "classes reserves 100, another model may reserve 0.",
                lambda y, u, p, n: torch.where(u < p, torch.full_like(y, 10), y), "hard-coded-10"),
        Mistake("Dropped labels must become the null label (`null_label`), not 0: here 0 is the real class "
                "'digit zero'.",
                lambda y, u, p, n: torch.where(u < p, torch.zeros_like(y), y), "zero"),
        Mistake("You dropped every label: keep the label where u >= p_uncond.",
                lambda y, u, p, n: torch.full_like(y, n), "all"),
        Mistake("You dropped where u <= p_uncond. torch.rand can return exactly 0 (and any value it returns "
                "equals p_uncond with some probability), so with <= even p_uncond = 0 drops a label now and "
                "then. Use the strict u < p_uncond: then P(drop) = p_uncond exactly.",
                lambda y, u, p, n: torch.where(u <= p, torch.full_like(y, n), y), "less-equal"),
    ],
    alternatives=[
        lambda y, u, p, n: y.masked_fill(u < p, n),
        lambda y, u, p, n: y * (u >= p).long() + n * (u < p).long(),
    ],
)


def check_drop_labels(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``drop_labels(labels, u, p_uncond, null_label)`` (exercise ``ex-guide-drop-labels``)."""
    __tracebackhide__ = True  # noqa: F841
    return _DROP(fn)
