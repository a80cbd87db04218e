r"""Checkers for the exercises of the 2015 Swiss-roll chapter (``book/swiss_roll_2015.ipynb``).

========================  ============================  ==================================================================
checker                   exercise label                the function the student writes
========================  ============================  ==================================================================
``check_gaussian_kl``     ``ex-sohl-gaussian-kl``       ``gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) -> (B,)``
``check_posterior``       ``ex-sohl-posterior``         ``posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev)``
                                                        ``-> (mean, variance)``
``check_reverse_moments``  ``ex-sohl-reverse-moments``  ``reverse_moments(xt, out, beta_t, alpha_bar_t, log_tilde_beta_t)``
                                                        ``-> (mean, log_variance)``
========================  ============================  ==================================================================

The equations:

.. math::

    \mathrm{KL}(\mathcal N(m_q, s_q^2) \,\|\, \mathcal N(m_p, s_p^2)) = \sum_i \tfrac12\Big[
        \log\frac{s_{p,i}^2}{s_{q,i}^2} + \frac{s_{q,i}^2 + (m_{q,i} - m_{p,i})^2}{s_{p,i}^2} - 1\Big],

    q(x_{t-1} \mid x_t, x_0) = \mathcal N\Big(
        \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} x_0
        + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t,\;
        \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t\Big),
    \qquad \alpha_t = 1 - \beta_t,

    \mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,f\Big),\qquad
    \log\sigma^2_\theta = \rho\log\beta_t + (1-\rho)\log\tilde\beta_t,\quad \rho = \operatorname{sigmoid}(r),

where the network output ``out`` of shape ``(B, 2d)`` is ``(f, r)``: its first ``d`` columns are
``f`` and its last ``d`` columns are ``r``. Points have shape ``(B, d)``; the schedule values
have shape ``(B, 1)``. ``gaussian_kl`` and ``reverse_moments`` are trained through, so their
checkers require answers that carry gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_gaussian_kl", "check_posterior", "check_reverse_moments"]


# --------------------------------------------------------------------------- gaussian_kl
def _kl(mean_q, logvar_q, mean_p, logvar_p):
    var_ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + var_ratio + (mean_q - mean_p) ** 2 / torch.exp(logvar_p) - 1.0).sum(-1)


def _kl_cases(g: torch.Generator) -> list[Case]:
    def draw(b, d=2, dtype=torch.float32):
        return (torch.randn(b, d, generator=g).to(dtype), (0.5 * torch.randn(b, d, generator=g)).to(dtype))

    mq, lq = draw(6)
    mp, lp = draw(6)
    m64, l64 = draw(4, dtype=torch.float64)
    m1, l1 = draw(1, d=3, dtype=torch.float64)
    m1p, l1p = draw(1, d=3, dtype=torch.float64)
    return [
        Case("6 random pairs of 2-D Gaussians with different means and variances (float32)", mq, lq, mp, lp),
        Case("identical distributions (the KL must be 0)", mq.clone(), lq.clone(), mq.clone(), lq.clone()),
        Case("same means, p's variances e times smaller, float64", m64, l64, m64.clone(), l64 - 1.0),
        Case("a batch of one point in 3-D, float64 (the answer has shape (1,))", m1, l1, m1p, l1p),
        Case("very different variances: log-variances -4 against +3 (float64)",
             m64, torch.full_like(l64, -4.0), -m64, torch.full_like(l64, 3.0)),
    ]


_KL = Checker(
    name="gaussian_kl",
    label="ex-sohl-gaussian-kl",
    reference=_kl,
    cases=_kl_cases,
    differentiable=True,
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
            "You used the log-variances as if they were variances (s^2 = logvar instead of "
            "s^2 = exp(logvar)): exponentiate them first.",
            lambda mq, lq, mp, lp: 0.5 * (torch.log(lp / lq) + (lq + (mq - mp) ** 2) / lp - 1.0).sum(-1),
            "logvar-as-var",
        ),
        Mistake(
            "You averaged the coordinates' KLs (a mean over the last dimension); the KL of a "
            "d-dimensional diagonal Gaussian is their sum.",
            lambda mq, lq, mp, lp: _kl(mq, lq, mp, lp) / mq.shape[-1],
            "mean-not-sum",
        ),
        Mistake(
            "You returned one KL per coordinate: sum over the last dimension so that each point gets "
            "one number (the coordinates are independent, so their KLs add).",
            lambda mq, lq, mp, lp: 0.5 * (lp - lq + torch.exp(lq - lp) + (mq - mp) ** 2 / torch.exp(lp) - 1.0),
            "not-summed",
        ),
        Mistake(
            "Your KL passes no gradient to p's mean and log-variance (you detached them, or computed "
            "them under torch.no_grad()). They are the network's outputs: training needs the gradient "
            "of the KL with respect to them, so leave them attached.",
            lambda mq, lq, mp, lp: _kl(mq, lq, mp.detach(), lp.detach()),
            "detached-p",
        ),
    ],
    alternatives=[
        # torch.distributions: the KL between two diagonal Gaussians, coordinate by coordinate
        lambda mq, lq, mp, lp: torch.distributions.kl_divergence(
            torch.distributions.Normal(mq, torch.exp(0.5 * lq)), torch.distributions.Normal(mp, torch.exp(0.5 * lp))
        ).sum(-1),
        # variances first, a loop over the coordinates
        lambda mq, lq, mp, lp: sum(
            0.5 * (torch.log(lp[:, i].exp() / lq[:, i].exp())
                   + (lq[:, i].exp() + (mq[:, i] - mp[:, i]) ** 2) / lp[:, i].exp() - 1)
            for i in range(mq.shape[1])
        ),
        # as an expectation: E_q[log q - log p] for Gaussians, written with the precisions
        lambda mq, lq, mp, lp: (0.5 * (lp - lq) + 0.5 * torch.exp(-lp) * (torch.exp(lq) + (mq - mp).pow(2)) - 0.5).sum(dim=1),
    ],
)


def check_gaussian_kl(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) -> (B,)`` (exercise ``ex-sohl-gaussian-kl``).

    The answer must be differentiable: the bound is trained through it. Prints a ✓ line, or
    raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _KL(fn)


# --------------------------------------------------------------------------- posterior
def _posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev):
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + (1 - beta_t).sqrt() * (1 - alpha_bar_prev) * xt) / (1 - alpha_bar_t)
    var = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, var


def _sched(g: torch.Generator, b: int, dtype=torch.float32):
    """beta_t, alpha_bar_t, alpha_bar_{t-1} for b random steps, consistent: abar_t = abar_{t-1} (1 - beta_t)."""
    beta = (0.02 + 0.2 * torch.rand(b, 1, generator=g, dtype=torch.float64))
    abar_prev = 0.2 + 0.7 * torch.rand(b, 1, generator=g, dtype=torch.float64)
    return beta.to(dtype), (abar_prev * (1 - beta)).to(dtype), abar_prev.to(dtype)


def _chapter_cols(ts, dtype=torch.float32):
    """beta_t, alpha_bar_t, alpha_bar_{t-1} of the chapter's schedule (T = 40, beta linear from 1e-3
    to 0.2) at the timesteps ``ts``, as (B, 1) columns, computed in float64 and cast to ``dtype``."""
    beta = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(1e-3, 0.2, 40, dtype=torch.float64)])
    abar = torch.cumprod(1 - beta, 0)
    t = torch.as_tensor(ts)
    return beta[t, None].to(dtype), abar[t, None].to(dtype), abar[t - 1, None].to(dtype)


def _posterior_cases(g: torch.Generator) -> list[Case]:
    b, a, ap = _sched(g, 5)
    b64, a64, ap64 = _sched(g, 3, torch.float64)
    b1, a1, ap1 = _chapter_cols([2])
    bT, aT, apT = _chapter_cols([1, 20, 40], torch.float64)
    return [
        Case("5 random points at 5 different steps (float32)", torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g), b, a, ap),
        Case("float64 inputs", torch.randn(3, 2, generator=g, dtype=torch.float64),
             torch.randn(3, 2, generator=g, dtype=torch.float64), b64, a64, ap64),
        Case("a batch of one point at t = 2 of the chapter's schedule (abar_{t-1} = 0.999)",
             torch.randn(1, 2, generator=g), torch.randn(1, 2, generator=g), b1, a1, ap1),
        Case("t = 1, 20 and T = 40 of the chapter's schedule, float64 (at t = 1, abar_0 = 1: the "
             "posterior is the point x_0, variance 0)",
             torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, 2, generator=g, dtype=torch.float64),
             bT, aT, apT),
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
        Mistake(
            "Your variance is upside down: tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, "
            "with 1 - alpha_bar_t (the larger noise) in the denominator.",
            lambda x0, xt, b, a, ap: (_posterior(x0, xt, b, a, ap)[0], (1 - a) / (1 - ap) * b),
            "variance-inverted",
        ),
    ],
    alternatives=[
        # alpha_t recovered as alpha_bar_t / alpha_bar_{t-1}, and named coefficients
        lambda x0, xt, b, a, ap: (
            (ap.sqrt() * b / (1 - a)) * x0 + ((a / ap).sqrt() * (1 - ap) / (1 - a)) * xt,
            b * (1 - ap) / (1 - a),
        ),
        # the mean as "signal part + rescaled noise part" (the form DDIM uses with variance tilde beta_t)
        lambda x0, xt, b, a, ap: (
            ap.sqrt() * x0
            + ((1 - ap - b * (1 - ap) / (1 - a)).clamp(min=0) / (1 - a)).sqrt() * (xt - a.sqrt() * x0),
            b * (1 - ap) / (1 - a),
        ),
    ],
)


def check_posterior(fn: Callable[..., tuple]) -> None:
    """Check ``posterior(x0, xt, beta_t, alpha_bar_t, alpha_bar_prev) -> (mean, variance)`` (exercise ``ex-sohl-posterior``).

    Prints a ✓ line, or raises :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the
    first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _POSTERIOR(fn)


