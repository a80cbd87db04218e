"""The variational autoencoder and the evidence lower bound (chapter ``book/vae.ipynb``).

What lives here, each with the equation it implements:

* Gaussian helpers: the log density of a full-covariance Gaussian, the KL divergence between two
  Gaussians in closed form (diagonal and full covariance), and a Monte Carlo KL estimate.
* ``reparameterize``: z = mu + sigma * eps with eps ~ N(0, I) (the reparameterisation trick).
* ``gradient_samples``: single-sample estimates of the gradient of E_{q(z)}[f(z)] with respect to
  the mean and log standard deviation of a diagonal Gaussian q, by the reparameterisation
  (pathwise) estimator and by the score-function (REINFORCE) estimator.
* ``PPCA``: probabilistic PCA, the linear-Gaussian latent-variable model
  p(z) = N(0, I), p(x | z) = N(W z + mu, sigma^2 I), whose evidence log p(x), posterior p(z | x)
  and ELBO for any Gaussian q(z | x) are all available in closed form; ``fit_ppca`` is the
  maximum-likelihood fit of Tipping and Bishop (1999).
* ``VAE`` and ``train_vae``: a small fully connected VAE for the 8x8 digits with a Gaussian
  decoder, its ELBO per image, and an importance-sampled estimate of log p(x).

Shapes: a batch of data is ``(N, D)`` (images are flattened by ``VAE``), latents are ``(N, K)``.
Every function works in float32 and in float64; the tensors of one call must share one dtype.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from diffusion_lib._checks import (
    check_broadcastable,
    check_choice,
    check_finite,
    check_floating,
    check_input_dtype,
    check_int,
    check_real,
)
from diffusion_lib.core.losses import gaussian_log_likelihood, normal_kl
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "mvn_log_prob",
    "kl_mvn",
    "kl_diag_gaussians",
    "kl_diag_gaussians_mc",
    "reparameterize",
    "gradient_samples",
    "PPCA",
    "fit_ppca",
    "VAE",
    "train_vae",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _check_data(x: Any, name: str) -> torch.Tensor:
    """A finite floating tensor with at least one dimension."""
    check_floating(x, name)
    if x.ndim == 0:
        raise InputValueError(f"{name} must have a last dimension D (shape (..., D)), but got a scalar tensor")
    return check_finite(x, name)


def _check_same_dtype(*named: tuple[str, torch.Tensor]) -> torch.dtype:
    dtypes = {t.dtype for _, t in named}
    if len(dtypes) > 1:
        described = ", ".join(f"{n} {t.dtype}" for n, t in named)
        raise InputTypeError(
            f"the tensors of one call must share one dtype, but got {described}; convert them all with "
            f".double() (or all with .float())"
        )
    return dtypes.pop()


def _check_cov(cov: Any, name: str, dim: int) -> torch.Tensor:
    """A finite, symmetric, positive-definite ``(..., dim, dim)`` matrix; returns its Cholesky factor.

    Cholesky reads only the lower triangle, so a non-symmetric matrix would silently be replaced by
    the symmetric matrix of its lower half: refuse it instead.
    """
    check_floating(cov, name)
    if dim < 1:
        raise InputValueError(f"the Gaussian must have dimension D >= 1, but the data's last dimension is {dim}")
    if cov.ndim < 2 or tuple(cov.shape[-2:]) != (dim, dim):
        raise InputValueError(
            f"{name} must be a ({dim}, {dim}) covariance matrix (or a batch (..., {dim}, {dim})), "
            f"but got shape {tuple(cov.shape)}"
        )
    check_finite(cov, name)
    if cov.numel():
        c = cov.detach()
        scale = float(c.abs().max())
        tol = 1e3 * torch.finfo(c.dtype).eps * max(scale, 1e-30)
        asym = float((c - c.mT).abs().max())
        if asym > tol:
            raise InputValueError(
                f"{name} must be symmetric (a covariance equals its transpose), but |{name} - {name}.T| "
                f"reaches {asym:.3g}; symmetrise it with 0.5 * ({name} + {name}.mT) if that is what you meant"
            )
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()) or not bool(torch.isfinite(chol.detach()).all()):
        raise InputValueError(
            f"{name} must be positive definite (every eigenvalue > 0), but its Cholesky factorisation "
            f"fails; check the variances, or add a small multiple of the identity"
        )
    return chol


def _half_logdet(chol: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


# --------------------------------------------------------------------------------------------
# Gaussian helpers
# --------------------------------------------------------------------------------------------
def mvn_log_prob(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, cov) = -1/2 [D log 2 pi + log det cov + (x - mean)^T cov^{-1} (x - mean)].

    ``x`` and ``mean`` broadcast against each other with last dimension D; ``cov`` is ``(D, D)``
    (or batched ``(..., D, D)``), symmetric and positive definite. Returns a tensor over the
    leading (batch) dimensions.
    """
    _check_data(x, "x")
    _check_data(mean, "mean")
    d = x.shape[-1]
    if mean.shape[-1] != d:
        raise InputValueError(f"x has last dimension {d} but mean has {mean.shape[-1]}; they must match")
    chol = _check_cov(cov, "cov", d)
    _check_same_dtype(("x", x), ("mean", mean), ("cov", cov))
    batch = check_broadcastable(("x", x), ("mean", mean))[:-1]
    check_broadcastable(("the batch of x and mean", torch.empty(batch)), ("the batch of cov", cov[..., 0, 0]))
    diff = (x - mean).unsqueeze(-1)
    chol = chol.expand(*torch.broadcast_shapes(batch, cov.shape[:-2]), d, d)
    diff = diff.expand(*chol.shape[:-2], d, 1)
    sol = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)
    return -0.5 * (d * _LOG_2PI + 2.0 * _half_logdet(chol) + (sol**2).sum(-1))


