r"""Scores, Tweedie's formula and (annealed) Langevin dynamics.

A network trained to predict the noise of ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` also
gives the score of the noisy marginal q_t (denoising score matching, Vincent 2011):

    grad log q_t(x) = -E[eps | x_t = x] / sqrt(1 - abar_t)  ~=  -eps_theta(x, t) / sqrt(1 - abar_t),

and Tweedie's formula (Efron 2011) turns the score into the posterior mean of the clean data:

    E[x_0 | x_t = x] = ( x + (1 - abar_t) grad log q_t(x) ) / sqrt(abar_t).

Langevin dynamics samples from a density p using only its score:

    x <- x + (a / 2) grad log p(x) + sqrt(a) z,    z ~ N(0, I),

which leaves p invariant as the step a -> 0. Annealed Langevin dynamics (Song & Ermon 2019) runs a
few such steps on q_t for a decreasing sequence of noise levels t, with steps a_t proportional to the
noise variance of level t, so that early, very noisy levels move points across the plane and late
levels refine them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from diffusion_lib._checks import (
    check_broadcastable,
    check_finite,
    check_floating,
    check_int,
    check_real,
    check_timesteps,
)
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

__all__ = ["score_from_eps_model", "tweedie_x0", "langevin_dynamics", "annealed_langevin", "annealed_step_sizes"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_x(x: Any, name: str = "x") -> torch.Tensor:
    check_floating(x, name)
    if x.ndim < 1:
        raise InputValueError(f"{name} must be a batch of points (B, ...), but got a scalar tensor")
    return check_finite(x, name)


def _check_levels(timesteps: Any, T: int | None = None) -> list[int]:
    """The noise levels as a list of ints in 1..T (1.. when T is unknown); no floats, no bools."""
    if isinstance(timesteps, torch.Tensor):
        if timesteps.is_floating_point() or timesteps.dtype == torch.bool or timesteps.ndim != 1:
            raise InputTypeError(
                f"timesteps must be a 1-D integer tensor or a list of ints, got a {timesteps.dtype} tensor "
                f"of shape {tuple(timesteps.shape)}"
            )
        timesteps = timesteps.tolist()
    if isinstance(timesteps, (str, bytes)) or not isinstance(timesteps, Sequence):
        raise InputTypeError(f"timesteps must be a list of ints (noise levels), got {type(timesteps).__name__}")
    levels = [check_int(t, "each entry of timesteps") for t in timesteps]
    if not levels:
        raise InputValueError("timesteps must hold at least one noise level, but it is empty")
    lo, hi = min(levels), max(levels)
    if lo < 1 or (T is not None and hi > T):
        top = "T" if T is None else f"T = {T}"
        raise InputValueError(
            f"timesteps must lie in 1..{top} (t counts from 1; t = 0 is the data, whose noise level 0 "
            f"has no score to follow), but got values from {lo} to {hi}"
        )
    return levels


def score_from_eps_model(model: nn.Module, schedule: NoiseSchedule) -> ScoreFn:
    """Turn a noise predictor into a score function ``score(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t)``.

    ``score(x, t)`` takes a batch ``x`` of shape ``(B, C, ...)`` and ``t`` an int or a LongTensor
    ``(B,)`` in 1..T (checked on every call). Only the first ``C`` output channels are used, so a
    model with a learned variance works too.

    Implements :eq:`eq-score-eps` (chapter ``score_2d``).
    """
    if not callable(model):
        raise InputTypeError(f"model must be a callable noise predictor model(x_t, t), got {type(model).__name__}")
    if not isinstance(schedule, NoiseSchedule):
        raise InputTypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")

    def score(x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        check_floating(x, "x")
        if x.ndim < 2:
            raise InputValueError(f"x must be a batch (B, C, ...) of points, got shape {tuple(x.shape)}")
        tt = check_timesteps(t, schedule.T, batch=x.shape[0], device=x.device)
        out = model(x, tt)
        if not isinstance(out, torch.Tensor) or out.ndim != x.ndim or out.shape[0] != x.shape[0] \
                or out.shape[1] < x.shape[1] or tuple(out.shape[2:]) != tuple(x.shape[2:]):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputValueError(
                f"model(x, t) must return the predicted noise with the shape of x {tuple(x.shape)} "
                f"(or more channels, for a learned variance), but returned {got}"
            )
        eps = out[:, : x.shape[1]]
        sigma = schedule.sqrt_one_minus_alpha_bar.to(device=x.device)[tt].to(eps.dtype)
        return -eps / sigma.reshape((-1,) + (1,) * (x.ndim - 1))

    return score


def tweedie_x0(x: torch.Tensor, score: torch.Tensor, alpha_bar_t: torch.Tensor | float) -> torch.Tensor:
    r"""Tweedie's formula for x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps:

    E[x_0 | x_t = x] = (x + (1 - abar_t) grad log q_t(x)) / sqrt(abar_t).

    ``alpha_bar_t`` is a float, a 0-d tensor, or a tensor with as many dimensions as ``x`` that
    broadcasts to it (e.g. shape ``(B, 1)``; a ``(B,)`` tensor would silently pair the wrong
    values with the columns, so it is refused).

    Implements :eq:`eq-score-tweedie` (chapter ``score_2d``).
    Implements :eq:`eq-vdm-tweedie` (chapter ``vdm``).
    """
    _check_x(x, "x")
    _check_x(score, "score")
    if x.shape != score.shape:
        raise InputValueError(f"x and score must have the same shape, got {tuple(x.shape)} and {tuple(score.shape)}")
    if isinstance(alpha_bar_t, torch.Tensor):
        check_floating(alpha_bar_t, "alpha_bar_t")
        if alpha_bar_t.ndim not in (0, x.ndim):
            raise InputValueError(
                f"alpha_bar_t must be a number, a 0-d tensor or have {x.ndim} dimensions like x "
                f"(e.g. shape ({x.shape[0]}, 1)), but got shape {tuple(alpha_bar_t.shape)}; "
                f"add the missing dimensions with alpha_bar_t[:, None]"
            )
        shape = check_broadcastable(("x", x), ("alpha_bar_t", alpha_bar_t))
        if tuple(shape) != tuple(x.shape):
            raise InputValueError(
                f"alpha_bar_t of shape {tuple(alpha_bar_t.shape)} must broadcast to the shape of x {tuple(x.shape)}"
            )
        ab = alpha_bar_t.to(dtype=x.dtype, device=x.device)
    else:
        ab = torch.tensor(check_real(alpha_bar_t, "alpha_bar_t"), dtype=x.dtype, device=x.device)
    if not bool(((ab > 0) & (ab <= 1)).all()):
        raise InputValueError("alpha_bar_t must lie in (0, 1]: it is the signal fraction abar_t of x_t")
    return (x + (1.0 - ab) * score) / ab.sqrt()


def _langevin(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step_size: float, n_steps: int,
              generator: torch.Generator | None) -> torch.Tensor:
    """The unchecked loop of :func:`langevin_dynamics`."""
    with torch.no_grad():
        for _ in range(n_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            s = score(x)
            if not isinstance(s, torch.Tensor) or s.shape != x.shape:
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise InputValueError(f"score(x) must return a tensor of the shape of x {tuple(x.shape)}, but returned {got}")
            x = x + 0.5 * step_size * s + step_size**0.5 * z
    return x


def _check_result(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(
            f"{what} diverged to NaN or infinity: the step size is too large for this score "
            f"(or the score returned NaN); try a step size 10 times smaller"
        )
    return x


def langevin_dynamics(
    score: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Unadjusted Langevin dynamics ``x <- x + (a/2) score(x) + sqrt(a) z`` for ``n_steps`` steps.

    Implements :eq:`eq-score-langevin` (chapter ``score_2d``).
    """
    if not callable(score):
        raise InputTypeError(f"score must be a function x -> grad log p(x), got {type(score).__name__}")
    _check_x(x)
    step_size = check_real(step_size, "step_size", minimum=0.0, strict=True)
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    return _check_result(_langevin(score, x, step_size, n_steps, generator), "Langevin dynamics")


