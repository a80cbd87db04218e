r"""The diffusion model of Sohl-Dickstein et al. (2015), trained on its variational bound.

The forward process is the Gaussian chain of :class:`~diffusion_lib.core.schedules.NoiseSchedule`,
``q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)``. The reverse process is a chain of
Gaussians whose mean *and* variance are outputs of a network (in the book, a
:class:`~diffusion_lib.models.PerTimestepMLP`: a shared trunk and one head per timestep):

    p(x_{t-1} | x_t) = N( mu(x_t, t), sigma^2(x_t, t) I ).

The network returns ``2 d`` numbers per point, ``(f, r)``, read as

    mu      = ( x_t - beta_t / sqrt(1 - abar_t) * f ) / sqrt(alpha_t)
    log s^2 = rho * log beta_t + (1 - rho) * log tilde beta_t,      rho = sigmoid(r),

so the mean is a correction of the (rescaled) input whose size is set by the step's noise, and
the variance stays between the two natural bounds tilde beta_t (exact when x_0 is a single point)
and beta_t (exact when x_0 ~ N(0, I)); at t = 1, where tilde beta_1 = 0, the lower end is
tilde beta_2 (the schedule's ``posterior_log_variance_clipped``). This choice keeps every output of
order one at every t; it is ours (the 2015 paper used a similar rescaling around x_t).

The training objective is the bound itself (nats per example):

    -log p(x_0) <= L = L_T + sum_{t=2}^{T} L_{t-1} + L_0,
    L_T     = KL( q(x_T | x_0) || N(0, I) )                      (no parameters),
    L_{t-1} = KL( q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t) )      (both Gaussian: closed form),
    L_0     = -log p(x_0 | x_1)                                   (a Gaussian density).

The sum over t is estimated with one t per example: ``T * L_{t-1}`` is unbiased when t is uniform.
:meth:`Sohl2015Diffusion.loss` stratifies the t's over the batch (every t equally often) to lower
the variance.

Sampling (:meth:`Sohl2015Diffusion.sample`) runs the learned chain from ``x_T ~ N(0, I)``; as in
DDPM the last step returns the mean of ``p(x_0 | x_1)`` without adding noise.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusion_lib.core.losses import gaussian_log_likelihood, normal_kl
from diffusion_lib.core.schedules import NoiseSchedule

__all__ = ["Sohl2015Diffusion"]


class Sohl2015Diffusion:
    """Reverse-process parameterisation, variational bound and sampler of the 2015 model.

    Args:
        schedule: the forward process (beta_1..beta_T and derived tensors).
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                "schedule must be a NoiseSchedule, e.g. NoiseSchedule.from_name('linear', 40, "
                f"beta_start=1e-3, beta_end=0.2); got {type(schedule).__name__}"
            )
        if schedule.T < 2:
            raise ValueError(f"the 2015 model needs T >= 2 steps, got T = {schedule.T}")
        self.schedule = schedule

    @property
    def T(self) -> int:
        return self.schedule.T

    # ------------------------------------------------------------------ helpers
    def _col(self, values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return values.to(t.device)[t].unsqueeze(1)

    def _check(self, x: torch.Tensor, t: torch.Tensor, name: str = "x_t") -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"{name} must be a tensor of points with shape (B, d), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            raise ValueError(f"t must be a LongTensor of shape (B,) = ({x.shape[0]},), one timestep per point")
        if t.numel() and (int(t.min()) < 1 or int(t.max()) > self.T):
            raise ValueError(f"timesteps must lie in 1..T = 1..{self.T}, got [{int(t.min())}, {int(t.max())}]")

    # ------------------------------------------------------------------ reverse process
    def reverse_moments(self, model: nn.Module, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and log-variance of p(x_{t-1} | x_t) from the network output (f, r):

        mu = (x_t - beta_t / sqrt(1 - abar_t) f) / sqrt(alpha_t),
        log sigma^2 = sigmoid(r) log beta_t + (1 - sigmoid(r)) log tilde beta_t (clipped at t = 1).

        Returns ``(mean, log_variance)``, each of shape ``(B, d)``.

        Implements :eq:`eq-sohl-reverse` (chapter ``swiss_roll_2015``).
        Implements :eq:`eq-sohl-param` (chapter ``swiss_roll_2015``).
        """
        self._check(xt, t)
        out = model(xt, t)
        d = xt.shape[1]
        if not isinstance(out, torch.Tensor) or out.shape != (xt.shape[0], 2 * d):
            raise ValueError(
                f"the 2015 model must return (B, 2d) = ({xt.shape[0]}, {2 * d}) numbers per batch: "
                f"d for the mean and d for the variance; got "
                f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}. "
                f"Build it with out_dim = 2 * data_dim"
            )
        f, r = out[:, :d], out[:, d:]
        s = self.schedule
        beta = self._col(s.beta, t)
        mean = (xt - beta / self._col(s.sqrt_one_minus_alpha_bar, t) * f) / self._col(s.alpha, t).sqrt()
        rho = torch.sigmoid(r)
        log_variance = rho * torch.log(beta) + (1.0 - rho) * self._col(s.posterior_log_variance_clipped, t)
        return mean, log_variance

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        return self._col(self.schedule.sqrt_alpha_bar, t) * x0 + self._col(self.schedule.sqrt_one_minus_alpha_bar, t) * eps

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (clipped) log-variance of q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, tilde beta_t I)."""
        s = self.schedule
        mean = self._col(s.posterior_mean_coef_x0, t) * x0 + self._col(s.posterior_mean_coef_xt, t) * xt
        return mean, self._col(s.posterior_log_variance_clipped, t).expand_as(xt)

    # ------------------------------------------------------------------ the bound
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)) per example, summed over dimensions: shape (B,)."""
        s = self.schedule
        mean = s.sqrt_alpha_bar[-1] * x0
        log_var = torch.log(1.0 - s.alpha_bar[-1]).expand_as(x0)
        return normal_kl(mean, log_var, torch.zeros_like(x0), torch.zeros_like(x0)).sum(1)

    def bound_terms(self, model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        r"""L_{t-1} for each example at its own t, in nats summed over dimensions: shape (B,).

        t >= 2: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) (closed form between Gaussians);
        t = 1: -log p(x_0 | x_1), the Gaussian density of x_0 under the last reverse step.
        ``x_t`` is ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.
        """
        self._check(x0, t, "x0")
        if not isinstance(eps, torch.Tensor) or eps.shape != x0.shape:
            raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}")
        xt = self.q_sample(x0, t, eps)
        mean, log_var = self.reverse_moments(model, xt, t)
        q_mean, q_log_var = self.posterior(x0, xt, t)
        kl = normal_kl(q_mean, q_log_var, mean, log_var).sum(1)
        nll = -gaussian_log_likelihood(x0, mean, log_var).sum(1)
        return torch.where(t == 1, nll, kl)

    def stratified_timesteps(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """t for a batch of ``batch`` examples covering 1..T equally often, in random order."""
        offset = torch.randint(0, self.T, (1,), generator=generator)
        t = (torch.arange(batch) + offset) % self.T + 1
        return t[torch.randperm(batch, generator=generator)]

    def loss(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""One-sample estimate of the bound, averaged over the batch (nats per example; a scalar).

        L ~= L_T + T * L_{t-1}(x_0, t, eps), t stratified over 1..T, eps ~ N(0, I).
        This has the signature ``loss_fn(model, batch, generator)`` of :func:`diffusion_lib.train.loop.train`.
        """
        t = self.stratified_timesteps(x0.shape[0], generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        return (self.T * self.bound_terms(model, x0, t, eps) + self.prior_kl(x0)).mean()

    def variational_bound(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Every term of the bound for each example (one x_t per t): a dict of tensors, in nats.

        "terms" (B, T+1): terms[:, t] = L_{t-1} for t = 1..T (terms[:, 1] = L_0), terms[:, 0] = 0;
        "prior" (B,): L_T; "total" (B,) = prior + terms.sum(1). Runs under no_grad.

        Implements :eq:`eq-sohl-bound` (chapter ``swiss_roll_2015``).
        """
        B = x0.shape[0]
        terms = torch.zeros(B, self.T + 1, dtype=x0.dtype, device=x0.device)
        with torch.no_grad():
            for t in range(1, self.T + 1):
                tt = torch.full((B,), t, dtype=torch.long, device=x0.device)
                eps = torch.randn(x0.shape, generator=generator).to(x0)
                terms[:, t] = self.bound_terms(model, x0, tt, eps)
            prior = self.prior_kl(x0)
        return {"terms": terms, "prior": prior, "total": prior + terms.sum(1)}

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        model: nn.Module,
        n: int,
        data_dim: int = 2,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        progress: bool = False,
    ) -> torch.Tensor:
        """Run the learned reverse chain from x_T ~ N(0, I) for ``n`` points.

        Returns x_0 ``(n, d)``, or with ``return_trajectory=True`` the whole chain ``(T+1, n, d)``
        with index t holding x_t (index 0 the samples, index T the starting noise).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int (number of points), got {n!r}")
        x = torch.randn(n, data_dim, generator=generator)
        traj = torch.empty(self.T + 1, n, data_dim) if return_trajectory else None
        if traj is not None:
            traj[self.T] = x
        steps = range(self.T, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="2015 reverse chain")
        with torch.no_grad():
            for t in steps:
                tt = torch.full((n,), t, dtype=torch.long)
                mean, log_var = self.reverse_moments(model, x, tt)
                if t > 1:
                    x = mean + torch.exp(0.5 * log_var) * torch.randn(x.shape, generator=generator)
                else:
                    x = mean
                if traj is not None:
                    traj[t - 1] = x
        return traj if traj is not None else x

    def forward_trajectory(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the forward chain step by step from ``x0``: ``(T+1, n, d)`` with index t holding x_t."""
        s = self.schedule
        traj = torch.empty((self.T + 1,) + tuple(x0.shape))
        traj[0] = x = x0
        for t in range(1, self.T + 1):
            x = s.alpha[t].sqrt() * x + s.beta[t].sqrt() * torch.randn(x.shape, generator=generator)
            traj[t] = x
        return traj

    def as_learned_range_model(self, model: nn.Module) -> nn.Module:
        """Wrap the model for ``GaussianDiffusion(..., "eps", "learned_range", ...)``.

        Our ``f`` is exactly DDPM's noise prediction, and ``rho = sigmoid(r)`` is improved-DDPM's
        interpolation ``(v + 1) / 2`` with ``v = tanh(r / 2)``; so both libraries describe the same
        reverse process (a test checks that their bounds agree).
        """
        return _LearnedRangeAdapter(model)


class _LearnedRangeAdapter(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(x, t)
        d = x.shape[1]
        return torch.cat([out[:, :d], torch.tanh(0.5 * out[:, d:])], dim=1)

