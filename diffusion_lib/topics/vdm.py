r"""The ELBO of a variational diffusion model, estimated in two ways, term by term (``book/vdm.ipynb``).

A Gaussian diffusion with schedule beta_1..beta_T (``NoiseSchedule``) and a reverse model
p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I), p(x_T) = N(0, I). Its ELBO for one x_0 can be
arranged in two ways (Luo, 2022)::

    (a) consistency form, expectations over the forward *trajectory*:

        ELBO = E[log p(x_0 | x_1)]                                            reconstruction
             - E_{q(x_{T-1}|x_0)}[KL(q(x_T | x_{T-1}) || p(x_T))]             prior matching
             + sum_{t=1}^{T-1} E[log p(x_t | x_{t+1}) - log q(x_t | x_{t-1})]   consistency terms

    (b) denoising form, expectations over one marginal q(x_t | x_0) per term:

        ELBO = E_{q(x_1|x_0)}[log p(x_0 | x_1)]                               reconstruction
             - KL(q(x_T | x_0) || p(x_T))                                      prior matching
             - sum_{t=2}^{T} E_{q(x_t|x_0)}[KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))]   denoising matching

``elbo_consistency_terms`` and ``elbo_denoising_terms`` return one single-sample Monte Carlo
value of every term; both are unbiased for the same ELBO, and each term of (b) has far lower
variance than the matching term of (a).
``GaussianDataDenoiser`` is the exact denoiser of Gaussian data (Tweedie's formula in closed form)
with the exact ELBO of the resulting reverse model, and ``kl_weights`` gives the weight each
parameterisation (x_0, epsilon, score) puts on its squared error.

Data are ``(N, D)`` tensors; a model is a callable ``mean_fn(x_t, t) -> mu_theta`` with ``t`` an int.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from diffusion_lib._checks import check_choice, check_finite, check_floating, check_real, check_timesteps
from diffusion_lib.core.losses import gaussian_log_likelihood, normal_kl
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

__all__ = [
    "default_reverse_variance",
    "elbo_consistency_terms",
    "elbo_denoising_terms",
    "total_elbo",
    "GaussianDataDenoiser",
    "kl_weights",
]

MeanFn = Callable[[torch.Tensor, int], torch.Tensor]


def _check_schedule(schedule: Any) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise InputTypeError(
            f"schedule must be a diffusion_lib.core.schedules.NoiseSchedule, got {type(schedule).__name__}"
        )
    return schedule


def _check_t(t: Any, T: int, allow_zero: bool = False) -> int:
    """One timestep as a Python int in 1..T (0..T with ``allow_zero``); ints, NumPy ints and 0-d tensors."""
    if isinstance(t, torch.Tensor) and t.ndim != 0:
        raise InputValueError(f"t must be a single timestep (an int), but got a tensor of shape {tuple(t.shape)}")
    return int(check_timesteps(t, T, allow_zero=allow_zero)[0])


def _check_inputs(schedule: NoiseSchedule, x0: torch.Tensor, reverse_variance: torch.Tensor | None) -> torch.Tensor:
    _check_schedule(schedule)
    check_floating(x0, "x0")
    if x0.ndim != 2 or x0.shape[1] < 1:
        raise InputValueError(
            f"x0 must be a floating tensor of shape (N, D): a batch of flat data points, got shape {tuple(x0.shape)}"
        )
    check_finite(x0, "x0")
    if schedule.T < 2:
        raise InputValueError(f"these ELBO forms need T >= 2 steps, got T={schedule.T}")
    var = default_reverse_variance(schedule) if reverse_variance is None else reverse_variance
    check_floating(var, "reverse_variance")
    if var.shape != (schedule.T + 1,):
        raise InputValueError(
            f"reverse_variance must have length T+1={schedule.T + 1} (indexed by t), got {tuple(var.shape)}"
        )
    check_finite(var[1:], "reverse_variance[1:]")
    if not bool((var[1:] > 0).all()):
        raise InputValueError("reverse_variance[1:] must be > 0 (sigma_t^2 of p(x_{t-1} | x_t) for t = 1..T)")
    return var.to(x0.dtype)


def _model_mean(mean_fn: MeanFn, xt: torch.Tensor, t: int) -> torch.Tensor:
    """``mean_fn(x_t, t)``, refused unless it has exactly the shape of ``x_t`` (no silent broadcasting)."""
    out = mean_fn(xt, t)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise InputTypeError(
            f"mean_fn(x_t, t) must return a floating tensor (the reverse mean), but returned {type(out).__name__}"
            + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else "")
        )
    if tuple(out.shape) != tuple(xt.shape):
        raise InputValueError(
            f"mean_fn(x_t, t) must return the reverse mean mu_theta with the shape of x_t {tuple(xt.shape)}, "
            f"but at t = {t} it returned shape {tuple(out.shape)}; broadcasting it would give wrong terms"
        )
    return out


def _check_finite_terms(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for key, value in terms.items():
        if value.numel() and not bool(torch.isfinite(value).all()):
            raise NonFiniteError(
                f"the ELBO term {key!r} is NaN or infinite: mean_fn returned non-finite values or the "
                f"reverse variances are too small; check mean_fn on a few x_t first"
            )
    return terms


def default_reverse_variance(schedule: NoiseSchedule) -> torch.Tensor:
    """sigma_t^2 = tilde beta_t for t >= 2 (matched to q(x_{t-1} | x_t, x_0)) and sigma_1^2 = beta_1 for the decoder.

    tilde beta_1 = 0, so the decoder p(x_0 | x_1) needs its own variance; beta_1 is the usual choice.
    """
    _check_schedule(schedule)
    var = schedule.posterior_variance.clone()
    var[1] = schedule.beta[1]
    return var


def elbo_consistency_terms(
    schedule: NoiseSchedule,
    mean_fn: MeanFn,
    x0: torch.Tensor,
    reverse_variance: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One sample of every term of form (a): run one forward trajectory x_1..x_T per data point.

    Returns ``reconstruction`` (N,) = log p(x_0 | x_1); ``prior_matching`` (N,) =
    -KL(q(x_T | x_{T-1}) || N(0, I)); ``consistency`` (N, T-1) whose column t-1 is
    log p(x_t | x_{t+1}) - log q(x_t | x_{t-1}) for t = 1..T-1. Every entry uses the same trajectory.
    ``mean_fn(x_t, t)`` must return a tensor of the shape of ``x_t``.

    Implements :eq:`eq-vdm-elbo-a` (chapter ``vdm``).
    Implements :eq:`eq-vdm-step` (chapter ``vdm``).
    """
    var = _check_inputs(schedule, x0, reverse_variance)
    T = schedule.T
    alpha, beta = schedule.alpha.to(x0.dtype), schedule.beta.to(x0.dtype)
    xs = [x0]
    for t in range(1, T + 1):  # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        xs.append(alpha[t].sqrt() * xs[-1] + beta[t].sqrt() * eps)
    recon = gaussian_log_likelihood(x0, _model_mean(mean_fn, xs[1], 1), var[1].log()).sum(-1)
    prior = -normal_kl(alpha[T].sqrt() * xs[T - 1], beta[T].log(), torch.zeros_like(x0), 0.0).sum(-1)
    cons = []
    for t in range(1, T):
        log_p = gaussian_log_likelihood(xs[t], _model_mean(mean_fn, xs[t + 1], t + 1), var[t + 1].log()).sum(-1)
        log_q = gaussian_log_likelihood(xs[t], alpha[t].sqrt() * xs[t - 1], beta[t].log()).sum(-1)
        cons.append(log_p - log_q)
    return _check_finite_terms({"reconstruction": recon, "prior_matching": prior, "consistency": torch.stack(cons, -1)})


