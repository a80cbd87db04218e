r"""Checkers for the exercises of the chapter on the VAE (``book/vae.ipynb``).

==========================  ========================  ===========================================================
checker                     exercise label            the function the student writes
==========================  ========================  ===========================================================
``check_kl_to_std_normal``  ``ex-vae-kl``             ``kl_to_std_normal(mean, logvar) -> (N,)``
``check_reparameterize``    ``ex-vae-reparam``        ``reparameterize(mean, logvar, eps) -> z``
``check_score_grad_mean``   ``ex-vae-score-grad``     ``score_grad_mean(f_values, z, mean, std) -> (S, D)``
==========================  ========================  ===========================================================

The equations (Kingma and Welling, 2014):

.. math::

    \mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2) \,\|\, \mathcal N(0, I))
      = \tfrac12 \sum_d (\mu_d^2 + \sigma_d^2 - \log \sigma_d^2 - 1), \qquad
    z = \mu + \sigma \odot \varepsilon, \qquad
    \widehat{\nabla_\mu} = f(z)\, (z - \mu) / \sigma^2 .

``logvar`` is log sigma^2; tensors are ``(N, D)`` and the KL sums over the last dimension.
``score_grad_mean`` gets ``f_values`` of shape ``(S,)`` (f at each of S samples ``z`` of shape
``(S, D)``) and returns one gradient estimate per sample, shape ``(S, D)``.

The KL term and the reparameterised sample are trained through (the encoder learns from their
gradients), so their checkers are ``differentiable``: an answer cut off from autograd
(``.detach()``, ``torch.no_grad()``, ``.item()``, NumPy) is refused, and the gradients with
respect to ``mean`` and ``logvar`` must match the reference's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_kl_to_std_normal", "check_reparameterize", "check_score_grad_mean"]

DT = torch.float64


# ------------------------------------------------------------------------------- KL to N(0, I)
def _kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0).sum(-1)


def _kl_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("a batch of 5 encoder outputs in 3-D", torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)),
        Case("q equal to the prior (mean 0, logvar 0): the KL must be 0", torch.zeros(2, 4), torch.zeros(2, 4)),
        Case("a batch of one 8-D encoder output, float64", torch.randn(1, 8, generator=g, dtype=DT),
             torch.randn(1, 8, generator=g, dtype=DT)),
        Case("a 1-D latent (shape (3, 1)) with a very small and a very large variance, float64",
             torch.tensor([[0.5], [-1.0], [2.0]], dtype=DT), torch.tensor([[-6.0], [3.0], [0.0]], dtype=DT)),
    ]


_KL = Checker(
    name="kl_to_std_normal",
    label="ex-vae-kl",
    reference=_kl,
    cases=_kl_cases,
    differentiable=True,
    mistakes=[
        Mistake("You used the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs: "
                "the KL has sigma^2 = exp(logvar).",
                lambda m, lv: 0.5 * (m.pow(2) + (0.5 * lv).exp() - lv - 1.0).sum(-1), "std-for-var"),
        Mistake("The log term has the wrong sign: the KL contains -log sigma^2 = -logvar.",
                lambda m, lv: 0.5 * (m.pow(2) + lv.exp() + lv - 1.0).sum(-1), "log-sign"),
        Mistake("You forgot the -1 inside the sum (one per dimension); without it the KL of q = p is D/2, not 0.",
                lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - lv).sum(-1), "no-minus-one"),
        Mistake("You forgot the factor 1/2 in front of the sum.",
                lambda m, lv: (m.pow(2) + lv.exp() - lv - 1.0).sum(-1), "no-half"),
        Mistake("You averaged over the dimensions instead of summing: the KL of a diagonal Gaussian is a sum over d.",
                lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - lv - 1.0).mean(-1), "mean"),
        Mistake("You treated logvar as the variance itself (sigma^2 = logvar, log sigma^2 = log(logvar)): "
                "logvar is log sigma^2, so sigma^2 = exp(logvar).",
                lambda m, lv: 0.5 * (m.pow(2) + lv - torch.log(lv) - 1.0).sum(-1), "logvar-as-var"),
        Mistake("You returned the total over the batch, one number: return one KL per row, shape (N,) "
                "(sum over the last dimension only).",
                lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - lv - 1.0).sum(), "batch-total"),
    ],
    alternatives=[
        lambda m, lv: -0.5 * torch.sum(1 + lv - m**2 - torch.exp(lv), dim=-1),
        lambda m, lv: torch.distributions.kl_divergence(
            torch.distributions.Normal(m, torch.exp(0.5 * lv)), torch.distributions.Normal(torch.zeros_like(m), 1.0)
        ).sum(-1),
        lambda m, lv: sum(0.5 * (m[:, d] ** 2 + lv[:, d].exp() - lv[:, d] - 1) for d in range(m.shape[1])),
    ],
)


def check_kl_to_std_normal(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``kl_to_std_normal(mean, logvar) -> KL(q || N(0, I))`` per row (exercise ``ex-vae-kl``).

    The answer must be differentiable in ``mean`` and ``logvar`` (it is a training loss).
    """
    __tracebackhide__ = True  # noqa: F841
    return _KL(fn)


# ------------------------------------------------------------------------------- reparameterisation
def _reparam(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return mean + torch.exp(0.5 * logvar) * eps


def _reparam_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("a batch of 4 latents in 3-D", torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g),
             torch.randn(4, 3, generator=g)),
        Case("logvar = 0 (unit variance): z = mean + eps", torch.randn(2, 2, generator=g), torch.zeros(2, 2),
             torch.randn(2, 2, generator=g)),
        Case("a batch of one 5-D latent, float64", torch.randn(1, 5, generator=g, dtype=DT),
             torch.randn(1, 5, generator=g, dtype=DT), torch.randn(1, 5, generator=g, dtype=DT)),
        Case("a nearly deterministic encoder (logvar = -8) next to a wide one (logvar = 2), float64",
             torch.randn(2, 3, generator=g, dtype=DT), torch.tensor([[-8.0] * 3, [2.0] * 3], dtype=DT),
             torch.randn(2, 3, generator=g, dtype=DT)),
    ]


