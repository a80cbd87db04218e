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
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = [
    "LOG_2PI",
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

LOG_2PI = math.log(2.0 * math.pi)


def _check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; use .float()")
    return x


def _check_cov(name: str, cov: torch.Tensor, dim: int) -> None:
    if cov.shape[-2:] != (dim, dim):
        raise ValueError(f"{name} must be a ({dim}, {dim}) covariance matrix, got shape {tuple(cov.shape)}")


# --------------------------------------------------------------------------------------------
# Gaussian helpers
# --------------------------------------------------------------------------------------------
def mvn_log_prob(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, cov) = -1/2 [D log 2 pi + log det cov + (x - mean)^T cov^{-1} (x - mean)].

    ``x`` and ``mean`` broadcast against each other with last dimension D; ``cov`` is ``(D, D)``
    (or batched ``(..., D, D)``). Returns a tensor over the leading (batch) dimensions.
    """
    _check_tensor("x", x)
    _check_tensor("mean", mean)
    _check_tensor("cov", cov)
    d = x.shape[-1]
    if mean.shape[-1] != d:
        raise ValueError(f"x has last dimension {d} but mean has {mean.shape[-1]}; they must match")
    _check_cov("cov", cov, d)
    chol = torch.linalg.cholesky(cov)
    diff = (x - mean).unsqueeze(-1)
    sol = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (d * LOG_2PI + logdet + (sol**2).sum(-1))


def kl_mvn(mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) for full covariances, in nats.

    KL = 1/2 [tr(cov_p^{-1} cov_q) + (m_p - m_q)^T cov_p^{-1} (m_p - m_q) - D + log det cov_p - log det cov_q].
    Means are ``(..., D)``; covariances ``(D, D)`` or batched ``(..., D, D)``.
    """
    for name, t in (("mean_q", mean_q), ("cov_q", cov_q), ("mean_p", mean_p), ("cov_p", cov_p)):
        _check_tensor(name, t)
    d = mean_q.shape[-1]
    if mean_p.shape[-1] != d:
        raise ValueError(f"mean_q has dimension {d} but mean_p has {mean_p.shape[-1]}")
    _check_cov("cov_q", cov_q, d)
    _check_cov("cov_p", cov_p, d)
    chol_p = torch.linalg.cholesky(cov_p)
    chol_q = torch.linalg.cholesky(cov_q)
    # tr(cov_p^{-1} cov_q) = ||L_p^{-1} L_q||_F^2
    a = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)
    trace = (a**2).sum((-2, -1))
    diff = (mean_p - mean_q).unsqueeze(-1)
    maha = (torch.linalg.solve_triangular(chol_p, diff, upper=False).squeeze(-1) ** 2).sum(-1)
    logdet_p = 2.0 * torch.log(torch.diagonal(chol_p, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = 2.0 * torch.log(torch.diagonal(chol_q, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + maha - d + logdet_p - logdet_q)


def kl_diag_gaussians(
    mean_q: torch.Tensor,
    logvar_q: torch.Tensor,
    mean_p: torch.Tensor | float = 0.0,
    logvar_p: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """KL(N(mean_q, diag e^{logvar_q}) || N(mean_p, diag e^{logvar_p})), summed over the last dim.

    Per dimension: 1/2 [logvar_p - logvar_q + (e^{logvar_q} + (mean_q - mean_p)^2) / e^{logvar_p} - 1].
    With the defaults the prior is N(0, I), the VAE's KL term 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1).
    """
    _check_tensor("mean_q", mean_q)
    _check_tensor("logvar_q", logvar_q)
    if mean_q.shape != logvar_q.shape:
        raise ValueError(
            f"mean_q {tuple(mean_q.shape)} and logvar_q {tuple(logvar_q.shape)} must have the same shape "
            "(pass log-variances, one per dimension)"
        )
    mean_p = torch.as_tensor(mean_p, dtype=mean_q.dtype)
    logvar_p = torch.as_tensor(logvar_p, dtype=mean_q.dtype)
    per_dim = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p) ** 2) / logvar_p.exp() - 1.0)
    return per_dim.sum(-1)


def reparameterize(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw z = mean + exp(logvar / 2) * eps with eps ~ N(0, I): a sample of N(mean, diag e^{logvar}).

    The sample is a differentiable function of ``mean`` and ``logvar`` (the reparameterisation
    trick). With ``n_samples=S`` the result has a new leading dimension of size S.
    """
    _check_tensor("mean", mean)
    _check_tensor("logvar", logvar)
    if mean.shape != logvar.shape:
        raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
    shape = mean.shape if n_samples is None else (int(n_samples), *mean.shape)
    if n_samples is not None and int(n_samples) < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples}")
    eps = torch.randn(shape, generator=generator, dtype=mean.dtype)
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
    """
    z = reparameterize(mean_q, logvar_q, n_samples, generator)
    log_q = -0.5 * (LOG_2PI + logvar_q + (z - mean_q) ** 2 / logvar_q.exp()).sum(-1)
    log_p = -0.5 * (LOG_2PI + z**2).sum(-1)
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
    """
    _check_tensor("mean", mean)
    _check_tensor("log_std", log_std)
    if mean.ndim != 1 or mean.shape != log_std.shape:
        raise ValueError(
            f"mean and log_std must be 1-D tensors of the same length D, got {tuple(mean.shape)} and {tuple(log_std.shape)}"
        )
    if estimator not in ("reparam", "score"):
        raise ValueError(f"estimator must be 'reparam' or 'score', got {estimator!r}")
    n = int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples}")
    std = log_std.detach().exp()
    eps = torch.randn((n, mean.shape[0]), generator=generator, dtype=mean.dtype)
    z = (mean.detach() + std * eps).requires_grad_(estimator == "reparam")
    values = f(z)
    if values.shape != (n,):
        raise ValueError(f"f must return one value per sample, shape ({n},); got {tuple(values.shape)}")
    if estimator == "reparam":
        # Samples are independent, so the gradient of the sum gives each sample's own f'(z).
        (dfdz,) = torch.autograd.grad(values.sum(), z)
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
    """

    def __init__(self, W: torch.Tensor, mu: torch.Tensor, sigma2: float) -> None:
        _check_tensor("W", W)
        _check_tensor("mu", mu)
        if W.ndim != 2:
            raise ValueError(f"W must be a (D, K) matrix, got shape {tuple(W.shape)}")
        if mu.shape != (W.shape[0],):
            raise ValueError(f"mu must have shape ({W.shape[0]},) to match W's D rows, got {tuple(mu.shape)}")
        sigma2 = float(sigma2)
        if not sigma2 > 0:
            raise ValueError(f"sigma2 is a noise variance and must be > 0, got {sigma2}")
        self.W, self.mu, self.sigma2 = W, mu, sigma2
        self.D, self.K = W.shape

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        _check_tensor("x", x)
        if x.shape[-1] != self.D:
            raise ValueError(f"x must have last dimension D={self.D}, got shape {tuple(x.shape)}")
        return x

    def marginal_cov(self) -> torch.Tensor:
        """C = W W^T + sigma2 I, the covariance of p(x)."""
        return self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=self.W.dtype)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; mu, W W^T + sigma2 I), one value per row of ``x``."""
        return mvn_log_prob(self._check_x(x), self.mu, self.marginal_cov())

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior p(z | x) = N(M^{-1} W^T (x - mu), sigma2 M^{-1}); returns (means (N, K), cov (K, K))."""
        x = self._check_x(x)
        M = self.W.T @ self.W + self.sigma2 * torch.eye(self.K, dtype=self.W.dtype)
        Minv = torch.linalg.inv(M)
        mean = (x - self.mu) @ self.W @ Minv.T
        cov = self.sigma2 * Minv
        return mean, 0.5 * (cov + cov.T)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs by ancestral sampling; returns (x (n, D), z (n, K))."""
        z = torch.randn((n, self.K), generator=generator, dtype=self.W.dtype)
        noise = torch.randn((n, self.D), generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.mu + math.sqrt(self.sigma2) * noise, z

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log N(x; W z + mu, sigma2 I) + log N(z; 0, I); broadcasts over leading dims."""
        x = self._check_x(x)
        resid = x - z @ self.W.T - self.mu
        log_lik = -0.5 * (self.D * math.log(2 * math.pi * self.sigma2) + (resid**2).sum(-1) / self.sigma2)
        log_prior = -0.5 * (self.K * LOG_2PI + (z**2).sum(-1))
        return log_lik + log_prior

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """Closed-form ELBO of q(z | x) = N(q_mean, q_cov) (see the class docstring), per row of x."""
        x = self._check_x(x)
        _check_tensor("q_mean", q_mean)
        _check_tensor("q_cov", q_cov)
        if q_mean.shape[-1] != self.K:
            raise ValueError(f"q_mean must have last dimension K={self.K}, got {tuple(q_mean.shape)}")
        _check_cov("q_cov", q_cov, self.K)
        resid = x - q_mean @ self.W.T - self.mu
        tr_wsw = torch.diagonal(self.W @ q_cov @ self.W.T, dim1=-2, dim2=-1).sum(-1)
        exp_lik = -0.5 * self.D * math.log(2 * math.pi * self.sigma2) - ((resid**2).sum(-1) + tr_wsw) / (2 * self.sigma2)
        tr_s = torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1)
        exp_prior = -0.5 * self.K * LOG_2PI - 0.5 * ((q_mean**2).sum(-1) + tr_s)
        entropy = 0.5 * self.K * (LOG_2PI + 1.0) + 0.5 * torch.logdet(q_cov)
        return exp_lik + exp_prior + entropy

    def elbo_mc(
        self,
        x: torch.Tensor,
        q_mean: torch.Tensor,
        q_cov: torch.Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-draw Monte Carlo ELBO values log p(x, z) - log q(z | x), z ~ q; shape (n_samples, N)."""
        x = self._check_x(x)
        chol = torch.linalg.cholesky(q_cov)
        eps = torch.randn((int(n_samples), *q_mean.shape), generator=generator, dtype=q_mean.dtype)
        z = q_mean + eps @ chol.T
        return self.log_joint(x, z) - mvn_log_prob(z, q_mean, q_cov)


def fit_ppca(x: torch.Tensor, k: int) -> PPCA:
    """Maximum-likelihood PPCA with ``k`` latent dimensions (Tipping and Bishop, 1999, closed form).

    With the sample covariance's eigenvalues lambda_1 >= ... >= lambda_D and eigenvectors U:
    mu = sample mean, sigma2 = mean of the D - k smallest eigenvalues, W = U_k (Lambda_k - sigma2 I)^{1/2}.
    """
    _check_tensor("x", x)
    if x.ndim != 2:
        raise ValueError(f"x must be a (N, D) data matrix (flatten images first), got shape {tuple(x.shape)}")
    n, d = x.shape
    if not (isinstance(k, int) and 1 <= k < d):
        raise ValueError(f"k must be an int with 1 <= k < D={d}, got {k!r}")
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
    image (densities of continuous pixel values, so the ELBO can be positive).
    """

    def __init__(self, data_dim: int = 64, latent_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        for name, v in (("data_dim", data_dim), ("latent_dim", latent_dim), ("hidden", hidden)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, data_dim)
        )
        self.log_std_x = nn.Parameter(torch.tensor(math.log(0.3)))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        _check_tensor("x", x)
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.data_dim:
            raise ValueError(
                f"this VAE expects {self.data_dim} values per example, got {flat.shape[1]} (input shape {tuple(x.shape)})"
            )
        return flat

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and log-variance of q(z | x), each (N, K)."""
        h = self.encoder(self._flat(x))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return the decoder mean f_theta(z), flat (..., D)."""
        return self.decoder(z)

    def log_likelihood(self, x_flat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) = log N(x; f_theta(z), s^2 I), summed over the D pixels."""
        mean = self.decode(z)
        var = torch.exp(2 * self.log_std_x)
        return -0.5 * (self.data_dim * (LOG_2PI + 2 * self.log_std_x) + ((x_flat - mean) ** 2).sum(-1) / var)

    def elbo_terms(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-image ``reconstruction``, ``kl`` and ``elbo`` = reconstruction - kl (all shape (N,))."""
        flat = self._flat(x)
        mean, logvar = self.encode(flat)
        z = reparameterize(mean, logvar, n_samples, generator)  # (S, N, K)
        recon = self.log_likelihood(flat, z).mean(0)
        kl = kl_diag_gaussians(mean, logvar)
        return {"reconstruction": recon, "kl": kl, "elbo": recon - kl}

    @torch.no_grad()
    def log_evidence_is(self, x: torch.Tensor, n_samples: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-sampled estimate of log p(x) with q(z | x) as proposal:
        log (1/S) sum_s p(x, z_s) / q(z_s | x). Its expectation lies between the ELBO and log p(x)."""
        flat = self._flat(x)
        mean, logvar = self.encode(flat)
        z = reparameterize(mean, logvar, n_samples, generator)
        log_q = -0.5 * (LOG_2PI + logvar + (z - mean) ** 2 / logvar.exp()).sum(-1)
        log_p = self.log_likelihood(flat, z) - 0.5 * (LOG_2PI + z**2).sum(-1)
        return torch.logsumexp(log_p - log_q, dim=0) - math.log(n_samples)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean_only: bool = True) -> torch.Tensor:
        """Draw z ~ p(z) and return the decoder mean (or a noisy sample if ``mean_only=False``), flat (n, D)."""
        z = torch.randn((n, self.latent_dim), generator=generator)
        x = self.decode(z)
        if not mean_only:
            x = x + self.log_std_x.exp() * torch.randn(x.shape, generator=generator)
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
    """Maximise the mean ELBO of ``model`` on ``x_train`` with Adam; return the loss (-ELBO per image) per step."""
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a diffusion_lib.topics.vae.VAE, got {type(model).__name__}")
    flat = model._flat(x_train)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 10)
    losses: list[float] = []
    model.train()
    for _ in tqdm(range(steps), disable=not progress, desc="training the VAE", ncols=70):
        idx = torch.randint(0, flat.shape[0], (batch_size,), generator=generator)
        loss = -model.elbo_terms(flat[idx], generator=generator)["elbo"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses
