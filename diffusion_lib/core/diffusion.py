r"""The Gaussian diffusion process: forward process, posterior and the reverse step.

The forward (noising) process adds Gaussian noise in T steps,

    q(x_t | x_{t-1}) = N( sqrt(alpha_t) x_{t-1}, beta_t I ),
    q(x_t | x_0)     = N( sqrt(abar_t) x_0, (1 - abar_t) I ),

and the reverse process p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I) is parameterised by a network
that predicts either the noise eps or the data x_0 (``model_mean_type``); its variance is fixed or
learned (``model_var_type``); it is trained with ``loss_type``. These three switches follow the
structure of the official DDPM / improved-DDPM code.

The class gathers the whole core: this module holds the process, :mod:`~diffusion_lib.core.sampling`
the one sampler loop (DDPM and DDIM), :mod:`~diffusion_lib.core.bound` the variational bound and
:mod:`~diffusion_lib.core.objectives` the training losses; their functions are methods of
:class:`GaussianDiffusion`. Input checks live in :mod:`~diffusion_lib.core._validate` and run once
per public call.

Conventions: t counts from 1 to T; a model is called as ``model(x_t, t, **model_kwargs)`` with t a
LongTensor of shape (B,). Tensors hold a batch along dimension 0 and any data shape after it:
(B,), (B, D) or (B, C, H, W) all work. Coefficients come from a :class:`NoiseSchedule` indexed by t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diffusion_lib._checks import check_choice, check_real
from diffusion_lib.core import _validate as check
from diffusion_lib.core import bound, objectives, sampling
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["GaussianDiffusion", "MODEL_MEAN_TYPES", "MODEL_VAR_TYPES", "LOSS_TYPES", "DECODER_TYPES"]

MODEL_MEAN_TYPES: tuple[str, ...] = ("eps", "x0")
MODEL_VAR_TYPES: tuple[str, ...] = ("fixed_small", "fixed_large", "learned_range")
LOSS_TYPES: tuple[str, ...] = ("l2", "kl", "hybrid")
DECODER_TYPES: tuple[str, ...] = ("discretized", "gaussian")

Model = Callable[..., torch.Tensor]


class GaussianDiffusion:
    r"""A Gaussian diffusion process over a :class:`NoiseSchedule`, with one sampler for DDPM and DDIM.

    Args:
        schedule: the noise schedule (beta_1..beta_T and derived tensors).
        model_mean_type: what the network predicts:
            ``"eps"`` -- the noise eps in x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM);
            ``"x0"`` -- the clean data x_0.
        model_var_type: the reverse variance sigma_t^2:
            ``"fixed_small"`` -- tilde beta_t, the posterior variance (the right choice when x_0 is
            a single point); at t = 1, where tilde beta_1 = 0, its log is clipped to log tilde beta_2;
            ``"fixed_large"`` -- beta_t (the right choice when x_0 ~ N(0, I)); at t = 1 it uses
            tilde beta_2, as the DDPM code does in log space (in the improved-DDPM code both the
            variance and its log use tilde beta_2 at t = 1; so do we, to keep them consistent);
            ``"learned_range"`` -- the network returns twice the channels of x_t: first the mean
            prediction, then v in [-1, 1] that interpolates the log-variance
            (Nichol & Dhariwal 2021, eq. 15 with frac = (v + 1)/2):
            log sigma_t^2 = frac * log beta_t + (1 - frac) * log tilde beta_t.
        loss_type: the training objective of :meth:`training_losses`:
            ``"l2"`` -- DDPM's L_simple, the squared error of the model's target (eps or x_0)
            averaged over dimensions;
            ``"kl"`` -- the variational bound term L_{t-1} in bits per dimension;
            ``"hybrid"`` -- L_simple + lambda L_vlb (Nichol & Dhariwal 2021, lambda = vb_weight =
            0.001), with L_vlb estimated by T * L_{t-1} at the uniformly drawn t and the model's mean
            detached in that term, so that the bound trains only the variance.
        vb_weight: lambda of the hybrid loss (a finite number >= 0).

    The variance is learned only by the ``"kl"`` and ``"hybrid"`` losses, so ``learned_range``
    with ``"l2"`` is rejected.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        model_mean_type: str = "eps",
        model_var_type: str = "fixed_small",
        loss_type: str = "l2",
        vb_weight: float = 0.001,
    ) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise InputTypeError(
                f"schedule must be a NoiseSchedule (e.g. NoiseSchedule.from_name('linear', T=1000)), "
                f"got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.model_mean_type = check_choice(model_mean_type, MODEL_MEAN_TYPES, "model_mean_type")
        self.model_var_type = check_choice(model_var_type, MODEL_VAR_TYPES, "model_var_type")
        self.loss_type = check_choice(loss_type, LOSS_TYPES, "loss_type")
        if self.model_var_type == "learned_range" and self.loss_type == "l2":
            raise InputValueError(
                f"model_var_type='learned_range' needs a loss that trains the variance: use "
                f"loss_type='hybrid' or 'kl' (with loss_type={loss_type!r} the variance output "
                f"would never receive a gradient)"
            )
        self.vb_weight = check_real(vb_weight, "vb_weight", minimum=0.0)

    # the sampler, the bound and the training losses (functions of the modules named)
    p_sample = sampling.p_sample
    ddim_step = sampling.ddim_step
    p_sample_loop = sampling.p_sample_loop
    ddim_sample_loop = sampling.ddim_sample_loop
    ddim_timesteps = sampling.ddim_timesteps
    prior_kl = bound.prior_kl
    vb_term = bound.vb_term
    variational_bound = bound.variational_bound
    training_losses = objectives.training_losses

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.schedule.T

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GaussianDiffusion":
        """Move the schedule's tensors to ``device`` (and cast to ``dtype``); returns ``self``."""
        self.schedule.to(device, dtype)
        return self

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion({self.schedule!r}, model_mean_type={self.model_mean_type!r}, "
            f"model_var_type={self.model_var_type!r}, loss_type={self.loss_type!r})"
        )

    def _at(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """values[t] reshaped to (B, 1, ..., 1) to broadcast against x (t already validated)."""
        return values[t].reshape((x.shape[0],) + (1,) * (x.ndim - 1))

    def _check_timestep_sequence(self, timesteps: Any) -> torch.Tensor:
        """A strictly decreasing sequence of timesteps in 1..T as a LongTensor (validated)."""
        return torch.tensor(check.timestep_sequence(self.T, timesteps), dtype=torch.long)

    # ------------------------------------------------------------------ forward process
    def q_mean_variance(self, x0: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Moments of q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

        Returns ``(mean, variance, log_variance)``, each of x0's shape. t in 0..T (t = 0 gives
        mean x_0, variance 0, log-variance -inf).

        Implements :eq:`eq-q-xt-x0` (chapter ``forward_process``).
        Implements :eq:`eq-vdm-marginal` (chapter ``vdm``).
        """
        t = check.timesteps(self, t, check.data(x0, "x0"), allow_zero=True)
        mean = self._at(self.schedule.sqrt_alpha_bar, t, x0) * x0
        variance = (1.0 - self._at(self.schedule.alpha_bar, t, x0)).to(mean.dtype).expand_as(x0)
        return mean, variance, torch.log(variance)

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        s = self.schedule
        return self._at(s.sqrt_alpha_bar, t, x0) * x0 + self._at(s.sqrt_one_minus_alpha_bar, t, x0) * eps

    def q_sample(
        self, x0: torch.Tensor, t: Any, eps: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Sample x_t ~ q(x_t | x_0) in one shot: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.

        ``x0``: (B, ...); ``t``: int or LongTensor (B,) in 0..T (t = 0 returns x_0);
        ``eps``: optional noise of x0's shape (drawn from N(0, I) with ``generator`` if omitted).

        Implements :eq:`eq-q-sample` (chapter ``forward_process``).
        Implements :eq:`eq-sohl-marginal` (chapter ``swiss_roll_2015``).
        """
        t = check.timesteps(self, t, check.data(x0, "x0"), allow_zero=True)
        return self._q_sample(x0, t, check.noise(eps, x0, "x0", generator))

    def q_step_sample(
        self, x_prev: torch.Tensor, t: Any, eps: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""One forward step x_t ~ q(x_t | x_{t-1}): x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, t in 1..T.

        Implements :eq:`eq-forward-step-sample` (chapter ``forward_process``).
        Implements :eq:`eq-forward-step` (chapter ``forward_process``).
        Implements :eq:`eq-sohl-forward` (chapter ``swiss_roll_2015``).
        Implements :eq:`eq-vdm-step` (chapter ``vdm``).
        """
        t = check.timesteps(self, t, check.data(x_prev, "x_prev"))
        eps = check.noise(eps, x_prev, "x_prev", generator)
        sqrt_alpha = self._at(self.schedule.alpha, t, x_prev).sqrt()
        sqrt_beta = self._at(self.schedule.beta, t, x_prev).sqrt()
        return sqrt_alpha * x_prev + sqrt_beta * eps

    # ------------------------------------------------------------------ reparameterisations
    def _x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        s = self.schedule
        return self._at(s.sqrt_recip_alpha_bar, t, xt) * xt - self._at(s.sqrt_recipm1_alpha_bar, t, xt) * eps

    def _eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        s = self.schedule
        return (xt - self._at(s.sqrt_alpha_bar, t, xt) * x0) / self._at(s.sqrt_one_minus_alpha_bar, t, xt)

    def predict_x0_from_eps(self, xt: torch.Tensor, t: Any, eps: torch.Tensor) -> torch.Tensor:
        r"""Invert x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for x_0 (t in 1..T):

        x_0 = x_t / sqrt(abar_t) - sqrt(1/abar_t - 1) eps.

        Implements :eq:`eq-ddpm-ddim` (chapter ``ddpm_2d``) (its first line, x̂_0).
        Implements :eq:`eq-vdm-tweedie` (chapter ``vdm``) (with eps = -sqrt(1 - abar_t) times the score).
        """
        t = check.timesteps(self, t, check.data(xt, "xt"))
        check.same_shape(xt, check.data(eps, "eps"), "xt", "eps")
        return self._x0_from_eps(xt, t, eps)

    def predict_eps_from_x0(self, xt: torch.Tensor, t: Any, x0: torch.Tensor) -> torch.Tensor:
        r"""Invert x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for eps (t in 1..T):

        eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t).
        """
        t = check.timesteps(self, t, check.data(xt, "xt"))
        check.same_shape(xt, check.data(x0, "x0"), "xt", "x0")
        return self._eps_from_x0(xt, t, x0)

    def score_from_eps(self, eps: torch.Tensor, t: Any) -> torch.Tensor:
        r"""Score of q(x_t) from the optimal noise prediction: grad_x log q(x_t) = -E[eps | x_t] / sqrt(1 - abar_t).

        t in 1..T.

        Implements :eq:`eq-score-eps` (chapter ``score_2d``).
        """
        t = check.timesteps(self, t, check.data(eps, "eps"))
        return -eps / self._at(self.schedule.sqrt_one_minus_alpha_bar, t, eps)

    # ------------------------------------------------------------------ posterior q(x_{t-1} | x_t, x_0)
    def _posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.schedule
        return self._at(s.posterior_mean_coef_x0, t, xt) * x0 + self._at(s.posterior_mean_coef_xt, t, xt) * xt

    def _check_pair(self, x0: Any, xt: Any, t: Any) -> torch.Tensor:
        check.same_shape(check.data(x0, "x0"), check.data(xt, "xt"), "x0", "xt")
        return check.timesteps(self, t, xt)

    def posterior_mean_variance(
        self, x0: torch.Tensor, xt: torch.Tensor, t: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Moments of q(x_{t-1} | x_t, x_0) = N(tilde mu_t(x_t, x_0), tilde beta_t I).

        Returns ``(posterior_mean, posterior_variance, posterior_log_variance_clipped)``, each of
        x0's shape. The log-variance at t = 1 is log tilde beta_2 (log 0 is -inf; DDPM's clip).

        Implements :eq:`eq-vdm-posterior` (chapter ``vdm``).
        Implements :eq:`eq-vdm-posterior-moments` (chapter ``vdm``).
        Implements :eq:`eq-sohl-posterior` (chapter ``swiss_roll_2015``).
        """
        t = self._check_pair(x0, xt, t)
        return self._posterior(x0, xt, t)

    def _posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.schedule
        mean = self._posterior_mean(x0, xt, t)
        variance = self._at(s.posterior_variance, t, xt).to(mean.dtype).expand_as(xt)
        log_variance = self._at(s.posterior_log_variance_clipped, t, xt).to(mean.dtype).expand_as(xt)
        return mean, variance, log_variance

    # ------------------------------------------------------------------ reverse process p(x_{t-1} | x_t)
    def _call_model(
        self, model: Model, xt: torch.Tensor, t: torch.Tensor, model_kwargs: dict | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the model; return (mean-part output, variance-part output or None)."""
        return check.model_output(self, model(xt, t, **(model_kwargs or {})), xt)

    def _model_variance(
        self, xt: torch.Tensor, t: torch.Tensor, var_part: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(variance, log_variance) of p(x_{t-1} | x_t), each of x_t's shape."""
        s = self.schedule
        min_log = self._at(s.posterior_log_variance_clipped, t, xt)  # log tilde beta_t (tilde beta_2 at t = 1)
        if self.model_var_type == "fixed_small":
            variance, log_variance = self._at(s.posterior_variance, t, xt), min_log
        else:
            max_log = torch.log(self._at(s.beta, t, xt))  # log beta_t
            if self.model_var_type == "fixed_large":  # beta_t, but tilde beta_2 at t = 1
                log_variance = torch.where((t == 1).reshape(min_log.shape), min_log, max_log)
            else:
                frac = (var_part + 1.0) / 2.0  # v in [-1, 1] -> frac in [0, 1]
                log_variance = frac * max_log + (1.0 - frac) * min_log
            variance = torch.exp(log_variance)
        dtype = torch.promote_types(xt.dtype, s.dtype)  # that of the mean
        return variance.to(dtype).expand_as(xt), log_variance.to(dtype).expand_as(xt)

    def _predictions(
        self, mean_part: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, clip_x0: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred_x0, pred_eps) from the model's mean output; clipping applies to pred_x0 first."""
        if self.model_mean_type == "eps":
            pred_x0, pred_eps = self._x0_from_eps(xt, t, mean_part), mean_part
        else:
            pred_x0, pred_eps = mean_part, None
        if clip_x0:  # then recompute eps so that x_t = sqrt(abar) pred_x0 + sqrt(1 - abar) pred_eps
            pred_x0, pred_eps = pred_x0.clamp(-1.0, 1.0), None
        if pred_eps is None:
            pred_eps = self._eps_from_x0(xt, t, pred_x0)
        return pred_x0, pred_eps

    def _p_mean_variance(
        self,
        model: Model,
        xt: torch.Tensor,
        t: torch.Tensor,
        clip_x0: bool,
        model_kwargs: dict | None,
        model_output: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        detach_mean: bool = False,
    ) -> dict[str, torch.Tensor]:
        mean_part, var_part = model_output or self._call_model(model, xt, t, model_kwargs)
        if detach_mean:
            mean_part = mean_part.detach()
        variance, log_variance = self._model_variance(xt, t, var_part)
        pred_x0, pred_eps = self._predictions(mean_part, xt, t, clip_x0)
        return {
            "mean": self._posterior_mean(pred_x0, xt, t),
            "variance": variance,
            "log_variance": log_variance,
            "pred_x0": pred_x0,
            "pred_eps": pred_eps,
        }

    def p_mean_variance(
        self, model: Model, xt: torch.Tensor, t: Any, clip_x0: bool = False, model_kwargs: dict | None = None
    ) -> dict[str, torch.Tensor]:
        r"""Moments of the reverse step p(x_{t-1} | x_t) = N(mu, sigma_t^2 I) from one model call.

        The model's prediction gives pred_x0 (directly, or from eps via
        x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)); optionally clipped to [-1, 1]; then
        mu = tilde mu_t(x_t, pred_x0) (the posterior mean with x_0 replaced by its prediction).
        For an eps-model without clipping this is mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t).

        Returns a dict with "mean", "variance", "log_variance", "pred_x0", "pred_eps" (each of
        x_t's shape); "pred_eps" is the model output for an eps-model without clipping and is
        otherwise recomputed from pred_x0. t in 1..T.

        Implements :eq:`eq-ddpm-mu-eps` (chapter ``ddpm_2d``).
        Implements :eq:`eq-sohl-reverse` (chapter ``swiss_roll_2015``).
        """
        t = check.timesteps(self, t, check.data(xt, "xt"))
        out = self._p_mean_variance(model, xt, t, bool(clip_x0), check.model(model, model_kwargs))
        check.finite_result(out["mean"], "the reverse mean")
        return out
