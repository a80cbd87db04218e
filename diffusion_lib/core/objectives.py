r"""Training objectives of :class:`~diffusion_lib.core.diffusion.GaussianDiffusion`: L_simple, the bound term, the hybrid.

The function is a method of the diffusion (its first argument).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from diffusion_lib.core import _validate as check
from diffusion_lib.core.bound import _check_decoder, _vb_term
from diffusion_lib.core.losses import simple_loss
from diffusion_lib.errors import InputValueError

if TYPE_CHECKING:
    from diffusion_lib.core.diffusion import GaussianDiffusion, Model

__all__ = ["training_losses"]


def _check_weights(vb_weights: Any, B: int) -> torch.Tensor | None:
    if vb_weights is None:
        return None
    if not isinstance(vb_weights, torch.Tensor) or vb_weights.shape != (B,) or not vb_weights.is_floating_point():
        raise InputValueError(f"vb_weights must be a float tensor of shape ({B},), one weight per example")
    if not bool(torch.isfinite(vb_weights).all()) or bool((vb_weights < 0).any()):
        raise InputValueError("vb_weights must be finite and >= 0 (importance weights 1 / (T p(t)))")
    return vb_weights


def training_losses(
    d: "GaussianDiffusion",
    model: "Model",
    x0: torch.Tensor,
    t: Any = None,
    eps: torch.Tensor | None = None,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    decoder: str = "discretized",
    num_levels: int = 256,
    vb_weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    r"""Per-example training losses at random (or given) timesteps: a dict of (B,) tensors.

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with t ~ Uniform{1..T} when ``t`` is None.

    * l2: "loss" = "mse" = the mean squared error of the model output and its target, eps or
      x_0 (L_simple);
    * kl: "loss" = "vb" = L_{t-1} / (num_dims ln 2), the bound term at the drawn t in bits per
      dimension (T * "vb" is an unbiased estimate of the whole bound L_vlb, up to L_T);
    * hybrid: "loss" = "mse" + vb_weight * T * "vb", i.e. L_simple + lambda L_vlb, with the
      model's mean detached in the bound term so that it trains only the variance. With
      T = 1000 and lambda = 0.001 this is mse + vb, as in the improved-DDPM code.

    Take ``.mean()`` of "loss" for an optimiser step. ``decoder`` / ``num_levels`` set the t = 1
    term of the bound (see :meth:`vb_term`). ``vb_weights``: (B,) importance weights
    w(t) = 1 / (T p(t)) of the bound term when ``t`` was drawn from a non-uniform p(t)
    (:func:`diffusion_lib.core.timesteps.sample_timesteps`); "loss" then uses w * "vb", which keeps
    the estimate of L_vlb unbiased ("vb" itself stays unweighted).

    Implements :eq:`eq-ddpm-simple` (chapter ``ddpm_digits``).
    Implements :eq:`eq-ddpm-hybrid` (chapter ``ddpm_digits``).
    """
    B = check.data(x0, "x0").shape[0]
    check.generator(generator)
    if t is None:
        t = torch.randint(1, d.T + 1, (B,), generator=generator, device=x0.device)
    t = check.timesteps(d, t, x0)
    eps = check.noise(eps, x0, "x0", generator)
    kwargs = check.model(model, model_kwargs)
    if d.loss_type != "l2":
        num_levels = _check_decoder(decoder, num_levels)
        vb_weights = _check_weights(vb_weights, B)
    xt = d._q_sample(x0, t, eps)
    output = d._call_model(model, xt, t, kwargs)
    mean_part = output[0]
    target = eps if d.model_mean_type == "eps" else x0
    terms: dict[str, torch.Tensor] = {}
    if d.loss_type != "kl":
        terms["mse"] = simple_loss(mean_part, target)
    if d.loss_type == "l2":
        terms["loss"] = terms["mse"]
        return terms
    moments = d._p_mean_variance(model, xt, t, False, kwargs, model_output=output, detach_mean=d.loss_type == "hybrid")
    terms["vb"] = _vb_term(d, moments, x0, xt, t, decoder, num_levels) / (math.prod(x0.shape[1:]) * math.log(2.0))
    vb = terms["vb"] if vb_weights is None else terms["vb"] * vb_weights.to(terms["vb"].dtype)
    if d.loss_type == "kl":
        terms["loss"] = vb
    else:
        terms["loss"] = terms["mse"] + d.vb_weight * d.T * vb
    return terms
