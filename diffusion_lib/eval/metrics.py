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

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_lib._checks import check_int
from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

__all__ = ["wasserstein2_squared", "W2Estimate", "w2_to_reference", "w2_floor", "w2_gaussian_ceiling", "w2_ratio"]

#: Iteration cap of the network-simplex solver: ample for a few thousand points per side.
_NUM_ITER_MAX = 10_000_000


def _as_points(name: str, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``x`` as a float64 array ``(n, d)`` with n, d >= 1 and finite entries, or a library error."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise InputTypeError(f"{name} must hold real coordinates, but got dtype {x.dtype}; convert it with {name}.float()")
        x = x.detach().cpu().double().numpy()
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise InputTypeError(
                f"{name} must hold real coordinates, but got a numpy array of dtype {x.dtype}; "
                f"convert it with {name}.astype(np.float64)"
            )
        x = x.astype(np.float64, copy=False)
    else:
        raise InputTypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (n, d), got {type(x).__name__}"
        )
    if x.ndim != 2:
        raise InputValueError(
            f"{name} must be a 2-D array of points with shape (n, d), got shape {tuple(x.shape)}; "
            "flatten each sample to a row first (e.g. x.reshape(len(x), -1))"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least one point of dimension >= 1")
    if not np.all(np.isfinite(x)):
        raise InputValueError(
            f"{name} contains NaN or infinite values; a sampler that diverged produces these - "
            "check the step sizes and the model output"
        )
    return x


def wasserstein2_squared(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Exact squared 2-Wasserstein distance between two point clouds with uniform weights.

    Implements ``W_2^2 = min_pi sum_ij pi_ij ||x_i - y_j||_2^2`` over couplings ``pi`` with
    marginals ``1/n`` and ``1/m``, solved exactly by ``ot.emd2`` on the squared-Euclidean cost
    matrix. The cost is O(n^2) memory and roughly O(n^3) time: 2,000 points per side take a
    couple of seconds.

    Args:
        x: ``(n, d)`` points (tensor or array, any real dtype; computed in float64).
        y: ``(m, d)`` points with the same ``d``.

    Returns:
        ``W_2^2`` as a Python float, in squared data units.

    Raises:
        InputTypeError / InputValueError: not an ``(n, d)`` array of finite real numbers, or
            ``x`` and ``y`` of different dimension ``d``.
        NonFiniteError: the solver stopped before the optimum (its answer would be too large).
    """
    import ot  # POT; imported here so that importing diffusion_lib stays light

    xa = _as_points("x", x)
    ya = _as_points("y", y)
    if xa.shape[1] != ya.shape[1]:
        raise InputValueError(
            f"x and y must live in the same space: x has dimension {xa.shape[1]}, "
            f"y has dimension {ya.shape[1]}"
        )
    cost = ot.dist(xa, ya, metric="sqeuclidean")
    wa = np.full(xa.shape[0], 1.0 / xa.shape[0])
    wb = np.full(ya.shape[0], 1.0 / ya.shape[0])
    value, log = ot.emd2(wa, wb, cost, numItermax=_NUM_ITER_MAX, log=True)
    if log.get("result_code") != 1:
        raise NonFiniteError(
            f"the transport solver did not reach the optimum for {xa.shape[0]} x {ya.shape[0]} points "
            f"({log.get('warning')}); use fewer points per cloud (a few thousand at most)"
        )
    return max(float(value), 0.0)


Sampler = Callable[[int, int], torch.Tensor]


@dataclass(frozen=True)
class W2Estimate:
    """Mean of ``W_2^2`` over independent pairs of point clouds, with its standard error.

    ``values`` is a non-empty tuple of finite numbers >= 0 (one ``W_2^2`` per pair); a list or
    array is turned into a tuple of floats.
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        values = self.values
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise InputTypeError(f"values must be a tuple of W2^2 values, got {type(values).__name__}")
        values = tuple(values)
        if len(values) == 0:
            raise InputValueError("values is empty: a W2Estimate needs at least one W2^2 value")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise InputTypeError(f"values[{i}] must be a real number, got {type(v).__name__} {v!r}")
            if not math.isfinite(float(v)) or float(v) < 0:
                raise InputValueError(f"values[{i}] must be a finite W2^2 >= 0, got {v!r}")
        object.__setattr__(self, "values", tuple(float(v) for v in values))

    @property
    def mean(self) -> float:
        """Mean of the values."""
        return float(np.mean(self.values))

    @property
    def sem(self) -> float:
        """Standard error of the mean (0 for a single value)."""
        n = len(self.values)
        return float(np.std(self.values, ddof=1) / np.sqrt(n)) if n > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.sem:.4f}"


def _check_sampler_args(reference: Sampler, n: int, repeats: int, seed: int) -> tuple[int, int, int]:
    if not callable(reference):
        raise InputTypeError(
            f"reference must be a function reference(n, seed) returning n data points, got {type(reference).__name__}"
        )
    return check_int(n, "n", minimum=1), check_int(repeats, "repeats", minimum=1), check_int(seed, "seed", minimum=0)


def _draw(reference: Sampler, n: int, seed: int) -> np.ndarray:
    """``reference(n, seed)``, checked to be ``n`` finite points."""
    points = _as_points(f"reference({n}, {seed})", reference(n, seed))
    if points.shape[0] != n:
        raise InputValueError(f"reference({n}, {seed}) returned {points.shape[0]} points instead of {n}")
    return points


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
    n, _, seed = _check_sampler_args(reference, n, 1, seed)
    repeats = x.shape[0] // n
    if repeats < 1:
        raise InputValueError(f"samples has {x.shape[0]} points, fewer than one block of n = {n}; draw more samples or lower n")
    return W2Estimate(tuple(
        wasserstein2_squared(x[k * n:(k + 1) * n], _draw(reference, n, seed + k)) for k in range(repeats)
    ))


def w2_floor(reference: Sampler, n: int = 2000, repeats: int = 4, seed: int = 20_000) -> W2Estimate:
    """The best score a model can get: ``W_2^2`` between two independent data draws of ``n`` points.

    Pair k compares ``reference(n, seed + 2k)`` with ``reference(n, seed + 2k + 1)``.
    """
    n, repeats, seed = _check_sampler_args(reference, n, repeats, seed)
    return W2Estimate(tuple(
        wasserstein2_squared(_draw(reference, n, seed + 2 * k), _draw(reference, n, seed + 2 * k + 1))
        for k in range(repeats)
    ))


def w2_gaussian_ceiling(reference: Sampler, n: int = 2000, repeats: int = 4, seed: int = 30_000) -> W2Estimate:
    """The score of a model that learned nothing: ``W_2^2`` between ``N(0, I)`` noise and the data.

    Pair k compares ``n`` draws of ``N(0, I)`` (a generator seeded with ``seed + k``, in the
    dimension of the data) with ``reference(n, seed + 1000 + k)``.
    """
    n, repeats, seed = _check_sampler_args(reference, n, repeats, seed)
    values = []
    for k in range(repeats):
        data = _draw(reference, n, seed + 1000 + k)
        g = torch.Generator().manual_seed(seed + k)
        values.append(wasserstein2_squared(torch.randn(n, data.shape[1], generator=g), data))
    return W2Estimate(tuple(values))


def w2_ratio(score: W2Estimate, floor: W2Estimate) -> tuple[float, float]:
    """How many times the floor a score is, with its standard error: ``(ratio, sem)``.

    ``ratio = score.mean / floor.mean``; the standard error follows from the two independent
    standard errors to first order, ``sem = ratio * sqrt((s_a / a)^2 + (s_b / b)^2)`` (the first
    term is 0 when ``score.mean`` is 0). With four pairs of 2,000 Swiss-roll points the floor
    alone is uncertain by about a quarter, so quote a ratio with one decimal.
    """
    if not isinstance(score, W2Estimate) or not isinstance(floor, W2Estimate):
        raise InputTypeError(
            "w2_ratio(score, floor) takes two W2Estimate objects, e.g. from w2_to_reference and w2_floor; "
            f"got {type(score).__name__} and {type(floor).__name__}"
        )
    if not floor.mean > 0:
        raise InputValueError(
            f"the floor must be positive to divide by it, got {floor.mean}; a floor of 0 means the two "
            "reference draws were identical, so use different seeds"
        )
    ratio = score.mean / floor.mean
    rel = np.hypot(score.sem / score.mean if score.mean > 0 else 0.0, floor.sem / floor.mean)
    return float(ratio), float(ratio * rel)
