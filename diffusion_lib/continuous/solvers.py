r"""Fast deterministic samplers of the probability-flow ODE for an eps-prediction model.

Any diffusion with x_t = alpha_t x_0 + sigma_t eps has, in the variables of Karras et al. 2022
(eq. 4 with s(t) = alpha_t),

    x_tilde = x / alpha,    sigma_tilde = sigma / alpha,    d x_tilde / d sigma_tilde = eps(x, t),

an ODE whose velocity is the noise prediction itself (Song et al. 2021, eq. 13, rewritten). The
solvers below take ``eps_fn(x, t)`` and an :class:`ODEGrid`: decreasing times t_0 > ... > t_N with
their alpha and sigma. The grid comes from the continuous :class:`~diffusion_lib.continuous.sde.VPSDE`
(:func:`time_grid`, float times in [0, 1]) or from a discrete ``GaussianDiffusion``
(:func:`discrete_grid`: integer timesteps in 1..T, then t = 0 with alpha = 1, sigma = 0), so one
solver serves both. With h_i = sigma_tilde_{i+1} - sigma_tilde_i and eps_i = eps_fn(x_i, t_i):

* :func:`euler`:  x_tilde_{i+1} = x_tilde_i + h_i eps_i. This *is* DDIM with eta = 0
  (Song, Meng & Ermon 2021, eq. 13): x_{i+1} = alpha_{i+1} x0_hat + sigma_{i+1} eps_i.
* :func:`heun`: Karras et al. 2022, Algorithm 1 (without churn): an Euler predictor, then the
  trapezoidal corrector x_tilde_{i+1} = x_tilde_i + h_i (eps_i + eps(x'_{i+1}, t_{i+1})) / 2; the last
  step to sigma = 0 stays an Euler step. Second order, 2 N - 1 evaluations.
* :func:`dpm_solver_pp_2m`: Lu et al. 2022 (DPM-Solver++, Algorithm 2), multistep in
  lambda = log(alpha / sigma) with the data prediction D_i = (x_i - sigma_i eps_i) / alpha_i.
  With e^{-h_i} = sigma_tilde_{i+1} / sigma_tilde_i and r_i = h_{i-1} / h_i,

      D'_i = (1 + 1/(2 r_i)) D_i - 1/(2 r_i) D_{i-1}     (D'_0 = D_0: the first step is first order)
      x_tilde_{i+1} = e^{-h_i} x_tilde_i + (1 - e^{-h_i}) D'_i,

  and the last step to sigma = 0 is first order (x = D_i), as h is infinite there.

Every solver carries the state in float64 (eps_fn still receives x in its own dtype) and returns an
:class:`ODESample` in x's dtype with the number of network evaluations (NFE).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.continuous import _args as check
from diffusion_lib.continuous.sde import VPSDE
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "ODESample",
    "ODEGrid",
    "GRID_KINDS",
    "SOLVERS",
    "time_grid",
    "discrete_grid",
    "euler",
    "heun",
    "dpm_solver_pp_2m",
    "solve",
    "sample_digits_ode",
]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GRID_KINDS: tuple[str, ...] = ("uniform", "quadratic", "karras")
KARRAS_RHO = 7.0  # Karras et al. 2022, eq. 5 and Table 1


@dataclass(frozen=True)
class ODESample:
    """The solver's result: the final point ``x`` and ``nfe``, the number of eps_fn evaluations."""

    x: torch.Tensor
    nfe: int


@dataclass(frozen=True)
class ODEGrid:
    r"""Decreasing times t_0 > ... > t_N with alpha_i, sigma_i (float64 tensors of length N + 1).

    ``times`` holds floats (continuous time) or ints (discrete timesteps, the last one may be 0);
    ``sigma_tilde`` = sigma / alpha is the solvers' integration variable.
    """

    times: tuple[float, ...] | tuple[int, ...]
    alpha: torch.Tensor
    sigma: torch.Tensor

    @property
    def discrete(self) -> bool:
        """Whether the times are integer timesteps (then eps_fn gets a LongTensor t)."""
        return all(isinstance(t, int) for t in self.times)

    @property
    def sigma_tilde(self) -> torch.Tensor:
        """sigma / alpha at each grid point (Karras et al. 2022's sigma)."""
        return self.sigma / self.alpha

    def __len__(self) -> int:
        return len(self.times) - 1  # the number of steps


