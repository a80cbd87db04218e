"""Small networks for 2-D diffusion (Part II of the book).

Two ways to let one network serve every timestep t in 1..T:

* :class:`PerTimestepMLP` - the design of Sohl-Dickstein et al. (2015): a trunk shared by all
  timesteps reads ``x_t`` only, and a separate small *head* for each t (its own weights) turns the
  trunk's features into the output for that step. The network never sees t as a number; the
  head index is t.
* :class:`TimeMLP` - the design of DDPM (Ho et al., 2020): a single network whose every block
  receives a learned projection of a sinusoidal embedding of t, so all timesteps share all weights.

Both are called as ``model(x_t, t)`` with ``x_t`` of shape ``(B, data_dim)`` and ``t`` a
``LongTensor`` of shape ``(B,)`` with values in 1..T, and return ``(B, out_dim)``. What the
output means (noise eps, a reverse mean, a variance interpolation) is decided by the code that
uses it (``GaussianDiffusion`` or :mod:`diffusion_lib.topics.sohl2015`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffusion_lib._checks import check_finite, check_input_dtype, check_int
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.models.embedding import sinusoidal_embedding

__all__ = ["PerTimestepMLP", "TimeMLP"]


def _check_model_inputs(x: Any, t: Any, data_dim: int, T: int, dtype: torch.dtype) -> None:
    """Raise a library error that names the problem if ``(x, t)`` is not a valid call of the model.

    ``x`` must be a finite ``(B, data_dim)`` tensor of the model's dtype ``dtype``; ``t`` a
    LongTensor ``(B,)`` with values in 1..T.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(t, torch.Tensor):
        raise InputTypeError(
            "call the model as model(x_t, t) with two torch.Tensors: x_t of shape (B, data_dim) and "
            "t a LongTensor of shape (B,); for one timestep use torch.full((B,), t, dtype=torch.long)"
        )
    if x.ndim != 2 or x.shape[1] != data_dim:
        raise InputValueError(
            f"x_t must have shape (B, {data_dim}) - one {data_dim}-D point per row; "
            f"got shape {tuple(x.shape)}"
        )
    check_input_dtype(x, dtype, "x_t")
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise InputValueError(
            f"t must have shape (B,) = ({x.shape[0]},), one timestep per point; got {tuple(t.shape)}. "
            "Use torch.full((B,), t, dtype=torch.long) for a single timestep."
        )
    if t.dtype not in (torch.int64, torch.int32):
        raise InputTypeError(f"t must be an integer (Long) tensor of timesteps in 1..T, got dtype {t.dtype}")
    if t.numel() and (int(t.min()) < 1 or int(t.max()) > T):
        raise InputValueError(
            f"timesteps must lie in 1..T = 1..{T} (t counts from 1; t = 0 is the data), "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )
    check_finite(x, "x_t")


