r"""Checkers for the exercises of the chapter on the hierarchical VAE (``book/hvae.ipynb``).

==========================  ========================  ====================================================
checker                     exercise label            the function the student writes
==========================  ========================  ====================================================
``check_expected_sq_norm``  ``ex-hvae-quadratic``     ``expected_sq_norm(mean, cov, A, b) -> (N,)``
``check_kl_gauss``          ``ex-hvae-kl``            ``kl_gauss(m_q, v_q, m_p, v_p) -> (N,)``
==========================  ========================  ====================================================

The identities behind every closed form of the chapter:

.. math::

    \mathbb E_{z \sim \mathcal N(m, S)} \|A z + b\|^2 = \|A m + b\|^2 + \operatorname{tr}(A S A^\top),

    \mathrm{KL}(\mathcal N(m_q, v_q I) \,\|\, \mathcal N(m_p, v_p I))
      = \tfrac12 \sum_d \Big(\log \tfrac{v_p}{v_q} + \tfrac{v_q + (m_{q,d} - m_{p,d})^2}{v_p} - 1\Big).

``mean`` is ``(N, K)``, ``cov`` ``(K, K)``, ``A`` ``(D, K)``, ``b`` ``(D,)``. In ``kl_gauss`` the
means are ``(N, D)`` and the variances ``v_q``, ``v_p`` are positive 0-d tensors (isotropic).

Both are the building blocks of bounds that the chapter (and the later ones) maximise by gradient
ascent, so both checkers are ``differentiable``: the answer must keep its gradients with respect
to the means and (co)variances.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_expected_sq_norm", "check_kl_gauss"]

DT = torch.float64


# ------------------------------------------------------------------------------- E ||A z + b||^2
def _esq(mean: torch.Tensor, cov: torch.Tensor, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((mean @ A.T + b) ** 2).sum(-1) + torch.trace(A @ cov @ A.T)


def _spd(k: int, g: torch.Generator, dtype: torch.dtype = DT) -> torch.Tensor:
    a = torch.randn(k, k, generator=g, dtype=dtype)
    return a @ a.T + 0.3 * torch.eye(k, dtype=dtype)


def _esq_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("3 means in 2-D, a full covariance, A of shape (4, 2)", torch.randn(3, 2, generator=g, dtype=DT), _spd(2, g),
             torch.randn(4, 2, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)),
        Case("A square (3, 3) and b = 0", torch.randn(2, 3, generator=g, dtype=DT), _spd(3, g),
             torch.randn(3, 3, generator=g, dtype=DT), torch.zeros(3, dtype=DT)),
        Case("a batch of one mean in 3-D, A of shape (2, 3) (fewer outputs than latents), float32",
             torch.randn(1, 3, generator=g), _spd(3, g, torch.float32), torch.randn(2, 3, generator=g),
             torch.randn(2, generator=g)),
        Case("a 1-D latent (K = 1) mapped to 5-D, float64", torch.randn(4, 1, generator=g, dtype=DT),
             torch.tensor([[0.7]], dtype=DT), torch.randn(5, 1, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT)),
    ]


_ESQ = Checker(
    name="expected_sq_norm",
    label="ex-hvae-quadratic",
    reference=_esq,
    cases=_esq_cases,
    differentiable=True,
    grad_args=(0, 1),
    mistakes=[
        Mistake("You kept only ||A m + b||^2: the spread of z adds tr(A S A^T) to the expectation.",
                lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1), "no-trace"),
        Mistake("You added tr(S) instead of tr(A S A^T): the covariance of A z is A S A^T.",
                lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + torch.trace(S), "trace-S"),
        Mistake("You forgot b inside the square: the mean of A z + b is A m + b.",
                lambda m, S, A, b: ((m @ A.T) ** 2).sum(-1) + torch.trace(A @ S @ A.T), "no-b"),
        Mistake("You dropped the cross term: ||A m + b||^2 = ||A m||^2 + 2 b^T A m + ||b||^2, not "
                "||A m||^2 + ||b||^2. Square the whole mean A m + b.",
                lambda m, S, A, b: ((m @ A.T) ** 2).sum(-1) + (b**2).sum() + torch.trace(A @ S @ A.T), "no-cross"),
        Mistake("You used only the diagonal of the covariance (the variances): tr(A S A^T) needs the "
                "off-diagonal covariances too, unless S is diagonal.",
                lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + torch.trace(A @ torch.diag(torch.diagonal(S)) @ A.T),
                "diagonal-only"),
        Mistake("Your trace term ignores the covariance: tr(A A^T) is the spread for S = I only. "
                "The covariance of A z is A S A^T, so add tr(A S A^T).",
                lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + (A**2).sum(), "identity-cov"),
    ],
    alternatives=[
        lambda m, S, A, b: torch.linalg.vector_norm(m @ A.T + b, dim=-1) ** 2 + ((A @ S) * A).sum(),
        lambda m, S, A, b: torch.einsum("nd,nd->n", m @ A.T + b, m @ A.T + b) + torch.einsum("dk,kl,dl->", A, S, A),
        lambda m, S, A, b: torch.stack([((A @ m[i] + b) ** 2).sum() for i in range(len(m))]) + torch.trace(S @ A.T @ A),
    ],
)


def check_expected_sq_norm(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``expected_sq_norm(mean, cov, A, b)`` = ||A m + b||^2 + tr(A S A^T) (exercise ``ex-hvae-quadratic``).

    The answer must be differentiable in ``mean`` and ``cov``.
    """
    __tracebackhide__ = True  # noqa: F841
    return _ESQ(fn)


