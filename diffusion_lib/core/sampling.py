r"""One sampler for DDPM and DDIM: a loop over a decreasing timestep sequence tau_1 > ... > tau_K.

Each step goes from x_t to x_s (s = the next entry, 0 after the last one), with the model's
x̂_0 and ε̂ from x_t:

* ancestral (DDPM, ``eta=None``, s = t - 1): x_{t-1} = mu(x_t, t) + sigma_t z with the model's
  reverse variance (:meth:`GaussianDiffusion.p_mean_variance`); no noise at t = 1;
* DDIM (``eta`` >= 0, any s < t): x_s = sqrt(abar_s) x̂_0 + sqrt(1 - abar_s - sigma^2) ε̂ + sigma z,
  sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s).

With eta = 1 and s = t - 1, sigma^2 is tilde beta_t: DDIM over the full sequence is DDPM with the
``fixed_small`` variance. Every step draws one normal vector z from the generator (also when
sigma = 0), so equal seeds give equal paths. The functions are methods of
:class:`~diffusion_lib.core.diffusion.GaussianDiffusion`; their first argument is the diffusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from diffusion_lib._checks import check_int, check_real
from diffusion_lib.core import _validate as check
from diffusion_lib.errors import InputValueError

if TYPE_CHECKING:
    from diffusion_lib.core.diffusion import GaussianDiffusion, Model

__all__ = ["p_sample", "ddim_step", "p_sample_loop", "ddim_sample_loop", "ddim_timesteps"]

Callback = Callable[[int, torch.Tensor, torch.Tensor], Any]


def _step(
    d: "GaussianDiffusion",
    model: "Model",
    xt: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
    eta: float | None,
    clip_x0: bool,
    model_kwargs: dict,
    generator: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """One step x_t -> x_s of the sampler (inputs already validated): ancestral when eta is None."""
    mean_part, var_part = d._call_model(model, xt, t, model_kwargs)
    pred_x0, pred_eps = d._predictions(mean_part, xt, t, clip_x0)
    if eta is None and bool((s == t - 1).all()):  # ancestral: the posterior mean of x̂_0 and the model's variance
        mean = d._posterior_mean(pred_x0, xt, t)
        _, log_variance = d._model_variance(xt, t, var_part)
    elif eta is None:  # ancestral on a subsequence: the same with the respaced betas
        mean, log_variance = _respaced_posterior(d, xt, t, s, pred_x0, var_part)
    if eta is None:  # no noise on the last step (s = 0)
        sigma = (s > 0).to(xt.dtype).reshape((-1,) + (1,) * (xt.ndim - 1)) * torch.exp(0.5 * log_variance)
    else:  # DDIM
        alpha_bar, alpha_bar_s = d._at(d.schedule.alpha_bar, t, xt), d._at(d.schedule.alpha_bar, s, xt)
        sigma = eta * torch.sqrt((1.0 - alpha_bar_s) / (1.0 - alpha_bar)) * torch.sqrt(1.0 - alpha_bar / alpha_bar_s)
        mean = torch.sqrt(alpha_bar_s) * pred_x0 + torch.sqrt((1.0 - alpha_bar_s - sigma**2).clamp(min=0.0)) * pred_eps
    z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
    return {"sample": mean + sigma * z, "mean": mean, "sigma": sigma, "pred_x0": pred_x0, "pred_eps": pred_eps}


def _respaced_posterior(
    d: "GaussianDiffusion", xt: torch.Tensor, t: torch.Tensor, s: torch.Tensor, pred_x0: torch.Tensor,
    var_part: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and log-variance of the step x_t -> x_s of the process respaced to a subsequence.

    Improved DDPM (Nichol & Dhariwal 2021, section 4): on a subsequence the forward process keeps
    its abar, so one step t -> s has beta = 1 - abar_t / abar_s and posterior variance
    tilde beta = (1 - abar_s) / (1 - abar_t) beta; the mean is the posterior mean with these
    coefficients and the variance the model's choice between tilde beta and beta
    (:eq:`eq-respaced-betas` (chapter ``sampling_digits``)).
    """
    alpha_bar_t, alpha_bar_s = d._at(d.schedule.alpha_bar, t, xt), d._at(d.schedule.alpha_bar, s, xt)
    beta = 1.0 - alpha_bar_t / alpha_bar_s
    beta_tilde = (1.0 - alpha_bar_s) / (1.0 - alpha_bar_t) * beta
    coef_x0 = torch.sqrt(alpha_bar_s) * beta / (1.0 - alpha_bar_t)
    coef_xt = torch.sqrt(1.0 - beta) * (1.0 - alpha_bar_s) / (1.0 - alpha_bar_t)
    min_log, max_log = torch.log(beta_tilde.clamp(min=1e-20)), torch.log(beta)  # beta_tilde = 0 only at s = 0
    if d.model_var_type == "fixed_small":
        log_variance = min_log
    elif d.model_var_type == "fixed_large":
        log_variance = max_log
    else:
        frac = (var_part + 1.0) / 2.0
        log_variance = frac * max_log + (1.0 - frac) * min_log
    return coef_x0 * pred_x0 + coef_xt * xt, log_variance.expand_as(xt)