# --------------------------------------------------------------------------- reverse moments
def _moments(xt, out, beta_t, alpha_bar_t, log_tilde_beta_t):
    d = xt.shape[1]
    f, r = out[:, :d], out[:, d:]
    mean = (xt - beta_t / (1 - alpha_bar_t).sqrt() * f) / (1 - beta_t).sqrt()
    rho = torch.sigmoid(r)
    return mean, rho * torch.log(beta_t) + (1 - rho) * log_tilde_beta_t


def _moment_inputs(g: torch.Generator, ts, d: int = 2, dtype=torch.float32, scale: float = 1.0):
    beta = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(1e-3, 0.2, 40, dtype=torch.float64)])
    abar = torch.cumprod(1 - beta, 0)
    tilde = (1 - abar[:-1]) / (1 - abar[1:]) * beta[1:]
    log_tilde = torch.log(torch.cat([tilde[:1], tilde]))     # index t; entry 0 unused
    log_tilde[1] = log_tilde[2]                                 # tilde beta_1 = 0: clipped to tilde beta_2
    t = torch.as_tensor(ts)
    b = len(t)
    xt = torch.randn(b, d, generator=g, dtype=torch.float64)
    out = scale * torch.randn(b, 2 * d, generator=g, dtype=torch.float64)
    cols = [beta[t, None], abar[t, None], log_tilde[t, None]]
    return [v.to(dtype) for v in (xt, out, *cols)]