# ------------------------------------------------------------------------------- KL of isotropic Gaussians
def _kl(m_q: torch.Tensor, v_q: torch.Tensor, m_p: torch.Tensor, v_p: torch.Tensor) -> torch.Tensor:
    d = m_q.shape[-1]
    return 0.5 * (d * (torch.log(v_p / v_q) + v_q / v_p - 1.0) + ((m_q - m_p) ** 2).sum(-1) / v_p)


def _kl_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("4 pairs of means in 3-D, v_q = 0.3, v_p = 1.7", torch.randn(4, 3, generator=g, dtype=DT), torch.tensor(0.3, dtype=DT),
             torch.randn(4, 3, generator=g, dtype=DT), torch.tensor(1.7, dtype=DT)),
        Case("equal variances (0.5): only the means differ", torch.randn(2, 2, generator=g, dtype=DT), torch.tensor(0.5, dtype=DT),
             torch.randn(2, 2, generator=g, dtype=DT), torch.tensor(0.5, dtype=DT)),
        Case("a batch of one pair in 6-D with v_q = 2.5 > v_p = 0.4, float32", torch.randn(1, 6, generator=g),
             torch.tensor(2.5), torch.randn(1, 6, generator=g), torch.tensor(0.4)),
        Case("identical distributions (same means, v = 0.8) in 1-D: the KL must be 0",
             torch.tensor([[0.3], [-1.2]], dtype=DT), torch.tensor(0.8, dtype=DT),
             torch.tensor([[0.3], [-1.2]], dtype=DT), torch.tensor(0.8, dtype=DT)),
    ]


_KLG = Checker(
    name="kl_gauss",
    label="ex-hvae-kl",
    reference=_kl,
    cases=_kl_cases,
    differentiable=True,
    mistakes=[
        Mistake("You computed KL(p || q): the arguments are swapped. The squared mean difference is divided by "
                "v_p, the variance of the second distribution.",
                lambda mq, vq, mp, vp: _kl(mp, vp, mq, vq), "swapped"),
        Mistake("You added the log-ratio once instead of once per dimension: log(v_p / v_q), v_q / v_p and -1 "
                "appear D times (the covariances are v I).",
                lambda mq, vq, mp, vp: 0.5 * (torch.log(vp / vq) + vq / vp - 1.0 + ((mq - mp) ** 2).sum(-1) / vp), "once"),
        Mistake("You forgot the factor 1/2.",
                lambda mq, vq, mp, vp: 2 * _kl(mq, vq, mp, vp), "no-half"),
        Mistake("The log-ratio is upside down: the KL has log(v_p / v_q) (per dimension), not log(v_q / v_p).",
                lambda mq, vq, mp, vp: 0.5 * (mq.shape[-1] * (torch.log(vq / vp) + vq / vp - 1.0)
                                              + ((mq - mp) ** 2).sum(-1) / vp), "log-inverted"),
        Mistake("You divided the squared mean difference by v_q; it is divided by v_p (the expectation is "
                "under q, the log-density penalised is p's).",
                lambda mq, vq, mp, vp: 0.5 * (mq.shape[-1] * (torch.log(vp / vq) + vq / vp - 1.0)
                                              + ((mq - mp) ** 2).sum(-1) / vq), "divide-by-vq"),
    ],
    alternatives=[
        lambda mq, vq, mp, vp: torch.distributions.kl_divergence(
            torch.distributions.Normal(mq, vq.sqrt().expand_as(mq)), torch.distributions.Normal(mp, vp.sqrt().expand_as(mp))
        ).sum(-1),
        lambda mq, vq, mp, vp: 0.5 * (torch.log(vp) - torch.log(vq) + (vq + (mq - mp) ** 2) / vp - 1).sum(-1),
        lambda mq, vq, mp, vp: sum(0.5 * (torch.log(vp / vq) + (vq + (mq[:, d] - mp[:, d]) ** 2) / vp - 1)
                                   for d in range(mq.shape[-1])),
    ],
)


def check_kl_gauss(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``kl_gauss(m_q, v_q, m_p, v_p)`` = KL(N(m_q, v_q I) || N(m_p, v_p I)) per row (exercise ``ex-hvae-kl``).

    The answer must be differentiable in all four inputs.
    """
    __tracebackhide__ = True  # noqa: F841
    return _KLG(fn)
