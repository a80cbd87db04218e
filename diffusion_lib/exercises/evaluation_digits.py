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
    \mathrm{NLL}(\mathbf{x}) = -\sum_{j=1}^{D} \log p_j(x_j) \quad \text{(nats)};

    d^2 = \lVert\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2
          - 2 (\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big)   \quad \text{(Heusel et al., 2017)}.

``train_levels`` (N, D) and ``test_levels`` (M, D) are LongTensors of pixel levels 0..L-1;
``pixel_nll`` returns (M,) float64 nats. ``frechet`` gets float64 tensors and returns a number
(a Python float or a 0-d tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffusion_lib.exercises._core import Case, Checker, Mistake
from diffusion_lib.eval.fid import frechet_distance

__all__ = ["check_pixel_nll", "check_frechet_distance"]

DT = torch.float64


# ------------------------------------------------------------------------ independent pixels
def _log_p(train, L, alpha, denominator):
    N, D = train.shape
    counts = torch.zeros((D, L), dtype=DT)
    counts.scatter_add_(1, train.T.contiguous(), torch.ones((D, N), dtype=DT))
    return torch.log(counts + alpha) - math.log(denominator)


def _nll(train, test, L, alpha):
    log_p = _log_p(train, L, alpha, train.shape[0] + L * alpha)
    return -log_p.gather(1, test.T.contiguous()).sum(0)


def _nll_no_alpha(train, test, L, alpha):
    return _nll(train, test, L, 0.0)


def _nll_pooled(train, test, L, alpha):
    # one distribution for all pixels together
    counts = torch.bincount(train.flatten(), minlength=L).to(DT)
    log_p = torch.log(counts + alpha) - torch.log(counts.sum() + L * alpha)
    return -log_p[test].sum(1)


def _nll_alt_loop(train, test, L, alpha):
    out = torch.zeros(test.shape[0], dtype=DT)
    for j in range(train.shape[1]):
        counts = torch.bincount(train[:, j], minlength=L).to(DT)
        p = (counts + alpha) / (counts + alpha).sum()
        out = out - torch.log(p[test[:, j]])
    return out


def _nll_alt_one_hot(train, test, L, alpha):
    counts = F.one_hot(train, L).sum(0).to(DT)  # (D, L)
    log_p = (counts + alpha).log() - math.log(train.shape[0] + L * alpha)
    picked = (F.one_hot(test, L).to(DT) * log_p).sum(-1)  # (M, D)
    return -picked.sum(1)


def _nll_cases(g: torch.Generator) -> list[Case]:
    train = torch.randint(0, 5, (40, 6), generator=g)
    test = torch.randint(0, 5, (7, 6), generator=g)
    skewed = torch.randint(0, 3, (30, 4), generator=g)  # levels 0..2 only in training
    unseen = torch.tensor([[0, 1, 2, 0], [4, 3, 2, 1]])  # the second image has levels never seen in training
    return [
        Case("40 training and 7 test images of 6 pixels, L = 5 levels, alpha = 1", train, test, 5, 1.0),
        Case("alpha = 0.1 and L = 17 (levels 5..16 never occur)", train, test, 17, 0.1),
        Case("a test image with levels that no training image has at those pixels, L = 5, alpha = 0.5",
             skewed, unseen, 5, 0.5),
        Case("a single test image (M = 1) and a single training image (N = 1), L = 17, alpha = 1",
             train[:1], test[:1], 17, 1.0),
    ]


_NLL = Checker(
    name="pixel_nll",
    label="ex-eval-pixel-nll",
    reference=_nll,
    cases=_nll_cases,
    arg_names=("train_levels", "test_levels", "L", "alpha"),
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
        Mistake("You left out the smoothing alpha: a level that never occurs at a pixel in the training images "
                "then gets probability 0 and an infinite NLL. Add alpha to every count (and L * alpha to the "
                "denominator).", _nll_no_alpha, "no-alpha"),
        Mistake("You fitted one distribution to all pixels pooled together. The model has one categorical "
                "distribution per pixel: count the levels of each column j of train_levels separately.",
                _nll_pooled, "pooled"),
    ],
    alternatives=[_nll_alt_loop, _nll_alt_one_hot],
)


