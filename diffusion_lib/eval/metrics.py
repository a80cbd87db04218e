"""Sample-quality metrics for low-dimensional data (Part II: the Swiss roll).

The book scores a 2-D generative model by the squared 2-Wasserstein distance between a cloud
of generated points and a cloud of fresh data points,

    W_2^2(mu, nu) = min_{pi in Pi(mu, nu)} sum_{i,j} pi_ij * ||x_i - y_j||^2,

where mu and nu are the empirical measures (uniform weights 1/n and 1/m) and Pi(mu, nu) is the
set of couplings with those marginals. For equal sizes n = m the optimum is a permutation, so
W_2^2 is the mean squared distance of the best one-to-one matching. We solve the transport
problem exactly with POT's network-simplex solver ``ot.emd2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["wasserstein2_squared", "W2Estimate", "w2_to_reference", "w2_floor", "w2_gaussian_ceiling", "w2_ratio"]


def _as_points(name: str, x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    elif isinstance(x, np.ndarray):
        x = x.astype(np.float64, copy=False)
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (n, d), got {type(x).__name__}"
        )
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of points with shape (n, d), got shape {tuple(x.shape)}; "
            "flatten each sample to a row first (e.g. x.reshape(len(x), -1))"
        )
    if x.shape[0] < 1:
        raise ValueError(f"{name} is empty: it needs at least one point")
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} contains NaN or infinite values; a sampler that diverged produces these - "
            "check the step sizes and the model output"
        )
    return x


def wasserstein2_squared(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    num_iter_max: int = 10_000_000,
) -> float:
    """Exact squared 2-Wasserstein distance between two point clouds with uniform weights.

    Implements ``W_2^2 = min_pi sum_ij pi_ij ||x_i - y_j||_2^2`` over couplings ``pi`` with
    marginals ``1/n`` and ``1/m``, solved exactly by ``ot.emd2`` on the squared-Euclidean cost
    matrix. The cost is O(n^2) memory and roughly O(n^3) time: 2,000 points per side take a
    couple of seconds.

    Args:
        x: ``(n, d)`` points (tensor or array).
        y: ``(m, d)`` points with the same ``d``.
        num_iter_max: iteration cap of the network-simplex solver; the default is large enough
            for a few thousand points (the solver warns if it stops early).

    Returns:
        ``W_2^2`` as a Python float, in squared data units.
    """
    import ot  # POT; imported here so that importing diffusion_lib stays light

    xa = _as_points("x", x)
    ya = _as_points("y", y)
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            f"x and y must live in the same space: x has dimension {xa.shape[1]}, "
            f"y has dimension {ya.shape[1]}"
        )
    cost = ot.dist(xa, ya, metric="sqeuclidean")
    wa = np.full(xa.shape[0], 1.0 / xa.shape[0])
    wb = np.full(ya.shape[0], 1.0 / ya.shape[0])
    return float(ot.emd2(wa, wb, cost, numItermax=int(num_iter_max)))


Sampler = Callable[[int, int], torch.Tensor]


@dataclass(frozen=True)
class W2Estimate:
    """Mean of ``W_2^2`` over independent pairs of point clouds, with its standard error."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sem(self) -> float:
        """Standard error of the mean (0 for a single value)."""
        n = len(self.values)
        return float(np.std(self.values, ddof=1) / np.sqrt(n)) if n > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.sem:.4f}"


def _check_sampler_args(n: int, repeats: int, seed: int) -> None:
    for name, v in [("n", n), ("repeats", repeats)]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def w2_to_reference(
    samples: torch.Tensor | np.ndarray,
    reference: Sampler,
    n: int = 2000,
    seed: int = 10_000,
) -> W2Estimate:
    """``W_2^2`` between generated points and fresh data, averaged over ``len(samples) // n`` pairs.

    ``samples`` (at least ``n`` rows) is cut into consecutive blocks of ``n`` points; block k is
    compared with ``reference(n, seed + k)``, a fresh draw of ``n`` data points. For 2,000 points on
    the Swiss roll one value scatters by about half its size (mass must be moved along the roll
    to even out random density fluctuations), so average several blocks.
    """
    x = _as_points("samples", samples)
    _check_sampler_args(n, 1, seed)
    repeats = x.shape[0] // n
    if repeats < 1:
        raise ValueError(f"samples has {x.shape[0]} points, fewer than one block of n = {n}")
    return W2Estimate(tuple(
        wasserstein2_squared(x[k * n:(k + 1) * n], reference(n, seed + k)) for k in range(repeats)
    ))


def w2_floor(reference: Sampler, n: int = 2000, repeats: int = 4, seed: int = 20_000) -> W2Estimate:
    """The best score a model can get: ``W_2^2`` between two independent data draws of ``n`` points.

    Pair k compares ``reference(n, seed + 2k)`` with ``reference(n, seed + 2k + 1)``.
    """
    _check_sampler_args(n, repeats, seed)
    return W2Estimate(tuple(
        wasserstein2_squared(reference(n, seed + 2 * k), reference(n, seed + 2 * k + 1)) for k in range(repeats)
    ))


def w2_gaussian_ceiling(reference: Sampler, n: int = 2000, repeats: int = 4, seed: int = 30_000,
                        dim: int = 2) -> W2Estimate:
    """The score of a model that learned nothing: ``W_2^2`` between ``N(0, I)`` noise and the data."""
    _check_sampler_args(n, repeats, seed)
    values = []
    for k in range(repeats):
        g = torch.Generator().manual_seed(seed + k)
        values.append(wasserstein2_squared(torch.randn(n, dim, generator=g), reference(n, seed + 1000 + k)))
    return W2Estimate(tuple(values))


def w2_ratio(score: W2Estimate, floor: W2Estimate) -> tuple[float, float]:
    """How many times the floor a score is, with its standard error: ``(ratio, sem)``.

    ``ratio = score.mean / floor.mean``; the standard error follows from the two independent
    standard errors to first order, ``sem = ratio * sqrt((s_a / a)^2 + (s_b / b)^2)``. With four
    pairs of 2,000 Swiss-roll points the floor alone is uncertain by about a quarter, so quote a
    ratio with one decimal.
    """
    if not isinstance(score, W2Estimate) or not isinstance(floor, W2Estimate):
        raise TypeError(
            "w2_ratio(score, floor) takes two W2Estimate objects, e.g. from w2_to_reference and w2_floor; "
            f"got {type(score).__name__} and {type(floor).__name__}"
        )
    if not floor.mean > 0:
        raise ValueError(f"the floor must be positive to divide by it, got {floor.mean}")
    ratio = score.mean / floor.mean
    rel = np.hypot(score.sem / score.mean if score.mean > 0 else 0.0, floor.sem / floor.mean)
    return float(ratio), float(ratio * rel)
