"""The validation layer of the diffusion core: every public entry point checks its input here, once.

The equations in :mod:`~diffusion_lib.core.diffusion`, :mod:`~diffusion_lib.core.sampling`,
:mod:`~diffusion_lib.core.bound` and :mod:`~diffusion_lib.core.objectives` run on tensors that
have passed these checks; nothing here is called inside a sampling or bound loop. Every error is
one of :mod:`diffusion_lib.errors`, and its message names the argument, what came and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from diffusion_lib._checks import (
    check_finite,
    check_floating,
    check_int,
    check_same_device,
    check_same_shape,
    check_timesteps,
)
from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

if TYPE_CHECKING:
    from diffusion_lib.core.diffusion import GaussianDiffusion

_DTYPES = (torch.float32, torch.float64)


def data(x: Any, name: str) -> torch.Tensor:
    """A finite float32/float64 tensor with a batch dimension, shape (B, ...)."""
    check_floating(x, name)
    if x.dtype not in _DTYPES:
        raise InputTypeError(
            f"{name} has dtype {x.dtype}, but the diffusion computes in float32 or float64; "
            f"convert it with {name}.float()"
        )
    if x.ndim == 0:
        raise InputValueError(f"{name} must have a batch dimension (shape (B, ...)), got a scalar tensor")
    return x if x.device.type == "meta" else check_finite(x, name)  # meta tensors hold no values


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Equal shapes, no broadcasting (a (B, 1) prediction for (B, 2) data would broadcast silently)."""
    check_same_shape(a, b, name_a, name_b)


def timesteps(d: "GaussianDiffusion", t: Any, x: torch.Tensor, allow_zero: bool = False, name: str = "t") -> torch.Tensor:
    """t as a LongTensor (B,) on x's device, in 1..T (0..T with ``allow_zero``); the one range check of a call."""
    check_same_device(
        x, d.schedule.device, "the data",
        f"move the diffusion with diffusion.to({str(x.device)!r}) (or the data to the schedule's device)",
    )
    return check_timesteps(t, d.T, batch=x.shape[0], allow_zero=allow_zero, device=x.device, name=name)


def generator(g: Any) -> torch.Generator | None:
    """None or a torch.Generator."""
    if g is not None and not isinstance(g, torch.Generator):
        raise InputTypeError(
            f"generator must be a torch.Generator or None, got {type(g).__name__}; "
            f"make one with torch.Generator().manual_seed(0)"
        )
    return g


def noise(eps: Any, x: torch.Tensor, name_x: str, g: Any) -> torch.Tensor:
    """The given noise (checked against x) or a fresh draw from N(0, I) with generator g."""
    generator(g)
    if eps is None:
        return torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
    data(eps, "eps")
    check_same_shape(x, eps, name_x, "eps")
    return eps


def model(m: Any, model_kwargs: Any) -> dict:
    """A callable model and its keyword arguments (a dict or None); returns the dict."""
    if not callable(m):
        raise InputTypeError(
            f"model must be callable as model(x_t, t, **model_kwargs), got {type(m).__name__}"
        )
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise InputTypeError(f"model_kwargs must be a dict or None, got {type(model_kwargs).__name__}")
    return dict(model_kwargs or {})


def model_output(d: "GaussianDiffusion", out: Any, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split the model's output into (mean part, variance part or None), checking its shape.

    A shape check only (no device sync), so it may run at every sampling step.
    """
    if not isinstance(out, torch.Tensor):
        raise InputTypeError(f"the model must return a torch.Tensor, got {type(out).__name__}")
    if d.model_var_type == "learned_range":
        if xt.ndim < 2:
            raise InputValueError(
                "model_var_type='learned_range' needs data with a channel dimension (B, C, ...); "
                f"got x_t of shape {tuple(xt.shape)}"
            )
        expected = (xt.shape[0], 2 * xt.shape[1]) + tuple(xt.shape[2:])
        if tuple(out.shape) != expected:
            raise InputValueError(
                f"with model_var_type='learned_range' the model must return 2 x the channels of "
                f"x_t (mean part, then variance part): expected shape {expected} for x_t of shape "
                f"{tuple(xt.shape)}, but the model returned {tuple(out.shape)}"
            )
        mean_part, var_part = torch.split(out, xt.shape[1], dim=1)
        return mean_part, var_part
    if tuple(out.shape) != tuple(xt.shape):
        raise InputValueError(
            f"the model must return a tensor of the same shape as x_t (it predicts "
            f"{'eps' if d.model_mean_type == 'eps' else 'x_0'}): x_t has shape "
            f"{tuple(xt.shape)} but the model returned {tuple(out.shape)}"
        )
    return out, None


def finite_result(x: torch.Tensor, what: str) -> torch.Tensor:
    """Refuse a NaN or inf result (the inputs were finite, so the model produced it)."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(
            f"{what} contains NaN or infinite values although the input was finite: the model's "
            f"output is not finite; check the network (its weights and its output on this input)"
        )
    return x


def sample_shape(d: "GaussianDiffusion", shape: Any, x_T: Any) -> tuple[int, ...]:
    """A non-empty tuple of positive int sizes (B, ...) matching x_T if one is given."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise InputTypeError(f"shape must be a tuple of sizes (B, ...), got {type(shape).__name__} {shape!r}")
    sizes = tuple(check_int(n, f"shape[{i}]", minimum=1) for i, n in enumerate(shape))
    if not sizes:
        raise InputValueError("shape must be a non-empty tuple of positive sizes (B, ...), got ()")
    if x_T is not None:
        data(x_T, "x_T")
        if tuple(x_T.shape) != sizes:
            raise InputValueError(f"x_T has shape {tuple(x_T.shape)} but shape={sizes} was requested")
        timesteps(d, 1, x_T)  # its device
    return sizes


def timestep_sequence(T: int, seq: Any) -> list[int]:
    """A non-empty strictly decreasing sequence of timesteps in 1..T, as a list of ints."""
    if not isinstance(seq, torch.Tensor):
        try:
            seq = torch.as_tensor(list(seq))
        except (TypeError, ValueError, RuntimeError):
            raise InputTypeError("timesteps must be a 1-D sequence or LongTensor of ints") from None
    if seq.ndim != 1 or seq.numel() == 0:
        raise InputValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(seq.shape)}")
    seq = check_timesteps(seq.cpu(), T, name="timesteps")
    if seq.numel() > 1 and not bool((seq[1:] < seq[:-1]).all()):
        raise InputValueError(
            f"timesteps must be strictly decreasing (sampling runs from noise to data), e.g. "
            f"diffusion.ddim_timesteps(50); got {seq.tolist()[:10]}..."
        )
    return seq.tolist()


def callback(cb: Any) -> Callable | None:
    """None or a callable ``callback(t, x_t, x0_hat)``."""
    if cb is not None and not callable(cb):
        raise InputTypeError(f"callback must be callable as callback(t, x_t, x0_hat), got {type(cb).__name__}")
    return cb
