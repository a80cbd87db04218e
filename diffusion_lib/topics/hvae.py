"""A two-level Markovian hierarchical VAE where every quantity is exact (chapter ``book/hvae.ipynb``).

Generative model (a linear-Gaussian chain z2 -> z1 -> x):

    p(z2) = N(0, I),   p(z1 | z2) = N(A z2 + a, s1 I),   p(x | z1) = N(B z1 + b, s0 I).

Markovian encoder (the mirror chain x -> z1 -> z2; z2 sees x only through z1):

    q(z1 | x) = N(C x + c, S1),   q(z2 | z1) = N(E z1 + e, S2).

The ELBO splits into three terms (all in nats, per data point):

    reconstruction   E_{q(z1|x)}[log p(x | z1)]
    consistency      E_{q(z1,z2|x)}[log p(z1 | z2) - log q(z1 | x)]
    prior matching   E_{q(z1|x)}[log p(z2) - log q(z2 | z1)] = -E_{q(z1|x)}[KL(q(z2 | z1) || p(z2))]

and ELBO = reconstruction + consistency + prior matching <= log p(x), with equality iff
q(z1, z2 | x) = p(z1, z2 | x). Because every density is Gaussian and every mean is linear, each
term has a closed form (expectations of quadratic forms) and the gap log p(x) - ELBO equals
KL(q(z1, z2 | x) || p(z1, z2 | x)) exactly; ``LinearGaussianHVAE`` computes them all.
The model, the encoder and the data of one call must share one dtype (float64 for tight checks).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from diffusion_lib._checks import check_finite, check_floating, check_input_dtype, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.topics.vae import _check_cov, kl_mvn, mvn_log_prob

__all__ = ["LinearGaussianHVAE", "MarkovEncoder", "gaussian_condition", "fit_encoder"]

_LOG_2PI = math.log(2.0 * math.pi)


def _check_matrix(x: Any, name: str, shape: tuple[int, ...] | None = None, ndim: int | None = None) -> torch.Tensor:
    check_floating(x, name)
    if shape is not None and tuple(x.shape) != shape:
        raise InputValueError(f"{name} must have shape {shape}, but got {tuple(x.shape)}")
    if ndim is not None and x.ndim != ndim:
        raise InputValueError(f"{name} must be a {ndim}-D tensor, but got shape {tuple(x.shape)}")
    if any(s < 1 for s in x.shape):
        raise InputValueError(f"{name} must have every size >= 1, but got shape {tuple(x.shape)}")
    return check_finite(x, name)


def gaussian_condition(
    mean: torch.Tensor, cov: torch.Tensor, obs_idx: list[int], x_obs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition a joint Gaussian N(mean, cov) on the coordinates ``obs_idx`` taking the values ``x_obs``.

    With u = (h, o): p(h | o) = N(m_h + S_ho S_oo^{-1} (o - m_o), S_hh - S_ho S_oo^{-1} S_oh).
    ``mean`` is ``(n,)``, ``cov`` ``(n, n)`` symmetric positive definite, ``obs_idx`` distinct
    indices (at least one, and at least one coordinate left hidden), ``x_obs`` is
    ``(N, len(obs_idx))``; returns (means (N, H), covariance (H, H)) in the order of the remaining
    coordinates.
    """
    _check_matrix(mean, "mean", ndim=1)
    n = mean.shape[0]
    _check_cov(cov, "cov", n)
    if cov.ndim != 2:
        raise InputValueError(f"cov must be one ({n}, {n}) matrix, but got shape {tuple(cov.shape)}")
    if isinstance(obs_idx, (str, bytes)) or not hasattr(obs_idx, "__iter__"):
        raise InputTypeError(f"obs_idx must be a list of ints (the observed coordinates), got {type(obs_idx).__name__}")
    obs = [check_int(i, "each entry of obs_idx") for i in obs_idx]
    if len(set(obs)) != len(obs) or not all(0 <= i < n for i in obs) or not 1 <= len(obs) < n:
        raise InputValueError(
            f"obs_idx must be distinct indices in 0..{n - 1}, at least one and fewer than {n}, got {obs_idx}"
        )
    hid = [i for i in range(n) if i not in obs]
    check_floating(x_obs, "x_obs")
    if x_obs.ndim != 2 or x_obs.shape[-1] != len(obs):
        raise InputValueError(
            f"x_obs must have shape (N, {len(obs)}) (one value per observed index), got {tuple(x_obs.shape)}"
        )
    check_finite(x_obs, "x_obs")
    check_input_dtype(x_obs, mean.dtype, "x_obs", "mean")
    check_input_dtype(cov, mean.dtype, "cov", "mean")
    s_hh = cov[hid][:, hid]
    s_ho = cov[hid][:, obs]
    s_oo = cov[obs][:, obs]
    gain = torch.linalg.solve(s_oo, s_ho.T).T  # S_ho S_oo^{-1}
    m = mean[hid] + (x_obs - mean[obs]) @ gain.T
    c = s_hh - gain @ s_ho.T
    return m, 0.5 * (c + c.T)


