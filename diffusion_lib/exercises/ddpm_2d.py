r"""Checkers for the exercises of the 2-D DDPM chapter (``book/ddpm_2d.ipynb``).

============================  ===========================  ================================================================
checker                       exercise label               the function the student writes
============================  ===========================  ================================================================
``check_time_embedding``      ``ex-ddpm-time-embedding``   ``time_embedding(t, dim, max_period) -> (B, dim)``
``check_ddim_step``           ``ex-ddpm-ddim-step``        ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_s, eta, z) -> x_s``
``check_ddim_jump_variance``  ``ex-ddpm-ddim-variance``    ``ddim_jump_variance(alpha_bar_t, alpha_bar_s, data_var) -> (B,)``
============================  ===========================  ================================================================

The equations:

.. math::

    \omega_k = \text{max\_period}^{-k/(\text{dim}/2)},\quad
    e(t) = [\sin(t\omega_0), \dots, \sin(t\omega_{\text{dim}/2-1}), \cos(t\omega_0), \dots, \cos(t\omega_{\text{dim}/2-1})],

    \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon}{\sqrt{\bar\alpha_t}},\qquad
    \sigma_{t\to s}(\eta) = \eta\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_s}},\qquad
    x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma_{t\to s}^2}\,\varepsilon + \sigma_{t\to s}\,z,

and, for data x_0 ~ N(m, v I) and the exact noise prediction E[eps | x_t], the variance (per
coordinate) of x_s after one deterministic (eta = 0) jump from x_t ~ q(x_t):

.. math::

    \operatorname{Var}[x_s] = \frac{\big(\sqrt{\bar\alpha_s\bar\alpha_t}\,v + \sqrt{(1-\bar\alpha_s)(1-\bar\alpha_t)}\big)^2}
                                   {\bar\alpha_t v + 1 - \bar\alpha_t}
    \;\le\; \bar\alpha_s v + 1 - \bar\alpha_s .
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_time_embedding", "check_ddim_step", "check_ddim_jump_variance"]


# --------------------------------------------------------------------------- time embedding
def _emb(t, dim, max_period):
    # computed in float64 and rounded once, so it is the most accurate float32 answer
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    angle = t.to(torch.float64)[:, None] * omega
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(torch.float32)


def _emb_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("8 random timesteps in 1..1000, dim = 16, max_period = 10000",
             torch.randint(1, 1001, (8,), generator=g), 16, 10_000.0),
        Case("timesteps 1..5, dim = 6, max_period = 400", torch.arange(1, 6), 6, 400.0),
        Case("a batch of one timestep, t = T = 100, with the chapter's dim = 32 and max_period = 4T = 400",
             torch.tensor([100]), 32, 400.0),
        Case("the edges t = 1 and t = T = 40, dim = 2 (one sine and one cosine), max_period = 160",
             torch.tensor([1, 40]), 2, 160.0),
    ]


_EMB = Checker(
    name="time_embedding",
    label="ex-ddpm-time-embedding",
    reference=_emb,
    cases=_emb_cases,
    # float32 cannot resolve an angle of ~1000 radians better than ~1e-4: allow that much
    atol=3e-4,
    mistakes=[
        Mistake(
            "The cosines come first in your vector: put the dim/2 sines first, then the dim/2 cosines.",
            lambda t, d, p: torch.cat([_emb(t, d, p)[:, d // 2:], _emb(t, d, p)[:, : d // 2]], dim=1),
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
        Mistake(
            "Your frequencies start at k = 1; they start at k = 0, so the first sine is sin(t) "
            "(omega_0 = 1) and the slowest is max_period^(-(dim/2 - 1)/(dim/2)). Use torch.arange(dim // 2).",
            lambda t, d, p: torch.cat([
                torch.sin(t.double()[:, None] * p ** (-torch.arange(1, d // 2 + 1, dtype=torch.float64) / (d // 2))),
                torch.cos(t.double()[:, None] * p ** (-torch.arange(1, d // 2 + 1, dtype=torch.float64) / (d // 2))),
            ], 1).float(),
            "k-from-1",
        ),
        Mistake(
            "Your exponent has the wrong sign: omega_k = max_period^(-k/(dim/2)) gets *slower* with k "
            "(down to periods of about max_period steps); yours grows.",
            lambda t, d, p: torch.cat([
                torch.sin(t.double()[:, None] * p ** (torch.arange(d // 2, dtype=torch.float64) / (d // 2))),
                torch.cos(t.double()[:, None] * p ** (torch.arange(d // 2, dtype=torch.float64) / (d // 2))),
            ], 1).float(),
            "positive-exponent",
        ),
    ],
    alternatives=[
        # an outer product of t and the frequencies, and torch.hstack
        lambda t, d, p: torch.hstack([
            torch.outer(t.float(), p ** (-torch.arange(d // 2, dtype=torch.float32) / (d // 2))).sin(),
            torch.outer(t.float(), p ** (-torch.arange(d // 2, dtype=torch.float32) / (d // 2))).cos(),
        ]),
        # a loop over the frequencies, one column at a time
        lambda t, d, p: torch.stack(
            [torch.sin(t.float() * p ** (-k / (d // 2))) for k in range(d // 2)]
            + [torch.cos(t.float() * p ** (-k / (d // 2))) for k in range(d // 2)], dim=1),
    ],
)


def check_time_embedding(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``time_embedding(t, dim, max_period) -> (B, dim)`` (exercise ``ex-ddpm-time-embedding``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _EMB(fn)


# --------------------------------------------------------------------------- DDIM step with eta
def _sigma(ab, ab_s, eta):
    return eta * ((1 - ab_s) / (1 - ab)).sqrt() * (1 - ab / ab_s).sqrt()


def _ddim(xt, eps, ab, ab_s, eta, z):
    sigma = _sigma(ab, ab_s, eta)
    x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
    return ab_s.sqrt() * x0 + (1 - ab_s - sigma**2).sqrt() * eps + sigma * z


def _linear_abar(T: int = 100) -> torch.Tensor:
    """alpha_bar_0..alpha_bar_T of the chapter's schedule (DDPM's linear betas scaled to T), float64."""
    beta = torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)])


def _ddim_cases(g: torch.Generator) -> list[Case]:
    def levels(b, dtype=torch.float32):
        ab = 0.05 + 0.5 * torch.rand(b, 1, generator=g, dtype=torch.float64)
        ab_s = ab + (0.95 - ab) * torch.rand(b, 1, generator=g, dtype=torch.float64)
        return ab.to(dtype), ab_s.to(dtype)

    def pts(b, dtype=torch.float32):
        return torch.randn(b, 2, generator=g, dtype=torch.float64).to(dtype)

    ab0, abs0 = levels(6)
    ab1, abs1 = levels(6)
    ab64, abs64 = levels(4, torch.float64)
    abar = _linear_abar(100)
    t = torch.tensor([2, 50, 100])
    ab1b, abs1b = levels(1)
    return [
        Case("6 random points, eta = 0 (deterministic DDIM), random abar_t < abar_s",
             pts(6), pts(6), ab0, abs0, 0.0, pts(6)),
        Case("6 random points, eta = 1", pts(6), pts(6), ab1, abs1, 1.0, pts(6)),
        Case("float64, eta = 0.5", pts(4, torch.float64), pts(4, torch.float64), ab64, abs64, 0.5, pts(4, torch.float64)),
        Case("one DDPM step, s = t - 1 with eta = 1, at t = 2, 50 and 100 of the chapter's schedule, float64 "
             "(sigma^2 must be the posterior variance tilde beta_t)",
             pts(3, torch.float64), pts(3, torch.float64), abar[t, None], abar[t - 1, None], 1.0, pts(3, torch.float64)),
        Case("the last step, abar_s = 1, eta = 1 (sigma is 0 and the result is the predicted x_0)",
             pts(3), pts(3), torch.full((3, 1), 0.7), torch.ones(3, 1), 1.0, pts(3)),
        Case("a batch of one point, eta = 0.3", pts(1), pts(1), ab1b, abs1b, 0.3, pts(1)),
    ]


_DDIM = Checker(
    name="ddim_step",
    label="ex-ddpm-ddim-step",
    reference=_ddim,
    cases=_ddim_cases,
    mistakes=[
        Mistake(
            "You returned the predicted x_0 itself; DDIM moves to the noise level abar_s: "
            "x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z.",
            lambda xt, e, a, a_s, eta, z: (xt - (1 - a).sqrt() * e) / a.sqrt(),
            "returned-x0",
        ),
        Mistake(
            "In the noise direction you used sqrt(1 - abar_t); the noise of x_s has the scale of the "
            "target level, sqrt(1 - abar_s - sigma^2).",
            lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a).sqrt() * e) / a.sqrt()
            + (1 - a - _sigma(a, a_s, eta) ** 2).clamp(min=0).sqrt() * e + _sigma(a, a_s, eta) * z,
            "wrong-level",
        ),
        Mistake(
            "You forgot the square roots in the x_0 prediction: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).",
            lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a) * e) / a
            + (1 - a_s - _sigma(a, a_s, eta) ** 2).sqrt() * e + _sigma(a, a_s, eta) * z,
            "no-sqrt",
        ),
        Mistake(
            "The coefficient of the predicted noise must leave room for the fresh noise: it is "
            "sqrt(1 - abar_s - sigma^2), not sqrt(1 - abar_s), so that the total noise variance stays 1 - abar_s.",
            lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a).sqrt() * e) / a.sqrt()
            + (1 - a_s).sqrt() * e + _sigma(a, a_s, eta) * z,
            "no-minus-sigma2",
        ),
        Mistake(
            "Your step ignores eta: it is the deterministic step (sigma = 0) for every eta. With eta > 0, "
            "sigma_{t->s}(eta) = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s) sets the fresh "
            "noise sigma * z and shrinks the predicted-noise coefficient to sqrt(1 - abar_s - sigma^2).",
            lambda xt, e, a, a_s, eta, z: _ddim(xt, e, a, a_s, 0.0, z),
            "eta-ignored",
        ),
        Mistake(
            "You left out the fresh noise sigma * z; with eta > 0 the step is stochastic: add sigma_{t->s}(eta) * z.",
            lambda xt, e, a, a_s, eta, z: _ddim(xt, e, a, a_s, eta, torch.zeros_like(z)),
            "no-noise",
        ),
        Mistake(
            "Your sigma is missing its square roots: sigma_{t->s}(eta) = eta sqrt((1 - abar_s)/(1 - abar_t)) "
            "sqrt(1 - abar_t/abar_s); you used the product without them (that is sigma^2 / eta^2 times eta).",
            lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a).sqrt() * e) / a.sqrt()
            + (1 - a_s - (eta * (1 - a_s) / (1 - a) * (1 - a / a_s)) ** 2).sqrt() * e
            + eta * (1 - a_s) / (1 - a) * (1 - a / a_s) * z,
            "sigma-no-sqrt",
        ),
        Mistake(
            "In sigma the first ratio is upside down: it is sqrt((1 - abar_s) / (1 - abar_t)), the smaller noise "
            "level over the larger one.",
            lambda xt, e, a, a_s, eta, z: a_s.sqrt() * (xt - (1 - a).sqrt() * e) / a.sqrt()
            + (1 - a_s - (eta * ((1 - a) / (1 - a_s)).sqrt() * (1 - a / a_s).sqrt()) ** 2).clamp(min=0).sqrt() * e
            + eta * ((1 - a) / (1 - a_s)).sqrt() * (1 - a / a_s).sqrt() * z,
            "sigma-ratio-inverted",
        ),
    ],
    alternatives=[
        # the coefficients of x_t and of eps written out (x0_hat eliminated)
        lambda xt, e, a, a_s, eta, z: (a_s / a).sqrt() * xt
        + ((1 - a_s - _sigma(a, a_s, eta) ** 2).sqrt() - (a_s * (1 - a) / a).sqrt()) * e
        + _sigma(a, a_s, eta) * z,
        # sigma^2 first, torch.rsqrt and torch.addcmul
        lambda xt, e, a, a_s, eta, z: torch.addcmul(
            torch.addcmul(a_s.sqrt() * torch.addcmul(xt, (1 - a).sqrt(), e, value=-1.0) * torch.rsqrt(a),
                          torch.sqrt(1 - a_s - eta**2 * (1 - a_s) / (1 - a) * (1 - a / a_s)), e),
            torch.sqrt(eta**2 * (1 - a_s) / (1 - a) * (1 - a / a_s)), z),
    ],
)


def check_ddim_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddim_step(xt, eps, alpha_bar_t, alpha_bar_s, eta, z) -> x_s`` (exercise ``ex-ddpm-ddim-step``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _DDIM(fn)


# --------------------------------------------------------------------------- variance after one DDIM jump
def _jump_var(ab, ab_s, v):
    return ((ab_s * ab).sqrt() * v + ((1 - ab_s) * (1 - ab)).sqrt()) ** 2 / (ab * v + 1 - ab)


def _jump_cases(g: torch.Generator) -> list[Case]:
    def draw(b, dtype=torch.float64):
        ab = 0.02 + 0.6 * torch.rand(b, generator=g, dtype=torch.float64)
        ab_s = ab + (0.98 - ab) * torch.rand(b, generator=g, dtype=torch.float64)
        v = 0.05 + 2 * torch.rand(b, generator=g, dtype=torch.float64)
        return ab.to(dtype), ab_s.to(dtype), v.to(dtype)

    ab, ab_s, v = draw(6)
    ab32, ab_s32, v32 = draw(5, torch.float32)
    ab1, ab_s1, v1 = draw(1)
    return [
        Case("6 random jumps abar_t < abar_s with random data variances, float64", ab, ab_s, v),
        Case("float32 inputs", ab32, ab_s32, v32),
        Case("a batch of one jump", ab1, ab_s1, v1),
        Case("no jump at all, abar_s = abar_t (the variance of q(x_t) must come back)", ab.clone(), ab.clone(), v.clone()),
        Case("data variance 1, so that every q(x_t) has variance 1", ab.clone(), ab_s.clone(), torch.ones_like(v)),
        Case("a jump to the data, abar_s = 1 (x_s is then the exact posterior mean E[x_0 | x_t])",
             ab.clone(), torch.ones_like(ab), v.clone()),
    ]


_JUMP = Checker(
    name="ddim_jump_variance",
    label="ex-ddpm-ddim-variance",
    reference=_jump_var,
    cases=_jump_cases,
    mistakes=[
        Mistake(
            "You returned abar_s v + 1 - abar_s, the variance of the marginal q(x_s). That is what a jump "
            "would give if DDIM kept the marginal, and the chapter shows it does not for a finite jump: "
            "write x_s as (a number) times (x_t - its mean) and take the variance of that.",
            lambda a, a_s, v: a_s * v + 1 - a_s,
            "marginal",
        ),
        Mistake(
            "You added the variances of the two parts, abar_s Var[x0_hat] + (1 - abar_s) Var[eps_hat], as if "
            "they were independent. Both are functions of the same x_t, so they are perfectly correlated: add "
            "their coefficients first, then square.",
            lambda a, a_s, v: (a_s * a * v**2 + (1 - a_s) * (1 - a)) / (a * v + 1 - a),
            "independent-parts",
        ),
        Mistake(
            "You forgot to square the coefficient: x_s - E[x_s] = k (x_t - E[x_t]) gives Var[x_s] = k^2 Var[x_t].",
            lambda a, a_s, v: ((a_s * a).sqrt() * v + ((1 - a_s) * (1 - a)).sqrt()),
            "not-squared",
        ),
        Mistake(
            "You returned k^2 without the variance of x_t: Var[x_s] = k^2 Var[x_t] with "
            "Var[x_t] = abar_t v + 1 - abar_t.",
            lambda a, a_s, v: _jump_var(a, a_s, v) / (a * v + 1 - a),
            "no-var-t",
        ),
        Mistake(
            "You returned a standard deviation (a square root of the variance); the exercise asks for the variance.",
            lambda a, a_s, v: _jump_var(a, a_s, v).sqrt(),
            "std",
        ),
        Mistake(
            "You used sqrt(data_var) where the data variance itself belongs: E[x_0 | x_t] - m = sqrt(abar_t) v "
            "(x_t - sqrt(abar_t) m) / (abar_t v + 1 - abar_t), with v = data_var, not its square root.",
            lambda a, a_s, v: ((a_s * a).sqrt() * v.sqrt() + ((1 - a_s) * (1 - a)).sqrt()) ** 2 / (a * v + 1 - a),
            "sqrt-v",
        ),
        Mistake(
            "You returned the variance of x_t, abar_t v + 1 - abar_t: the jump changes it.",
            lambda a, a_s, v: a * v + 1 - a,
            "var-t",
        ),
    ],
    alternatives=[
        # the marginal variance times cos^2 of the angle between (sqrt(abar) sqrt(v), sqrt(1 - abar)) at s and at t
        lambda a, a_s, v: (a_s * v + 1 - a_s)
        * ((a_s * a).sqrt() * v + ((1 - a_s) * (1 - a)).sqrt()) ** 2 / ((a_s * v + 1 - a_s) * (a * v + 1 - a)),
        # x0_hat and eps_hat as linear functions of x_t, then x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat
        lambda a, a_s, v: (a_s.sqrt() * (a.sqrt() * v / (a * v + 1 - a))
                           + (1 - a_s).sqrt() * ((1 - a).sqrt() / (a * v + 1 - a))) ** 2 * (a * v + 1 - a),
    ],
)


def check_ddim_jump_variance(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``ddim_jump_variance(alpha_bar_t, alpha_bar_s, data_var) -> (B,)`` (exercise ``ex-ddpm-ddim-variance``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _JUMP(fn)