def elbo_denoising_terms(
    schedule: NoiseSchedule,
    mean_fn: MeanFn,
    x0: torch.Tensor,
    reverse_variance: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One sample of every term of form (b): each term draws its own x_t ~ q(x_t | x_0).

    Returns ``reconstruction`` (N,) = log p(x_0 | x_1) with x_1 ~ q(x_1 | x_0); ``prior_matching``
    (N,) = -KL(q(x_T | x_0) || N(0, I)) (no randomness); ``denoising`` (N, T-1) whose column t-2 is
    -KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t = 2..T, in closed form given x_t.
    ``mean_fn(x_t, t)`` must return a tensor of the shape of ``x_t``.

    Implements :eq:`eq-vdm-elbo-b` (chapter ``vdm``).
    Implements :eq:`eq-vdm-marginal` (chapter ``vdm``).
    Implements :eq:`eq-vdm-posterior` (chapter ``vdm``).
    Implements :eq:`eq-vdm-posterior-moments` (chapter ``vdm``).
    """
    var = _check_inputs(schedule, x0, reverse_variance)
    T, dt = schedule.T, x0.dtype
    sab, s1mab = schedule.sqrt_alpha_bar.to(dt), schedule.sqrt_one_minus_alpha_bar.to(dt)
    c0, ct = schedule.posterior_mean_coef_x0.to(dt), schedule.posterior_mean_coef_xt.to(dt)
    post_var = schedule.posterior_variance.to(dt)

    def q_sample(t: int) -> torch.Tensor:
        return sab[t] * x0 + s1mab[t] * torch.randn(x0.shape, generator=generator, dtype=dt)

    recon = gaussian_log_likelihood(x0, _model_mean(mean_fn, q_sample(1), 1), var[1].log()).sum(-1)
    prior = -normal_kl(sab[T] * x0, (s1mab[T] ** 2).log(), torch.zeros_like(x0), 0.0).sum(-1)
    den = []
    for t in range(2, T + 1):
        xt = q_sample(t)
        post_mean = c0[t] * x0 + ct[t] * xt
        den.append(-normal_kl(post_mean, post_var[t].log(), _model_mean(mean_fn, xt, t), var[t].log()).sum(-1))
    return _check_finite_terms({"reconstruction": recon, "prior_matching": prior, "denoising": torch.stack(den, -1)})


def total_elbo(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum the per-term values returned by either estimator into the ELBO estimate per data point (N,).

    ``terms`` is the dict of :func:`elbo_consistency_terms`, :func:`elbo_denoising_terms` or
    :meth:`GaussianDataDenoiser.exact_terms` (or one with its entries averaged over the batch).
    """
    if not isinstance(terms, dict):
        raise InputTypeError(f"terms must be the dict returned by an ELBO estimator, got {type(terms).__name__}")
    missing = [k for k in ("reconstruction", "prior_matching") if k not in terms]
    steps = [k for k in ("consistency", "denoising") if k in terms]
    if missing or len(steps) != 1:
        raise InputValueError(
            f"terms must hold 'reconstruction', 'prior_matching' and one of 'consistency' / 'denoising' "
            f"(the dict of an ELBO estimator), but has the keys {sorted(terms)}"
        )
    recon, prior, per_t = terms["reconstruction"], terms["prior_matching"], terms[steps[0]]
    for name, value in (("reconstruction", recon), ("prior_matching", prior), (steps[0], per_t)):
        check_floating(value, f"terms[{name!r}]")
    if recon.shape != prior.shape or per_t.ndim != recon.ndim + 1 or per_t.shape[:-1] != recon.shape:
        raise InputValueError(
            f"the terms do not line up: reconstruction {tuple(recon.shape)} and prior_matching "
            f"{tuple(prior.shape)} must have one shape (N,), and {steps[0]} (N, T-1); got {tuple(per_t.shape)}"
        )
    return recon + prior + per_t.sum(-1)


class GaussianDataDenoiser:
    r"""The exact denoiser for data x_0 ~ N(m, s^2 I) and the reverse model built on it.

    With q(x_t) = N(sqrt(abar_t) m, v_t I), v_t = abar_t s^2 + 1 - abar_t:

    * score:   grad log q(x_t) = -(x_t - sqrt(abar_t) m) / v_t
    * Tweedie: E[x_0 | x_t] = (x_t + (1 - abar_t) grad log q(x_t)) / sqrt(abar_t)
               = m + sqrt(abar_t) s^2 (x_t - sqrt(abar_t) m) / v_t   (the closed form)
    * reverse mean: mu(x_t, t) = coef_x0_t E[x_0 | x_t] + coef_xt_t x_t, affine in x_t:
      mu = a_t x_t + c_t. ``shrink`` < 1 multiplies E[x_0 | x_t] - m to make a deliberately worse model.

    Its methods take one timestep ``t`` (an int) and return a tensor of the dtype of ``x_t``.

    Implements :eq:`eq-vdm-gauss-denoiser` (chapter ``vdm``).
    """

    def __init__(self, schedule: NoiseSchedule, data_mean: float, data_var: float, shrink: float = 1.0) -> None:
        _check_schedule(schedule)
        self.schedule = schedule
        self.m = check_real(data_mean, "data_mean")
        self.s2 = check_real(data_var, "data_var (the data's variance s^2)", minimum=0.0, strict=True)
        self.shrink = check_real(shrink, "shrink")
        s64 = NoiseSchedule(schedule.betas, dtype=torch.float64)  # exact float64 copy of the constants
        ab = s64.alpha_bar
        self._ab = ab
        self._v = ab * self.s2 + (1 - ab)
        # x0_hat = m + k_t (x_t - sqrt(abar) m), k_t = shrink * sqrt(abar) s^2 / v_t
        self._k = self.shrink * ab.sqrt() * self.s2 / self._v
        c0, ct = s64.posterior_mean_coef_x0, s64.posterior_mean_coef_xt
        self.a = c0 * self._k + ct  # mean = a_t x_t + c_t
        self.c = c0 * (self.m - self._k * ab.sqrt() * self.m)

    @staticmethod
    def _check_xt(xt: Any) -> torch.Tensor:
        check_floating(xt, "xt")
        return check_finite(xt, "xt")

    def score(self, xt: torch.Tensor, t: int) -> torch.Tensor:
        """grad_{x_t} log q(x_t) for the Gaussian data, exactly (t in 0..T; t = 0 is the data's own score)."""
        xt, t = self._check_xt(xt), _check_t(t, self.schedule.T, allow_zero=True)
        return -(xt - self._ab[t].sqrt().to(xt.dtype) * self.m) / self._v[t].to(xt.dtype)

    def x0_mean(self, xt: torch.Tensor, t: int) -> torch.Tensor:
        """E[x_0 | x_t] (times ``shrink`` around the data mean), the closed form above (t in 0..T).

        Implements :eq:`eq-vdm-gauss-denoiser` (chapter ``vdm``).
        """
        xt, t = self._check_xt(xt), _check_t(t, self.schedule.T, allow_zero=True)
        return self.m + self._k[t].to(xt.dtype) * (xt - self._ab[t].sqrt().to(xt.dtype) * self.m)

    def mean(self, xt: torch.Tensor, t: int) -> torch.Tensor:
        """mu(x_t, t) = a_t x_t + c_t for t in 1..T: the reverse-model mean (pass ``denoiser.mean`` as ``mean_fn``)."""
        xt, t = self._check_xt(xt), _check_t(t, self.schedule.T)
        return self.a[t].to(xt.dtype) * xt + self.c[t].to(xt.dtype)

    def exact_terms(self, x0: torch.Tensor, reverse_variance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The exact expectation of every term of form (b) (so also of form (a) summed), per data point.

        Because mu is affine in x_t and x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, each squared
        error's expectation is (its value at eps = 0)^2 + (its eps-coefficient)^2 per dimension.
        Keys as in ``elbo_denoising_terms``; all in float64.

        Implements :eq:`eq-vdm-elbo-b` (chapter ``vdm``).
        """
        sched = self.schedule
        _check_inputs(sched, x0, reverse_variance)
        x0 = x0.to(torch.float64)
        var = _check_inputs(sched, x0, reverse_variance)
        T, d = sched.T, x0.shape[1]
        ab = self._ab
        c0 = sched.posterior_mean_coef_x0.to(torch.float64)
        ct = sched.posterior_mean_coef_xt.to(torch.float64)
        pv = sched.posterior_variance.to(torch.float64)
        # reconstruction: E log N(x0; a_1 x_1 + c_1, var_1)
        r0 = x0 - (self.a[1] * ab[1].sqrt() * x0 + self.c[1])
        r_eps = self.a[1] * (1 - ab[1]).sqrt()
        recon = -0.5 * (d * (math.log(2 * math.pi) + var[1].log()) + ((r0**2).sum(-1) + d * r_eps**2) / var[1])
        prior = -normal_kl(ab[T].sqrt() * x0, (1 - ab[T]).log(), torch.zeros_like(x0), 0.0).sum(-1)
        den = []
        for t in range(2, T + 1):
            # post mean - model mean = c0 x0 + (ct - a_t)(sqrt(ab) x0 + sqrt(1-ab) eps) - c_t
            diff0 = c0[t] * x0 + (ct[t] - self.a[t]) * ab[t].sqrt() * x0 - self.c[t]
            diff_eps = (ct[t] - self.a[t]) * (1 - ab[t]).sqrt()
            e_sq = (diff0**2).sum(-1) + d * diff_eps**2
            kl = 0.5 * (d * (var[t].log() - pv[t].log() + pv[t] / var[t] - 1.0) + e_sq / var[t])
            den.append(-kl)
        return {"reconstruction": recon, "prior_matching": prior, "denoising": torch.stack(den, -1)}


def kl_weights(schedule: NoiseSchedule, parameterisation: str = "x0") -> torch.Tensor:
    r"""Weight w_t with KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) = w_t ||error||^2 when sigma_t^2 = tilde beta_t.

    * ``"x0"``:    w_t = (SNR(t-1) - SNR(t)) / 2, error x0_hat - x_0;
    * ``"eps"``:   w_t = (SNR(t-1) / SNR(t) - 1) / 2 = beta_t / (2 alpha_t (1 - abar_{t-1})), error eps_hat - eps;
    * ``"score"``: w_t = (SNR(t-1) / SNR(t) - 1) (1 - abar_t) / 2, error s_hat - grad log q(x_t | x_0).

    Returns a float64 tensor of length T+1; entries 0 and 1 are NaN (t = 1 is the reconstruction
    term, not a KL, and SNR(0) is infinite).

    Implements :eq:`eq-vdm-kl-x0` (chapter ``vdm``).
    """
    check_choice(parameterisation, ("x0", "eps", "score"), "parameterisation")
    _check_schedule(schedule)
    s64 = NoiseSchedule(schedule.betas, dtype=torch.float64)
    snr, ab = s64.snr, s64.alpha_bar
    w = torch.full((schedule.T + 1,), float("nan"), dtype=torch.float64)
    snr_prev, snr_t = snr[1:-1], snr[2:]
    if parameterisation == "x0":
        w[2:] = 0.5 * (snr_prev - snr_t)
    elif parameterisation == "eps":
        w[2:] = 0.5 * (snr_prev / snr_t - 1.0)
    else:
        w[2:] = 0.5 * (snr_prev / snr_t - 1.0) * (1 - ab[2:])
    return w