def kl_mvn(mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) for full covariances, in nats.

    KL = 1/2 [tr(cov_p^{-1} cov_q) + (m_p - m_q)^T cov_p^{-1} (m_p - m_q) - D + log det cov_p - log det cov_q].
    Means are ``(..., D)``; covariances ``(D, D)`` or batched ``(..., D, D)``, symmetric and
    positive definite.
    """
    _check_data(mean_q, "mean_q")
    _check_data(mean_p, "mean_p")
    d = mean_q.shape[-1]
    if mean_p.shape[-1] != d:
        raise InputValueError(f"mean_q has dimension {d} but mean_p has {mean_p.shape[-1]}; they must match")
    chol_q = _check_cov(cov_q, "cov_q", d)
    chol_p = _check_cov(cov_p, "cov_p", d)
    _check_same_dtype(("mean_q", mean_q), ("cov_q", cov_q), ("mean_p", mean_p), ("cov_p", cov_p))
    batch = check_broadcastable(("mean_q", mean_q), ("mean_p", mean_p))[:-1]
    cov_batch = check_broadcastable(("the batch of cov_q", cov_q[..., 0, 0]), ("the batch of cov_p", cov_p[..., 0, 0]))
    full = check_broadcastable(("the batch of the means", torch.empty(batch)), ("the batch of the covariances", torch.empty(cov_batch)))
    chol_p = chol_p.expand(*cov_batch, d, d)
    chol_q = chol_q.expand(*cov_batch, d, d)
    # tr(cov_p^{-1} cov_q) = ||L_p^{-1} L_q||_F^2
    a = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)
    trace = (a**2).sum((-2, -1))
    diff = (mean_p - mean_q).unsqueeze(-1).expand(*full, d, 1)
    maha = (torch.linalg.solve_triangular(chol_p.expand(*full, d, d), diff, upper=False).squeeze(-1) ** 2).sum(-1)
    return 0.5 * (trace + maha - d) + _half_logdet(chol_p) - _half_logdet(chol_q)


def kl_diag_gaussians(
    mean_q: torch.Tensor,
    logvar_q: torch.Tensor,
    mean_p: torch.Tensor | float = 0.0,
    logvar_p: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """KL(N(mean_q, diag e^{logvar_q}) || N(mean_p, diag e^{logvar_p})), summed over the last dim.

    Per dimension: 1/2 [logvar_p - logvar_q + (e^{logvar_q} + (mean_q - mean_p)^2) / e^{logvar_p} - 1]
    (:func:`diffusion_lib.core.losses.normal_kl`). With the defaults the prior is N(0, I), the VAE's
    KL term 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1). The prior's parameters (floats or tensors)
    must broadcast to the shape of ``mean_q``.

    Implements :eq:`eq-vae-kl` (chapter ``vae``).
    Implements :eq:`eq-kl-standard` (chapter ``forward_process``).
    """
    _check_data(mean_q, "mean_q")
    _check_data(logvar_q, "logvar_q")
    if mean_q.shape != logvar_q.shape:
        raise InputValueError(
            f"mean_q {tuple(mean_q.shape)} and logvar_q {tuple(logvar_q.shape)} must have the same shape "
            "(pass log-variances, one per dimension)"
        )
    _check_same_dtype(("mean_q", mean_q), ("logvar_q", logvar_q))
    prior = []
    for name, value in (("mean_p", mean_p), ("logvar_p", logvar_p)):
        if isinstance(value, torch.Tensor):
            check_floating(value, name)
            check_finite(value, name)
            _check_same_dtype(("mean_q", mean_q), (name, value))
        else:
            value = torch.tensor(check_real(value, name), dtype=mean_q.dtype, device=mean_q.device)
        prior.append((name, value))
    shape = check_broadcastable(("mean_q", mean_q), *prior)
    if tuple(shape) != tuple(mean_q.shape):
        raise InputValueError(
            f"the prior's parameters must broadcast to the shape of mean_q {tuple(mean_q.shape)}, but "
            f"mean_p {tuple(prior[0][1].shape)} and logvar_p {tuple(prior[1][1].shape)} give {tuple(shape)}"
        )
    return normal_kl(mean_q, logvar_q, prior[0][1], prior[1][1]).sum(-1)


def reparameterize(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw z = mean + exp(logvar / 2) * eps with eps ~ N(0, I): a sample of N(mean, diag e^{logvar}).

    The sample is a differentiable function of ``mean`` and ``logvar`` (the reparameterisation
    trick). With ``n_samples=S`` the result has a new leading dimension of size S.

    Implements :eq:`eq-vae-reparam` (chapter ``vae``).
    """
    _check_data(mean, "mean")
    _check_data(logvar, "logvar")
    if mean.shape != logvar.shape:
        raise InputValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
    _check_same_dtype(("mean", mean), ("logvar", logvar))
    if n_samples is not None:
        n_samples = check_int(n_samples, "n_samples", minimum=1)
    shape = mean.shape if n_samples is None else (n_samples, *mean.shape)
    eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_diag_gaussians_mc(
    mean_q: torch.Tensor,
    logvar_q: torch.Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte Carlo estimate of KL(q || N(0, I)) = E_q[log q(z) - log p(z)] with ``n_samples`` draws.

    Returns the per-draw values, shape ``(n_samples, ...)``; their mean estimates the KL of
    ``kl_diag_gaussians(mean_q, logvar_q)`` and their standard deviation shows the noise.

    Implements :eq:`eq-vae-kl` (chapter ``vae``).
    """
    z = reparameterize(mean_q, logvar_q, check_int(n_samples, "n_samples", minimum=1), generator)
    log_q = gaussian_log_likelihood(z, mean_q, logvar_q).sum(-1)
    log_p = gaussian_log_likelihood(z, torch.zeros_like(z), 0.0).sum(-1)
    return log_q - log_p


def gradient_samples(
    f: Callable[[torch.Tensor], torch.Tensor],
    mean: torch.Tensor,
    log_std: torch.Tensor,
    n_samples: int,
    estimator: str = "reparam",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Single-sample estimates of the gradient of E_{z ~ N(mean, diag exp(2 log_std))}[f(z)].

    Returns ``(n_samples, 2, D)``: ``[:, 0]`` estimates d/d mean, ``[:, 1]`` estimates d/d log_std.
    Averaging over the first axis gives the Monte Carlo gradient; the spread over it is the
    estimator's noise.

    * ``"reparam"`` (pathwise): with z = mean + std * eps, the gradient of f(z) is
      f'(z) for the mean and f'(z) * std * eps for log_std.
    * ``"score"`` (score function / REINFORCE): f(z) times grad log q(z), i.e.
      f(z) (z - mean) / std^2 for the mean and f(z) ((z - mean)^2 / std^2 - 1) for log_std.

    ``f`` maps a batch ``(S, D)`` to one value per sample ``(S,)`` and must be written in torch
    (the reparameterised estimator differentiates it).

    Implements :eq:`eq-vae-reparam` (chapter ``vae``).
    Implements :eq:`eq-vae-score` (chapter ``vae``).
    """
    if not callable(f):
        raise InputTypeError(f"f must be a function z -> f(z) written in torch, but got {type(f).__name__}")
    _check_data(mean, "mean")
    _check_data(log_std, "log_std")
    if mean.ndim != 1 or mean.shape != log_std.shape:
        raise InputValueError(
            f"mean and log_std must be 1-D tensors of the same length D, got {tuple(mean.shape)} and {tuple(log_std.shape)}"
        )
    _check_same_dtype(("mean", mean), ("log_std", log_std))
    check_choice(estimator, ("reparam", "score"), "estimator")
    n = check_int(n_samples, "n_samples", minimum=1)
    std = log_std.detach().exp()
    eps = torch.randn((n, mean.shape[0]), generator=generator, dtype=mean.dtype, device=mean.device)
    z = (mean.detach() + std * eps).requires_grad_(estimator == "reparam")
    values = f(z)
    if not isinstance(values, torch.Tensor) or tuple(values.shape) != (n,):
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise InputValueError(f"f must return one value per sample, a tensor of shape ({n},); got {got}")
    check_finite(values.detach(), "f(z)")
    if estimator == "reparam":
        if not values.requires_grad:
            raise InputValueError(
                "the reparameterised estimator differentiates f, but f(z) does not depend on z through "
                "torch operations; write f with torch functions (not numpy or .item())"
            )
        # Samples are independent, so the gradient of the sum gives each sample's own f'(z).
        (dfdz,) = torch.autograd.grad(values.sum(), z, allow_unused=True)
        if dfdz is None:
            dfdz = torch.zeros_like(z)
        return torch.stack([dfdz, dfdz * std * eps], dim=1).detach()
    values = values.detach().unsqueeze(-1)
    return torch.stack([values * eps / std, values * (eps**2 - 1.0)], dim=1)


# --------------------------------------------------------------------------------------------
# Probabilistic PCA: a latent-variable model where everything is exact
# --------------------------------------------------------------------------------------------
class PPCA:
    """Probabilistic PCA: p(z) = N(0, I_K), p(x | z) = N(W z + mu, sigma2 I_D).

    Closed forms (Tipping and Bishop, 1999):

    * evidence: p(x) = N(x; mu, C) with C = W W^T + sigma2 I;
    * posterior: p(z | x) = N(M^{-1} W^T (x - mu), sigma2 M^{-1}) with M = W^T W + sigma2 I;
    * ELBO of a Gaussian q(z | x) = N(m, S):
      E_q[log p(x | z)] + E_q[log p(z)] + H[q] with
      E_q[log p(x|z)] = -D/2 log(2 pi sigma2) - (||x - W m - mu||^2 + tr(W S W^T)) / (2 sigma2),
      E_q[log p(z)] = -K/2 log 2 pi - (||m||^2 + tr S) / 2, H[q] = K/2 log(2 pi e) + 1/2 log det S.

    All tensors passed to its methods must have the dtype of ``W``.

    Implements :eq:`eq-ppca` (chapter ``vae``).
    """

    def __init__(self, W: torch.Tensor, mu: torch.Tensor, sigma2: float) -> None:
        check_floating(W, "W")
        check_floating(mu, "mu")
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
            raise InputValueError(f"W must be a (D, K) matrix with D, K >= 1, got shape {tuple(W.shape)}")
        if mu.shape != (W.shape[0],):
            raise InputValueError(f"mu must have shape ({W.shape[0]},) to match W's D rows, got {tuple(mu.shape)}")
        check_finite(W, "W")
        check_finite(mu, "mu")
        _check_same_dtype(("W", W), ("mu", mu))
        sigma2 = check_real(sigma2, "sigma2 (the noise variance)", minimum=0.0, strict=True)
        self.W, self.mu, self.sigma2 = W, mu, sigma2
        self.D, self.K = W.shape

    def _check_x(self, x: torch.Tensor, name: str = "x", last: int | None = None) -> torch.Tensor:
        _check_data(x, name)
        last = self.D if last is None else last
        if x.shape[-1] != last:
            raise InputValueError(f"{name} must have last dimension {last}, got shape {tuple(x.shape)}")
        check_input_dtype(x, self.W.dtype, name, "this PPCA (its W)")
        return x

    def marginal_cov(self) -> torch.Tensor:
        """C = W W^T + sigma2 I, the covariance of p(x)."""
        C = self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=self.W.dtype, device=self.W.device)
        return 0.5 * (C + C.T)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; mu, W W^T + sigma2 I), one value per row of ``x``.

        Implements :eq:`eq-ppca` (chapter ``vae``).
        """
        return mvn_log_prob(self._check_x(x), self.mu, self.marginal_cov())

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior p(z | x) = N(M^{-1} W^T (x - mu), sigma2 M^{-1}); returns (means (N, K), cov (K, K)).

        Implements :eq:`eq-ppca` (chapter ``vae``).
        """
        x = self._check_x(x)
        M = self.W.T @ self.W + self.sigma2 * torch.eye(self.K, dtype=self.W.dtype, device=self.W.device)
        Minv = torch.linalg.inv(M)
        mean = (x - self.mu) @ self.W @ Minv.T
        cov = self.sigma2 * Minv
        return mean, 0.5 * (cov + cov.T)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs by ancestral sampling; returns (x (n, D), z (n, K))."""
        n = check_int(n, "n", minimum=0)
        kw = dict(generator=generator, dtype=self.W.dtype, device=self.W.device)
        z = torch.randn((n, self.K), **kw)
        noise = torch.randn((n, self.D), **kw)
        return z @ self.W.T + self.mu + math.sqrt(self.sigma2) * noise, z

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log N(x; W z + mu, sigma2 I) + log N(z; 0, I); broadcasts over leading dims."""
        x = self._check_x(x)
        z = self._check_x(z, "z", self.K)
        check_broadcastable(("x without its last dimension", x[..., 0]), ("z without its last dimension", z[..., 0]))
        resid = x - z @ self.W.T - self.mu
        log_lik = -0.5 * (self.D * math.log(2 * math.pi * self.sigma2) + (resid**2).sum(-1) / self.sigma2)
        log_prior = -0.5 * (self.K * _LOG_2PI + (z**2).sum(-1))
        return log_lik + log_prior

    def _check_q(self, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        self._check_x(q_mean, "q_mean", self.K)
        chol = _check_cov(q_cov, "q_cov", self.K)
        check_input_dtype(q_cov, self.W.dtype, "q_cov", "this PPCA (its W)")
        return chol

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """Closed-form ELBO of q(z | x) = N(q_mean, q_cov) (see the class docstring), per row of x.

        Implements :eq:`eq-ppca-elbo` (chapter ``vae``).
        """
        x = self._check_x(x)
        chol = self._check_q(q_mean, q_cov)
        resid = x - q_mean @ self.W.T - self.mu
        tr_wsw = torch.diagonal(self.W @ q_cov @ self.W.T, dim1=-2, dim2=-1).sum(-1)
        exp_lik = -0.5 * self.D * math.log(2 * math.pi * self.sigma2) - ((resid**2).sum(-1) + tr_wsw) / (2 * self.sigma2)
        tr_s = torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1)
        exp_prior = -0.5 * self.K * _LOG_2PI - 0.5 * ((q_mean**2).sum(-1) + tr_s)
        entropy = 0.5 * self.K * (_LOG_2PI + 1.0) + _half_logdet(chol)
        return exp_lik + exp_prior + entropy

    def elbo_mc(
        self,
        x: torch.Tensor,
        q_mean: torch.Tensor,
        q_cov: torch.Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-draw Monte Carlo ELBO values log p(x, z) - log q(z | x), z ~ q; shape (n_samples, N).

        Implements :eq:`eq-vae-elbo` (chapter ``vae``).
        """
        x = self._check_x(x)
        chol = self._check_q(q_mean, q_cov)
        n = check_int(n_samples, "n_samples", minimum=1)
        eps = torch.randn((n, *q_mean.shape), generator=generator, dtype=q_mean.dtype, device=q_mean.device)
        z = q_mean + eps @ chol.mT
        return self.log_joint(x, z) - mvn_log_prob(z, q_mean, q_cov)


def fit_ppca(x: torch.Tensor, k: int) -> PPCA:
    """Maximum-likelihood PPCA with ``k`` latent dimensions (Tipping and Bishop, 1999, closed form).

    With the sample covariance's eigenvalues lambda_1 >= ... >= lambda_D and eigenvectors U:
    mu = sample mean, sigma2 = mean of the D - k smallest eigenvalues, W = U_k (Lambda_k - sigma2 I)^{1/2}.
    """
    check_floating(x, "x")
    if x.ndim != 2:
        raise InputValueError(f"x must be a (N, D) data matrix (flatten images first), got shape {tuple(x.shape)}")
    n, d = x.shape
    if n < 2:
        raise InputValueError(f"x must hold at least 2 data points (rows) to estimate a covariance, got {n}")
    if d < 2:
        raise InputValueError(f"x must have D >= 2 columns (k must satisfy 1 <= k < D), got D = {d}")
    check_finite(x, "x")
    k = check_int(k, "k", minimum=1)
    if k >= d:
        raise InputValueError(f"k must be an int with 1 <= k < D={d}, got {k}")
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / n
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[k:].mean().clamp_min(1e-6)
    W = evecs[:, :k] * (evals[:k] - sigma2).clamp_min(0.0).sqrt()
    return PPCA(W, mu, float(sigma2))


# --------------------------------------------------------------------------------------------
# A small VAE for the 8x8 digits
# --------------------------------------------------------------------------------------------
class VAE(nn.Module):
    """A fully connected VAE with a diagonal-Gaussian encoder and a Gaussian decoder.

    * prior p(z) = N(0, I_K);
    * encoder q(z | x) = N(mu_phi(x), diag sigma_phi^2(x)) (outputs a mean and a log-variance);
    * decoder p(x | z) = N(f_theta(z), s^2 I_D) with one learned log standard deviation s.

    ``elbo_terms`` returns per-image reconstruction E_q[log p(x | z)] (one reparameterised sample
    per image unless ``n_samples`` > 1), KL(q(z | x) || p(z)) in closed form, and their difference,
    the ELBO. Inputs may be images ``(N, 1, 8, 8)`` or flat ``(N, D)``; all values are in nats per
    image (densities of continuous pixel values, so the ELBO can be positive). Inputs must have
    the dtype of the parameters: float32 by default, float64 after ``model.double()``.
    """

    def __init__(self, data_dim: int = 64, latent_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        data_dim = check_int(data_dim, "data_dim", minimum=1)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, data_dim)
        )
        self.log_std_x = nn.Parameter(torch.tensor(math.log(0.3)))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        check_floating(x, "x")
        if x.ndim < 2:
            raise InputValueError(
                f"x must be a batch, (N, {self.data_dim}) or images (N, C, H, W), but got shape {tuple(x.shape)}; "
                f"add the batch dimension with x.unsqueeze(0)"
            )
        flat = x.reshape(x.shape[0], math.prod(x.shape[1:]))
        if flat.shape[1] != self.data_dim:
            raise InputValueError(
                f"this VAE expects {self.data_dim} values per example, got {flat.shape[1]} (input shape {tuple(x.shape)})"
            )
        check_input_dtype(flat, self.log_std_x.dtype, "x", "this VAE")
        return check_finite(flat, "x")

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        check_floating(z, "z")
        if z.ndim < 1 or z.shape[-1] != self.latent_dim:
            raise InputValueError(f"z must have last dimension latent_dim = {self.latent_dim}, got shape {tuple(z.shape)}")
        check_input_dtype(z, self.log_std_x.dtype, "z", "this VAE")
        return check_finite(z, "z")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and log-variance of q(z | x), each (N, K)."""
        h = self.encoder(self._flat(x))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return the decoder mean f_theta(z), flat (..., D)."""
        return self.decoder(self._check_z(z))

    def log_likelihood(self, x_flat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) = log N(x; f_theta(z), s^2 I), summed over the D pixels."""
        x_flat = self._flat(x_flat)
        mean = self.decode(z)
        check_broadcastable(("x_flat", x_flat), ("f_theta(z)", mean))
        return gaussian_log_likelihood(x_flat, mean, 2 * self.log_std_x).sum(-1)

    def elbo_terms(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-image ``reconstruction``, ``kl`` and ``elbo`` = reconstruction - kl (all shape (N,)).

        Implements :eq:`eq-vae-elbo-split` (chapter ``vae``).
        """
        flat = self._flat(x)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        mean, logvar = self.encode(flat)
        z = reparameterize(mean, logvar, n_samples, generator)  # (S, N, K)
        recon = self.log_likelihood(flat, z).mean(0)
        kl = kl_diag_gaussians(mean, logvar)
        return {"reconstruction": recon, "kl": kl, "elbo": recon - kl}

    @torch.no_grad()
    def log_evidence_is(self, x: torch.Tensor, n_samples: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-sampled estimate of log p(x) with q(z | x) as proposal:
        log (1/S) sum_s p(x, z_s) / q(z_s | x). Its expectation lies between the ELBO and log p(x).

        Implements :eq:`eq-vae-evidence` (chapter ``vae``).
        """
        flat = self._flat(x)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        mean, logvar = self.encode(flat)
        z = reparameterize(mean, logvar, n_samples, generator)
        log_q = gaussian_log_likelihood(z, mean, logvar).sum(-1)
        log_p = self.log_likelihood(flat, z) + gaussian_log_likelihood(z, torch.zeros_like(z), 0.0).sum(-1)
        return torch.logsumexp(log_p - log_q, dim=0) - math.log(n_samples)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean_only: bool = True) -> torch.Tensor:
        """Draw z ~ p(z) and return the decoder mean (or a noisy sample if ``mean_only=False``), flat (n, D)."""
        n = check_int(n, "n", minimum=0)
        p = self.log_std_x
        z = torch.randn((n, self.latent_dim), generator=generator, dtype=p.dtype, device=p.device)
        x = self.decode(z)
        if not mean_only:
            x = x + p.exp() * torch.randn(x.shape, generator=generator, dtype=p.dtype, device=p.device)
        return x

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the encoder mean: f_theta(mu_phi(x)), flat (N, D)."""
        mean, _ = self.encode(x)
        return self.decode(mean)


def train_vae(
    model: VAE,
    x_train: torch.Tensor,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 2e-3,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[float]:
    """Maximise the mean ELBO of ``model`` on ``x_train``; return the loss (-ELBO per image) per step.

    Trains with the book's one loop, :func:`diffusion_lib.train.loop.train` (Adam, the learning
    rate decaying with a cosine from ``lr`` to ``lr / 10``, NaN guard, progress bar). Its random
    stream (minibatches and the reparameterisation noise) is seeded from ``generator`` (one draw
    from it), or with 0 without one, so a run is reproducible.
    """
    from diffusion_lib.train.loop import train

    if not isinstance(model, VAE):
        raise InputTypeError(f"model must be a diffusion_lib.topics.vae.VAE, got {type(model).__name__}")
    flat = model._flat(x_train)
    if flat.shape[0] < 1:
        raise InputValueError("x_train is empty: the VAE needs at least one training image")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    seed = 0 if generator is None else int(torch.randint(0, 2**62, (), generator=generator))

    def loss_fn(vae: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return -vae.elbo_terms(batch, generator=g)["elbo"].mean()

    result = train(model, loss_fn, flat, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                   final_lr_fraction=0.1, progress=progress, desc="training the VAE")
    return result.losses
