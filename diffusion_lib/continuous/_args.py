"""Argument checks shared by the continuous-time modules (each public function runs them once).

Every error is one of :mod:`diffusion_lib.errors`; its message names the argument, says what came
and what to pass instead. Nothing here runs inside a solver loop.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from diffusion_lib._checks import check_finite, check_floating, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError

_DTYPES = (torch.float32, torch.float64)


def data(x: Any, name: str) -> torch.Tensor:
    """A finite float32/float64 tensor with a batch dimension, shape (B, ...)."""
    check_floating(x, name)
    if x.dtype not in _DTYPES:
        raise InputTypeError(f"{name} has dtype {x.dtype}; the continuous-time code computes in float32 or "
                             f"float64, so convert it with {name}.double() or {name}.float()")
    if x.ndim == 0:
        raise InputValueError(f"{name} must have a batch dimension (shape (B, ...)), but got a scalar tensor")
    return check_finite(x, name)


def unit_time(t: Any, name: str = "t") -> float | torch.Tensor:
    """A time in [0, 1]: a real number, or a float tensor (0-d, or one entry per example)."""
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        if not t.is_floating_point():
            raise InputTypeError(f"{name} must hold continuous times in [0, 1] (a float tensor), but got dtype "
                                 f"{t.dtype}; for the discrete chain divide the step by T: {name} = step / T")
        check_finite(t, name)
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise InputValueError(f"{name} must lie in [0, 1] (continuous time: 0 is the data, 1 is noise), "
                                  f"but got values from {float(t.min()):g} to {float(t.max()):g}")
        return t
    return check_real(t, name, minimum=0.0, maximum=1.0)


def function(fn: Any, name: str, signature: str) -> Any:
    """A callable, with the signature it will be called with named in the error."""
    if not callable(fn):
        raise InputTypeError(f"{name} must be a callable {signature}, but got {type(fn).__name__}")
    return fn


def generator(g: Any) -> torch.Generator | None:
    """None or a torch.Generator."""
    if g is not None and not isinstance(g, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, but got {type(g).__name__}; "
                             f"make one with torch.Generator().manual_seed(0)")
    return g


def steps(n: Any, name: str = "n_steps") -> int:
    """A number of solver steps, >= 1."""
    return check_int(n, name, minimum=1)


def interval(t_start: Any, t_end: Any) -> tuple[float, float]:
    """Start and end times of a backward integration, 1 >= t_start > t_end >= 0."""
    t_start = check_real(t_start, "t_start", minimum=0.0, maximum=1.0)
    t_end = check_real(t_end, "t_end", minimum=0.0, maximum=1.0)
    if not t_end < t_start:
        raise InputValueError(f"t_end must be smaller than t_start (the integration runs from noise towards data), "
                              f"but got t_start={t_start:g}, t_end={t_end:g}")
    return t_start, t_end


def batch_times(t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A time as a float tensor of shape (B,) in x's dtype and device (what a score_fn receives)."""
    if isinstance(t, torch.Tensor):
        return t.to(dtype=x.dtype, device=x.device).expand(x.shape[0]) if t.ndim == 0 else t.to(x.dtype)
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


def per_example(value: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor | float:
    """A per-example value of shape (B,) reshaped to (B, 1, ..., 1) so that it broadcasts against x."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    if isinstance(value, torch.Tensor):
        return value.to(x.dtype)
    return value


def flat(x: torch.Tensor) -> torch.Tensor:
    """x as (B, D), D the product of the non-batch sizes (also for B = 0, where reshape(B, -1) is ambiguous)."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def field_at(fn: Any, x: torch.Tensor, t: float, call: str, returns: str) -> torch.Tensor:
    """``fn(x, t)`` with t as a (B,) tensor; refuses an output that is not a tensor of x's shape (no sync).

    ``call`` names the function in the message (``"score_fn(x, t)"``), ``returns`` what it must return.
    """
    out = fn(x, batch_times(t, x))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputValueError(f"{call} must return {returns} with x's shape {tuple(x.shape)}, but returned {got}")
    return out