# ------------------------------------------------------------------------------------------ grids
def _unit_steps(n: int) -> torch.Tensor:
    return torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)  # u_i = i / n


def _karras_levels(sigma_max: float, sigma_min: float, n: int, rho: float) -> torch.Tensor:
    """sigma_i = (sigma_max^{1/rho} + i/n (sigma_min^{1/rho} - sigma_max^{1/rho}))^rho (Karras et al. 2022, eq. 5)."""
    u = _unit_steps(n)
    return (sigma_max ** (1.0 / rho) + u * (sigma_min ** (1.0 / rho) - sigma_max ** (1.0 / rho))) ** rho


def time_grid(
    kind: str, n: int, sde: VPSDE | None = None, t_start: float = 1.0, t_end: float = 1e-3, rho: float = KARRAS_RHO
) -> ODEGrid:
    r"""An n-step grid of continuous times t_0 = t_start > ... > t_n = t_end for the VP SDE ``sde``.

    * ``"uniform"``: t_i = t_start + i/n (t_end - t_start);
    * ``"quadratic"``: t_i = t_end + (t_start - t_end) (1 - i/n)^2 (denser near the data, as DDIM's
      quadratic timesteps, Song, Meng & Ermon 2021, appendix D.2);
    * ``"karras"``: sigma_tilde spaced as Karras et al. 2022, eq. 5 with ``rho`` (7) between
      sigma_tilde(t_start) and sigma_tilde(t_end), mapped back to t (:meth:`VPSDE.t_from_sigma_tilde`).

    ``sde`` defaults to ``VPSDE()``. The solvers stop at t_end (alpha < 1, sigma > 0).
    """
    kind = check_choice(kind, GRID_KINDS, "grid kind")
    n = check.steps(n, "n")
    t_start, t_end = check.interval(t_start, t_end)
    rho = check_real(rho, "rho", minimum=0.0, strict=True)
    if sde is None:
        sde = VPSDE()
    if not isinstance(sde, VPSDE):
        raise InputTypeError(f"sde must be a VPSDE, got {type(sde).__name__}")
    u = _unit_steps(n)
    if kind == "uniform":
        t = t_start + u * (t_end - t_start)
    elif kind == "quadratic":
        t = t_end + (t_start - t_end) * (1.0 - u) ** 2
    else:
        if t_end == 0.0:
            raise InputValueError("the 'karras' grid needs t_end > 0 (sigma_tilde(0) = 0 has no rho-th root to space)")
        levels = _karras_levels(float(sde.sigma_tilde(t_start)), float(sde.sigma_tilde(t_end)), n, rho)
        t = sde.t_from_sigma_tilde(levels).clamp(t_end, t_start)
        t[0], t[-1] = t_start, t_end
    return ODEGrid(tuple(float(v) for v in t), sde._alpha(t), sde._sigma(t))


def _strictly_decreasing(steps: list[int]) -> list[int]:
    """Make rounded timesteps strictly decreasing and >= 1, keeping them <= their first value."""
    out = list(steps)
    for i in range(1, len(out)):
        out[i] = min(out[i], out[i - 1] - 1)
    out[-1] = max(out[-1], 1)
    for i in range(len(out) - 2, -1, -1):
        out[i] = max(out[i], out[i + 1] + 1)
    return out


KARRAS_SIGMA_MAX = 80.0  # Karras et al. 2022, Table 1 (sigma_max of the VP, VE and EDM samplers they compare)


