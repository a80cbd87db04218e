r"""Conditional flow matching with straight paths (Lipman et al. 2023; Liu et al. 2023, rectified flow).

Time runs over t in [0, 1] as in the diffusion chapters (0 is the data, 1 is noise). A data point
x_0 and a noise draw eps ~ N(0, I) are joined by the straight path

    x_t = (1 - t) x_0 + t eps,        v = d x_t / dt = eps - x_0            (Liu et al. 2023, eq. 1),

and a network v_theta(x_t, t) is regressed on the conditional velocity (Lipman et al. 2023, eq. 9
with sigma_min = 0):

    L_CFM = E_{t, x_0, eps} || v_theta(x_t, t) - (eps - x_0) ||^2.

Its minimiser is the marginal velocity E[eps - x_0 | x_t], whose flow dx/dt = v(x, t), run from
t = 1 (x_1 ~ N(0, I)) to t = 0, carries the noise to the data (:func:`sample_flow`).

At a point x_t of the path a velocity is the same information as a noise or a data prediction:

    x_0 = x_t - t v,        eps = x_t + (1 - t) v,        v = (eps - x_t) / (1 - t) = (x_t - x_0) / t.

So the flow-matching loss of a network, re-expressed through its eps prediction, is an
eps-prediction loss with the weight w(t) = 1 / (1 - t)^2:

    v_hat - v = (eps_hat - eps) / (1 - t)   =>   || v_hat - v ||^2 = w(t) || eps_hat - eps ||^2,

which grows without bound as t -> 1, where DDPM's L_simple (w = 1) puts no extra weight
(:func:`cfm_as_eps_weighting`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diffusion_lib._checks import check_choice
from diffusion_lib.continuous import _args as check
from diffusion_lib.continuous.solvers import ODESample
from diffusion_lib.errors import InputValueError

__all__ = [
    "FLOW_METHODS",
    "cfm_path",
    "cfm_loss",
    "x0_from_velocity",
    "eps_from_velocity",
    "velocity_from_eps",
    "velocity_from_x0",
    "cfm_as_eps_weighting",
    "sample_flow",
]

FLOW_METHODS: tuple[str, ...] = ("euler", "heun")
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _pair(a: Any, b: Any, name_a: str, name_b: str) -> None:
    check.data(a, name_a)
    check.data(b, name_b)
    if a.shape != b.shape:
        raise InputValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _times(t: Any, x: torch.Tensor, open_at: float | None = None) -> torch.Tensor | float:
    """t in [0, 1] (a number or a (B,) tensor), reshaped to broadcast; refuse the end where a formula divides by 0."""
    t = check.unit_time(t)
    if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] != x.shape[0]:
        raise InputValueError(f"t has {t.shape[0]} entries but the batch has {x.shape[0]}; pass one time per example")
    if open_at is not None:
        hit = bool((t == open_at).any()) if isinstance(t, torch.Tensor) else t == open_at
        if hit:
            raise InputValueError(f"t must not equal {open_at:g} here: the conversion divides by "
                                  f"{'1 - t' if open_at == 1.0 else 't'}, which is 0 there")
    return check.per_example(t, x)


def cfm_path(x0: torch.Tensor, t: float | torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v): the straight path x_t = (1 - t) x_0 + t eps and its velocity v = eps - x_0 (Liu et al. 2023, eq. 1)."""
    _pair(x0, eps, "x0", "eps")
    tt = _times(t, x0)
    return (1.0 - tt) * x0 + tt * eps, eps - x0