def _loop(
    d: "GaussianDiffusion",
    model: "Model",
    x: torch.Tensor,
    taus: list[int],
    eta: float | None,
    clip_x0: bool,
    model_kwargs: dict,
    generator: torch.Generator | None,
    callback: Callback | None,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    """The sampler: steps tau_k -> tau_{k+1} (0 after the last), under torch.no_grad()."""
    pairs = list(zip(taus, taus[1:] + [0]))
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc=desc)
    with torch.no_grad():
        for t, s in pairs:
            t_b = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            out = _step(d, model, x, t_b, torch.full_like(t_b, s), eta, clip_x0, model_kwargs, generator)
            if callback is not None:
                callback(t, x, out["pred_x0"])
            x = out["sample"]
    return check.finite_result(x, "the sample")


def _check_step(d: "GaussianDiffusion", model: Any, xt: Any, t: Any, model_kwargs: Any, generator: Any):
    t = check.timesteps(d, t, check.data(xt, "xt"))
    return t, check.model(model, model_kwargs), check.generator(generator)


def p_sample(
    d: "GaussianDiffusion",
    model: "Model",
    xt: torch.Tensor,
    t: Any,
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""One ancestral (DDPM) step: x_{t-1} = mu(x_t, t) + sigma_t z, z ~ N(0, I); t in 1..T.

    No noise is added at t = 1 (the output is the mean, the final sample). Returns a dict with
    "sample" (x_{t-1}), "mean", "sigma", "pred_x0" and "pred_eps".

    Implements :eq:`eq-ddpm-mu-eps` (chapter ``ddpm_2d``).
    """
    t, kwargs, generator = _check_step(d, model, xt, t, model_kwargs, generator)
    return _step(d, model, xt, t, t - 1, None, bool(clip_x0), kwargs, generator)


def ddim_step(
    d: "GaussianDiffusion",
    model: "Model",
    xt: torch.Tensor,
    t: Any,
    t_prev: Any,
    eta: float = 0.0,
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""One DDIM step from x_t to x_{t_prev} (Song, Meng & Ermon 2021, eq. 12), 0 <= t_prev < t:

        pred_x0 = (x_t - sqrt(1 - abar_t) pred_eps) / sqrt(abar_t)
        sigma   = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev)
        x_prev  = sqrt(abar_prev) * pred_x0 + sqrt(1 - abar_prev - sigma^2) * pred_eps + sigma * z

    with abar_prev = abar_{t_prev} (= 1 at t_prev = 0). eta = 0 is deterministic DDIM; eta = 1
    with t_prev = t - 1 gives sigma^2 = tilde beta_t, the DDPM posterior variance.
    Returns a dict with "sample", "pred_x0", "pred_eps", "mean" (x_prev without noise), "sigma"
    (shape (B, 1, ..., 1)).

    Implements :eq:`eq-ddpm-ddim` (chapter ``ddpm_2d``).
    """
    t, kwargs, generator = _check_step(d, model, xt, t, model_kwargs, generator)
    t_prev = check.timesteps(d, t_prev, xt, allow_zero=True, name="t_prev")
    if bool((t_prev >= t).any()):
        raise InputValueError("t_prev must be smaller than t (DDIM steps go from noise towards data)")
    eta = check_real(eta, "eta", minimum=0.0)
    return _step(d, model, xt, t, t_prev, eta, bool(clip_x0), kwargs, generator)


def _start(d: "GaussianDiffusion", shape: Any, x_T: Any, generator: Any) -> torch.Tensor:
    shape = check.sample_shape(d, shape, x_T)
    if x_T is not None:
        return x_T
    check.generator(generator)
    return torch.randn(shape, generator=generator, dtype=d.schedule.dtype, device=d.schedule.device)


def p_sample_loop(
    d: "GaussianDiffusion",
    model: "Model",
    shape: Sequence[int],
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    x_T: torch.Tensor | None = None,
    timesteps: Sequence[int] | torch.Tensor | None = None,
    num_steps: int | None = None,
) -> torch.Tensor:
    r"""Ancestral sampling: x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) for t = T, ..., 1.

    Returns the final sample x_0 (shape ``shape``). ``callback(t, x_t, x0_hat)``, if given, is
    called at every step with the current point x_t and the prediction of x_0 made from it (to
    record a trajectory). Runs under torch.no_grad().

    ``timesteps`` (a decreasing subsequence of 1..T) or ``num_steps`` (evenly spaced, as
    :meth:`ddim_timesteps`): *respaced* sampling with K < T steps (improved DDPM), each step
    t -> s ancestral with the betas recomputed for the subsequence and the model's variance
    (learned, or tilde beta / beta) taken between them (:func:`_respaced_posterior`).

    Implements :eq:`eq-ddpm-mu-eps` (chapter ``ddpm_2d``) and :eq:`eq-respaced-betas` (chapter
    ``sampling_digits``).
    """
    if timesteps is not None and num_steps is not None:
        raise InputValueError("give either timesteps or num_steps, not both")
    taus = list(range(d.T, 0, -1))
    if timesteps is not None:
        taus = check.timestep_sequence(d.T, timesteps)
    elif num_steps is not None:
        taus = ddim_timesteps(d, num_steps).tolist()
    x = _start(d, shape, x_T, generator)
    kwargs = check.model(model, model_kwargs)
    return _loop(d, model, x, taus, None, bool(clip_x0), kwargs, generator,
                 check.callback(callback), bool(progress), "DDPM sampling" if len(taus) == d.T else "respaced DDPM")


def ddim_timesteps(d: "GaussianDiffusion", num_steps: int) -> torch.Tensor:
    """An evenly spaced subsequence of 1..T with ``num_steps`` entries, descending.

    It starts at T and ends at 1 (for num_steps >= 2; num_steps = 1 gives [T]); num_steps = T
    gives T, T-1, ..., 1. Values are round(linspace(T, 1, num_steps)).
    """
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    if num_steps > d.T:
        raise InputValueError(f"num_steps must be <= T = {d.T}, got {num_steps}")
    if num_steps == 1:
        return torch.tensor([d.T], dtype=torch.long)
    return torch.round(torch.linspace(d.T, 1, num_steps, dtype=torch.float64)).long()


def ddim_sample_loop(
    d: "GaussianDiffusion",
    model: "Model",
    shape: Sequence[int],
    timesteps: Sequence[int] | torch.Tensor | None = None,
    num_steps: int | None = None,
    eta: float = 0.0,
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""DDIM sampling along a strictly decreasing subsequence tau_1 > ... > tau_K of 1..T.

    Give either ``timesteps`` (any decreasing subsequence) or ``num_steps`` (uses
    :meth:`ddim_timesteps`); with neither, all T steps are used. The start ``x_T`` (noise,
    drawn if omitted) is treated as x_{tau_1}; each step goes tau_k -> tau_{k+1}, the last one
    to t = 0. Returns the final sample; ``callback(t, x_t, x0_hat)`` is called at every step as in
    :meth:`p_sample_loop`. Runs under torch.no_grad().

    Implements :eq:`eq-ddpm-ddim` (chapter ``ddpm_2d``).
    """
    if timesteps is not None and num_steps is not None:
        raise InputValueError("give either timesteps or num_steps, not both")
    if timesteps is not None:
        taus = check.timestep_sequence(d.T, timesteps)
    else:
        taus = ddim_timesteps(d, num_steps if num_steps is not None else d.T).tolist()
    eta = check_real(eta, "eta", minimum=0.0)
    x = _start(d, shape, x_T, generator)
    kwargs = check.model(model, model_kwargs)
    return _loop(d, model, x, taus, eta, bool(clip_x0), kwargs, generator,
                 check.callback(callback), bool(progress), "DDIM sampling")