def discrete_grid(
    diffusion: GaussianDiffusion, kind: str, n: int, rho: float = KARRAS_RHO,
    sigma_max: float = KARRAS_SIGMA_MAX, sigma_min: float | None = None,
) -> ODEGrid:
    r"""An n-step grid of distinct integer timesteps tau_1 > ... > tau_n >= 1, then 0, for a discrete diffusion.

    alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t) (alpha = 1, sigma = 0 at t = 0), in float64.

    * ``"uniform"``: round(linspace(T, 1, n)), the same timesteps as ``diffusion.ddim_timesteps(n)``;
    * ``"quadratic"``: round(1 + (T - 1) (1 - i/(n-1))^2); both start at tau_1 = T;
    * ``"karras"``: the timesteps nearest in sigma_tilde = sqrt(1/abar_t - 1) to Karras et al. 2022's
      eq. 5 levels (``rho`` = 7) from sigma_tilde(tau_1) down to ``sigma_min`` (default sigma_tilde_1),
      where tau_1 is the largest timestep with sigma_tilde <= ``sigma_max`` (default 80, Karras et al.
      2022, Table 1), or T if sigma_tilde_T is smaller.

    Why the karras grid stops at sigma_max. For DDPM's cosine schedule with T = 1000, abar_T = 2.4e-9,
    so sigma_tilde_T = sqrt(1/abar_T - 1) = 2.0e4 (the linear schedule: 157). Eq. 5's levels
    between 2.0e4 and sigma_tilde_1 = 6.4e-3 put half the steps at t >= 995: the grid was
    (1000, 999, 998, 997, 996, 995, 984, 896, 260, 1, 0) for n = 10. From sigma_max = 80 it is
    (991, 984, 969, 936, 858, 675, 355, 111, 20, 1, 0) for this schedule (tau_1 = 991; still dense
    near tau_1, because sigma_tilde of the cosine schedule falls from 80 at t = 991 to 10 at t = 936).

    Why x_T ~ N(0, I) is an accurate start at tau_1. There x = alpha x_0 + sigma eps with
    alpha = 1 / sqrt(1 + sigma_tilde^2) <= 1 / sqrt(1 + 80^2) = 0.0125 and sigma = 80 alpha >= 0.99992,
    so for data in [-1, 1] the marginal differs from N(0, I) by a mean shift of at most 0.0125 and a
    standard deviation short by at most 8e-5: the same order as the prior mismatch that DDPM's linear
    schedule accepts at t = T (alpha_T = 0.0064), and far below what the network's eps error does
    in the steps above tau_1 (there x0_hat = (x - sigma eps_hat) / alpha multiplies that error by 1/alpha,
    up to 2.0e4 at t = T for the cosine schedule).

    Rounding can repeat a timestep; repeats are moved down (then up) by one until the sequence is
    strictly decreasing, so there are always n distinct model evaluations. Needs n <= T (for karras,
    n <= tau_1).
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    kind = check_choice(kind, GRID_KINDS, "grid kind")
    n = check.steps(n, "n")
    rho = check_real(rho, "rho", minimum=0.0, strict=True)
    sigma_max = check_real(sigma_max, "sigma_max", minimum=0.0, strict=True)
    if sigma_min is not None:
        sigma_min = check_real(sigma_min, "sigma_min", minimum=0.0, strict=True)
    T = diffusion.T
    if n > T:
        raise InputValueError(f"n must be <= T = {T} (each step needs its own timestep), got {n}")
    betas = diffusion.schedule.betas  # float64 master copy
    alpha_bar = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - betas]), dim=0)
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    if kind == "uniform":
        steps = torch.round(T + u * (1 - T))
    elif kind == "quadratic":
        steps = torch.round(1 + (T - 1) * (1.0 - u) ** 2)
    else:
        steps = _karras_steps(alpha_bar, n, rho, sigma_max, sigma_min)
    taus = _strictly_decreasing([int(s) for s in steps.tolist()]) + [0]
    index = torch.tensor(taus, dtype=torch.long)
    return ODEGrid(tuple(taus), alpha_bar[index].sqrt(), (1.0 - alpha_bar[index]).clamp(min=0.0).sqrt())


def _karras_steps(alpha_bar: torch.Tensor, n: int, rho: float, sigma_max: float, sigma_min: float | None) -> torch.Tensor:
    """n timesteps (float64, before de-duplication) nearest to eq. 5's levels from sigma_tilde(tau_1) to sigma_min."""
    sigma_tilde = torch.sqrt((1.0 - alpha_bar[1:]) / alpha_bar[1:])  # index t - 1, increasing in t
    below = torch.nonzero(sigma_tilde <= sigma_max).flatten()
    if below.numel() == 0:
        raise InputValueError(f"sigma_max = {sigma_max:g} is below sigma_tilde_1 = {float(sigma_tilde[0]):.3g}, so no "
                              f"timestep has sigma_tilde <= sigma_max; pass a larger sigma_max (Karras et al. use 80)")
    start = int(below.max()) + 1  # tau_1: the largest timestep with sigma_tilde <= sigma_max
    if n > start:
        raise InputValueError(f"n = {n} is more than the {start} timesteps with sigma_tilde <= sigma_max = "
                              f"{sigma_max:g}; pass n <= {start} or a larger sigma_max")
    top = float(sigma_tilde[start - 1])
    low = float(sigma_tilde[0]) if sigma_min is None else sigma_min
    if not low < top:
        raise InputValueError(f"sigma_min must be smaller than sigma_tilde(tau_1) = {top:.3g} (the grid runs from "
                              f"noise towards data), got sigma_min = {low:g}")
    levels = _karras_levels(top, low, max(n - 1, 1), rho)[:n]
    nearest = torch.argmin((sigma_tilde[None, :start] - levels[:, None]).abs(), dim=1)
    return 1 + nearest.to(torch.float64)


