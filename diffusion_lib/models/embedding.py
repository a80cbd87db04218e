"""Sinusoidal time embedding shared by the book's networks (MLP of Part II, later the U-Net).

A timestep t (an integer in 1..T) is mapped to a vector of sines and cosines at geometrically
spaced frequencies, as in the Transformer's position encoding and in DDPM:

    omega_k = max_period ** (-k / (dim/2)),   k = 0, ..., dim/2 - 1
    emb(t)  = [sin(t * omega_0), ..., sin(t * omega_{dim/2-1}),
               cos(t * omega_0), ..., cos(t * omega_{dim/2-1})]

The lowest frequency changes by a fraction of a period over the whole chain, the highest by
about a radian per step, so nearby timesteps get similar but distinguishable codes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffusion_lib._checks import check_finite, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["sinusoidal_embedding", "SinusoidalTimeEmbedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal code of the timesteps ``t``: ``[sin(t * omega_k), cos(t * omega_k)]``.

    Implements ``omega_k = max_period^(-k/(dim/2))`` for ``k = 0..dim/2-1`` and returns
    ``cat(sin(t omega), cos(t omega))``.

    Args:
        t: shape ``(B,)`` timesteps (integer or float tensor).
        dim: even embedding size.
        max_period: the longest period, in units of timesteps.

    Returns:
        float32 tensor of shape ``(B, dim)``.

    Implements :eq:`eq-unet-sinusoidal` (chapter ``unet``).
    Implements :eq:`eq-ddpm-embedding` (chapter ``ddpm_2d``).
    """
    if not isinstance(t, torch.Tensor):
        raise InputTypeError(f"t must be a torch.Tensor of shape (B,), got {type(t).__name__}")
    if t.ndim != 1:
        raise InputValueError(f"t must have shape (B,), one timestep per sample; got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise InputTypeError(f"t must hold integer (or real) timesteps, got dtype {t.dtype}")
    if t.is_floating_point():
        check_finite(t, "t")
    dim = _check_dim(dim, "dim")
    max_period = _check_period(max_period)
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    omega = torch.exp(-math.log(max_period) * k / half)
    angle = t.to(torch.float32)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def _check_dim(dim: object, name: str) -> int:
    dim = check_int(dim, name, minimum=2)
    if dim % 2:
        raise InputValueError(f"{name} must be an even int >= 2 (half sines, half cosines), got {dim!r}")
    return dim


def _check_period(max_period: object) -> float:
    return check_real(max_period, "max_period", minimum=1.0, strict=True)


class SinusoidalTimeEmbedding(nn.Module):
    """``t -> MLP(sinusoidal_embedding(t))``: the fixed code followed by a learned 2-layer MLP.

    Args:
        dim: size of the sinusoidal code.
        out_dim: size of the output (defaults to ``dim``).
        max_period: see :func:`sinusoidal_embedding`.
    """

    def __init__(self, dim: int, out_dim: int | None = None, max_period: float = 10_000.0) -> None:
        super().__init__()
        dim = _check_dim(dim, "dim")
        out_dim = dim if out_dim is None else check_int(out_dim, "out_dim", minimum=1)
        max_period = _check_period(max_period)
        self.dim = dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``MLP(sinusoidal_embedding(t))`` of shape ``(B, out_dim)``, in the dtype of the MLP's weights."""
        code = sinusoidal_embedding(t, self.dim, self.max_period)
        return self.mlp(code.to(self.mlp[0].weight.dtype))