class PerTimestepMLP(nn.Module):
    """Shared trunk + one small head per timestep (the 2015 architecture).

    ``h = trunk(x_t)`` is an MLP with ``trunk_layers`` hidden layers of width ``hidden`` that never
    sees t; the head of step t is its own affine read-out ``out = W[t] h + b[t]`` with ``W[t]`` of
    shape ``(out_dim, hidden)``. The trunk learns features of the plane that are useful at every
    noise level; each head only decides how to combine them at its own step. All heads are
    evaluated in one matrix product and the row of each point's own t is kept, so a batch with
    mixed timesteps runs in one pass.

    Args:
        T: number of timesteps (one head each).
        data_dim: dimension of x (2 for the plane).
        out_dim: output size per point (e.g. ``2 * data_dim`` for a mean and a log-variance).
        hidden: trunk width.
        trunk_layers: number of hidden layers in the trunk.
    """

    def __init__(
        self,
        T: int,
        data_dim: int = 2,
        out_dim: int | None = None,
        hidden: int = 256,
        trunk_layers: int = 3,
    ) -> None:
        super().__init__()
        T = check_int(T, "T (the number of timesteps)", minimum=1)
        data_dim = check_int(data_dim, "data_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        trunk_layers = check_int(trunk_layers, "trunk_layers", minimum=1)
        out_dim = None if out_dim is None else check_int(out_dim, "out_dim", minimum=1)
        self.T = T
        self.data_dim = data_dim
        self.out_dim = data_dim if out_dim is None else out_dim
        layers: list[nn.Module] = []
        width = data_dim
        for _ in range(trunk_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        # The heads start at zero, so every head initially outputs 0 (a neutral starting point:
        # no drift, and a variance half-way inside its allowed range).
        self.head_weight = nn.Parameter(torch.zeros(hidden, T * self.out_dim))
        self.head_bias = nn.Parameter(torch.zeros(T * self.out_dim))

    def head_parameters(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The read-out of step t (1..T): ``(W[t], b[t])`` of shapes ``(out_dim, hidden)``, ``(out_dim,)``."""
        t = check_int(t, "t")
        if not 1 <= t <= self.T:
            raise InputValueError(f"t must lie in 1..T = 1..{self.T} (t counts from 1), got {t}")
        cols = slice((t - 1) * self.out_dim, t * self.out_dim)
        return self.head_weight[:, cols].T, self.head_bias[cols]

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The output of each point's own head, ``(B, out_dim)``."""
        _check_model_inputs(x, t, self.data_dim, self.T, self.head_weight.dtype)
        h = self.trunk(x)
        all_heads = (h @ self.head_weight + self.head_bias).view(x.shape[0], self.T, self.out_dim)
        return all_heads[torch.arange(x.shape[0], device=x.device), t.long() - 1]


class _ResBlock(nn.Module):
    def __init__(self, hidden: int, time_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.temb = nn.Linear(time_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.silu(self.fc1(h) + self.temb(temb))
        return h + self.fc2(z)


class TimeMLP(nn.Module):
    """One residual MLP for all timesteps, conditioned on a sinusoidal embedding of t (DDPM style).

    ``e = MLP(sinusoidal_embedding(t))``; ``h = W_in x``; each of ``n_blocks`` residual blocks
    computes ``h <- h + W2 silu(W1 h + U e)``; the output is ``W_out silu(h)``.

    Args:
        T: number of timesteps (used to check inputs and to scale the embedding's periods).
        data_dim: dimension of x.
        out_dim: output size (``data_dim`` for eps; ``2 * data_dim`` with a learned variance).
        hidden: width of the residual stream.
        n_blocks: number of residual blocks.
        time_dim: size of the sinusoidal code.
    """

    def __init__(
        self,
        T: int,
        data_dim: int = 2,
        out_dim: int | None = None,
        hidden: int = 128,
        n_blocks: int = 3,
        time_dim: int = 32,
    ) -> None:
        super().__init__()
        T = check_int(T, "T (the number of timesteps)", minimum=1)
        data_dim = check_int(data_dim, "data_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
        time_dim = check_int(time_dim, "time_dim", minimum=1)
        out_dim = None if out_dim is None else check_int(out_dim, "out_dim", minimum=1)
        if time_dim % 2:
            raise InputValueError(f"time_dim must be even (half sines, half cosines), got {time_dim}")
        self.T = T
        self.data_dim = data_dim
        self.out_dim = data_dim if out_dim is None else out_dim
        self.time_dim = time_dim
        # Periods up to ~4T: the slowest sinusoid covers a quarter turn over the chain.
        self.max_period = float(4 * T)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList([_ResBlock(hidden, hidden) for _ in range(n_blocks)])
        self.out = nn.Linear(hidden, self.out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The prediction ``(B, out_dim)`` for points ``x`` ``(B, data_dim)`` at timesteps ``t`` ``(B,)``.

        ``x`` must have the dtype of the weights: float32 by default, float64 after ``model.double()``.
        """
        _check_model_inputs(x, t, self.data_dim, self.T, self.inp.weight.dtype)
        code = sinusoidal_embedding(t, self.time_dim, self.max_period).to(self.inp.weight.dtype)
        temb = self.time_mlp(code)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(torch.nn.functional.silu(h))
