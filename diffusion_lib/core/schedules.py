r"""Noise schedules: the variances :math:`\beta_1, \dots, \beta_T` and every quantity derived from them.

Time convention: ``t`` counts from 1 to ``T``. Every per-timestep tensor of a
:class:`NoiseSchedule` has length ``T + 1`` and is indexed by ``t`` directly; index 0 describes
the data ``x_0`` (``beta[0] = 0``, ``alpha[0] = 1``, ``alpha_bar[0] = 1``).

Symbols and code names::

    beta[t]        = beta_t                        (variance added at step t)
    alpha[t]       = alpha_t = 1 - beta_t
    alpha_bar[t]   = abar_t  = prod_{s=1}^{t} alpha_s
    snr[t]         = abar_t / (1 - abar_t)
    posterior_variance[t] = tilde beta_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["SCHEDULE_NAMES", "make_beta", "NoiseSchedule"]

SCHEDULE_NAMES: tuple[str, ...] = ("linear", "cosine", "quadratic", "sigmoid")

# DDPM (Ho et al., 2020) used beta_1 = 1e-4 and beta_T = 0.02 for T = 1000.
_DDPM_BETA_START = 1e-4
_DDPM_BETA_END = 0.02
_DDPM_T = 1000


def _default_endpoints(name: str, T: int, kwargs: dict[str, Any]) -> tuple[float, float]:
    """beta_start, beta_end for the linear-family schedules.

    Defaults are DDPM's endpoints scaled by 1000 / T (Nichol & Dhariwal, 2021), so that a schedule
    with fewer steps still ends near pure noise; explicit ``beta_start`` / ``beta_end`` are used
    as given.
    """
    scale = _DDPM_T / T
    beta_start = check_real(kwargs.pop("beta_start", _DDPM_BETA_START * scale), "beta_start")
    beta_end = check_real(kwargs.pop("beta_end", _DDPM_BETA_END * scale), "beta_end")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise InputValueError(
            f"the {name!r} schedule needs 0 < beta_start <= beta_end < 1, but got "
            f"beta_start={beta_start:g}, beta_end={beta_end:g} (T={T}; the defaults are DDPM's "
            f"1e-4 and 0.02 scaled by 1000/T, which exceed 1 for T < 21). "
            f"Pass beta_start=... and beta_end=... explicitly"
        )
    return beta_start, beta_end


def _reject_leftover(name: str, kwargs: dict[str, Any], allowed: Sequence[str]) -> None:
    if kwargs:
        raise InputTypeError(
            f"unexpected keyword argument(s) {sorted(kwargs)} for the {name!r} schedule; "
            f"it accepts: {', '.join(allowed)}"
        )


def cosine_alpha_bar(t: torch.Tensor, T: int, s: float = 0.008) -> torch.Tensor:
    r"""Nichol & Dhariwal (2021) eq. 17: abar(t) = f(t) / f(0), f(t) = cos^2(((t/T) + s)/(1 + s) * pi/2).

    ``t`` may be any real tensor in [0, T]; the result has its shape and dtype (use float64).

    Implements :eq:`eq-sched-cosine` (chapter ``noise_schedules``).
    """
    def f(u: torch.Tensor) -> torch.Tensor:
        return torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    return f(t) / f(torch.zeros_like(t))


def make_beta(name: str, T: int = 1000, **kwargs: Any) -> torch.Tensor:
    r"""Return beta_1..beta_T (a float64 tensor of length ``T``) for a named schedule.

    * ``"linear"``: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end`` (DDPM).
    * ``"quadratic"``: ``sqrt(beta_t)`` evenly spaced from ``sqrt(beta_start)`` to
      ``sqrt(beta_end)``, then squared.
    * ``"sigmoid"``: ``beta_t = beta_start + (beta_end - beta_start) * sigmoid(u_t)`` with
      ``u_t`` evenly spaced in [-6, 6].
    * ``"cosine"`` (Nichol & Dhariwal, 2021): ``beta_t = min(1 - abar(t)/abar(t-1), max_beta)``
      with ``abar(t) = f(t)/f(0)``, ``f(t) = cos^2(((t/T) + s)/(1 + s) * pi/2)``; keyword
      arguments ``s=0.008``, ``max_beta=0.999``.

    For the three linear-family schedules the defaults are ``beta_start = 1e-4 * 1000/T`` and
    ``beta_end = 0.02 * 1000/T`` (DDPM's values at T = 1000, scaled as in Nichol & Dhariwal so that
    shorter chains still reach noise); explicit keyword values are used unscaled.

    Implements :eq:`eq-sched-linear-family` (chapter ``noise_schedules``).
    Implements :eq:`eq-sched-cosine` (chapter ``noise_schedules``).
    """
    if not isinstance(name, str):
        raise InputTypeError(f"schedule name must be a str, one of {SCHEDULE_NAMES}, got {name!r}")
    check_choice(name, SCHEDULE_NAMES, "schedule name")
    T = check_int(T, "T (number of diffusion steps)", minimum=1)
    kwargs = dict(kwargs)
    if name == "cosine":
        s = check_real(kwargs.pop("s", 0.008), "s")
        max_beta = check_real(kwargs.pop("max_beta", 0.999), "max_beta")
        _reject_leftover(name, kwargs, ["s", "max_beta"])
        if s < 0:
            raise InputValueError(f"the cosine offset s must be >= 0, got {s}")
        if not 0.0 < max_beta < 1.0:
            raise InputValueError(f"max_beta must lie in (0, 1), got {max_beta}")
        t = torch.arange(T + 1, dtype=torch.float64)
        abar = cosine_alpha_bar(t, T, s)
        beta = 1.0 - abar[1:] / abar[:-1]
        return beta.clamp(max=max_beta)
    beta_start, beta_end = _default_endpoints(name, T, kwargs)
    _reject_leftover(name, kwargs, ["beta_start", "beta_end"])
    if name == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    if name == "quadratic":
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    # sigmoid
    u = torch.linspace(-6.0, 6.0, T, dtype=torch.float64)
    return beta_start + (beta_end - beta_start) * torch.sigmoid(u)


class NoiseSchedule:
    r"""All per-timestep constants of a Gaussian diffusion, derived from beta_1..beta_T.

    Built in float64, stored as float32 (or ``dtype``) tensors of length ``T + 1`` indexed by t;
    index 0 describes the data x_0:

    ========================================  =======================================================
    attribute                                 value at index t (t = 1..T); index 0
    ========================================  =======================================================
    ``beta``                                  beta_t; 0
    ``alpha``                                 alpha_t = 1 - beta_t; 1
    ``alpha_bar``                             abar_t = prod_{s<=t} alpha_s; 1
    ``alpha_bar_prev``                        abar_{t-1}; 1
    ``sqrt_alpha_bar``                        sqrt(abar_t); 1
    ``sqrt_one_minus_alpha_bar``              sqrt(1 - abar_t); 0
    ``sqrt_recip_alpha_bar``                  1 / sqrt(abar_t); 1
    ``sqrt_recipm1_alpha_bar``                sqrt(1 / abar_t - 1); 0
    ``snr``                                   abar_t / (1 - abar_t); inf
    ``log_snr``                               log snr_t; inf
    ``posterior_variance``                    tilde beta_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
                                              (tilde beta_1 = 0); 0
    ``posterior_log_variance_clipped``        log tilde beta_t, with index 1 (and 0) set to
                                              log tilde beta_2 as in DDPM (log 0 is -inf)
    ``posterior_mean_coef_x0``                sqrt(abar_{t-1}) beta_t / (1 - abar_t); 1 (as t = 1)
    ``posterior_mean_coef_xt``                sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t); 0
    ========================================  =======================================================

    The posterior is q(x_{t-1} | x_t, x_0) = N(coef_x0 * x_0 + coef_xt * x_t, tilde beta_t I).

    Args:
        betas: 1-D tensor (or sequence) of beta_1..beta_T, each in the open interval (0, 1).
        name: optional label (set by :meth:`from_name`).
        dtype: storage dtype of the derived tensors (default float32; float64 for precise checks).

    Implements :eq:`eq-alpha-bar` (chapter ``forward_process``).
    Implements :eq:`eq-snr` (chapter ``forward_process``).
    Implements :eq:`eq-forward-step` (chapter ``forward_process``).
    """

    _TENSOR_ATTRS: tuple[str, ...] = (
        "beta",
        "alpha",
        "alpha_bar",
        "alpha_bar_prev",
        "sqrt_alpha_bar",
        "sqrt_one_minus_alpha_bar",
        "sqrt_recip_alpha_bar",
        "sqrt_recipm1_alpha_bar",
        "snr",
        "log_snr",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef_x0",
        "posterior_mean_coef_xt",
    )

    def __init__(
        self,
        betas: torch.Tensor | Sequence[float],
        name: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(betas, torch.Tensor):
            try:
                betas = torch.as_tensor(betas, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError):
                raise InputTypeError(
                    f"betas must be a 1-D tensor or a sequence of floats, got {type(betas).__name__}"
                ) from None
        if betas.ndim != 1:
            raise InputValueError(
                f"betas must be a 1-D tensor of beta_1..beta_T, but got a tensor of shape "
                f"{tuple(betas.shape)}"
            )
        if betas.numel() == 0:
            raise InputValueError("betas is empty: a schedule needs at least one step (T >= 1)")
        if not (betas.is_floating_point() or betas.dtype in (torch.int32, torch.int64)):
            raise InputTypeError(f"betas must be real numbers, got dtype {betas.dtype}")
        b = betas.detach().to("cpu", torch.float64)
        bad = torch.nonzero(~torch.isfinite(b))
        if bad.numel() > 0:
            i = int(bad[0])
            raise InputValueError(
                f"every beta_t must be finite, but beta at position {i} (t={i + 1}) is {b[i].item()}"
            )
        bad = torch.nonzero((b <= 0) | (b >= 1))
        if bad.numel() > 0:
            i = int(bad[0])
            raise InputValueError(
                f"every beta_t must lie strictly between 0 and 1 (it is the variance of the noise "
                f"added at step t, and alpha_t = 1 - beta_t must stay positive), but beta at "
                f"position {i} (t={i + 1}) is {b[i].item():g}"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")

        self.T: int = int(b.numel())
        self.name: str | None = name
        self.dtype: torch.dtype = dtype
        self.device: torch.device = torch.device("cpu")

        one = torch.ones(1, dtype=torch.float64)
        zero = torch.zeros(1, dtype=torch.float64)
        beta = torch.cat([zero, b])  # beta_0 = 0
        alpha = 1.0 - beta  # alpha_t = 1 - beta_t
        alpha_bar = torch.cumprod(alpha, dim=0)  # abar_t = prod_{s<=t} alpha_s, abar_0 = 1
        alpha_bar_prev = torch.cat([one, alpha_bar[:-1]])  # abar_{t-1}; index 0 set to 1
        # 1 - abar_t computed as 1 - prod(1 - beta) loses digits when abar_t is near 1; the
        # product form -expm1(sum log(1 - beta)) keeps them.
        one_minus_alpha_bar = -torch.expm1(torch.cumsum(torch.log1p(-beta), dim=0))
        one_minus_alpha_bar[0] = 0.0  # exactly +0 (expm1 gives -0.0, which would flip inf signs)
        snr = alpha_bar / one_minus_alpha_bar  # abar_t / (1 - abar_t); inf at t = 0
        one_minus_alpha_bar_prev = torch.cat([zero, one_minus_alpha_bar[:-1]])

        # tilde beta_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); define index 0 as 0.
        safe_denominator = torch.where(one_minus_alpha_bar > 0, one_minus_alpha_bar, one)
        posterior_variance = beta * one_minus_alpha_bar_prev / safe_denominator
        posterior_variance[0] = 0.0
        # log tilde beta_t is -inf at t = 1 (tilde beta_1 = 0); DDPM replaces it by log tilde beta_2.
        clipped = posterior_variance.clone()
        clipped[0] = clipped[1] = posterior_variance[2] if self.T >= 2 else beta[1]
        posterior_log_variance_clipped = torch.log(clipped)
        # posterior mean coefficients; at t = 1 they are exactly (1, 0): the mean is x_0.
        coef_x0 = alpha_bar_prev.sqrt() * beta / safe_denominator
        coef_xt = alpha.sqrt() * one_minus_alpha_bar_prev / safe_denominator
        coef_x0[0], coef_xt[0] = 1.0, 0.0

        derived = {
            "beta": beta,
            "alpha": alpha,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(),
            "sqrt_one_minus_alpha_bar": one_minus_alpha_bar.sqrt(),
            "sqrt_recip_alpha_bar": alpha_bar.rsqrt(),
            "sqrt_recipm1_alpha_bar": (one_minus_alpha_bar / alpha_bar).sqrt(),
            "snr": snr,
            "log_snr": snr.log(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_log_variance_clipped,
            "posterior_mean_coef_x0": coef_x0,
            "posterior_mean_coef_xt": coef_xt,
        }
        self._float64: dict[str, torch.Tensor] = derived
        for key, value in derived.items():
            setattr(self, key, value.to(dtype))

    # -- type annotations for the attributes set in __init__ ---------------------------------
    beta: torch.Tensor
    alpha: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor
    sqrt_alpha_bar: torch.Tensor
    sqrt_one_minus_alpha_bar: torch.Tensor
    sqrt_recip_alpha_bar: torch.Tensor
    sqrt_recipm1_alpha_bar: torch.Tensor
    snr: torch.Tensor
    log_snr: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef_x0: torch.Tensor
    posterior_mean_coef_xt: torch.Tensor

    @classmethod
    def from_name(cls, name: str, T: int = 1000, dtype: torch.dtype = torch.float32, **kwargs: Any) -> "NoiseSchedule":
        """Build the schedule ``make_beta(name, T, **kwargs)`` and label it with ``name``."""
        return cls(make_beta(name, T, **kwargs), name=name, dtype=dtype)

    @property
    def betas(self) -> torch.Tensor:
        """beta_1..beta_T as a float64 CPU tensor of length T (the constructor's input)."""
        return self._float64["beta"][1:].clone()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "NoiseSchedule":
        """Move (and optionally cast) every per-timestep tensor in place; returns ``self``.

        Casting re-derives from the float64 master copy, so float32 -> float64 loses nothing.
        """
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            if not dtype.is_floating_point:
                raise InputTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
            self.dtype = dtype
        for key in self._TENSOR_ATTRS:
            setattr(self, key, self._float64[key].to(device=self.device, dtype=self.dtype))
        return self

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        label = f"name={self.name!r}, " if self.name is not None else ""
        b = self._float64["beta"]
        abar_T = self._float64["alpha_bar"][-1].item()
        return (
            f"NoiseSchedule({label}T={self.T}, beta_1={b[1].item():.3g}, beta_T={b[-1].item():.3g}, "
            f"alpha_bar_T={abar_T:.3g}, dtype={self.dtype}, device={self.device})"
        )