def annealed_step_sizes(schedule: NoiseSchedule, timesteps: Sequence[int], eps: float) -> list[float]:
    r"""Song & Ermon's rule a_t = eps * sigma_t^2 / sigma_min^2 with sigma_t^2 = 1 - abar_t.

    ``sigma_min`` is the smallest noise level in ``timesteps`` (ints in 1..T), so the last level
    uses step ``eps``.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise InputTypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    levels = _check_levels(timesteps, schedule.T)
    eps = check_real(eps, "eps", minimum=0.0, strict=True)
    var = [float(1.0 - schedule.alpha_bar[t]) for t in levels]
    if min(var) <= 0:
        raise InputValueError("the schedule has a noise level with 1 - abar_t = 0 among timesteps; start above it")
    return [eps * v / min(var) for v in var]


def annealed_langevin(
    score: ScoreFn,
    x: torch.Tensor,
    timesteps: Sequence[int],
    step_sizes: Sequence[float],
    n_steps_each: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    r"""Annealed Langevin dynamics: for each level t in ``timesteps`` (noisiest first) run
    ``n_steps_each`` steps of ``x <- x + (a_t/2) score(x, t) + sqrt(a_t) z``.

    ``timesteps`` are ints >= 1, strictly decreasing (their upper bound T is checked by
    ``score``, e.g. the one of :func:`score_from_eps_model`). Returns the final points, or with
    ``return_trajectory=True`` the list of the starting points and the points after each level
    (``len(timesteps) + 1`` tensors).

    Implements :eq:`eq-score-langevin` (chapter ``score_2d``).
    """
    if not callable(score):
        raise InputTypeError(f"score must be a function score(x, t), got {type(score).__name__}")
    _check_x(x)
    timesteps = _check_levels(timesteps)
    if isinstance(step_sizes, (str, bytes)) or not isinstance(step_sizes, (Sequence, torch.Tensor)):
        raise InputTypeError(f"step_sizes must be a list of positive numbers, got {type(step_sizes).__name__}")
    if len(timesteps) != len(step_sizes):
        raise InputValueError(
            f"give one step size per level: got {len(timesteps)} timesteps and {len(step_sizes)} step sizes"
        )
    step_sizes = [check_real(a, "every step size", minimum=0.0, strict=True) for a in step_sizes]
    n_steps_each = check_int(n_steps_each, "n_steps_each", minimum=0)
    if any(t1 <= t2 for t1, t2 in zip(timesteps, timesteps[1:])):
        raise InputValueError("timesteps must be strictly decreasing: anneal from the noisiest level to the cleanest")
    traj = [x.clone()]
    levels = zip(timesteps, step_sizes)
    if progress:
        from tqdm.auto import tqdm

        levels = tqdm(list(levels), desc="annealed Langevin")
    for t, a in levels:
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x = _langevin(lambda y: score(y, tt), x, a, n_steps_each, generator)
        if return_trajectory:
            traj.append(x.clone())
    _check_result(x, "annealed Langevin dynamics")
    return traj if return_trajectory else x