def check_pixel_nll(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``pixel_nll(train_levels, test_levels, L, alpha)`` (exercise ``ex-eval-pixel-nll``)."""
    __tracebackhide__ = True  # noqa: F841
    return _NLL(fn)


# ---------------------------------------------------------------------------- Fréchet distance
def _trace_sqrt_product(s1, s2):
    return torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()


def _fd_alt_eigvals(m1, s1, m2, s2):
    return float(((m1 - m2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * _trace_sqrt_product(s1, s2))


def _fd_alt_sqrtm(m1, s1, m2, s2):
    import scipy.linalg

    root = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())
    return float(torch.dot(m1 - m2, m1 - m2)) + float(torch.trace(s1 + s2)) - 2.0 * float(root.real.trace())


def _fd_cases(g: torch.Generator) -> list[Case]:
    def cov(d):
        a = torch.randn(d, d, generator=g, dtype=DT)
        return a @ a.T / d + 0.2 * torch.eye(d, dtype=DT)

    m1, m2 = torch.randn(5, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT)
    thin = torch.randn(4, 2, generator=g, dtype=DT)
    same_mu, same_s = torch.randn(3, generator=g, dtype=DT), cov(3)
    return [
        Case("two 5-D Gaussians with general covariances", m1, cov(5), m2, cov(5)),
        Case("equal means, diagonal covariances diag(1, 4) and diag(4, 1)", torch.zeros(2, dtype=DT),
             torch.diag(torch.tensor([1.0, 4.0], dtype=DT)), torch.zeros(2, dtype=DT),
             torch.diag(torch.tensor([4.0, 1.0], dtype=DT))),
        Case("1-D Gaussians N(1, 4) and N(-2, 1): d^2 = 3^2 + (2 - 1)^2 = 10",
             torch.tensor([1.0], dtype=DT), torch.tensor([[4.0]], dtype=DT),
             torch.tensor([-2.0], dtype=DT), torch.tensor([[1.0]], dtype=DT)),
        Case("a covariance of rank 2 in 4-D (as estimated from too few feature vectors)",
             torch.zeros(4, dtype=DT), thin @ thin.T, torch.ones(4, dtype=DT), cov(4)),
        Case("two identical Gaussians: the distance is 0", same_mu, same_s, same_mu.clone(), same_s.clone()),
    ]


_FD = Checker(
    name="frechet",
    label="ex-eval-frechet",
    reference=lambda mu1, sigma1, mu2, sigma2: frechet_distance(mu1, sigma1, mu2, sigma2),
    cases=_fd_cases,
    rtol=1e-6,
    atol=1e-9,
    allow_number=True,
    arg_names=("mu1", "sigma1", "mu2", "sigma2"),
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
        Mistake("You used the distance between the means, ||mu1 - mu2||, where the formula has its square "
                "||mu1 - mu2||^2.",
                lambda m1, s1, m2, s2: float((m1 - m2).norm() + torch.trace(s1 + s2) - 2 * _trace_sqrt_product(s1, s2)),
                "mean-not-squared"),
        Mistake("You returned d, the square root; the exercise (and the book's tables) use d^2 itself.",
                lambda m1, s1, m2, s2: math.sqrt(max(frechet_distance(m1, s1, m2, s2), 0.0)), "sqrt-of-d2"),
    ],
    alternatives=[_fd_alt_eigvals, _fd_alt_sqrtm],
)


def check_frechet_distance(fn: Callable[..., float]) -> None:
    """Check ``frechet(mu1, sigma1, mu2, sigma2)`` (exercise ``ex-eval-frechet``)."""
    __tracebackhide__ = True  # noqa: F841
    return _FD(fn)