# ------------------------------------------------------------------------------------------ solvers
def _check_solver(eps_fn: Any, x: Any, grid: Any) -> None:
    check.function(eps_fn, "eps_fn", "eps_fn(x, t) returning the predicted noise with x's shape")
    check.data(x, "x")
    if not isinstance(grid, ODEGrid):
        raise InputTypeError(f"grid must be an ODEGrid (from time_grid or discrete_grid), got {type(grid).__name__}")
    for name in ("alpha", "sigma"):
        value = getattr(grid, name)
        if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.shape[0] != len(grid.times):
            raise InputValueError(f"grid.{name} must be a 1-D tensor with one entry per time ({len(grid.times)}); "
                                  f"build the grid with time_grid or discrete_grid")
        check.data(value, f"grid.{name}")
    if len(grid) < 1 or bool((grid.alpha <= 0).any()) or bool((grid.sigma[:-1] <= 0).any()):
        raise InputValueError("grid must have at least one step, alpha > 0 everywhere and sigma > 0 before its end")
    if bool((grid.sigma_tilde[1:] >= grid.sigma_tilde[:-1]).any()):
        raise InputValueError("grid must run from noise towards data: sigma / alpha strictly decreasing")


def _state_dtype(x: torch.Tensor) -> torch.dtype:
    """The solvers carry x in float64 (MPS has none: there in x's dtype); eps_fn still gets x's dtype."""
    return x.dtype if x.device.type == "mps" else torch.float64


def _evaluator(eps_fn: EpsFn, grid: ODEGrid, x: torch.Tensor) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """eps at grid point i, with t as a LongTensor (discrete grid) or a float tensor (B,).

    The state arrives in the solver's float64; eps_fn receives it in the caller's dtype (a float32
    network stays float32) and must return a finite tensor of its shape, which comes back in float64.
    """
    discrete = grid.discrete
    in_dtype, state_dtype = x.dtype, _state_dtype(x)

    def eps_at(x_i: torch.Tensor, i: int) -> torch.Tensor:
        t = grid.times[i]
        if discrete:
            t_b = torch.full((x_i.shape[0],), int(t), dtype=torch.long, device=x_i.device)
        else:
            t_b = torch.full((x_i.shape[0],), float(t), dtype=in_dtype, device=x_i.device)
        out = eps_fn(x_i.to(in_dtype), t_b)
        if not isinstance(out, torch.Tensor) or out.shape != x_i.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputValueError(f"eps_fn(x, t) must return the predicted noise with x's shape {tuple(x_i.shape)}, "
                                  f"but returned {got}")
        return out.to(state_dtype)

    return eps_at


