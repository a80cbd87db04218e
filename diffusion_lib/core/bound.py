r"""The variational bound on -log p(x_0), term by term, in nats summed over the dimensions of an example.

    -log p(x_0) <= L_T + sum_{t=2}^{T} L_{t-1} + L_0,
    L_T     = KL( q(x_T | x_0) || N(0, I) ),
    L_{t-1} = KL( q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t) ),   t >= 2,
    L_0     = -log p(x_0 | x_1).

The functions are methods of :class:`~diffusion_lib.core.diffusion.GaussianDiffusion`; their first
argument is the diffusion.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from diffusion_lib._checks import check_choice, check_int
from diffusion_lib.core import _validate as check
from diffusion_lib.core.losses import discretized_gaussian_log_likelihood, gaussian_log_likelihood, normal_kl, sum_flat

if TYPE_CHECKING:
    from diffusion_lib.core.diffusion import GaussianDiffusion, Model

__all__ = ["prior_kl", "vb_term", "variational_bound"]


def _prior_kl(d: "GaussianDiffusion", x0: torch.Tensor) -> torch.Tensor:
    t = torch.full((x0.shape[0],), d.T, dtype=torch.long, device=x0.device)
    mean = d._at(d.schedule.sqrt_alpha_bar, t, x0) * x0
    log_variance = torch.log(1.0 - d._at(d.schedule.alpha_bar, t, x0)).expand_as(x0)
    return sum_flat(normal_kl(mean, log_variance, torch.zeros_like(mean), torch.zeros_like(mean)))


def prior_kl(d: "GaussianDiffusion", x0: torch.Tensor) -> torch.Tensor:
    r"""L_T = KL( q(x_T | x_0) || N(0, I) ) per example, in nats, summed over dimensions: (B,).

    Implements :eq:`eq-kl-standard` (chapter ``forward_process``).
    """
    check.timesteps(d, d.T, check.data(x0, "x0"))  # its device
    return _prior_kl(d, x0)


def _vb_term(
    d: "GaussianDiffusion",
    moments: dict[str, torch.Tensor],
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    decoder: str,
    num_levels: int,
) -> torch.Tensor:
    """L_{t-1} per example from the reverse moments (KL for t >= 2, decoder NLL for t = 1)."""
    true_mean, _, true_log_variance = d._posterior(x0, xt, t)
    result = sum_flat(normal_kl(true_mean, true_log_variance, moments["mean"], moments["log_variance"]))
    first = (t == 1).nonzero().squeeze(1)
    if first.numel():  # only the examples at t = 1 need the decoder (the discretized one checks x_0's range)
        mean, log_variance = moments["mean"][first], moments["log_variance"][first]
        if decoder == "discretized":
            log_p = discretized_gaussian_log_likelihood(x0[first], mean, 0.5 * log_variance, num_levels=num_levels)
        else:
            log_p = gaussian_log_likelihood(x0[first], mean, log_variance)
        result = result.index_put((first,), -sum_flat(log_p).to(result.dtype))
    return result


def _check_decoder(decoder: Any, num_levels: Any) -> int:
    check_choice(decoder, ("discretized", "gaussian"), "decoder")
    return check_int(num_levels, "num_levels", minimum=2)


def vb_term(
    d: "GaussianDiffusion",
    model: "Model",
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: Any,
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    decoder: str = "discretized",
    num_levels: int = 256,
    detach_mean: bool = False,
) -> torch.Tensor:
    r"""One term of the variational bound per example, in nats summed over dimensions: (B,).

    * t >= 2: L_{t-1} = KL( q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t) );
    * t = 1:  L_0 = -log p(x_0 | x_1), with the decoder ``"discretized"`` (data on
      ``num_levels`` levels in [-1, 1]; see :func:`discretized_gaussian_log_likelihood`) or
      ``"gaussian"`` (a density, for continuous data).

    ``detach_mean`` stops the gradient through the model's mean (the hybrid loss uses it).

    Implements :eq:`eq-sohl-kl` (chapter ``swiss_roll_2015``).
    """
    t = d._check_pair(x0, xt, t)
    num_levels = _check_decoder(decoder, num_levels)
    moments = d._p_mean_variance(model, xt, t, bool(clip_x0), check.model(model, model_kwargs),
                                 detach_mean=bool(detach_mean))
    return check.finite_result(_vb_term(d, moments, x0, xt, t, decoder, num_levels), "the bound term")


def variational_bound(
    d: "GaussianDiffusion",
    model: "Model",
    x0: torch.Tensor,
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
    decoder: str = "discretized",
    num_levels: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    r"""The full variational bound on -log p(x_0), per example, in nats (one sample of x_t per t).

    With L_T = :meth:`prior_kl` and L_{t-1} = :meth:`vb_term`, each x_t drawn independently from
    q(x_t | x_0) (for t = T, ..., 1). Sums run over all dimensions of an example (not means).
    Returns a dict:

    * "total": (B,) the bound in nats;
    * "prior": (B,) L_T;
    * "terms": (B, T+1) with terms[:, t] = L_{t-1} for t = 1..T (terms[:, 1] = L_0, the decoder
      NLL; terms[:, t] the KL at step t) and terms[:, 0] = 0, so total = prior + terms.sum(1);
    * "bits_per_dim": (B,) total / (num_dims * ln 2).

    Costs T model calls; runs under torch.no_grad().

    Implements :eq:`eq-ddpm-bound` (chapter ``ddpm_digits``).
    Implements :eq:`eq-sohl-bound` (chapter ``swiss_roll_2015``).
    """
    check.timesteps(d, d.T, check.data(x0, "x0"))  # its device
    num_levels = _check_decoder(decoder, num_levels)
    kwargs, generator = check.model(model, model_kwargs), check.generator(generator)
    B = x0.shape[0]
    terms = torch.zeros((B, d.T + 1), dtype=x0.dtype, device=x0.device)
    steps = range(d.T, 0, -1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="variational bound", total=d.T)
    with torch.no_grad():
        for t in steps:
            t_b = torch.full((B,), t, dtype=torch.long, device=x0.device)
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            xt = d._q_sample(x0, t_b, eps)
            moments = d._p_mean_variance(model, xt, t_b, bool(clip_x0), kwargs)
            terms[:, t] = _vb_term(d, moments, x0, xt, t_b, decoder, num_levels)
        prior = _prior_kl(d, x0)
    total = check.finite_result(prior + terms.sum(dim=1), "the bound")
    num_dims = math.prod(x0.shape[1:])
    return {"total": total, "prior": prior, "terms": terms, "bits_per_dim": total / (num_dims * math.log(2.0))}
