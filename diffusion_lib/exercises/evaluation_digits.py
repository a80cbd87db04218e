r"""Checkers for the exercises of the chapter on evaluating digit models (``book/evaluation_digits.ipynb``).

===========================  ==========================  ================================================
checker                      exercise label              the function the student writes
===========================  ==========================  ================================================
``check_pixel_nll``          ``ex-eval-pixel-nll``       ``pixel_nll(train_levels, test_levels, L, alpha)``
``check_frechet_distance``   ``ex-eval-frechet``         ``frechet(mu1, sigma1, mu2, sigma2)``
===========================  ==========================  ================================================

The equations:

.. math::

    p_j(v) = \frac{n_j(v) + \alpha}{N + L\alpha}, \qquad
    \mathrm{NLL}(x) = -\sum_{j=1}^{D} \log p_j(x_j) \quad \text{(nats)};

    d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2
          - 2 (\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big)   \quad \text{(Heusel et al., 2017)}.

``train_levels`` (N, D) and ``test_levels`` (M, D) are LongTensors of pixel levels 0..L-1;
``pixel_nll`` returns (M,) float64 nats. ``frechet`` gets float64 tensors and returns a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake
from diffusion_lib.fid import frechet_distance

__all__ = ["check_pixel_nll", "check_frechet_distance"]

DT = torch.float64


def _log_p(train, L, alpha, denominator):
    N, D = train.shape
    counts = torch.zeros((D, L), dtype=DT)
    counts.scatter_add_(1, train.T.contiguous(), torch.ones((D, N), dtype=DT))
    return torch.log(counts + alpha) - math.log(denominator)


def _nll(train, test, L, alpha):
    log_p = _log_p(train, L, alpha, train.shape[0] + L * alpha)
    return -log_p.gather(1, test.T.contiguous()).sum(0)


def _nll_cases(g: torch.Generator) -> list[Case]:
    train = torch.randint(0, 5, (40, 6), generator=g)
    test = torch.randint(0, 5, (7, 6), generator=g)
    return [
        Case("40 training and 7 test images of 6 pixels, L = 5 levels, alpha = 1", train, test, 5, 1.0),
        Case("alpha = 0.1 and L = 17 (levels 5..16 never occur)", train, test, 17, 0.1),
    ]


_NLL = Checker(
    name="pixel_nll",
    label="ex-eval-pixel-nll",
    reference=_nll,
    cases=_nll_cases,
    mistakes=[
        Mistake("Each pixel's probabilities must sum to 1: with alpha added to each of the L counts, divide by "
                "N + L * alpha, not by N.",
                lambda tr, te, L, a: -_log_p(tr, L, a, tr.shape[0]).gather(1, te.T.contiguous()).sum(0), "denominator"),
        Mistake("You returned bits (log base 2); the book reports this NLL in nats (natural log). Divide by "
                "64 ln 2 only when you want bits per dimension.",
                lambda tr, te, L, a: _nll(tr, te, L, a) / math.log(2.0), "bits"),
        Mistake("You averaged over the pixels; the NLL of an image is the *sum* over its pixels (independent "
                "pixels: the log-probabilities add).",
                lambda tr, te, L, a: _nll(tr, te, L, a) / tr.shape[1], "mean-over-pixels"),
        Mistake("You returned the log-likelihood; the NLL is its negative (a positive number of nats).",
                lambda tr, te, L, a: -_nll(tr, te, L, a), "sign"),
    ],
)


def check_pixel_nll(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``pixel_nll(train_levels, test_levels, L, alpha)`` (exercise ``ex-eval-pixel-nll``)."""
    __tracebackhide__ = True  # noqa: F841
    _NLL(fn)


def _fd_cases(g: torch.Generator) -> list[Case]:
    def cov(d):
        a = torch.randn(d, d, generator=g, dtype=DT)
        return a @ a.T / d + 0.2 * torch.eye(d, dtype=DT)

    m1, m2 = torch.randn(5, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT)
    return [
        Case("two 5-D Gaussians with general covariances", m1, cov(5), m2, cov(5)),
        Case("equal means, diagonal covariances diag(1, 4) and diag(4, 1)", torch.zeros(2, dtype=DT),
             torch.diag(torch.tensor([1.0, 4.0], dtype=DT)), torch.zeros(2, dtype=DT),
             torch.diag(torch.tensor([4.0, 1.0], dtype=DT))),
    ]


def _trace_sqrt_product(s1, s2):
    return torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()


_FD = Checker(
    name="frechet",
    label="ex-eval-frechet",
    reference=lambda mu1, sigma1, mu2, sigma2: frechet_distance(mu1, sigma1, mu2, sigma2),
    cases=_fd_cases,
    rtol=1e-6,
    atol=1e-9,
    mistakes=[
        Mistake("The cross term needs a matrix square root: Tr((S1^{1/2} S2 S1^{1/2})^{1/2}), not Tr(S1 S2). "
                "(Use eigenvalues: the trace of the root is the sum of the square roots of the eigenvalues of S1 S2.)",
                lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + torch.trace(s1 + s2) - 2 * torch.trace(s1 @ s2)),
                "no-sqrt"),
        Mistake("torch.sqrt of a matrix takes the square root of each *entry*; the formula needs the matrix square "
                "root (a matrix R with R @ R = the product). Use eigenvalues or scipy.linalg.sqrtm.",
                lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + torch.trace(s1 + s2)
                                             - 2 * torch.sqrt((s1 @ s2).clamp(min=0)).diagonal().sum()),
                "elementwise-sqrt"),
        Mistake("The cross term is subtracted twice: ... - 2 Tr((S1^{1/2} S2 S1^{1/2})^{1/2}).",
                lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + torch.trace(s1 + s2) - _trace_sqrt_product(s1, s2)),
                "factor-2"),
        Mistake("You left out the distance between the means, ||mu1 - mu2||^2.",
                lambda m1, s1, m2, s2: float(torch.trace(s1 + s2) - 2 * _trace_sqrt_product(s1, s2)), "no-mean"),
    ],
)


def check_frechet_distance(fn: Callable[..., float]) -> None:
    """Check ``frechet(mu1, sigma1, mu2, sigma2)`` (exercise ``ex-eval-frechet``)."""
    __tracebackhide__ = True  # noqa: F841
    _FD(fn)