def euler(eps_fn: EpsFn, x: torch.Tensor, grid: ODEGrid) -> ODESample:
    """Euler in (sigma_tilde, x_tilde): x_tilde <- x_tilde + (sigma_tilde' - sigma_tilde) eps.

    On the same grid this is DDIM with eta = 0 (Song, Meng & Ermon 2021, eq. 13), to round-off.
    The state is carried in float64 and returned in x's dtype.

    Implements :eq:`eq-ode-sigma-tilde` (chapter ``sde``) and :eq:`eq-ddim-euler` (chapter ``sde``).
    """
    _check_solver(eps_fn, x, grid)
    eps_at = _evaluator(eps_fn, grid, x)
    alpha, sig = grid.alpha.tolist(), grid.sigma_tilde.tolist()
    out_dtype, x = x.dtype, x.to(_state_dtype(x))
    for i in range(len(grid)):
        x_tilde = x / alpha[i]
        x = alpha[i + 1] * (x_tilde + (sig[i + 1] - sig[i]) * eps_at(x, i))
    return ODESample(x.to(out_dtype), len(grid))


def heun(eps_fn: EpsFn, x: torch.Tensor, grid: ODEGrid) -> ODESample:
    r"""Heun's second-order method in (sigma_tilde, x_tilde), Karras et al. 2022, Algorithm 1 (no churn).

    Large steps in sigma_tilde. Write the network's data prediction D_i = x_tilde_i - sigma_tilde_i eps_i.
    The corrector adds (h/2) (eps_{i+1} - eps_i) to Euler's step, and with the predictor
    x'_{i+1} = D_i + sigma_tilde_{i+1} eps_i that is exactly

        x_tilde_{i+1} - x_tilde_{i+1}^Euler = (sigma_tilde_i / sigma_tilde_{i+1} - 1) / 2 * (D(x'_{i+1}) - D_i),

    half the step ratio times the change of the denoiser across the step. A grid whose first step
    has a large ratio amplifies that change: DDPM's cosine schedule (T = 1000) has sigma_tilde_T = 2.0e4,
    the "quadratic" grid's first step 1000 -> 790 has ratio 6.9e3, and the digit model's x0_hat at
    t = T, (x - sigma eps_hat) / alpha with alpha_T = 4.9e-5, is off by up to 3.9e3, so without
    x0 clipping Heun returns values up to 2e6 where Euler (whose error is alpha_{i+1} D_i) stays near 400.
    This is the method itself, not round-off: the same steps in float64 give the same 2.0e6, and on
    exact Gaussian data with abar_T = 1e-9 float32 Heun matches the closed-form ODE solution
    (tests/test_continuous.py). Use the "karras" grid of :func:`discrete_grid` (it starts at
    sigma_tilde <= 80, where the step ratios are moderate), ``clip_x0=True``, or DPM-Solver++(2M),
    whose exponential integrator weights D_i by 1 - e^{-h} <= 1.
    """
    _check_solver(eps_fn, x, grid)
    eps_at = _evaluator(eps_fn, grid, x)
    alpha, sig = grid.alpha.tolist(), grid.sigma_tilde.tolist()
    out_dtype, x = x.dtype, x.to(_state_dtype(x))
    nfe = 0
    for i in range(len(grid)):
        h = sig[i + 1] - sig[i]
        x_tilde = x / alpha[i]
        d_i = eps_at(x, i)
        x_tilde_next = x_tilde + h * d_i  # Euler predictor
        nfe += 1
        if sig[i + 1] > 0:  # trapezoidal corrector (not at sigma = 0, where eps is undefined)
            d_next = eps_at(alpha[i + 1] * x_tilde_next, i + 1)
            x_tilde_next = x_tilde + 0.5 * h * (d_i + d_next)
            nfe += 1
        x = alpha[i + 1] * x_tilde_next
    return ODESample(x.to(out_dtype), nfe)