class MarkovEncoder(nn.Module):
    """q(z1 | x) = N(C x + c, L1 L1^T), q(z2 | z1) = N(E z1 + e, L2 L2^T), with trainable parameters.

    L1 and L2 are lower-triangular with a positive diagonal (softplus), so the covariances stay
    positive definite during gradient ascent on the ELBO.

    Implements :eq:`eq-hvae-linear` (chapter ``hvae``).
    """

    def __init__(self, d: int, k1: int, k2: int, dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None) -> None:
        super().__init__()
        d, k1, k2 = (check_int(v, n, minimum=1) for v, n in ((d, "d"), (k1, "k1"), (k2, "k2")))
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputTypeError(f"dtype must be a floating torch dtype (torch.float64 or torch.float32), got {dtype!r}")

        def rnd(*shape: int) -> nn.Parameter:
            return nn.Parameter(0.1 * torch.randn(shape, generator=generator, dtype=dtype))

        self.C, self.c, self.E, self.e = rnd(k1, d), rnd(k1), rnd(k2, k1), rnd(k2)
        self._l1 = nn.Parameter(torch.zeros(k1, k1, dtype=dtype))
        self._l2 = nn.Parameter(torch.zeros(k2, k2, dtype=dtype))

    @staticmethod
    def _chol(raw: torch.Tensor) -> torch.Tensor:
        return torch.tril(raw, -1) + torch.diag(nn.functional.softplus(torch.diagonal(raw)) + 1e-6)

    @property
    def S1(self) -> torch.Tensor:
        l1 = self._chol(self._l1)
        return l1 @ l1.T

    @property
    def S2(self) -> torch.Tensor:
        l2 = self._chol(self._l2)
        return l2 @ l2.T

    @classmethod
    def from_matrices(cls, C: torch.Tensor, c: torch.Tensor, S1: torch.Tensor, E: torch.Tensor, e: torch.Tensor, S2: torch.Tensor) -> "MarkovEncoder":
        """Build an encoder with given matrices (e.g. the exact posterior factors)."""
        _check_matrix(C, "C", ndim=2)
        k1, d = C.shape
        _check_matrix(E, "E", ndim=2)
        k2 = E.shape[0]
        _check_matrix(E, "E", shape=(k2, k1))
        _check_matrix(c, "c", shape=(k1,))
        _check_matrix(e, "e", shape=(k2,))
        chols = (_check_cov(S1, "S1", k1), _check_cov(S2, "S2", k2))
        for name, m in (("c", c), ("S1", S1), ("E", E), ("e", e), ("S2", S2)):
            check_input_dtype(m, C.dtype, name, "C")
            if m.ndim > 2:
                raise InputValueError(f"{name} must not be batched, but got shape {tuple(m.shape)}")
        enc = cls(d, k1, k2, dtype=C.dtype)
        with torch.no_grad():
            enc.C.copy_(C); enc.c.copy_(c); enc.E.copy_(E); enc.e.copy_(e)
            for raw, L in zip((enc._l1, enc._l2), chols):
                dg = (torch.diagonal(L) - 1e-6).clamp_min(1e-12)
                raw.copy_(torch.tril(L, -1) + torch.diag(dg + torch.log(-torch.expm1(-dg))))  # softplus^{-1}
        return enc


