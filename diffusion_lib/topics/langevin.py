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

import torch
from torch import nn

from diffusion_lib.core.schedules import NoiseSchedule

__all__ = ["score_from_eps_model", "tweedie_x0", "langevin_dynamics", "annealed_langevin", "annealed_step_sizes"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def score_from_eps_model(model: nn.Module, schedule: NoiseSchedule) -> ScoreFn:
    """Turn a noise predictor into a score function ``score(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t)``.

    Only the first ``d`` outputs are used, so a model with a learned variance works too.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(x, t)[:, : x.shape[1]]
        return -eps / schedule.sqrt_one_minus_alpha_bar[t].unsqueeze(1)

    return score


def tweedie_x0(x: torch.Tensor, score: torch.Tensor, alpha_bar_t: torch.Tensor | float) -> torch.Tensor:
    r"""Tweedie's formula for x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps:

    E[x_0 | x_t = x] = (x + (1 - abar_t) grad log q_t(x)) / sqrt(abar_t).

    ``alpha_bar_t`` is a float or a tensor broadcastable to ``x`` (e.g. shape ``(B, 1)``).

    Implements :eq:`eq-score-tweedie` (chapter ``score_2d``).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(score, torch.Tensor):
        raise TypeError("x and score must be torch.Tensors")
    if x.shape != score.shape:
        raise ValueError(f"x and score must have the same shape, got {tuple(x.shape)} and {tuple(score.shape)}")
    ab = torch.as_tensor(alpha_bar_t, dtype=x.dtype, device=x.device)
    if bool((ab <= 0).any()) or bool((ab > 1).any()):
        raise ValueError("alpha_bar_t must lie in (0, 1]: it is the signal fraction abar_t of x_t")
    return (x + (1.0 - ab) * score) / ab.sqrt()


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
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    with torch.no_grad():
        for _ in range(n_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + 0.5 * step_size * score(x) + step_size**0.5 * z
    return x


def annealed_step_sizes(schedule: NoiseSchedule, timesteps: Sequence[int], eps: float) -> list[float]:
    r"""Song & Ermon's rule a_t = eps * sigma_t^2 / sigma_min^2 with sigma_t^2 = 1 - abar_t.

    ``sigma_min`` is the smallest noise level in ``timesteps``, so the last level uses step ``eps``.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    var = [float(1.0 - schedule.alpha_bar[t]) for t in timesteps]
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

    Returns the final points, or with ``return_trajectory=True`` the list of the starting points
    and the points after each level (``len(timesteps) + 1`` tensors).
    """
    timesteps = [int(t) for t in timesteps]
    step_sizes = [float(a) for a in step_sizes]
    if len(timesteps) == 0 or len(timesteps) != len(step_sizes):
        raise ValueError(
            f"give one step size per level: got {len(timesteps)} timesteps and {len(step_sizes)} step sizes"
        )
    if any(a <= 0 for a in step_sizes):
        raise ValueError("every step size must be positive")
    if any(t1 <= t2 for t1, t2 in zip(timesteps, timesteps[1:])):
        raise ValueError("timesteps must be strictly decreasing: anneal from the noisiest level to the cleanest")
    traj = [x.clone()]
    levels = zip(timesteps, step_sizes)
    if progress:
        from tqdm.auto import tqdm

        levels = tqdm(list(levels), desc="annealed Langevin")
    for t, a in levels:
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        x = langevin_dynamics(lambda y: score(y, tt), x, a, n_steps_each, generator)
        if return_trajectory:
            traj.append(x.clone())
    return traj if return_trajectory else x