def cfm_loss(
    model: VelocityFn, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    r"""The conditional flow-matching loss || model(x_t, t) - (eps - x_0) ||^2 (Lipman et al. 2023, eq. 9).

    ``t`` is a float tensor (B,) in [0, 1] (draw it with torch.rand); the squared error is averaged
    over the data dimensions, then over the batch (``reduction="mean"``) or not (``"none"``: shape (B,)).
    """
    check.function(model, "model", "model(x_t, t) returning a velocity of x_t's shape")
    _pair(x0, eps, "x0", "eps")
    check_choice(reduction, ("mean", "none"), "reduction")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise InputValueError("t must be a 1-D float tensor with one time per example (e.g. torch.rand(B))")
    x_t, target = cfm_path(x0, t, eps)
    v_hat = model(x_t, t.to(x0.dtype))
    if not isinstance(v_hat, torch.Tensor) or v_hat.shape != x0.shape:
        got = tuple(v_hat.shape) if isinstance(v_hat, torch.Tensor) else type(v_hat).__name__
        raise InputValueError(f"model(x_t, t) must return a velocity of x0's shape {tuple(x0.shape)}, got {got}")
    per_example = check.flat((v_hat - target).pow(2)).mean(1)
    return per_example.mean() if reduction == "mean" else per_example


def x0_from_velocity(x_t: torch.Tensor, t: float | torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """x_0 = x_t - t v (the data end of the straight line through x_t with velocity v)."""
    _pair(x_t, v, "x_t", "v")
    return x_t - _times(t, x_t) * v


def eps_from_velocity(x_t: torch.Tensor, t: float | torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """eps = x_t + (1 - t) v (the noise end of the straight line through x_t with velocity v)."""
    _pair(x_t, v, "x_t", "v")
    return x_t + (1.0 - _times(t, x_t)) * v


def velocity_from_eps(x_t: torch.Tensor, t: float | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """v = (eps - x_t) / (1 - t), for t < 1."""
    _pair(x_t, eps, "x_t", "eps")
    return (eps - x_t) / (1.0 - _times(t, x_t, open_at=1.0))


def velocity_from_x0(x_t: torch.Tensor, t: float | torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """v = (x_t - x_0) / t, for t > 0."""
    _pair(x_t, x0, "x_t", "x0")
    return (x_t - x0) / _times(t, x_t, open_at=0.0)


def cfm_as_eps_weighting(t: float | torch.Tensor) -> torch.Tensor:
    r"""w(t) = 1 / (1 - t)^2: ||v_hat - v||^2 = w(t) ||eps_hat - eps||^2 for straight paths, t in [0, 1).

    The same network's velocity re-expressed as eps_hat = x_t + (1 - t) v_hat has
    v_hat - v = (eps_hat - eps) / (1 - t) (Lipman et al. 2023, eq. 9 against Ho et al. 2020, eq. 14).
    Returns a float64 tensor of t's shape.
    """
    t = check.unit_time(t)
    t = t.to(torch.float64) if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)
    if bool((t == 1.0).any()):
        raise InputValueError("t must be < 1: the weight 1 / (1 - t)^2 is infinite at t = 1")
    return 1.0 / (1.0 - t) ** 2


def _velocity_at(velocity_fn: VelocityFn, x: torch.Tensor, t: float) -> torch.Tensor:
    """velocity_fn(x, t), checked to be dx/dt of x's shape."""
    return check.field_at(velocity_fn, x, t, "velocity_fn(x, t)", "dx/dt")


def sample_flow(
    velocity_fn: VelocityFn, x1: torch.Tensor, n_steps: int = 50, method: str = "euler",
    t_start: float = 1.0, t_end: float = 0.0,
) -> ODESample:
    r"""Integrate dx/dt = velocity_fn(x, t) from t_start (noise, x1) to t_end (data) in uniform steps.

    ``"euler"``: x <- x - h v(x, t) (1 evaluation a step); ``"heun"``: an Euler predictor and the
    trapezoidal corrector (2 a step). ``velocity_fn`` receives t as a float tensor (B,). Returns the
    endpoint and the number of evaluations.
    """
    check.function(velocity_fn, "velocity_fn", "velocity_fn(x, t) returning dx/dt with x's shape")
    check.data(x1, "x1")
    n_steps = check.steps(n_steps)
    check_choice(method, FLOW_METHODS, "method")
    t_start, t_end = check.interval(t_start, t_end)
    times = [t_start + (t_end - t_start) * i / n_steps for i in range(n_steps + 1)]
    x, nfe = x1, 0
    for t, t_next in zip(times[:-1], times[1:]):
        h = t_next - t  # negative: time runs backwards
        k1 = _velocity_at(velocity_fn, x, t)
        nfe += 1
        if method == "euler":
            x = x + h * k1
            continue
        k2 = _velocity_at(velocity_fn, x + h * k1, t_next)
        nfe += 1
        x = x + 0.5 * h * (k1 + k2)
    return ODESample(x, nfe)
