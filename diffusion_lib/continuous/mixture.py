r"""A Gaussian mixture in d dimensions, whose noisy marginals and scores are known exactly.

The data density is p_0(x) = sum_k pi_k N(x; m_k, S_k). Under any diffusion with
x_t = alpha(t) x_0 + sigma(t) eps (the VP SDE of :mod:`~diffusion_lib.continuous.sde`, or a
discrete schedule with alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t)) each component stays
Gaussian, so the marginal at time t is again a mixture:

    p_t(x) = sum_k pi_k N(x; alpha m_k, C_k),        C_k = alpha^2 S_k + sigma^2 I,

and its score is the responsibility-weighted sum of the component scores:

    r_k(x)          = pi_k N(x; alpha m_k, C_k) / p_t(x)        (a softmax of log-weights)
    grad log p_t(x) = sum_k r_k(x) * ( -C_k^{-1} (x - alpha m_k) ).

The exact score gives the exact noise prediction of a perfectly trained network,
eps*(x, t) = E[eps | x_t = x] = -sigma(t) grad log p_t(x) (Vincent 2011; Song et al. 2021, eq. 7),
so the samplers, solvers and the likelihood can be tested without training anything.
Everything is computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from diffusion_lib._checks import check_int, check_real
from diffusion_lib.continuous import _args as check
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["GaussianMixture", "two_d_mixture", "eps_from_score", "NoiseLevels"]


class NoiseLevels(Protocol):
    """Anything with ``alpha(t)`` and ``sigma(t)``, such as :class:`~diffusion_lib.continuous.sde.VPSDE`."""

    def alpha(self, t: Any) -> torch.Tensor: ...

    def sigma(self, t: Any) -> torch.Tensor: ...


def eps_from_score(score: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    r"""eps = -sigma * score: the noise prediction that a score corresponds to (Song et al. 2021, eq. 7 and its
    denoising form, Vincent 2011). ``sigma`` is a number, or a tensor that broadcasts against ``score``
    (shape (B,) is reshaped to (B, 1, ...))."""
    check.data(score, "score")
    if isinstance(sigma, torch.Tensor):
        check.data(sigma.reshape(-1), "sigma")
        if sigma.ndim == 1 and sigma.shape[0] != score.shape[0]:
            raise InputValueError(f"sigma has {sigma.shape[0]} entries but score has a batch of {score.shape[0]}")
    else:
        sigma = check_real(sigma, "sigma", minimum=0.0)
    return -check.per_example(sigma, score) * score


def _as_float64(value: Any, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InputTypeError(f"{name} must be a tensor or a nested list of numbers, got {type(value).__name__}") from None
    if not bool(torch.isfinite(tensor).all()):
        raise InputValueError(f"{name} must hold finite numbers only")
    return tensor


class GaussianMixture:
    r"""p(x) = sum_k pi_k N(x; m_k, S_k) in d dimensions (float64).

    Args:
        weights: (K,) positive mixing weights pi_k summing to 1.
        means: (K, d) component means m_k.
        covariances: (K, d, d) symmetric positive-definite component covariances S_k.
    """

    def __init__(self, weights: Any, means: Any, covariances: Any) -> None:
        weights = _as_float64(weights, "weights")
        means = _as_float64(means, "means")
        covariances = _as_float64(covariances, "covariances")
        if weights.ndim != 1 or weights.numel() == 0:
            raise InputValueError(f"weights must be a non-empty 1-D tensor (K,), got shape {tuple(weights.shape)}")
        K = weights.shape[0]
        if means.ndim != 2 or means.shape[0] != K:
            raise InputValueError(f"means must have shape (K, d) = ({K}, d), got {tuple(means.shape)}")
        d = means.shape[1]
        if covariances.shape != (K, d, d):
            raise InputValueError(f"covariances must have shape (K, d, d) = ({K}, {d}, {d}), got {tuple(covariances.shape)}")
        if bool((weights <= 0).any()) or abs(float(weights.sum()) - 1.0) > 1e-9:
            raise InputValueError(f"weights must be positive and sum to 1, got {weights.tolist()}; divide by their sum")
        if not torch.allclose(covariances, covariances.transpose(-1, -2), atol=1e-12):
            raise InputValueError("covariances must be symmetric (S_k = S_k^T)")
        chol, info = torch.linalg.cholesky_ex(covariances)
        if bool((info != 0).any()):
            raise InputValueError("every covariance must be positive definite (its Cholesky factorisation failed)")
        self.weights, self.means, self.covariances = weights, means, covariances
        self._chol = chol
        self.K, self.dim = K, d

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, dim={self.dim})"

    # ------------------------------------------------------------------ moments
    def mean(self) -> torch.Tensor:
        """E[x] = sum_k pi_k m_k, shape (d,)."""
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Cov[x] = sum_k pi_k (S_k + m_k m_k^T) - E[x] E[x]^T, shape (d, d)."""
        second = torch.einsum("k,kij->ij", self.weights, self.covariances + self.means[:, :, None] * self.means[:, None, :])
        mu = self.mean()
        return second - torch.outer(mu, mu)

    def marginal_moments(self, t: float | torch.Tensor, sde: NoiseLevels) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean alpha E[x] and covariance alpha^2 Cov[x] + sigma^2 I of p_t, for a single time t."""
        t = check.unit_time(t)
        if isinstance(t, torch.Tensor) and t.numel() != 1:
            raise InputValueError("marginal_moments takes a single time t (a number or a 0-d tensor)")
        alpha, sigma = float(sde.alpha(t)), float(sde.sigma(t))
        return alpha * self.mean(), alpha**2 * self.covariance() + sigma**2 * torch.eye(self.dim, dtype=torch.float64)

    # ------------------------------------------------------------------ densities and scores
    def _check_x(self, x: Any) -> torch.Tensor:
        check.data(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputValueError(f"x must be a batch of points of shape (B, {self.dim}), got {tuple(x.shape)}")
        return x

    def _component_terms(
        self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi_k + log N(x; alpha m_k, C_k), shape (B, K), and the component scores, shape (B, K, d).

        ``alpha`` and ``sigma`` are float64 tensors of shape () or (B,).
        """
        x64 = x.to(torch.float64)
        a = alpha.reshape(-1, 1, 1, 1)  # (1 or B, 1, 1, 1)
        s = sigma.reshape(-1, 1, 1, 1)
        eye = torch.eye(self.dim, dtype=torch.float64)
        cov = a**2 * self.covariances + s**2 * eye  # C_k = alpha^2 S_k + sigma^2 I, (1 or B, K, d, d)
        chol = torch.linalg.cholesky(cov)
        centred = x64[:, None, :] - a[..., 0] * self.means  # x - alpha m_k, (B, K, d)
        whitened = torch.linalg.solve_triangular(chol, centred.unsqueeze(-1), upper=False)  # L^{-1} (x - alpha m_k)
        mahalanobis = whitened.squeeze(-1).pow(2).sum(-1)  # (B, K)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (1 or B, K)
        log_norm = -0.5 * (self.dim * math.log(2.0 * math.pi) + log_det + mahalanobis)
        component_scores = -torch.linalg.solve_triangular(chol.transpose(-1, -2), whitened, upper=True).squeeze(-1)
        return torch.log(self.weights) + log_norm, component_scores  # score_k = -C_k^{-1} (x - alpha m_k)

    def _levels(self, x: torch.Tensor, t: Any, sde: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not (hasattr(sde, "alpha") and hasattr(sde, "sigma")):
            raise InputTypeError(f"sde must have alpha(t) and sigma(t) methods (e.g. a VPSDE), got {type(sde).__name__}")
        t = check.unit_time(t)
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] != x.shape[0]:
            raise InputValueError(f"t has {t.shape[0]} entries but x has {x.shape[0]} points; pass one time per point "
                                  f"or a single number")
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.numel() > 0 and bool((t == t[0]).all()):
            t = t[0]  # one time for the whole batch: factorise the covariances once
        alpha = torch.as_tensor(sde.alpha(t), dtype=torch.float64)
        sigma = torch.as_tensor(sde.sigma(t), dtype=torch.float64)
        return alpha, sigma

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_0(x) = logsumexp_k (log pi_k + log N(x; m_k, S_k)), shape (B,), float64."""
        x = self._check_x(x)
        one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        log_terms, _ = self._component_terms(x, one, zero)
        return torch.logsumexp(log_terms, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from p_0 (float64, shape (n, d)): a component k ~ pi, then m_k + L_k z with S_k = L_k L_k^T."""
        n = check_int(n, "n", minimum=1)
        check.generator(generator)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64)
        return self.means[k] + (self._chol[k] @ z.unsqueeze(-1)).squeeze(-1)

    def marginal_log_prob(self, x: torch.Tensor, t: float | torch.Tensor, sde: NoiseLevels) -> torch.Tensor:
        """log p_t(x) = logsumexp_k (log pi_k + log N(x; alpha m_k, alpha^2 S_k + sigma^2 I)), shape (B,)."""
        x = self._check_x(x)
        log_terms, _ = self._component_terms(x, *self._levels(x, t, sde))
        return torch.logsumexp(log_terms, dim=1)

    def marginal_score(self, x: torch.Tensor, t: float | torch.Tensor, sde: NoiseLevels) -> torch.Tensor:
        r"""The exact score grad log p_t(x) = sum_k r_k(x) (-C_k^{-1} (x - alpha m_k)), in x's dtype.

        r_k = softmax_k(log pi_k + log N(x; alpha m_k, C_k)) (computed with logsumexp). Differentiable in x.
        """
        x = self._check_x(x)
        return self._score(x, *self._levels(x, t, sde))

    def _score(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        log_terms, component_scores = self._component_terms(x, alpha, sigma)
        responsibilities = torch.softmax(log_terms, dim=1)  # r_k(x), (B, K)
        return (responsibilities.unsqueeze(-1) * component_scores).sum(1).to(x.dtype)

    def marginal_eps(self, x: torch.Tensor, t: float | torch.Tensor, sde: NoiseLevels) -> torch.Tensor:
        """The ideal noise prediction eps*(x, t) = -sigma(t) grad log p_t(x) (a perfectly trained eps-network)."""
        x = self._check_x(x)
        alpha, sigma = self._levels(x, t, sde)
        return -check.per_example(sigma, x) * self._score(x, alpha, sigma)


def two_d_mixture(scale: float = 1.0) -> GaussianMixture:
    """A fixed 2-D mixture of four correlated Gaussians of different weights and widths, within about [-2, 2]^2.

    ``scale`` multiplies the means and the standard deviations (a positive number).
    """
    scale = check_real(scale, "scale", minimum=0.0, strict=True)
    weights = [0.35, 0.25, 0.25, 0.15]
    means: Sequence[Sequence[float]] = [[-1.0, -0.6], [1.1, -0.8], [0.2, 1.2], [1.4, 1.1]]
    stds = [(0.35, 0.20), (0.25, 0.30), (0.40, 0.22), (0.18, 0.18)]
    correlations = [0.5, -0.4, 0.2, 0.0]
    covariances = []
    for (sx, sy), rho in zip(stds, correlations):
        covariances.append([[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]])
    means_tensor = torch.tensor(means, dtype=torch.float64) * scale
    return GaussianMixture(weights, means_tensor, torch.tensor(covariances, dtype=torch.float64) * scale**2)