_REPARAM = Checker(
    name="reparameterize",
    label="ex-vae-reparam",
    reference=_reparam,
    cases=_reparam_cases,
    differentiable=True,
    grad_args=(0, 1),
    arg_names=("mean", "logvar", "eps"),
    mistakes=[
        Mistake("You scaled eps by the variance exp(logvar); scale it by the standard deviation exp(logvar / 2).",
                lambda m, lv, e: m + lv.exp() * e, "variance"),
        Mistake("You scaled eps by logvar itself; the standard deviation is exp(logvar / 2).",
                lambda m, lv, e: m + lv * e, "logvar"),
        Mistake("You returned mean + std without the noise: z = mean + exp(logvar / 2) * eps.",
                lambda m, lv, e: m + (0.5 * lv).exp(), "no-eps"),
        Mistake("The 1/2 belongs inside the exponential: std = exp(logvar / 2), not exp(logvar) / 2.",
                lambda m, lv, e: m + 0.5 * lv.exp() * e, "half-outside"),
        Mistake("You multiplied the mean by the standard deviation too: z = mean + std * eps, "
                "not (mean + eps) * std.",
                lambda m, lv, e: (m + e) * (0.5 * lv).exp(), "scaled-mean"),
        Mistake("Your sample has the right values, but the standard deviation is detached (or computed "
                "under torch.no_grad()), so no gradient reaches logvar and the encoder cannot learn its "
                "variance. The point of the trick is that z is a differentiable function of mean and "
                "logvar: compute exp(0.5 * logvar) with torch, without .detach().",
                lambda m, lv, e: m + (0.5 * lv).exp().detach() * e, "detached-std"),
    ],
    alternatives=[
        lambda m, lv, e: m + e * torch.sqrt(torch.exp(lv)),
        lambda m, lv, e: torch.addcmul(m, lv.mul(0.5).exp(), e),
        lambda m, lv, e: m + torch.exp(lv) ** 0.5 * e,
    ],
)


def check_reparameterize(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``reparameterize(mean, logvar, eps) -> mean + exp(logvar / 2) * eps`` (exercise ``ex-vae-reparam``).

    The sample must be differentiable in ``mean`` and ``logvar``, with the reference's gradients.
    """
    __tracebackhide__ = True  # noqa: F841
    return _REPARAM(fn)


# ------------------------------------------------------------------------------- score-function gradient
def _score_grad(f_values: torch.Tensor, z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return f_values.unsqueeze(-1) * (z - mean) / std**2


def _score_cases(g: torch.Generator) -> list[Case]:
    mean, std = torch.randn(3, generator=g), 0.5 + torch.rand(3, generator=g)
    z = mean + std * torch.randn(6, 3, generator=g)
    mean1, std1 = torch.zeros(2), torch.full((2,), 2.0)
    z1 = torch.randn(4, 2, generator=g) * 2.0
    mean2, std2 = torch.randn(4, generator=g, dtype=DT), 0.3 + torch.rand(4, generator=g, dtype=DT)
    z2 = mean2 + std2 * torch.randn(1, 4, generator=g, dtype=DT)
    return [
        Case("6 samples of a 3-D Gaussian with different standard deviations", (z**2).sum(-1), z, mean, std),
        Case("4 samples with mean 0 and std 2", z1.sum(-1), z1, mean1, std1),
        Case("a single sample (S = 1) of a 4-D Gaussian, float64", (z2 - 1).pow(2).sum(-1), z2, mean2, std2),
    ]


_SCORE = Checker(
    name="score_grad_mean",
    label="ex-vae-score-grad",
    reference=_score_grad,
    cases=_score_cases,
    mistakes=[
        Mistake("You divided by the standard deviation once; d/dmu log N(z; mu, std^2) = (z - mu) / std^2.",
                lambda f, z, m, s: f.unsqueeze(-1) * (z - m) / s, "one-std"),
        Mistake("The sign is flipped: d/dmu log q(z) = (z - mu) / std^2, not (mu - z) / std^2.",
                lambda f, z, m, s: f.unsqueeze(-1) * (m - z) / s**2, "sign"),
        Mistake("You returned grad log q(z) without multiplying by f(z): the estimator is f(z) * grad log q(z).",
                lambda f, z, m, s: (z - m) / s**2, "no-f"),
        Mistake("You averaged the estimates over the samples: return one estimate per sample, shape (S, D) "
                "(the average is taken later, when the estimates are used).",
                lambda f, z, m, s: (f.unsqueeze(-1) * (z - m) / s**2).mean(0), "averaged"),
        Mistake("You used the score of a standard normal, -z: the score with respect to the mean of "
                "N(mean, std^2) is (z - mean) / std^2.",
                lambda f, z, m, s: f.unsqueeze(-1) * (-z), "std-normal-score"),
    ],
    alternatives=[
        lambda f, z, m, s: f[:, None] * (z - m) * s.pow(-2),
        lambda f, z, m, s: torch.einsum("s,sd->sd", f, (z - m) / (s * s)),
        lambda f, z, m, s: torch.stack([f[k] * (z[k] - m) / s**2 for k in range(len(f))]),
    ],
)


def check_score_grad_mean(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``score_grad_mean(f_values, z, mean, std)`` = f(z) (z - mean) / std^2 per sample (``ex-vae-score-grad``)."""
    __tracebackhide__ = True  # noqa: F841
    return _SCORE(fn)
