r"""Checkers for the exercises of the chapter on sampling digits (``book/sampling_digits.ipynb``).

==========================  =========================  ==================================================
checker                     exercise label             the function the student writes
==========================  =========================  ==================================================
``check_clip_prediction``   ``ex-sample-clip-x0``      ``clip_prediction(xt, eps, alpha_bar_t)``
``check_slerp``             ``ex-sample-slerp``        ``slerp(z0, z1, lam)``
==========================  =========================  ==================================================

The equations. Clipping the prediction of :math:`\mathbf{x}_0` and making the noise prediction
consistent with it (what a sampler with ``clip_x0=True`` does before every step):

.. math::

    \hat{\mathbf{x}}_0 = \operatorname{clip}_{[-1, 1]}\Big(\frac{\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,
    \boldsymbol{\epsilon}}{\sqrt{\bar\alpha_t}}\Big), \qquad
    \hat{\boldsymbol{\epsilon}} = \frac{\mathbf{x}_t - \sqrt{\bar\alpha_t}\,\hat{\mathbf{x}}_0}{\sqrt{1-\bar\alpha_t}},

so that :math:`\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\hat{\mathbf{x}}_0 + \sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol{\epsilon}}`
still holds. Spherical interpolation between two noise vectors:

.. math::

    \mathrm{slerp}(\mathbf{z}_0, \mathbf{z}_1; \lambda) = \frac{\sin((1-\lambda)\theta)}{\sin\theta} \mathbf{z}_0
    + \frac{\sin(\lambda\theta)}{\sin\theta} \mathbf{z}_1, \quad
    \cos\theta = \frac{\langle \mathbf{z}_0, \mathbf{z}_1\rangle}{\lVert \mathbf{z}_0\rVert\,\lVert \mathbf{z}_1\rVert}.

``xt`` and ``eps`` are (B, 1, 8, 8) tensors and ``alpha_bar_t`` a (B, 1, 1, 1) tensor (one
:math:`\bar\alpha_t` per image); ``clip_prediction`` returns the pair ``(x0_hat, eps_hat)``.
``z0``, ``z1`` are 1-D tensors (one flattened noise image each) and ``lam`` a float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake
from diffusion_lib.core.schedules import NoiseSchedule

__all__ = ["check_clip_prediction", "check_slerp"]

DT = torch.float64


# --------------------------------------------------------------------------- clipping x0_hat
def _clip(xt, eps, ab):
    x0 = ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
    return x0, (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


def _clip_keep_eps(xt, eps, ab):
    return ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0), eps


def _clip_none(xt, eps, ab):
    x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
    return x0, eps


def _clip_01(xt, eps, ab):
    x0 = ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(0.0, 1.0)
    return x0, (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


def _clip_xt(xt, eps, ab):
    x0 = (xt.clamp(-1.0, 1.0) - (1 - ab).sqrt() * eps) / ab.sqrt()
    return x0, (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


def _clip_eps_no_sqrt(xt, eps, ab):
    x0 = ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
    return x0, (xt - ab.sqrt() * x0) / (1 - ab)


def _clip_x0_no_sqrt(xt, eps, ab):
    x0 = ((xt - (1 - ab).sqrt() * eps) / ab).clamp(-1.0, 1.0)
    return x0, (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


def _clip_both(xt, eps, ab):
    x0, e = _clip(xt, eps, ab)
    return x0, e.clamp(-1.0, 1.0)


def _clip_alt_where(xt, eps, ab):
    raw = (xt - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)
    x0 = torch.where(raw > 1, torch.ones_like(raw), torch.where(raw < -1, -torch.ones_like(raw), raw))
    return x0, (xt - torch.sqrt(ab) * x0) / torch.sqrt(1 - ab)


def _clip_alt_correction(xt, eps, ab):
    raw = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
    x0 = torch.clip(raw, min=-1, max=1)
    # move eps by exactly what the clip removed from x0, scaled to keep x_t fixed
    return x0, eps + (ab / (1 - ab)).sqrt() * (raw - x0)


def _clip_cases(g: torch.Generator) -> list[Case]:
    sched = NoiseSchedule.from_name("linear", 1000, dtype=DT)
    ab = sched.alpha_bar

    def batch(ts, dtype=DT):
        t = torch.tensor(ts)
        a = ab[t].reshape(-1, 1, 1, 1).to(dtype)
        x0 = (2 * torch.rand(len(ts), 1, 8, 8, generator=g, dtype=DT) - 1).to(dtype)
        eps = torch.randn(len(ts), 1, 8, 8, generator=g, dtype=DT).to(dtype)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        eps_hat = eps + 0.3 * torch.randn(len(ts), 1, 8, 8, generator=g, dtype=DT).to(dtype)  # an imperfect network
        return xt, eps_hat, a

    return [
        Case("4 noisy digits at t = 900, 600, 300, 100 of the linear schedule (T = 1000), float64", *batch([900, 600, 300, 100])),
        Case("the same at t = 800, 500, 200 in float32", *batch([800, 500, 200], torch.float32)),
        Case("a batch of one image at t = T = 1000, where alpha_bar_T is about 4e-5 and the raw prediction overshoots most",
             *batch([1000])),
        Case("t = 1 and t = 2, where alpha_bar_t is close to 1 and almost nothing is clipped", *batch([1, 2])),
    ]


_CLIP = Checker(
    name="clip_prediction",
    label="ex-sample-clip-x0",
    reference=_clip,
    cases=_clip_cases,
    arg_names=("xt", "eps", "alpha_bar_t"),
    mistakes=[
        Mistake("You clipped x0_hat but returned the network's eps unchanged. Then x_t is no longer "
                "sqrt(abar_t) x0_hat + sqrt(1 - abar_t) eps_hat, and a DDIM step would mix a clipped x0_hat with "
                "noise that belongs to the unclipped one. Recompute eps_hat = (x_t - sqrt(abar_t) x0_hat) / "
                "sqrt(1 - abar_t) from the clipped x0_hat.", _clip_keep_eps, "kept-eps"),
        Mistake("Nothing was clipped: x0_hat must be clamped to the data range [-1, 1] "
                "(x0_hat.clamp(-1, 1)) before eps_hat is recomputed from it.", _clip_none, "no-clip"),
        Mistake("You clipped to [0, 1]; the digits are scaled to [-1, 1] (pixel level v becomes v/8 - 1), so "
                "clamp to (-1, 1).", _clip_01, "zero-one"),
        Mistake("You clipped x_t instead of the prediction of x_0. x_t is noisy data and may lie anywhere; only "
                "the prediction x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) must lie in [-1, 1].",
                _clip_xt, "clipped-xt"),
        Mistake("eps_hat = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t): you divided by 1 - abar_t instead of "
                "its square root.", _clip_eps_no_sqrt, "eps-no-sqrt"),
        Mistake("x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): you divided by abar_t instead of its "
                "square root (at t = 900, where sqrt(abar_t) is about 0.017, that makes the raw prediction 60 times too "
                "large, so nearly every pixel is clipped).", _clip_x0_no_sqrt, "x0-no-sqrt"),
        Mistake("You also clamped eps_hat to [-1, 1]. Noise is not bounded (a standard normal value lies outside "
                "[-1, 1] a third of the time); clip only x0_hat and recompute eps_hat from it.", _clip_both, "clipped-eps"),
    ],
    alternatives=[_clip_alt_where, _clip_alt_correction],
)


def check_clip_prediction(fn: Callable[..., tuple]) -> None:
    """Check ``clip_prediction(xt, eps, alpha_bar_t) -> (x0_hat, eps_hat)`` (exercise ``ex-sample-clip-x0``)."""
    __tracebackhide__ = True  # noqa: F841
    return _CLIP(fn)


# ------------------------------------------------------------------------------------- slerp
def _angle(z0, z1):
    return torch.arccos((torch.dot(z0, z1) / (z0.norm() * z1.norm())).clamp(-1.0, 1.0))


def _slerp(z0, z1, lam):
    theta = _angle(z0, z1)
    return (torch.sin((1 - lam) * theta) * z0 + torch.sin(lam * theta) * z1) / torch.sin(theta)


def _lerp(z0, z1, lam):
    return (1 - lam) * z0 + lam * z1


def _slerp_no_norm(z0, z1, lam):
    theta = torch.arccos((torch.dot(z0, z1) / z0.numel()).clamp(-1.0, 1.0))
    return (torch.sin((1 - lam) * theta) * z0 + torch.sin(lam * theta) * z1) / torch.sin(theta)


def _slerp_no_arccos(z0, z1, lam):
    c = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    return (torch.sin((1 - lam) * c) * z0 + torch.sin(lam * c) * z1) / torch.sin(c)


def _slerp_cos_weights(z0, z1, lam):
    theta = _angle(z0, z1)
    return (torch.cos(lam * theta) * z0 + torch.sin(lam * theta) * z1)


def _slerp_alt_orthogonal(z0, z1, lam):
    # rotate z0 towards the part of z1 orthogonal to it: sin((1-l)th) = sin th cos(l th) - cos th sin(l th)
    theta = _angle(z0, z1)
    return torch.cos(lam * theta) * z0 + torch.sin(lam * theta) * (z1 - torch.cos(theta) * z0) / torch.sin(theta)


def _slerp_alt_atan2(z0, z1, lam):
    # the angle from atan2 (accurate for nearly parallel vectors too), weights from a stacked tensor
    u, v = z0 / z0.norm(), z1 / z1.norm()
    theta = 2 * torch.atan2((u - v).norm(), (u + v).norm())
    w = torch.sin(torch.stack([(1 - lam) * theta, lam * theta])) / torch.sin(theta)
    return w[0] * z0 + w[1] * z1


def _slerp_cases(g: torch.Generator) -> list[Case]:
    z0 = torch.randn(64, generator=g, dtype=DT)
    z1 = torch.randn(64, generator=g, dtype=DT)
    return [
        Case("two noise images (64 pixels, float64), lam = 0.3", z0, z1, 0.3),
        Case("the same noise images in float32, lam = 0.5", z0.float(), z1.float(), 0.5),
        Case("two vectors of different lengths (z1 three times longer), lam = 0.8", z0, 3 * z1, 0.8),
        Case("the unit vectors (1, 0) and (1, 1)/sqrt(2), 45 degrees apart in 2-D, lam = 0.5",
             torch.tensor([1.0, 0.0], dtype=DT), torch.tensor([1.0, 1.0], dtype=DT) / 2**0.5, 0.5),
        Case("lam = 0 returns z0", z0, z1, 0.0),
        Case("lam = 1 returns z1", z0, z1, 1.0),
    ]


_SLERP = Checker(
    name="slerp",
    label="ex-sample-slerp",
    reference=_slerp,
    cases=_slerp_cases,
    arg_names=("z0", "z1", "lam"),
    mistakes=[
        Mistake("That is linear interpolation (1 - lam) z0 + lam z1. Its middle has a norm about 1/sqrt(2) of a "
                "typical noise sample, so it is not a likely x_T; interpolate along the great circle (slerp).",
                _lerp, "lerp"),
        Mistake("The weights are swapped: z0 gets sin((1 - lam) theta) / sin(theta), so that lam = 0 gives z0.",
                lambda z0, z1, lam: _slerp(z1, z0, lam), "swapped"),
        Mistake("You forgot to divide by sin(theta): the two weights are sin((1 - lam) theta) / sin(theta) and "
                "sin(lam theta) / sin(theta).",
                lambda z0, z1, lam: _slerp(z0, z1, lam) * torch.sin(_angle(z0, z1)), "no-sin-theta"),
        Mistake("theta is the angle between z0 and z1: divide the dot product by both norms before arccos "
                "(cos theta = <z0, z1> / (|z0| |z1|)). Dividing by the number of entries only works for vectors "
                "of length sqrt(D).", _slerp_no_norm, "no-norm"),
        Mistake("You used cos(theta) itself as the angle. theta = arccos(<z0, z1> / (|z0| |z1|)), in radians.",
                _slerp_no_arccos, "no-arccos"),
        Mistake("You wrote cos(lam theta) z0 + sin(lam theta) z1, the rotation formula for two *orthogonal* unit "
                "vectors; z0 and z1 are neither. Use sin((1 - lam) theta) / sin(theta) z0 + sin(lam theta) / "
                "sin(theta) z1.", _slerp_cos_weights, "orthogonal-formula"),
    ],
    alternatives=[_slerp_alt_orthogonal, _slerp_alt_atan2],
)


def check_slerp(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``slerp(z0, z1, lam)`` (exercise ``ex-sample-slerp``)."""
    __tracebackhide__ = True  # noqa: F841
    return _SLERP(fn)