def _moment_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("6 random points at t = 3, 8, 15, 22, 30, 37 of the chapter's schedule, random outputs (float32)",
             *_moment_inputs(g, [3, 8, 15, 22, 30, 37])),
        Case("float64 inputs at t = 2, 10, 40", *_moment_inputs(g, [2, 10, 40], dtype=torch.float64)),
        Case("a batch of one point at t = 1 (log tilde beta_1 is given clipped to log tilde beta_2)",
             *_moment_inputs(g, [1])),
        Case("points in 3-D (out has 6 columns: 3 for f, then 3 for r), float64",
             *_moment_inputs(g, [5, 25, 35, 12], d=3, dtype=torch.float64)),
        Case("large outputs (|r| up to ~10: the variance must stay between tilde beta_t and beta_t), float64",
             *_moment_inputs(g, [4, 18, 33], dtype=torch.float64, scale=5.0)),
    ]


def _split(out, d):
    return out[:, :d], out[:, d:]


_MOMENTS = Checker(
    name="reverse_moments",
    label="ex-sohl-reverse-moments",
    reference=_moments,
    cases=_moment_cases,
    differentiable=True,
    grad_args=(1,),
    mistakes=[
        Mistake(
            "You interpolated the variances, log(rho beta_t + (1 - rho) tilde beta_t); the model interpolates the "
            "log-variances: rho log beta_t + (1 - rho) log tilde beta_t (a geometric mean of the two ends).",
            lambda x, o, b, a, lt: (_moments(x, o, b, a, lt)[0],
                                    torch.log(torch.sigmoid(o[:, x.shape[1]:]) * b
                                              + (1 - torch.sigmoid(o[:, x.shape[1]:])) * lt.exp())),
            "linear-variance",
        ),
        Mistake(
            "You used r itself as the weight rho; rho = sigmoid(r), which keeps it in (0, 1) so the variance "
            "stays between tilde beta_t and beta_t.",
            lambda x, o, b, a, lt: (_moments(x, o, b, a, lt)[0],
                                    o[:, x.shape[1]:] * torch.log(b) + (1 - o[:, x.shape[1]:]) * lt),
            "no-sigmoid",
        ),
        Mistake(
            "The two ends are swapped: rho = sigmoid(r) weights log beta_t, and 1 - rho weights log tilde beta_t.",
            lambda x, o, b, a, lt: (_moments(x, o, b, a, lt)[0],
                                    torch.sigmoid(o[:, x.shape[1]:]) * lt + (1 - torch.sigmoid(o[:, x.shape[1]:])) * torch.log(b)),
            "swapped-ends",
        ),
        Mistake(
            "You took f from the last d columns and r from the first d; out = (f, r): f is out[:, :d] and "
            "r is out[:, d:].",
            lambda x, o, b, a, lt: _moments(x, torch.cat([o[:, x.shape[1]:], o[:, :x.shape[1]]], 1), b, a, lt),
            "halves-swapped",
        ),
        Mistake(
            "In the mean you divided by alpha_t; undoing the shrinking of one forward step divides by "
            "sqrt(alpha_t) = sqrt(1 - beta_t).",
            lambda x, o, b, a, lt: ((x - b / (1 - a).sqrt() * o[:, :x.shape[1]]) / (1 - b), _moments(x, o, b, a, lt)[1]),
            "alpha-not-sqrt",
        ),
        Mistake(
            "In the mean you scaled f by beta_t / (1 - alpha_bar_t); the noise in x_t has standard deviation "
            "sqrt(1 - alpha_bar_t), so the scale is beta_t / sqrt(1 - alpha_bar_t).",
            lambda x, o, b, a, lt: ((x - b / (1 - a) * o[:, :x.shape[1]]) / (1 - b).sqrt(), _moments(x, o, b, a, lt)[1]),
            "no-sqrt-noise",
        ),
        Mistake(
            "The sign of the correction is flipped: the mean subtracts the predicted noise, "
            "(x_t - beta_t / sqrt(1 - alpha_bar_t) f) / sqrt(alpha_t).",
            lambda x, o, b, a, lt: ((x + b / (1 - a).sqrt() * o[:, :x.shape[1]]) / (1 - b).sqrt(), _moments(x, o, b, a, lt)[1]),
            "sign",
        ),
    ],
    alternatives=[
        # torch.lerp between the two log-variances, torch.chunk for the split
        lambda x, o, b, a, lt: (
            x / (1 - b).sqrt() - b / ((1 - b) * (1 - a)).sqrt() * o.chunk(2, dim=1)[0],
            torch.lerp(lt, torch.log(b), torch.sigmoid(o.chunk(2, dim=1)[1])),
        ),
        # rho from logsigmoid, the log-variance as the log of a geometric mean
        lambda x, o, b, a, lt: (
            (x - b * (1 - a).rsqrt() * _split(o, x.shape[1])[0]) * (1 - b).rsqrt(),
            torch.log(b ** torch.exp(torch.nn.functional.logsigmoid(_split(o, x.shape[1])[1]))
                      * torch.exp(lt) ** torch.exp(torch.nn.functional.logsigmoid(-_split(o, x.shape[1])[1]))),
        ),
    ],
)


def check_reverse_moments(fn: Callable[..., tuple]) -> None:
    """Check ``reverse_moments(xt, out, beta_t, alpha_bar_t, log_tilde_beta_t) -> (mean, log_variance)``
    (exercise ``ex-sohl-reverse-moments``).

    The answer must be differentiable with respect to the network output ``out``: the model is
    trained through it. Prints a ✓ line, or raises
    :class:`~diffusion_lib.exercises.ExerciseFeedback` explaining the first failed check.
    """
    __tracebackhide__ = True  # noqa: F841
    _MOMENTS(fn)

