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
        raise TypeError(f"t must be a torch.Tensor of shape (B,), got {type(t).__name__}")
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,), one timestep per sample; got shape {tuple(t.shape)}")
    if not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2 (half sines, half cosines), got {dim!r}")
    if max_period <= 1:
        raise ValueError(f"max_period must be > 1, got {max_period}")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    omega = torch.exp(-math.log(max_period) * k / half)
    angle = t.to(torch.float32)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class SinusoidalTimeEmbedding(nn.Module):
    """``t -> MLP(sinusoidal_embedding(t))``: the fixed code followed by a learned 2-layer MLP.

    Args:
        dim: size of the sinusoidal code.
        out_dim: size of the output (defaults to ``dim``).
        max_period: see :func:`sinusoidal_embedding`.
    """

    def __init__(self, dim: int, out_dim: int | None = None, max_period: float = 10_000.0) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
        out_dim = dim if out_dim is None else out_dim
        self.dim = dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim, self.max_period))
