r"""The diffusion model of Sohl-Dickstein et al. (2015): a parameterisation of the shared Gaussian process.

The forward process is the Gaussian chain of :class:`~diffusion_lib.core.schedules.NoiseSchedule`,
``q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)``. The reverse process is a chain of
Gaussians whose mean *and* variance are outputs of a network (in the book, a
:class:`~diffusion_lib.models.PerTimestepMLP`: a shared trunk and one head per timestep):

    p(x_{t-1} | x_t) = N( mu(x_t, t), sigma^2(x_t, t) I ).

The network returns ``2 d`` numbers per point, ``(f, r)``, read as

    mu      = ( x_t - beta_t / sqrt(1 - abar_t) * f ) / sqrt(alpha_t)
    log s^2 = rho * log beta_t + (1 - rho) * log tilde beta_t,      rho = sigmoid(r).

This is exactly the shared process :class:`~diffusion_lib.core.diffusion.GaussianDiffusion` with
an eps-prediction (``f`` is the predicted noise) and the learned-range variance
(``rho = (v + 1) / 2`` with ``v = tanh(r / 2)``). So this module only reads the network's output
that way (:meth:`Sohl2015Diffusion.as_learned_range_model`) and keeps what truly differs: the
training objective is the bound itself in nats per example,

    L ~= L_T + T * L_{t-1}(x_0, t, eps),   t balanced over the batch (every t equally often),

with the Gaussian decoder at t = 1 (the Swiss roll is continuous); the forward process, the
posterior, the bound's terms and the sampler are the core's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from diffusion_lib._checks import check_int, check_timesteps
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.core.timesteps import balanced_timesteps
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["Sohl2015Diffusion"]


class Sohl2015Diffusion:
    """The 2015 model's reverse-process read-out, its training loss, bound and sampler, on the shared core.

    Args:
        schedule: the forward process (beta_1..beta_T and derived tensors), T >= 2.

    ``self.process`` is the shared :class:`~diffusion_lib.core.diffusion.GaussianDiffusion`
    (``"eps"``, ``"learned_range"``, ``"kl"``) that every method uses.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise InputTypeError(
                "schedule must be a NoiseSchedule, e.g. NoiseSchedule.from_name('linear', 40, "
                f"beta_start=1e-3, beta_end=0.2); got {type(schedule).__name__}"
            )
        if schedule.T < 2:
            raise InputValueError(f"the 2015 model needs T >= 2 steps, got T = {schedule.T}")
        self.schedule = schedule
        self.process = GaussianDiffusion(schedule, "eps", "learned_range", "kl")

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.schedule.T

    def _points(self, x: Any, t: Any, name: str) -> torch.Tensor:
        """Check a batch of points (B, d) and its timesteps; return t as a LongTensor (B,)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise InputValueError(f"{name} must be a tensor of points with shape (B, d), got "
                                  f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return check_timesteps(t, self.T, batch=x.shape[0], device=x.device)

    def as_learned_range_model(self, model: nn.Module) -> nn.Module:
        """The network read as the core's ``("eps", "learned_range")`` model: ``(f, tanh(r / 2))``.

        Our ``f`` is exactly DDPM's noise prediction, and ``rho = sigmoid(r)`` is improved-DDPM's
        interpolation ``(v + 1) / 2`` with ``v = tanh(r / 2)``.

        Implements :eq:`eq-sohl-param` (chapter ``swiss_roll_2015``).
        """
        if not callable(model):
            raise InputTypeError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
        return _LearnedRangeAdapter(model)

    # ------------------------------------------------------------------ the process (the core's)
    def reverse_moments(self, model: nn.Module, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and log-variance of p(x_{t-1} | x_t) from the network output (f, r):

        mu = (x_t - beta_t / sqrt(1 - abar_t) f) / sqrt(alpha_t),
        log sigma^2 = sigmoid(r) log beta_t + (1 - sigmoid(r)) log tilde beta_t (clipped at t = 1).

        Returns ``(mean, log_variance)``, each of shape ``(B, d)``.

        Implements :eq:`eq-sohl-reverse` (chapter ``swiss_roll_2015``).
        Implements :eq:`eq-sohl-param` (chapter ``swiss_roll_2015``).
        """
        t = self._points(xt, t, "x_t")
        out = self.process.p_mean_variance(self.as_learned_range_model(model), xt, t)
        return out["mean"], out["log_variance"]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (the core's :meth:`GaussianDiffusion.q_sample`, t in 1..T).

        Implements :eq:`eq-sohl-marginal` (chapter ``swiss_roll_2015``).
        """
        t = self._points(x0, t, "x0")
        if eps is None:
            raise InputValueError("eps must be a tensor of x0's shape (e.g. torch.randn_like(x0))")
        return self.process.q_sample(x0, t, eps=eps)

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (clipped) log-variance of q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, tilde beta_t I).

        Implements :eq:`eq-sohl-posterior` (chapter ``swiss_roll_2015``).
        """
        t = self._points(xt, t, "x_t")
        mean, _, log_variance = self.process.posterior_mean_variance(x0, xt, t)
        return mean, log_variance

    # ------------------------------------------------------------------ what differs: the loss in nats
    def bound_terms(self, model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        r"""L_{t-1} for each example at its own t, in nats summed over dimensions: shape (B,).

        t >= 2: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) (closed form between Gaussians);
        t = 1: -log p(x_0 | x_1), the Gaussian density of x_0 under the last reverse step.
        ``x_t`` is ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.

        Implements :eq:`eq-sohl-kl` (chapter ``swiss_roll_2015``).
        """
        xt = self.q_sample(x0, t, eps)
        return self.process.vb_term(self.as_learned_range_model(model), x0, xt, t, decoder="gaussian")

    def loss(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""One-sample estimate of the bound, averaged over the batch (nats per example; a scalar).

        L ~= L_T + T * L_{t-1}(x_0, t, eps), t balanced over 1..T, eps ~ N(0, I).
        This has the signature ``loss_fn(model, batch, generator)`` of :func:`diffusion_lib.train.loop.train`.

        Implements :eq:`eq-sohl-bound` (chapter ``swiss_roll_2015``) (its one-t estimate).
        """
        self._points(x0, 1, "x0")
        t = balanced_timesteps(self.T, x0.shape[0], generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        return (self.T * self.bound_terms(model, x0, t, eps) + self.process.prior_kl(x0)).mean()

    def variational_bound(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Every term of the bound for each example (one x_t per t): the core's bound with the Gaussian decoder.

        "terms" (B, T+1): terms[:, t] = L_{t-1} for t = 1..T (terms[:, 1] = L_0), terms[:, 0] = 0;
        "prior" (B,): L_T; "total" (B,) = prior + terms.sum(1); "bits_per_dim". In nats; runs under no_grad.
        """
        self._points(x0, 1, "x0")
        return self.process.variational_bound(self.as_learned_range_model(model), x0, decoder="gaussian",
                                              generator=generator)

    # ------------------------------------------------------------------ sampling and the forward chain
    def sample(
        self,
        model: nn.Module,
        n: int,
        data_dim: int = 2,
        generator: torch.Generator | None = None,
        callback: Callable[[int, torch.Tensor, torch.Tensor], Any] | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Run the learned reverse chain from x_T ~ N(0, I) for ``n`` points: x_0, shape ``(n, d)``.

        The core's ancestral sampler (the last step returns the mean of p(x_0 | x_1)).
        ``callback(t, x_t, x0_hat)`` is called at every step t = T..1 (e.g. to keep the chain).
        """
        n = check_int(n, "n (number of points)", minimum=1)
        data_dim = check_int(data_dim, "data_dim", minimum=1)
        return self.process.p_sample_loop(self.as_learned_range_model(model), (n, data_dim), generator=generator,
                                          callback=callback, progress=progress)

    def forward_trajectory(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the forward chain step by step from ``x0``: ``(T+1, n, d)`` with index t holding x_t.

        Each step is the core's :meth:`GaussianDiffusion.q_step_sample`.
        """
        self._points(x0, 1, "x0")
        traj = torch.empty((self.T + 1,) + tuple(x0.shape), dtype=x0.dtype, device=x0.device)
        traj[0] = x = x0
        for t in range(1, self.T + 1):
            x = self.process.q_step_sample(x, t, generator=generator)
            traj[t] = x
        return traj


class _LearnedRangeAdapter(nn.Module):
    """The network's ``(f, r)`` as ``(eps, v)`` with ``v = tanh(r / 2)`` (see ``as_learned_range_model``)."""

    def __init__(self, model: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(x, t)
        d = x.shape[1]
        if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0], 2 * d):
            raise InputValueError(
                f"the 2015 model must return (B, 2d) = ({x.shape[0]}, {2 * d}) numbers per batch: "
                f"d for the mean and d for the variance; got "
                f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}. "
                f"Build it with out_dim = 2 * data_dim"
            )
        return torch.cat([out[:, :d], torch.tanh(0.5 * out[:, d:])], dim=1)