def dpm_solver_pp_2m(eps_fn: EpsFn, x: torch.Tensor, grid: ODEGrid) -> ODESample:
    r"""DPM-Solver++(2M), Lu et al. 2022 (DPM-Solver++, Algorithm 2): second-order multistep in lambda = log(alpha/sigma).

    One evaluation per step; the first step and a last step to sigma = 0 are first order.
    """
    _check_solver(eps_fn, x, grid)
    eps_at = _evaluator(eps_fn, grid, x)
    alpha, sigma, sig = grid.alpha.tolist(), grid.sigma.tolist(), grid.sigma_tilde.tolist()
    out_dtype, x = x.dtype, x.to(_state_dtype(x))
    d_prev: torch.Tensor | None = None
    h_prev = 0.0
    for i in range(len(grid)):
        d_i = (x - sigma[i] * eps_at(x, i)) / alpha[i]  # the data prediction x0_hat
        x_tilde = x / alpha[i]
        if sig[i + 1] == 0:
            x_tilde_next = d_i  # h = infinity: first order, x = x0_hat
        else:
            h = math.log(sig[i] / sig[i + 1])  # lambda_{i+1} - lambda_i
            d_used = d_i
            if d_prev is not None:
                r = h_prev / h
                d_used = (1.0 + 1.0 / (2.0 * r)) * d_i - (1.0 / (2.0 * r)) * d_prev
            ratio = sig[i + 1] / sig[i]  # e^{-h}
            x_tilde_next = ratio * x_tilde + (1.0 - ratio) * d_used
            h_prev = h
        d_prev = d_i
        x = alpha[i + 1] * x_tilde_next
    return ODESample(x.to(out_dtype), len(grid))


SOLVERS: dict[str, Callable[[EpsFn, torch.Tensor, ODEGrid], ODESample]] = {
    "euler": euler,
    "ddim": euler,
    "heun": heun,
    "dpm_solver_pp_2m": dpm_solver_pp_2m,
}


def solve(eps_fn: EpsFn, x: torch.Tensor, grid: ODEGrid, solver: str = "heun") -> ODESample:
    """Run the named solver (one of :data:`SOLVERS`: ``"euler"`` (= ``"ddim"``), ``"heun"``, ``"dpm_solver_pp_2m"``)."""
    check_choice(solver, tuple(SOLVERS), "solver")
    return SOLVERS[solver](eps_fn, x, grid)


def sample_digits_ode(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    num_images: int,
    solver: str = "heun",
    num_steps: int = 10,
    grid: str = "karras",
    generator: torch.Generator | None = None,
    shape: Sequence[int] = (1, 8, 8),
    clip_x0: bool = False,
    model_kwargs: dict | None = None,
) -> ODESample:
    r"""Sample ``num_images`` images from a trained discrete model by solving the probability-flow ODE.

    x_T ~ N(0, I) (drawn with ``generator`` in the schedule's dtype and device), then ``solver``
    along ``discrete_grid(diffusion, grid, num_steps)``; the network is read through
    ``diffusion.p_mean_variance(model, x, t)["pred_eps"]`` (Song et al. 2021, eq. 13 in Karras et al.
    2022's variables), so eps- and x0-predicting models both work, and ``clip_x0`` clips x0_hat to
    [-1, 1] before eps is recomputed. Runs under torch.no_grad(). Returns the images and the NFE.
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    check.function(model, "model", "model(x_t, t)")
    num_images = check_int(num_images, "num_images", minimum=1)
    check_choice(solver, tuple(SOLVERS), "solver")
    check.generator(generator)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape:
        raise InputTypeError(f"shape must be a non-empty tuple of ints such as (1, 8, 8), got {shape!r}")
    shape = tuple(check_int(s, "each entry of shape", minimum=1) for s in shape)
    ode_grid = discrete_grid(diffusion, grid, num_steps)
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise InputTypeError(f"model_kwargs must be a dict of extra model arguments or None, got "
                             f"{type(model_kwargs).__name__}")
    kwargs = dict(model_kwargs or {})

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return diffusion.p_mean_variance(model, x, t, clip_x0=bool(clip_x0), model_kwargs=kwargs)["pred_eps"]

    s = diffusion.schedule
    x_T = torch.randn((num_images, *shape), generator=generator, dtype=s.dtype, device=s.device)
    with torch.no_grad():
        return SOLVERS[solver](eps_fn, x_T, ode_grid)