class LinearGaussianHVAE:
    """The two-level linear-Gaussian hierarchical VAE of the module docstring (generative part fixed).

    Args: A (k1, k2), a (k1,), s1 > 0, B (d, k1), b (d,), s0 > 0, all tensors of one dtype. Use
    float64 for tight checks.

    Implements :eq:`eq-hvae-linear` (chapter ``hvae``).
    Implements :eq:`eq-hvae-model` (chapter ``hvae``).
    """

    def __init__(self, A: torch.Tensor, a: torch.Tensor, s1: float, B: torch.Tensor, b: torch.Tensor, s0: float) -> None:
        for name, m in (("A", A), ("B", B)):
            check_floating(m, name)
        if A.ndim != 2 or B.ndim != 2 or B.shape[1] != A.shape[0]:
            raise InputValueError(f"need A of shape (k1, k2) and B of shape (d, k1); got A {tuple(A.shape)} and B {tuple(B.shape)}")
        _check_matrix(A, "A")
        _check_matrix(B, "B")
        check_floating(a, "a")
        check_floating(b, "b")
        if a.shape != (A.shape[0],) or b.shape != (B.shape[0],):
            raise InputValueError(f"a must have shape ({A.shape[0]},) and b shape ({B.shape[0]},); got {tuple(a.shape)}, {tuple(b.shape)}")
        for name, m in (("a", a), ("B", B), ("b", b)):
            check_finite(m, name)
            check_input_dtype(m, A.dtype, name, "A")
        for name, v in (("s1", s1), ("s0", s0)):
            try:
                check_real(v, name, minimum=0.0, strict=True)
            except InputValueError as err:
                raise InputValueError(f"the noise variances s1 and s0 must be finite and > 0: {err}") from None
        self.A, self.a, self.s1, self.B, self.b, self.s0 = A, a, float(s1), B, b, float(s0)
        self.k1, self.k2 = A.shape
        self.d = B.shape[0]

    def _check_x(self, x: Any) -> torch.Tensor:
        check_floating(x, "x")
        if x.ndim != 2 or x.shape[1] != self.d:
            raise InputValueError(f"x must have shape (N, {self.d}), got {tuple(x.shape)}")
        check_input_dtype(x, self.A.dtype, "x", "this HVAE (its A)")
        return check_finite(x, "x")

    def _check_enc(self, enc: Any) -> MarkovEncoder:
        if not isinstance(enc, MarkovEncoder):
            raise InputTypeError(f"enc must be a MarkovEncoder, got {type(enc).__name__}")
        if tuple(enc.C.shape) != (self.k1, self.d) or tuple(enc.E.shape) != (self.k2, self.k1):
            raise InputValueError(
                f"enc has C {tuple(enc.C.shape)} and E {tuple(enc.E.shape)}, but this HVAE needs C "
                f"({self.k1}, {self.d}) and E ({self.k2}, {self.k1}); build it with MarkovEncoder(d={self.d}, "
                f"k1={self.k1}, k2={self.k2})"
            )
        check_input_dtype(enc.C, self.A.dtype, "enc", "this HVAE (its A)")
        return enc

    # ---- the exact generative quantities ------------------------------------------------
    def joint_mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of u = (z1, z2, x) under p (z1 first, then z2, then x)."""
        A, B = self.A, self.B
        i1 = torch.eye(self.k1, dtype=A.dtype)
        c22 = torch.eye(self.k2, dtype=A.dtype)
        c11 = A @ A.T + self.s1 * i1
        c12 = A  # Cov(z1, z2) = A Cov(z2)
        cx1 = B @ c11
        cx2 = B @ c12
        cxx = B @ c11 @ B.T + self.s0 * torch.eye(self.d, dtype=A.dtype)
        cov = torch.cat(
            [torch.cat([c11, c12, cx1.T], 1), torch.cat([c12.T, c22, cx2.T], 1), torch.cat([cx1, cx2, cxx], 1)], 0
        )
        m1 = self.a
        mean = torch.cat([m1, torch.zeros(self.k2, dtype=A.dtype), B @ m1 + self.b])
        return mean, 0.5 * (cov + cov.T)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; B a + b, B (A A^T + s1 I) B^T + s0 I), one value per row."""
        x = self._check_x(x)
        mean, cov = self.joint_mean_cov()
        o = slice(self.k1 + self.k2, None)
        return mvn_log_prob(x, mean[o], cov[o, o])

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z1, z2 | x) as (means (N, k1 + k2) ordered (z1, z2), covariance)."""
        x = self._check_x(x)
        mean, cov = self.joint_mean_cov()
        obs = list(range(self.k1 + self.k2, self.k1 + self.k2 + self.d))
        return gaussian_condition(mean, cov, obs, x)

    def optimal_encoder(self) -> MarkovEncoder:
        """The Markovian encoder equal to the true posterior: q(z1|x) = p(z1|x), q(z2|z1) = p(z2|z1).

        It is exact because z2 is independent of x given z1 under p, so p(z2 | z1, x) = p(z2 | z1).

        Implements :eq:`eq-hvae-markov-post` (chapter ``hvae``).
        """
        mean, cov = self.joint_mean_cov()
        k1, k2 = self.k1, self.k2
        # p(z1 | x): linear in x
        idx_x = list(range(k1 + k2, k1 + k2 + self.d))
        sub = list(range(k1)) + idx_x
        m_sub, c_sub = mean[sub], cov[sub][:, sub]
        gain1 = torch.linalg.solve(c_sub[k1:, k1:], c_sub[k1:, :k1]).T
        C = gain1
        c = m_sub[:k1] - gain1 @ m_sub[k1:]
        S1 = c_sub[:k1, :k1] - gain1 @ c_sub[k1:, :k1]
        # p(z2 | z1): linear in z1
        c12 = cov[:k1, k1:k1 + k2]
        gain2 = torch.linalg.solve(cov[:k1, :k1], c12).T
        E = gain2
        e = mean[k1:k1 + k2] - gain2 @ mean[:k1]
        S2 = cov[k1:k1 + k2, k1:k1 + k2] - gain2 @ c12
        return MarkovEncoder.from_matrices(C, c, 0.5 * (S1 + S1.T), E, e, 0.5 * (S2 + S2.T))

    # ---- the encoder's joint q(z1, z2 | x) ------------------------------------------------
    @staticmethod
    def q_joint(enc: MarkovEncoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z1, z2 | x) as (means (N, k1 + k2), covariance): m2 = E m1 + e, Cov = [[S1, S1 E^T], [E S1, E S1 E^T + S2]].

        Implements :eq:`eq-hvae-model` (chapter ``hvae``).
        """
        if not isinstance(enc, MarkovEncoder):
            raise InputTypeError(f"enc must be a MarkovEncoder, got {type(enc).__name__}")
        check_floating(x, "x")
        d = enc.C.shape[1]
        if x.ndim != 2 or x.shape[1] != d:
            raise InputValueError(f"x must have shape (N, {d}) to match the encoder, got {tuple(x.shape)}")
        check_input_dtype(x, enc.C.dtype, "x", "the encoder")
        check_finite(x, "x")
        S1, S2 = enc.S1, enc.S2
        m1 = x @ enc.C.T + enc.c
        m2 = m1 @ enc.E.T + enc.e
        top = torch.cat([S1, S1 @ enc.E.T], 1)
        bot = torch.cat([enc.E @ S1, enc.E @ S1 @ enc.E.T + S2], 1)
        cov = torch.cat([top, bot], 0)
        return torch.cat([m1, m2], -1), 0.5 * (cov + cov.T)

    # ---- the ELBO and its terms -------------------------------------------------------------
    def elbo_terms(self, x: torch.Tensor, enc: MarkovEncoder) -> dict[str, torch.Tensor]:
        """Closed-form reconstruction, consistency and prior-matching terms and their sum ``elbo`` (each (N,)).

        Implements :eq:`eq-hvae-terms` (chapter ``hvae``).
        Implements :eq:`eq-hvae-quadratic` (chapter ``hvae``).
        """
        x = self._check_x(x)
        enc = self._check_enc(enc)
        k1 = self.k1
        mean, cov = self.q_joint(enc, x)
        m1, m2 = mean[:, :k1], mean[:, k1:]
        S1, S2 = cov[:k1, :k1], enc.S2
        # reconstruction: E||x - B z1 - b||^2 = ||x - B m1 - b||^2 + tr(B S1 B^T)
        r = x - m1 @ self.B.T - self.b
        recon = -0.5 * self.d * math.log(2 * math.pi * self.s0) - ((r**2).sum(-1) + torch.trace(self.B @ S1 @ self.B.T)) / (2 * self.s0)
        # consistency: E[log N(z1; A z2 + a, s1 I)] + H[q(z1|x)], residual L u - a with L = [I, -A]
        L = torch.cat([torch.eye(k1, dtype=x.dtype), -self.A], 1)
        res = m1 - m2 @ self.A.T - self.a
        e_sq = (res**2).sum(-1) + torch.trace(L @ cov @ L.T)
        exp_log_p = -0.5 * k1 * math.log(2 * math.pi * self.s1) - e_sq / (2 * self.s1)
        entropy1 = 0.5 * k1 * (_LOG_2PI + 1.0) + 0.5 * torch.logdet(S1)
        consistency = exp_log_p + entropy1
        # prior matching: -E_{q(z1|x)} KL(N(E z1 + e, S2) || N(0, I))
        e_m2 = (m2**2).sum(-1) + torch.trace(enc.E @ S1 @ enc.E.T)
        kl = 0.5 * (torch.trace(S2) + e_m2 - self.k2 - torch.logdet(S2))
        prior = -kl
        return {"reconstruction": recon, "consistency": consistency, "prior_matching": prior, "elbo": recon + consistency + prior}

    def elbo_terms_mc(self, x: torch.Tensor, enc: MarkovEncoder, n_samples: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Single-sample values of the three terms (the log-ratios inside each expectation), shape (n_samples, N) each.

        Implements :eq:`eq-hvae-terms` (chapter ``hvae``).
        """
        x = self._check_x(x)
        enc = self._check_enc(enc)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        with torch.no_grad():
            S1, S2 = enc.S1, enc.S2
            m1 = x @ enc.C.T + enc.c
            eps1 = torch.randn((n_samples, *m1.shape), generator=generator, dtype=x.dtype)
            z1 = m1 + eps1 @ torch.linalg.cholesky(S1).T
            m2 = z1 @ enc.E.T + enc.e
            eps2 = torch.randn(m2.shape, generator=generator, dtype=x.dtype)
            z2 = m2 + eps2 @ torch.linalg.cholesky(S2).T
            eye = lambda k: torch.eye(k, dtype=x.dtype)  # noqa: E731
            recon = mvn_log_prob(x, z1 @ self.B.T + self.b, self.s0 * eye(self.d))
            consistency = mvn_log_prob(z1, z2 @ self.A.T + self.a, self.s1 * eye(self.k1)) - mvn_log_prob(z1, m1, S1)
            prior = mvn_log_prob(z2, torch.zeros_like(z2), eye(self.k2)) - mvn_log_prob(z2, m2, S2)
        return {"reconstruction": recon, "consistency": consistency, "prior_matching": prior, "elbo": recon + consistency + prior}

    def gap(self, x: torch.Tensor, enc: MarkovEncoder) -> torch.Tensor:
        """KL(q(z1, z2 | x) || p(z1, z2 | x)), which must equal log p(x) - ELBO.

        Implements :eq:`eq-hvae-elbo` (chapter ``hvae``).
        """
        x = self._check_x(x)
        enc = self._check_enc(enc)
        mq, cq = self.q_joint(enc, x)
        mp, cp = self.posterior(x)
        return kl_mvn(mq, cq, mp, cp)


def fit_encoder(
    model: LinearGaussianHVAE, x: torch.Tensor, enc: MarkovEncoder, steps: int = 500, lr: float = 0.05
) -> dict[str, list[float]]:
    """Gradient ascent (Adam, constant learning rate) on the mean closed-form ELBO over the encoder's parameters only.

    Runs on the book's one loop, :func:`diffusion_lib.train.loop.train`, with the whole of ``x`` as
    every batch (the ELBO here is exact, there is nothing to sample). Returns the history, one value
    per step (averaged over the rows of ``x``, before that step's update): ``"gap"`` (log p(x) - ELBO,
    which must stay >= 0 and is KL(q || posterior)), ``"elbo"`` and the three terms.
    """
    from diffusion_lib.train.loop import train

    if not isinstance(model, LinearGaussianHVAE):
        raise InputTypeError(f"model must be a LinearGaussianHVAE, got {type(model).__name__}")
    if not isinstance(enc, MarkovEncoder):
        raise InputTypeError(f"enc must be a MarkovEncoder, got {type(enc).__name__}")
    log_px = model.log_evidence(x).mean().detach()
    keys = ("elbo", "reconstruction", "consistency", "prior_matching")
    history: dict[str, list[float]] = {k: [] for k in ("gap", *keys)}

    def loss_fn(encoder: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        terms = model.elbo_terms(batch, encoder)
        elbo = terms["elbo"].mean()
        history["gap"].append(float(log_px - elbo.detach()))
        for k in keys:
            history[k].append(float(terms[k].detach().mean()))
        return -elbo

    train(enc, loss_fn, lambda n, g: x, steps=steps, batch_size=1, lr=lr, lr_schedule="constant", progress=False,
          desc="fitting the encoder")
    return history
