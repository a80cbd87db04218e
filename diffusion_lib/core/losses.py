r"""Losses and likelihoods for Gaussian diffusion, in nats unless a name says bits.

* :func:`normal_kl` -- KL divergence between two diagonal Gaussians, elementwise.
* :func:`gaussian_log_likelihood` -- log density of a Gaussian, elementwise (continuous data).
* :func:`discretized_gaussian_log_likelihood` -- log probability of a data value on a grid of
  ``num_levels`` evenly spaced levels in [-1, 1] (e.g. 8-bit pixels), elementwise.
* :func:`simple_loss` -- the per-example squared error of DDPM's L_simple.
* :func:`mean_flat`, :func:`sum_flat`, :func:`bits_per_dim` -- reductions and unit conversion.
"""

from __future__ import annotations

import math

import torch

from diffusion_lib._checks import (
    check_broadcastable,
    check_finite,
    check_floating,
    check_int,
    check_same_shape,
    check_tensor,
)
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "normal_kl",
    "gaussian_log_likelihood",
    "discretized_gaussian_log_likelihood",
    "simple_loss",
    "mean_flat",
    "sum_flat",
    "bits_per_dim",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _as_tensor_like(value: torch.Tensor | float, like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return check_finite(check_floating(value, name), name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InputValueError(f"{name} must be a finite number, but got {value}")
        return torch.tensor(float(value), dtype=like.dtype, device=like.device)
    raise InputTypeError(f"{name} must be a floating tensor or a float, got {type(value).__name__}")


def normal_kl(
    mean1: torch.Tensor,
    logvar1: torch.Tensor | float,
    mean2: torch.Tensor,
    logvar2: torch.Tensor | float,
) -> torch.Tensor:
    r"""Elementwise KL( N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)) ) in nats.

    KL = 1/2 [ logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2) - 1 ]

    All arguments broadcast against each other (log-variances may be floats); the result has
    the broadcast shape. Sum over the data dimensions yourself (e.g. :func:`sum_flat`).

    Implements :eq:`eq-sohl-kl` (chapter ``swiss_roll_2015``).
    """
    check_finite(check_floating(mean1, "mean1"), "mean1")
    check_finite(check_floating(mean2, "mean2"), "mean2")
    logvar1 = _as_tensor_like(logvar1, mean1, "logvar1")
    logvar2 = _as_tensor_like(logvar2, mean1, "logvar2")
    check_broadcastable(("mean1", mean1), ("logvar1", logvar1), ("mean2", mean2), ("logvar2", logvar2))
    log_ratio = logvar2 - logvar1  # log(sigma2^2 / sigma1^2)
    variance_ratio = torch.exp(logvar1 - logvar2)  # sigma1^2 / sigma2^2
    scaled_sq_distance = (mean1 - mean2) ** 2 * torch.exp(-logvar2)  # (mu1 - mu2)^2 / sigma2^2
    return 0.5 * (log_ratio + variance_ratio + scaled_sq_distance - 1.0)


def gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor | float
) -> torch.Tensor:
    r"""Elementwise log N(x; mean, exp(log_variance)) in nats (a density: continuous data).

    log N = -1/2 [ log(2 pi) + log_variance + (x - mean)^2 exp(-log_variance) ]
    """
    check_finite(check_floating(x, "x"), "x")
    check_finite(check_floating(mean, "mean"), "mean")
    log_variance = _as_tensor_like(log_variance, x, "log_variance")
    check_broadcastable(("x", x), ("mean", mean), ("log_variance", log_variance))
    return -0.5 * (_LOG_2PI + log_variance + (x - mean) ** 2 * torch.exp(-log_variance))


def _log_normal_cdf_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""log( Phi(b) - Phi(a) ) for a < b, accurate in both tails.

    When both ends lie in the upper tail (a > 0) we use the mirror image Phi(-a) - Phi(-b), so that
    the two CDF values are small numbers rather than numbers close to 1. Then
    log(Phi(hi) - Phi(lo)) = log Phi(hi) + log(1 - exp(log Phi(lo) - log Phi(hi))).
    """
    mirror = a > 0
    lo = torch.where(mirror, -b, a)
    hi = torch.where(mirror, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    log_lo = torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1(log_lo - log_hi))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor,
    mean: torch.Tensor,
    log_scale: torch.Tensor | float,
    num_levels: int = 256,
) -> torch.Tensor:
    r"""Elementwise log P(x) of data on a grid, under N(mean, exp(log_scale)^2), in nats.

    The data take ``num_levels`` evenly spaced values in [-1, 1]: level k is -1 + 2k/(L-1), so
    neighbouring levels are 2/(L-1) apart and each level owns the bin [x - h, x + h] with half-width
    h = 1/(L - 1). The probability of a level is the Gaussian mass of its bin,

        P(x) = Phi((x + h - mean)/sigma) - Phi((x - h - mean)/sigma),

    except that the lowest bin extends to -inf and the highest to +inf, so that the probabilities
    of the L levels sum to exactly 1. ``Phi`` is the exact normal CDF (``torch.special.ndtr``;
    evaluated in log space for stability; the bin edges are exact fractions and the standardised
    edges are formed in float64, so a tiny or a huge sigma stays finite; a bin much narrower than
    sigma uses log P = log(width) + log phi(midpoint) + width^2 (m^2 - 1) / 24, its expansion). Values of ``x`` are snapped to the nearest level and
    must lie in [-1 - h, 1 + h]. ``x``, ``mean`` must have the same shape; ``log_scale`` (log sigma, not
    log variance) broadcasts against them.
    """
    check_finite(check_floating(x, "x"), "x")
    check_finite(check_floating(mean, "mean"), "mean")
    check_same_shape(x, mean, "x", "mean")
    log_scale = _as_tensor_like(log_scale, x, "log_scale")
    check_broadcastable(("x", x), ("log_scale", log_scale))
    num_levels = check_int(num_levels, "num_levels", minimum=2)
    half_width = 1.0 / (num_levels - 1)
    if x.numel() > 0:
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 - half_width or hi > 1.0 + half_width:
            raise InputValueError(
                f"discretized likelihood expects data scaled to [-1, 1] (e.g. pixels / 127.5 - 1), "
                f"but x ranges from {lo:.4g} to {hi:.4g}"
            )
    out_dtype = torch.promote_types(x.dtype, mean.dtype)
    if log_scale.ndim > 0:  # a 0-dim log_scale does not promote (torch's rule)
        out_dtype = torch.promote_types(out_dtype, log_scale.dtype)
    level = torch.round((x.double().clamp(-1.0, 1.0) + 1.0) * (num_levels - 1) / 2.0)  # k in 0..L-1
    inv_scale = torch.exp(-log_scale.double().clamp(-700.0, 700.0))
    mean = mean.double()
    # bin edges (2k +- 1 - (L - 1)) / (L - 1): exact numerators, no cancellation near 0
    upper = ((2.0 * level + 1.0 - (num_levels - 1)) / (num_levels - 1) - mean) * inv_scale
    lower = ((2.0 * level - 1.0 - (num_levels - 1)) / (num_levels - 1) - mean) * inv_scale
    is_bottom = level == 0
    is_top = level == num_levels - 1
    # edge bins: P = Phi(upper) at the bottom, 1 - Phi(lower) = Phi(-lower) at the top
    log_p_bottom = torch.special.log_ndtr(upper)
    log_p_top = torch.special.log_ndtr(-lower)
    # interior bins; the placeholders keep the unused branch finite for the edge bins
    safe_lower = torch.where(is_bottom, upper - 1.0, lower)
    safe_upper = torch.where(is_top, lower + 1.0, upper)
    log_p_mid = _log_normal_cdf_difference(safe_lower, safe_upper)
    # a bin much narrower than sigma: the midpoint expansion (the CDF difference would round to 0)
    width, mid = safe_upper - safe_lower, 0.5 * (safe_upper + safe_lower)
    narrow = width * (1.0 + mid.abs()) < 1e-3
    log_p_narrow = torch.log(width.clamp(min=1e-300)) - 0.5 * (mid**2 + _LOG_2PI) + width**2 * (mid**2 - 1.0) / 24.0
    log_p_mid = torch.where(narrow, log_p_narrow, log_p_mid)
    log_p = torch.where(is_bottom, log_p_bottom, torch.where(is_top, log_p_top, log_p_mid))
    return log_p.to(out_dtype)


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension except the first (batch) one: shape ``(B, ...)`` -> ``(B,)``."""
    check_tensor(x, "x")
    if x.ndim == 0:
        raise InputValueError("mean_flat needs a tensor with a batch dimension, got a scalar")
    return x.reshape(x.shape[0], math.prod(x.shape[1:])).mean(dim=1) if x.ndim > 1 else x


def sum_flat(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension except the first (batch) one: shape ``(B, ...)`` -> ``(B,)``."""
    check_tensor(x, "x")
    if x.ndim == 0:
        raise InputValueError("sum_flat needs a tensor with a batch dimension, got a scalar")
    return x.reshape(x.shape[0], math.prod(x.shape[1:])).sum(dim=1) if x.ndim > 1 else x


def simple_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Per-example squared error, averaged over the non-batch dimensions: shape ``(B,)``.

    mean (pred - target)^2, DDPM's L_simple when target = eps (or the x_0 regression).

    Implements :eq:`eq-ddpm-simple` (chapter ``ddpm_digits``).
    """
    check_floating(pred, "pred")
    check_floating(target, "target")
    check_same_shape(pred, target, "pred", "target")
    if pred.ndim == 0:
        raise InputValueError("simple_loss needs tensors with a batch dimension (B, ...), got scalars")
    return mean_flat((pred - target) ** 2)


def bits_per_dim(nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood in nats (summed over ``num_dims`` dimensions) to bits/dim.

    bits/dim = nats / (num_dims * ln 2)
    """
    num_dims = check_int(num_dims, "num_dims", minimum=1)
    return nats / (num_dims * math.log(2.0))
