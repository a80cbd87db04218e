r"""Checkers for the exercises of the 2015 Swiss-roll chapter (``book/swiss_roll_2015.ipynb``).

=====================  ============================  ===========================================================
checker                exercise label                the function the student writes
=====================  ============================  ===========================================================
``check_gaussian_kl``  ``ex-sohl-gaussian-kl``       ``gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) -> (B,)``
``check_posterior``    ``ex-sohl-posterior``         ``posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev)``
                                                     ``-> (mean, variance)``
=====================  ============================  ===========================================================

The equations:

.. math::

    \mathrm{KL}(\mathcal N(m_q, s_q^2) \,\|\, \mathcal N(m_p, s_p^2)) = \sum_i \tfrac12\Big[
        \log\frac{s_{p,i}^2}{s_{q,i}^2} + \frac{s_{q,i}^2 + (m_{q,i} - m_{p,i})^2}{s_{p,i}^2} - 1\Big],

    q(x_{t-1} \mid x_t, x_0) = \mathcal N\Big(
        \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} x_0
        + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t,\;
        \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t\Big),
    \qquad \alpha_t = 1 - \beta_t.

Inputs are batches of 2-D points ``(B, 2)``; the schedule values have shape ``(B, 1)``.
"""

from __future__ import annotations

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_gaussian_kl", "check_posterior"]


# --------------------------------------------------------------------------- gaussian_kl
def _kl(mean_q, logvar_q, mean_p, logvar_p):
    var_ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + var_ratio + (mean_q - mean_p) ** 2 / torch.exp(logvar_p) - 1.0).sum(-1)


def _kl_cases(g: torch.Generator) -> list[Case]:
    def draw(b, dtype=torch.float32):
        return (torch.randn(b, 2, generator=g).to(dtype), (0.5 * torch.randn(b, 2, generator=g)).to(dtype))

    mq, lq = draw(6)
    mp, lp = draw(6)
    m64, l64 = draw(4, torch.float64)
    return [
        Case("6 random pairs of 2-D Gaussians with different means and variances", mq, lq, mp, lp),
        Case("identical distributions (the KL must be 0)", mq.clone(), lq.clone(), mq.clone(), lq.clone()),
        Case("same means, different variances, float64", m64, l64, m64.clone(), l64 - 1.0),
    ]


_KL = Checker(
    name="gaussian_kl",
    label="ex-sohl-gaussian-kl",
    reference=_kl,
    cases=_kl_cases,
    mistakes=[
        Mistake(
            "You computed KL(p || q): the arguments are swapped. The bound needs "
            "KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) - the expectation is under q, so divide by p's variance.",
            lambda mq, lq, mp, lp: _kl(mp, lp, mq, lq),
            "swapped",
        ),
        Mistake(
            "Your answer is twice the KL: you left out the factor 1/2 in front of the bracket.",
            lambda mq, lq, mp, lp: 2 * _kl(mq, lq, mp, lp),
            "no-half",
        ),
        Mistake(
            "You left out the '- 1' inside the bracket (one per dimension), so the KL of two "
            "identical Gaussians comes out as d/2 instead of 0.",
            lambda mq, lq, mp, lp: _kl(mq, lq, mp, lp) + 0.5 * mq.shape[-1],
            "no-minus-one",
        ),
        Mistake(
            "You divided the squared mean difference by q's variance; it is divided by p's variance "
            "(the distribution in the second slot).",
            lambda mq, lq, mp, lp: _kl(mq, lq, mp, lp)
            + 0.5 * ((mq - mp) ** 2 * (torch.exp(-lq) - torch.exp(-lp))).sum(-1),
            "wrong-variance",
        ),
        Mistake(
            "You returned one KL per coordinate: sum over the last dimension so that each point gets "
            "one number (the coordinates are independent, so their KLs add).",
            lambda mq, lq, mp, lp: 0.5 * (lp - lq + torch.exp(lq - lp) + (mq - mp) ** 2 / torch.exp(lp) - 1.0),
            "not-summed",
        ),
    ],
)


def check_gaussian_kl(fn) -> None:
    """Check ``gaussian_kl(mean_q, logvar_q, mean_p, logvar_p)`` (exercise ex-sohl-gaussian-kl)."""
    __tracebackhide__ = True
    _KL(fn)


# --------------------------------------------------------------------------- posterior
def _posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev):
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + (1 - beta_t).sqrt() * (1 - alpha_bar_prev) * xt) / (1 - alpha_bar_t)
    var = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, var


def _posterior_cases(g: torch.Generator) -> list[Case]:
    def sched(b, dtype=torch.float32):
        beta = (0.02 + 0.2 * torch.rand(b, 1, generator=g)).to(dtype)
        abar_prev = (0.2 + 0.7 * torch.rand(b, 1, generator=g)).to(dtype)
        return beta, abar_prev * (1 - beta), abar_prev

    b, a, ap = sched(5)
    b64, a64, ap64 = sched(3, torch.float64)
    return [
        Case("5 random points at 5 different steps", torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g), b, a, ap),
        Case("float64 inputs", torch.randn(3, 2, generator=g, dtype=torch.float64),
             torch.randn(3, 2, generator=g, dtype=torch.float64), b64, a64, ap64),
    ]


_POSTERIOR = Checker(
    name="posterior",
    label="ex-sohl-posterior",
    reference=_posterior,
    cases=_posterior_cases,
    mistakes=[
        Mistake(
            "The two coefficients are swapped: x_0 is multiplied by sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) "
            "and x_t by sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).",
            lambda x0, xt, b, a, ap: (_posterior(xt, x0, b, a, ap)[0], _posterior(x0, xt, b, a, ap)[1]),
            "swapped",
        ),
        Mistake(
            "Your variance is beta_t, the variance of the forward step q(x_t | x_{t-1}). Conditioning on x_0 "
            "shrinks it to tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t.",
            lambda x0, xt, b, a, ap: (_posterior(x0, xt, b, a, ap)[0], b.clone()),
            "forward-variance",
        ),
        Mistake(
            "In the coefficient of x_t you used alpha_t; it is sqrt(alpha_t) = sqrt(1 - beta_t), because "
            "q(x_t | x_{t-1}) scales x_{t-1} by sqrt(alpha_t).",
            lambda x0, xt, b, a, ap: (
                (ap.sqrt() * b * x0 + (1 - b) * (1 - ap) * xt) / (1 - a), _posterior(x0, xt, b, a, ap)[1]),
            "alpha-not-sqrt",
        ),
        Mistake(
            "In the coefficient of x_0 you used sqrt(alpha_bar_t); it is sqrt(alpha_bar_{t-1}), since x_{t-1} "
            "(not x_t) has the marginal N(sqrt(alpha_bar_{t-1}) x_0, (1 - alpha_bar_{t-1}) I).",
            lambda x0, xt, b, a, ap: (
                (a.sqrt() * b * x0 + (1 - b).sqrt() * (1 - ap) * xt) / (1 - a), _posterior(x0, xt, b, a, ap)[1]),
            "abar-t",
        ),
    ],
)


def check_posterior(fn) -> None:
    """Check ``posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev) -> (mean, variance)`` (ex-sohl-posterior)."""
    __tracebackhide__ = True
    _POSTERIOR(fn)
