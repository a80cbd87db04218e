r"""The variance-preserving SDE: DDPM's noising chain in continuous time (Song et al. 2021).

Continuous time runs over t in [0, 1] (0 is the data, 1 is noise). The forward process is the
Itô SDE (Song et al. 2021, eqs. 11 and 32)

    dx = f(x, t) dt + g(t) dW,    f(x, t) = -1/2 beta(t) x,    g(t) = sqrt(beta(t)),

with the linear rate beta(t) = beta_min + t (beta_max - beta_min) (defaults 0.1 and 20). Its
transition from the data is Gaussian and known in closed form (Song et al. 2021, eq. 33):

    B(t)      = int_0^t beta(s) ds = beta_min t + 1/2 t^2 (beta_max - beta_min)
    alpha(t)  = exp(-1/2 B(t))               (the continuous sqrt(abar))
    sigma(t)  = sqrt(1 - alpha(t)^2)
    x_t       = alpha(t) x_0 + sigma(t) eps,  eps ~ N(0, I)
    log_snr(t) = log(alpha^2 / sigma^2) = -log(expm1(B(t)))
    sigma_tilde(t) = sigma / alpha = sqrt(expm1(B(t)))   (Karras et al. 2022's noise level)

Reversing time (Anderson 1982; Song et al. 2021, eq. 6) gives the reverse SDE and the
probability-flow ODE with the same marginals p_t (Song et al. 2021, eq. 13):

    dx = [f(x, t) - g(t)^2 grad log p_t(x)] dt + g(t) dW_bar      (t running from 1 to 0)
    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x).

Relation to the discrete chain. DDPM's T steps x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z are an
Euler-Maruyama discretisation of this SDE with step 1/T at the times t/T: for T = 1000 and the
defaults, beta_t (discrete) ~= beta(t/T) / T, so beta_min / T = 1e-4 and beta_max / T = 0.02 are
DDPM's endpoints, and abar_t ~= alpha(t/T)^2. The two differ at O(1/T), because a step multiplies
by 1 - beta_t where the SDE multiplies by exp(-beta_t): for DDPM's linear schedule with T = 1000 the
relative difference is 0.6% at t = T/2 and the largest absolute difference 8.1e-4 (measured in
tests/test_continuous.py). :meth:`VPSDE.discrete_betas` gives the betas for which abar_t = alpha(t/T)^2
holds exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.continuous import _args as check
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["VPSDE", "ScoreFn", "ODE_METHODS"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ODE_METHODS: tuple[str, ...] = ("euler", "heun", "rk4")


class VPSDE:
    r"""The variance-preserving SDE dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW on t in [0, 1].

    beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, eq. 32; defaults 0.1 and 20).
    Time arguments ``t`` are a real number in [0, 1] or a float tensor: 0-d, or one time per
    example of shape (B,); schedule functions return float64 tensors of ``t``'s shape (float input:
    0-d), the x-valued methods return tensors of ``x``'s shape and dtype. A ``score_fn(x, t)``
    receives ``t`` as a float tensor of shape (B,) in ``x``'s dtype.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        beta_min = check_real(beta_min, "beta_min", minimum=0.0, strict=True)
        beta_max = check_real(beta_max, "beta_max", minimum=0.0, strict=True)
        if beta_max < beta_min:
            raise InputValueError(f"beta_max must be >= beta_min (beta(t) rises from beta_min at t = 0 to beta_max "
                                  f"at t = 1), but got beta_min={beta_min:g}, beta_max={beta_max:g}")
        self.beta_min = beta_min
        self.beta_max = beta_max

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"

    # ------------------------------------------------------------------ schedule in closed form
    @staticmethod
    def _as_tensor(t: float | torch.Tensor) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t.to(torch.float64)  # a float32 time still gets float64 schedule values, as documented
        return torch.tensor(float(t), dtype=torch.float64)

    def _beta(self, t: float | torch.Tensor) -> torch.Tensor:
        return self.beta_min + self._as_tensor(t) * (self.beta_max - self.beta_min)

    def _integrated_beta(self, t: float | torch.Tensor) -> torch.Tensor:
        t = self._as_tensor(t)
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def _alpha(self, t: float | torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self._integrated_beta(t))

    def _sigma(self, t: float | torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(-self._integrated_beta(t)))  # sqrt(1 - alpha^2) without cancellation

    def beta(self, t: float | torch.Tensor) -> torch.Tensor:
        """beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, eq. 32)."""
        return self._beta(check.unit_time(t))

    def integrated_beta(self, t: float | torch.Tensor) -> torch.Tensor:
        """B(t) = int_0^t beta(s) ds = beta_min t + 1/2 t^2 (beta_max - beta_min)."""
        return self._integrated_beta(check.unit_time(t))

    def alpha(self, t: float | torch.Tensor) -> torch.Tensor:
        """alpha(t) = exp(-1/2 B(t)), the mean coefficient of x_t given x_0 (Song et al. 2021, eq. 33)."""
        return self._alpha(check.unit_time(t))

    def sigma(self, t: float | torch.Tensor) -> torch.Tensor:
        """sigma(t) = sqrt(1 - alpha(t)^2), the standard deviation of x_t given x_0 (Song et al. 2021, eq. 33)."""
        return self._sigma(check.unit_time(t))

    def log_snr(self, t: float | torch.Tensor) -> torch.Tensor:
        """log SNR(t) = log(alpha^2 / sigma^2) = -log(expm1(B(t))) (+inf at t = 0)."""
        return -torch.log(torch.expm1(self._integrated_beta(check.unit_time(t))))

    def sigma_tilde(self, t: float | torch.Tensor) -> torch.Tensor:
        """sigma_tilde(t) = sigma / alpha = sqrt(expm1(B(t))), the noise level of x / alpha (Karras et al. 2022, eq. 4)."""
        return torch.sqrt(torch.expm1(self._integrated_beta(check.unit_time(t))))

    def t_from_sigma_tilde(self, sigma_tilde: float | torch.Tensor) -> torch.Tensor:
        r"""The time at which sigma / alpha equals ``sigma_tilde`` (the inverse of :meth:`sigma_tilde`).

        B(t) = log(1 + sigma_tilde^2) is a quadratic in t: with d = beta_max - beta_min,
        t = (-beta_min + sqrt(beta_min^2 + 2 d B)) / d (t = B / beta_min when d = 0).
        """
        top = float(torch.sqrt(torch.expm1(self._integrated_beta(1.0))))
        if isinstance(sigma_tilde, torch.Tensor):
            check.data(sigma_tilde.reshape(-1), "sigma_tilde")
            if bool((sigma_tilde < 0).any()):
                raise InputValueError("sigma_tilde must be >= 0 (it is the ratio sigma / alpha)")
            s = sigma_tilde.to(torch.float64)
        else:
            s = torch.tensor(check_real(sigma_tilde, "sigma_tilde", minimum=0.0), dtype=torch.float64)
        if s.numel() and float(s.max()) > top * (1.0 + 1e-12):
            raise InputValueError(f"sigma_tilde must be <= sigma_tilde(1) = {top:.6g} (the noise level at t = 1: no time "
                                  f"in [0, 1] has a larger one), but got {float(s.max()):.6g}")
        integrated = torch.log1p(s**2)
        d = self.beta_max - self.beta_min
        if d == 0.0:
            return (integrated / self.beta_min).clamp(0.0, 1.0)
        return ((-self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * d * integrated)) / d).clamp(0.0, 1.0)

    def discrete_betas(self, T: int) -> torch.Tensor:
        r"""Betas of a T-step chain whose abar_t equals alpha(t/T)^2 exactly: float64, length T.

        beta_t = 1 - alpha(t/T)^2 / alpha((t-1)/T)^2 = 1 - exp(-int_{(t-1)/T}^{t/T} beta(s) ds),
        which is beta(t/T) / T up to O(1/T^2) (the DDPM chain as an Euler-Maruyama step of the SDE).
        Use it as ``NoiseSchedule(sde.discrete_betas(T))``.
        """
        T = check_int(T, "T (number of discrete steps)", minimum=1)
        grid = torch.arange(T + 1, dtype=torch.float64) / T
        integrated = self._integrated_beta(grid)
        return -torch.expm1(-(integrated[1:] - integrated[:-1]))

    # ------------------------------------------------------------------ drift, diffusion, marginal
    def _drift(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        return -0.5 * check.per_example(self._beta(t), x) * x

    def drift(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """f(x, t) = -1/2 beta(t) x (Song et al. 2021, eq. 32).

        Implements :eq:`eq-vp-sde` (chapter ``sde``).
        """
        return self._drift(check.data(x, "x"), self._time_for(x, t))

    def g(self, t: float | torch.Tensor) -> torch.Tensor:
        """g(t) = sqrt(beta(t)), the diffusion coefficient (Song et al. 2021, eq. 32)."""
        return torch.sqrt(self._beta(check.unit_time(t)))

    def marginal(self, x0: torch.Tensor, t: float | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = alpha(t) x_0 + sigma(t) eps, a sample of p(x_t | x_0) (Song et al. 2021, eq. 33).

        Implements :eq:`eq-vp-marginal` (chapter ``sde``).
        """
        check.data(x0, "x0")
        check.data(eps, "eps")
        if eps.shape != x0.shape:
            raise InputValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, but has {tuple(eps.shape)}")
        t = self._time_for(x0, t)
        return check.per_example(self._alpha(t), x0) * x0 + check.per_example(self._sigma(t), x0) * eps

    def _reverse_drift(self, x: torch.Tensor, t: Any, score: torch.Tensor) -> torch.Tensor:
        return self._drift(x, t) - check.per_example(self._beta(t), x) * score

    def _ode_drift(self, x: torch.Tensor, t: Any, score: torch.Tensor) -> torch.Tensor:
        return self._drift(x, t) - 0.5 * check.per_example(self._beta(t), x) * score

    def reverse_drift(self, x: torch.Tensor, t: float | torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) - g(t)^2 score: the drift of the reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6).

        Implements :eq:`eq-reverse-sde` (chapter ``sde``).
        """
        t = self._check_with_score(x, t, score)
        return self._reverse_drift(x, t, score)

    def ode_drift(self, x: torch.Tensor, t: float | torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) - 1/2 g(t)^2 score: the probability-flow ODE's velocity (Song et al. 2021, eq. 13).

        Implements :eq:`eq-pf-ode` (chapter ``sde``).
        """
        t = self._check_with_score(x, t, score)
        return self._ode_drift(x, t, score)

    def _time_for(self, x: torch.Tensor, t: Any) -> float | torch.Tensor:
        t = check.unit_time(t)
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] != x.shape[0]:
            raise InputValueError(f"t has {t.shape[0]} entries but the batch has {x.shape[0]} examples; pass one "
                                  f"time per example (shape ({x.shape[0]},)) or a single number")
        if isinstance(t, torch.Tensor) and t.ndim > 1:
            raise InputValueError(f"t must be a number or a 1-D tensor of times, but has shape {tuple(t.shape)}")
        return t

    def _check_with_score(self, x: Any, t: Any, score: Any) -> float | torch.Tensor:
        check.data(x, "x")
        check.data(score, "score")
        if score.shape != x.shape:
            raise InputValueError(f"score must have the shape of x {tuple(x.shape)}, but has {tuple(score.shape)}")
        return self._time_for(x, t)

    # ------------------------------------------------------------------ simulation
    def simulate_forward(
        self, x0: torch.Tensor, t_grid: Sequence[float] | torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Euler-Maruyama simulation of the forward SDE along an increasing time grid.

        ``x0`` is the state at ``t_grid[0]`` (usually 0: the data); each step of length h is
        x <- x + f(x, t) h + g(t) sqrt(h) z, z ~ N(0, I) (Kloeden & Platen 1992, eq. 9.1.1).
        Returns the whole trajectory, shape ``(len(t_grid), *x0.shape)``.
        """
        check.data(x0, "x0")
        check.generator(generator)
        grid = self._grid(t_grid)
        states = [x0]
        x = x0
        for t_now, t_next in zip(grid[:-1], grid[1:]):
            h = t_next - t_now
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + self._drift(x, t_now) * h + math.sqrt(float(self._beta(t_now)) * h) * z
            states.append(x)
        return torch.stack(states)

    @staticmethod
    def _grid(t_grid: Any) -> list[float]:
        if isinstance(t_grid, torch.Tensor):
            if not t_grid.is_floating_point() or t_grid.ndim != 1:
                raise InputTypeError(f"t_grid must be a 1-D float tensor or a list of times, got a {t_grid.dtype} "
                                     f"tensor of shape {tuple(t_grid.shape)}")
            t_grid = t_grid.tolist()
        if isinstance(t_grid, (str, bytes)) or not isinstance(t_grid, Sequence):
            raise InputTypeError(f"t_grid must be a list or 1-D tensor of times in [0, 1], got {type(t_grid).__name__}")
        grid = [check_real(t, "each entry of t_grid", minimum=0.0, maximum=1.0) for t in t_grid]
        if len(grid) < 2 or any(b <= a for a, b in zip(grid[:-1], grid[1:])):
            raise InputValueError("t_grid must hold at least two strictly increasing times (the forward SDE runs "
                                  "from data towards noise)")
        return grid

    def _check_sampler(self, score_fn: Any, x_T: Any, n_steps: Any, t_start: Any, t_end: Any) -> tuple[int, float, float]:
        check.function(score_fn, "score_fn", "score_fn(x, t) returning grad log p_t(x) with x's shape")
        check.data(x_T, "x_T")
        return (check.steps(n_steps), *check.interval(t_start, t_end))

    def sample_reverse_sde(
        self,
        score_fn: ScoreFn,
        x_T: torch.Tensor,
        n_steps: int = 500,
        generator: torch.Generator | None = None,
        t_start: float = 1.0,
        t_end: float = 1e-3,
    ) -> torch.Tensor:
        r"""Integrate the reverse SDE from t_start to t_end with Euler-Maruyama (Song et al. 2021, eq. 6).

        With a uniform step h = (t_start - t_end) / n_steps, each step from t to t - h is

            x <- x - [f(x, t) - g(t)^2 score_fn(x, t)] h + g(t) sqrt(h) z,   z ~ N(0, I),

        and the last step adds no noise (it returns the mean, as DDPM's last step does). Stopping at
        t_end > 0 avoids the score's blow-up at t = 0; x then carries noise of size sigma(t_end).
        """
        n_steps, t_start, t_end = self._check_sampler(score_fn, x_T, n_steps, t_start, t_end)
        check.generator(generator)
        h = (t_start - t_end) / n_steps
        x = x_T
        for i in range(n_steps):
            t = t_start - i * h
            x = x - self._reverse_drift(x, t, _score_at(score_fn, x, t)) * h
            if i < n_steps - 1:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = x + math.sqrt(float(self._beta(t)) * h) * z
        return x

    def sample_ode(
        self,
        score_fn: ScoreFn,
        x_T: torch.Tensor,
        n_steps: int = 100,
        method: str = "heun",
        t_start: float = 1.0,
        t_end: float = 1e-3,
    ) -> torch.Tensor:
        r"""Integrate the probability-flow ODE dx/dt = f - 1/2 g^2 score from t_start to t_end (Song et al. 2021, eq. 13).

        Fixed steps, uniform in t, with ``method`` ``"euler"`` (first order, 1 score call a step),
        ``"heun"`` (second order, 2) or ``"rk4"`` (classical fourth-order Runge-Kutta, 4). For the
        eps-parameterised solvers in Karras et al. 2022's variables see :mod:`diffusion_lib.continuous.solvers`.
        """
        n_steps, t_start, t_end = self._check_sampler(score_fn, x_T, n_steps, t_start, t_end)
        check_choice(method, ODE_METHODS, "method")

        def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
            return self._ode_drift(x, t, _score_at(score_fn, x, t))

        return integrate(velocity, x_T, [t_start - (t_start - t_end) * i / n_steps for i in range(n_steps + 1)], method)


def _score_at(score_fn: ScoreFn, x: torch.Tensor, t: float) -> torch.Tensor:
    """score_fn(x, t), checked to be a score of x's shape."""
    return check.field_at(score_fn, x, t, "score_fn(x, t)", "the score")


def integrate(velocity: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, times: Sequence[float],
              method: str) -> torch.Tensor:
    """Fixed-step Euler / Heun / RK4 for dx/dt = velocity(x, t) along ``times`` (any direction); no checks."""
    for t, t_next in zip(times[:-1], times[1:]):
        h = t_next - t
        k1 = velocity(x, t)
        if method == "euler":
            x = x + h * k1
        elif method == "heun":
            k2 = velocity(x + h * k1, t_next)
            x = x + 0.5 * h * (k1 + k2)
        else:
            k2 = velocity(x + 0.5 * h * k1, t + 0.5 * h)
            k3 = velocity(x + 0.5 * h * k2, t + 0.5 * h)
            k4 = velocity(x + h * k3, t_next)
            x = x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return x
