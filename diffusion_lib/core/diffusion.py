r"""Gaussian diffusion: forward process, posterior, reverse sampling (DDPM, DDIM), losses, bound.

The forward (noising) process adds Gaussian noise in T steps,

    q(x_t | x_{t-1}) = N( sqrt(alpha_t) x_{t-1}, beta_t I ),
    q(x_t | x_0)     = N( sqrt(abar_t) x_0, (1 - abar_t) I ),

and the reverse process p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I) is parameterised by a network
that predicts either the noise eps or the data x_0 (``model_mean_type``); its variance is fixed or
learned (``model_var_type``); it is trained with ``loss_type``. These three switches follow the
structure of the official DDPM / improved-DDPM code.

Conventions: t counts from 1 to T; a model is called as ``model(x_t, t, **model_kwargs)`` with t a
LongTensor of shape (B,). Tensors hold a batch along dimension 0 and any data shape after it:
(B,), (B, D) or (B, C, H, W) all work. Coefficients come from a :class:`NoiseSchedule` indexed by t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffusion_lib._checks import (
    check_choice,
    check_floating,
    check_int,
    check_same_device,
    check_same_shape,
    check_timesteps,
)
from diffusion_lib.core.losses import (
    LOSS_KINDS,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    normal_kl,
    simple_loss,
    sum_flat,
)
from diffusion_lib.core.schedules import NoiseSchedule

__all__ = [
    "GaussianDiffusion",
    "MODEL_MEAN_TYPES",
    "MODEL_VAR_TYPES",
    "LOSS_TYPES",
    "DECODER_TYPES",
]

MODEL_MEAN_TYPES: tuple[str, ...] = ("eps", "x0")
MODEL_VAR_TYPES: tuple[str, ...] = ("fixed_small", "fixed_large", "learned_range")
LOSS_TYPES: tuple[str, ...] = ("l2", "l1", "huber", "kl", "hybrid")
DECODER_TYPES: tuple[str, ...] = ("discretized", "gaussian")

Model = Callable[..., torch.Tensor]


class GaussianDiffusion:
    r"""A Gaussian diffusion process over a :class:`NoiseSchedule`, with DDPM and DDIM samplers.

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
            ``"l2"`` / ``"l1"`` / ``"huber"`` -- regression on the model's target (eps or x_0),
            averaged over dimensions (DDPM's L_simple for l2);
            ``"kl"`` -- the variational bound term L_{t-1} in bits per dimension;
            ``"hybrid"`` -- L_simple + lambda L_vlb (Nichol & Dhariwal 2021, lambda = vb_weight =
            0.001), with L_vlb estimated by T * L_{t-1} at the uniformly drawn t and the model's mean
            detached in that term, so that the bound trains only the variance.
        vb_weight: lambda of the hybrid loss.
        huber_delta: the threshold of the huber loss.

    The variance is learned only by the ``"kl"`` and ``"hybrid"`` losses, so ``learned_range``
    with a pure regression loss is rejected.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        model_mean_type: str = "eps",
        model_var_type: str = "fixed_small",
        loss_type: str = "l2",
        vb_weight: float = 0.001,
        huber_delta: float = 1.0,
    ) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                f"schedule must be a NoiseSchedule (e.g. NoiseSchedule.from_name('linear', T=1000)), "
                f"got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.model_mean_type = check_choice(model_mean_type, MODEL_MEAN_TYPES, "model_mean_type")
        self.model_var_type = check_choice(model_var_type, MODEL_VAR_TYPES, "model_var_type")
        self.loss_type = check_choice(loss_type, LOSS_TYPES, "loss_type")
        if self.model_var_type == "learned_range" and self.loss_type in LOSS_KINDS:
            raise ValueError(
                f"model_var_type='learned_range' needs a loss that trains the variance: use "
                f"loss_type='hybrid' or 'kl' (with loss_type={loss_type!r} the variance output "
                f"would never receive a gradient)"
            )
        if vb_weight < 0:
            raise ValueError(f"vb_weight must be >= 0, got {vb_weight}")
        self.vb_weight = float(vb_weight)
        self.huber_delta = float(huber_delta)

    # ------------------------------------------------------------------ helpers
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

    def _t(self, t: Any, x: torch.Tensor, allow_zero: bool = False, name: str = "t") -> torch.Tensor:
        """Validate t against the batch of x; return a LongTensor of shape (B,) on x's device."""
        if x.ndim == 0:
            raise ValueError("x must have a batch dimension (shape (B, ...)), got a scalar tensor")
        check_same_device(
            x, self.schedule.device, "the data",
            f"move the diffusion with diffusion.to({str(x.device)!r}) (or the data to the schedule's device)",
        )
        return check_timesteps(t, self.T, batch=x.shape[0], allow_zero=allow_zero, device=x.device, name=name)

    def _coef(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """values[t] reshaped to (B, 1, ..., 1) to broadcast against x (t validated by _t)."""
        return values[t].reshape((x.shape[0],) + (1,) * (x.ndim - 1))

    @staticmethod
    def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def _check_noise(self, eps: torch.Tensor | None, x: torch.Tensor, name_x: str, generator: torch.Generator | None) -> torch.Tensor:
        if eps is None:
            return self._noise_like(x, generator)
        check_floating(eps, "eps")
        check_same_shape(x, eps, name_x, "eps")
        return eps

    # ------------------------------------------------------------------ forward process
    def q_mean_variance(self, x0: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Moments of q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

        Returns ``(mean, variance, log_variance)``, each of x0's shape. t in 0..T (t = 0 gives
        mean x_0, variance 0, log-variance -inf).

        Implements :eq:`eq-q-xt-x0` (chapter ``forward_process``).
        Implements :eq:`eq-sohl-marginal` (chapter ``swiss_roll_2015``).
        """
        check_floating(x0, "x0")
        t = self._t(t, x0, allow_zero=True)
        s = self.schedule
        mean = self._coef(s.sqrt_alpha_bar, t, x0) * x0
        variance = (1.0 - self._coef(s.alpha_bar, t, x0)).expand_as(x0)
        return mean, variance, torch.log(variance)

    def q_sample(
        self,
        x0: torch.Tensor,
        t: Any,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Sample x_t ~ q(x_t | x_0) in one shot: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.

        ``x0``: (B, ...); ``t``: int or LongTensor (B,) in 0..T (t = 0 returns x_0);
        ``eps``: optional noise of x0's shape (drawn from N(0, I) with ``generator`` if omitted).

        Implements :eq:`eq-q-sample` (chapter ``forward_process``).
        """
        check_floating(x0, "x0")
        t = self._t(t, x0, allow_zero=True)
        eps = self._check_noise(eps, x0, "x0", generator)
        sqrt_alpha_bar = self._coef(self.schedule.sqrt_alpha_bar, t, x0)
        sqrt_one_minus_alpha_bar = self._coef(self.schedule.sqrt_one_minus_alpha_bar, t, x0)
        return sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * eps

    def q_step_sample(
        self,
        x_prev: torch.Tensor,
        t: Any,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""One forward step x_t ~ q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I).

        x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, with t in 1..T.

        Implements :eq:`eq-forward-step-sample` (chapter ``forward_process``).
        Implements :eq:`eq-sohl-forward` (chapter ``swiss_roll_2015``).
        """
        check_floating(x_prev, "x_prev")
        t = self._t(t, x_prev)
        eps = self._check_noise(eps, x_prev, "x_prev", generator)
        sqrt_alpha = self._coef(self.schedule.alpha, t, x_prev).sqrt()
        sqrt_beta = self._coef(self.schedule.beta, t, x_prev).sqrt()
        return sqrt_alpha * x_prev + sqrt_beta * eps

    # ------------------------------------------------------------------ reparameterisations
    def predict_x0_from_eps(self, xt: torch.Tensor, t: Any, eps: torch.Tensor) -> torch.Tensor:
        r"""Invert x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for x_0:

        x_0 = x_t / sqrt(abar_t) - sqrt(1/abar_t - 1) eps.   (t in 1..T)

        Implements :eq:`eq-vdm-tweedie` (chapter ``vdm``).
        """
        check_floating(xt, "xt")
        check_floating(eps, "eps")
        check_same_shape(xt, eps, "xt", "eps")
        t = self._t(t, xt)
        s = self.schedule
        return self._coef(s.sqrt_recip_alpha_bar, t, xt) * xt - self._coef(s.sqrt_recipm1_alpha_bar, t, xt) * eps

    def predict_eps_from_x0(self, xt: torch.Tensor, t: Any, x0: torch.Tensor) -> torch.Tensor:
        r"""Invert x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for eps:

        eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t).   (t in 1..T)
        """
        check_floating(xt, "xt")
        check_floating(x0, "x0")
        check_same_shape(xt, x0, "xt", "x0")
        t = self._t(t, xt)
        s = self.schedule
        return (xt - self._coef(s.sqrt_alpha_bar, t, xt) * x0) / self._coef(s.sqrt_one_minus_alpha_bar, t, xt)

    def score_from_eps(self, eps: torch.Tensor, t: Any) -> torch.Tensor:
        r"""Score of q(x_t) from the optimal noise prediction (Tweedie / denoising score matching):

        grad_x log q(x_t) = -E[eps | x_t] / sqrt(1 - abar_t).   (t in 1..T)

        Implements :eq:`eq-score-eps` (chapter ``score_2d``).
        """
        check_floating(eps, "eps")
        t = self._t(t, eps)
        return -eps / self._coef(self.schedule.sqrt_one_minus_alpha_bar, t, eps)

    def eps_from_score(self, score: torch.Tensor, t: Any) -> torch.Tensor:
        r"""Inverse of :meth:`score_from_eps`: eps = -sqrt(1 - abar_t) * score.   (t in 1..T)"""
        check_floating(score, "score")
        t = self._t(t, score)
        return -self._coef(self.schedule.sqrt_one_minus_alpha_bar, t, score) * score

    # ------------------------------------------------------------------ posterior q(x_{t-1} | x_t, x_0)
    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: Any) -> torch.Tensor:
        r"""Mean of q(x_{t-1} | x_t, x_0):

        tilde mu_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) * x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) * x_t.

        At t = 1 this is exactly x_0.  (t in 1..T)
        """
        check_floating(x0, "x0")
        check_floating(xt, "xt")
        check_same_shape(x0, xt, "x0", "xt")
        t = self._t(t, xt)
        s = self.schedule
        coef_x0 = self._coef(s.posterior_mean_coef_x0, t, xt)
        coef_xt = self._coef(s.posterior_mean_coef_xt, t, xt)
        return coef_x0 * x0 + coef_xt * xt

    def posterior_variance(self, t: Any, batch: int | None = None) -> torch.Tensor:
        r"""tilde beta_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) for each t: shape (B,) (0 at t = 1)."""
        device = t.device if isinstance(t, torch.Tensor) else self.schedule.device
        t = check_timesteps(t, self.T, batch=batch, device=device)
        return self.schedule.posterior_variance.to(t.device)[t]

    def posterior_mean_variance(
        self, x0: torch.Tensor, xt: torch.Tensor, t: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Moments of q(x_{t-1} | x_t, x_0) = N(tilde mu_t(x_t, x_0), tilde beta_t I).

        Returns ``(posterior_mean, posterior_variance, posterior_log_variance_clipped)``, each of
        x0's shape. The log-variance at t = 1 is log tilde beta_2 (log 0 is -inf; DDPM's clip).

        Implements :eq:`eq-vdm-posterior-moments` (chapter ``vdm``).
        Implements :eq:`eq-sohl-posterior` (chapter ``swiss_roll_2015``).
        """
        mean = self.posterior_mean(x0, xt, t)
        t = self._t(t, xt)
        s = self.schedule
        variance = self._coef(s.posterior_variance, t, xt).expand_as(xt)
        log_variance = self._coef(s.posterior_log_variance_clipped, t, xt).expand_as(xt)
        return mean, variance, log_variance

    # ------------------------------------------------------------------ reverse process p(x_{t-1} | x_t)
    def _call_model(self, model: Model, xt: torch.Tensor, t: torch.Tensor, model_kwargs: dict | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the model; return (mean-part output, variance-part output or None)."""
        out = model(xt, t, **(model_kwargs or {}))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model must return a torch.Tensor, got {type(out).__name__}")
        if self.model_var_type == "learned_range":
            if xt.ndim < 2:
                raise ValueError(
                    "model_var_type='learned_range' needs data with a channel dimension (B, C, ...); "
                    f"got x_t of shape {tuple(xt.shape)}"
                )
            expected = (xt.shape[0], 2 * xt.shape[1]) + tuple(xt.shape[2:])
            if tuple(out.shape) != expected:
                raise ValueError(
                    f"with model_var_type='learned_range' the model must return 2 x the channels of "
                    f"x_t (mean part, then variance part): expected shape {expected} for x_t of shape "
                    f"{tuple(xt.shape)}, but the model returned {tuple(out.shape)}"
                )
            mean_part, var_part = torch.split(out, xt.shape[1], dim=1)
            return mean_part, var_part
        if tuple(out.shape) != tuple(xt.shape):
            raise ValueError(
                f"the model must return a tensor of the same shape as x_t (it predicts "
                f"{'eps' if self.model_mean_type == 'eps' else 'x_0'}): x_t has shape "
                f"{tuple(xt.shape)} but the model returned {tuple(out.shape)}"
            )
        return out, None

    def _model_variance(self, xt: torch.Tensor, t: torch.Tensor, var_part: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(variance, log_variance) of p(x_{t-1} | x_t), each of x_t's shape."""
        s = self.schedule
        if self.model_var_type == "fixed_small":
            variance = self._coef(s.posterior_variance, t, xt)
            log_variance = self._coef(s.posterior_log_variance_clipped, t, xt)
        elif self.model_var_type == "fixed_large":
            # beta_t, but tilde beta_2 at t = 1 (the clipped posterior log-variance holds it there)
            is_first = (t == 1).reshape((-1,) + (1,) * (xt.ndim - 1))
            log_beta = torch.log(self._coef(s.beta, t, xt))
            log_variance = torch.where(is_first, self._coef(s.posterior_log_variance_clipped, t, xt), log_beta)
            variance = torch.exp(log_variance)
        else:
            assert var_part is not None
            min_log = self._coef(s.posterior_log_variance_clipped, t, xt)  # log tilde beta_t
            max_log = torch.log(self._coef(s.beta, t, xt))  # log beta_t
            frac = (var_part + 1.0) / 2.0  # v in [-1, 1] -> frac in [0, 1]
            log_variance = frac * max_log + (1.0 - frac) * min_log
            variance = torch.exp(log_variance)
        return variance.expand_as(xt), log_variance.expand_as(xt)

    def _predictions(
        self, mean_part: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, clip_x0: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred_x0, pred_eps) from the model's mean output; clipping applies to pred_x0 first."""
        if self.model_mean_type == "eps":
            pred_x0 = self.predict_x0_from_eps(xt, t, mean_part)
            pred_eps = mean_part
        else:
            pred_x0 = mean_part
            pred_eps = None
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            pred_eps = None  # recompute so that x_t = sqrt(abar) pred_x0 + sqrt(1 - abar) pred_eps
        if pred_eps is None:
            pred_eps = self.predict_eps_from_x0(xt, t, pred_x0)
        return pred_x0, pred_eps

    def p_mean_variance(
        self,
        model: Model,
        xt: torch.Tensor,
        t: Any,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Moments of the reverse step p(x_{t-1} | x_t) = N(mu, sigma_t^2 I) from one model call.

        The model's prediction gives pred_x0 (directly, or from eps via
        x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)); optionally clipped to [-1, 1]; then
        mu = tilde mu_t(x_t, pred_x0) (the posterior mean with x_0 replaced by its prediction).

        Returns a dict with "mean", "variance", "log_variance", "pred_x0", "pred_eps" (each of
        x_t's shape); "pred_eps" is the model output for an eps-model without clipping and is
        otherwise recomputed from pred_x0. t in 1..T.

        Implements :eq:`eq-ddpm-mu-eps` (chapter ``ddpm_2d``).
        """
        check_floating(xt, "xt")
        t = self._t(t, xt)
        mean_part, var_part = self._call_model(model, xt, t, model_kwargs)
        variance, log_variance = self._model_variance(xt, t, var_part)
        pred_x0, pred_eps = self._predictions(mean_part, xt, t, clip_x0)
        mean = self.posterior_mean(pred_x0, xt, t)
        return {
            "mean": mean,
            "variance": variance,
            "log_variance": log_variance,
            "pred_x0": pred_x0,
            "pred_eps": pred_eps,
        }

    def p_sample(
        self,
        model: Model,
        xt: torch.Tensor,
        t: Any,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""One ancestral (DDPM) step: x_{t-1} = mu(x_t, t) + sigma_t z, z ~ N(0, I).

        No noise is added at t = 1 (the output is the mean, the final sample). Returns a dict with
        "sample" (x_{t-1}) and "pred_x0". t in 1..T.
        """
        out = self.p_mean_variance(model, xt, t, clip_x0=clip_x0, model_kwargs=model_kwargs)
        t = self._t(t, xt)
        z = self._noise_like(xt, generator)
        add_noise = (t > 1).to(xt.dtype).reshape((-1,) + (1,) * (xt.ndim - 1))
        sigma = torch.exp(0.5 * out["log_variance"])
        sample = out["mean"] + add_noise * sigma * z
        return {"sample": sample, "pred_x0": out["pred_x0"]}

    def _initial_noise(
        self, shape: Sequence[int], x_T: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        shape = tuple(int(n) for n in shape)
        if len(shape) == 0 or any(n < 1 for n in shape):
            raise ValueError(f"shape must be a non-empty tuple of positive sizes (B, ...), got {shape}")
        if x_T is not None:
            check_floating(x_T, "x_T")
            if tuple(x_T.shape) != shape:
                raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape={shape} was requested")
            return x_T
        return torch.randn(shape, generator=generator, dtype=self.schedule.dtype, device=self.schedule.device)

    def p_sample_loop(
        self,
        model: Model,
        shape: Sequence[int],
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        progress: bool = False,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        r"""Ancestral sampling: x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1} | x_t) for t = T, ..., 1.

        Returns the final sample x_0 (shape ``shape``), or with ``return_trajectory=True`` a dict
        with "sample"; "trajectory", a tensor ``(T+1, *shape)`` with ``trajectory[t] = x_t`` (so index 0 is
        the final sample and index T the starting noise); and "pred_x0", same layout, where
        pred_x0[t] is the prediction of x_0 made from x_t and pred_x0[0] the final sample.
        The trajectory costs (T+1) x the memory of one batch. Runs under torch.no_grad().
        """
        x = self._initial_noise(shape, x_T, generator)
        trajectory = pred_x0s = None
        if return_trajectory:
            trajectory = x.new_empty((self.T + 1,) + tuple(x.shape))
            pred_x0s = x.new_empty((self.T + 1,) + tuple(x.shape))
            trajectory[self.T] = x
        steps = range(self.T, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="DDPM sampling", total=self.T)
        with torch.no_grad():
            for t in steps:
                t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
                out = self.p_sample(model, x, t_batch, clip_x0=clip_x0, model_kwargs=model_kwargs, generator=generator)
                x = out["sample"]
                if return_trajectory:
                    trajectory[t - 1] = x
                    pred_x0s[t] = out["pred_x0"]
        if not return_trajectory:
            return x
        pred_x0s[0] = x
        return {"sample": x, "trajectory": trajectory, "pred_x0": pred_x0s}

    # ------------------------------------------------------------------ DDIM
    def ddim_timesteps(self, num_steps: int) -> torch.Tensor:
        """An evenly spaced subsequence of 1..T with ``num_steps`` entries, descending.

        It starts at T and ends at 1 (for num_steps >= 2; num_steps = 1 gives [T]); num_steps = T
        gives T, T-1, ..., 1. Values are round(linspace(T, 1, num_steps)).
        """
        num_steps = check_int(num_steps, "num_steps", minimum=1)
        if num_steps > self.T:
            raise ValueError(f"num_steps must be <= T = {self.T}, got {num_steps}")
        if num_steps == 1:
            return torch.tensor([self.T], dtype=torch.long)
        grid = torch.linspace(self.T, 1, num_steps, dtype=torch.float64)
        return torch.round(grid).long()

    def _check_timestep_sequence(self, timesteps: Any) -> torch.Tensor:
        if not isinstance(timesteps, torch.Tensor):
            try:
                timesteps = torch.as_tensor(list(timesteps))
            except (TypeError, ValueError, RuntimeError):
                raise TypeError("timesteps must be a 1-D sequence or LongTensor of ints") from None
        if timesteps.ndim != 1 or timesteps.numel() == 0:
            raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(timesteps.shape)}")
        timesteps = check_timesteps(timesteps.cpu(), self.T, name="timesteps")
        if timesteps.numel() > 1 and not bool((timesteps[1:] < timesteps[:-1]).all()):
            raise ValueError(
                f"timesteps must be strictly decreasing (sampling runs from noise to data), e.g. "
                f"diffusion.ddim_timesteps(50); got {timesteps.tolist()[:10]}..."
            )
        return timesteps

    def ddim_step(
        self,
        model: Model,
        xt: torch.Tensor,
        t: Any,
        t_prev: Any,
        eta: float = 0.0,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""One DDIM step from x_t to x_{t_prev} (Song, Meng & Ermon 2021, eq. 12), 0 <= t_prev < t:

            pred_x0 = (x_t - sqrt(1 - abar_t) pred_eps) / sqrt(abar_t)
            sigma   = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev)
            dir_xt  = sqrt(1 - abar_prev - sigma^2) * pred_eps
            x_prev  = sqrt(abar_prev) * pred_x0 + dir_xt + sigma * z

        with abar_prev = abar_{t_prev} (= 1 at t_prev = 0). eta = 0 is deterministic DDIM; eta = 1
        with t_prev = t - 1 gives sigma^2 = tilde beta_t, the DDPM posterior variance.
        Returns a dict with "sample", "pred_x0", "pred_eps", "mean" (x_prev without noise), "sigma"
        (shape (B, 1, ..., 1)).

        Implements :eq:`eq-ddpm-ddim` (chapter ``ddpm_2d``).
        """
        check_floating(xt, "xt")
        t = self._t(t, xt)
        t_prev = self._t(t_prev, xt, allow_zero=True, name="t_prev")
        if bool((t_prev >= t).any()):
            raise ValueError("t_prev must be smaller than t (DDIM steps go from noise towards data)")
        eta = float(eta)
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM-like), got {eta}")
        mean_part, _ = self._call_model(model, xt, t, model_kwargs)
        pred_x0, pred_eps = self._predictions(mean_part, xt, t, clip_x0)
        alpha_bar = self._coef(self.schedule.alpha_bar, t, xt)
        alpha_bar_prev = self._coef(self.schedule.alpha_bar, t_prev, xt)
        sigma = (
            eta
            * torch.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar))
            * torch.sqrt(1.0 - alpha_bar / alpha_bar_prev)
        )
        dir_xt = torch.sqrt((1.0 - alpha_bar_prev - sigma**2).clamp(min=0.0)) * pred_eps
        mean = torch.sqrt(alpha_bar_prev) * pred_x0 + dir_xt
        z = self._noise_like(xt, generator)
        sample = mean + sigma * z
        return {"sample": sample, "pred_x0": pred_x0, "pred_eps": pred_eps, "mean": mean, "sigma": sigma}

    def ddim_sample_loop(
        self,
        model: Model,
        shape: Sequence[int],
        timesteps: Sequence[int] | torch.Tensor | None = None,
        num_steps: int | None = None,
        eta: float = 0.0,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        progress: bool = False,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        r"""DDIM sampling along a strictly decreasing subsequence tau_1 > ... > tau_K of 1..T.

        Give either ``timesteps`` (any decreasing subsequence) or ``num_steps`` (uses
        :meth:`ddim_timesteps`); with neither, all T steps are used. The start ``x_T`` (noise,
        drawn if omitted) is treated as x_{tau_1}; each step goes tau_k -> tau_{k+1}, the last one
        to t = 0.

        Returns the final sample, or with ``return_trajectory=True`` a dict with "sample",
        "timesteps" (LongTensor (K+1,) ascending: 0, tau_K, ..., tau_1), "trajectory" ``(K+1, *shape)``
        with trajectory[k] = x at time timesteps[k] (index 0 the final sample, index K the start),
        and "pred_x0" (same layout; pred_x0[0] is the final sample). With the full sequence this is
        the layout of :meth:`p_sample_loop`. Runs under torch.no_grad().
        """
        if timesteps is not None and num_steps is not None:
            raise ValueError("give either timesteps or num_steps, not both")
        if timesteps is not None:
            taus = self._check_timestep_sequence(timesteps)
        elif num_steps is not None:
            taus = self.ddim_timesteps(num_steps)
        else:
            taus = torch.arange(self.T, 0, -1)
        x = self._initial_noise(shape, x_T, generator)
        K = int(taus.numel())
        taus_list = taus.tolist()
        trajectory = pred_x0s = None
        if return_trajectory:
            trajectory = x.new_empty((K + 1,) + tuple(x.shape))
            pred_x0s = x.new_empty((K + 1,) + tuple(x.shape))
            trajectory[K] = x
        indices = range(K)
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="DDIM sampling", total=K)
        with torch.no_grad():
            for k in indices:
                t = taus_list[k]
                t_prev = taus_list[k + 1] if k + 1 < K else 0
                out = self.ddim_step(
                    model, x, t, t_prev, eta=eta, clip_x0=clip_x0, model_kwargs=model_kwargs, generator=generator
                )
                x = out["sample"]
                if return_trajectory:
                    # position of time t in the ascending layout is K - k
                    trajectory[K - k - 1] = x
                    pred_x0s[K - k] = out["pred_x0"]
        if not return_trajectory:
            return x
        pred_x0s[0] = x
        ascending = torch.cat([torch.zeros(1, dtype=torch.long), taus.flip(0)])
        return {"sample": x, "timesteps": ascending, "trajectory": trajectory, "pred_x0": pred_x0s}

    # ------------------------------------------------------------------ variational bound
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        r"""L_T = KL( q(x_T | x_0) || N(0, I) ) per example, in nats, summed over dimensions: (B,).

        Implements :eq:`eq-kl-standard` (chapter ``forward_process``).
        """
        check_floating(x0, "x0")
        mean, _, log_variance = self.q_mean_variance(x0, self.T)
        return sum_flat(normal_kl(mean, log_variance, torch.zeros_like(mean), torch.zeros_like(mean)))

    def vb_term(
        self,
        model: Model,
        x0: torch.Tensor,
        xt: torch.Tensor,
        t: Any,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        decoder: str = "discretized",
        num_levels: int = 256,
        detach_mean: bool = False,
    ) -> torch.Tensor:
        r"""One term of the variational bound per example, in nats summed over dimensions: (B,).

        * t >= 2: L_{t-1} = KL( q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t) );
        * t = 1:  L_0 = -log p(x_0 | x_1), with the decoder ``"discretized"`` (data on
          ``num_levels`` levels in [-1, 1]; see :func:`discretized_gaussian_log_likelihood`) or
          ``"gaussian"`` (a density, for continuous data).

        ``detach_mean`` stops the gradient through the model's mean (the hybrid loss uses it).
        """
        check_floating(x0, "x0")
        check_floating(xt, "xt")
        check_same_shape(x0, xt, "x0", "xt")
        check_choice(decoder, DECODER_TYPES, "decoder")
        num_levels = check_int(num_levels, "num_levels", minimum=2)
        t = self._t(t, xt)
        out = self._reverse_moments(model, xt, t, clip_x0, model_kwargs, detach_mean)
        return self._vb_from_moments(out, x0, xt, t, decoder, num_levels)

    def _reverse_moments(
        self,
        model: Model,
        xt: torch.Tensor,
        t: torch.Tensor,
        clip_x0: bool,
        model_kwargs: dict | None,
        detach_mean: bool,
        model_output: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        mean_part, var_part = model_output if model_output is not None else self._call_model(model, xt, t, model_kwargs)
        if detach_mean:
            mean_part = mean_part.detach()
        variance, log_variance = self._model_variance(xt, t, var_part)
        pred_x0, _ = self._predictions(mean_part, xt, t, clip_x0)
        return {"mean": self.posterior_mean(pred_x0, xt, t), "log_variance": log_variance}

    def _vb_from_moments(
        self,
        out: dict[str, torch.Tensor],
        x0: torch.Tensor,
        xt: torch.Tensor,
        t: torch.Tensor,
        decoder: str,
        num_levels: int,
    ) -> torch.Tensor:
        is_first = t == 1
        result = x0.new_zeros(x0.shape[0])
        if not bool(is_first.all()):
            true_mean, _, true_log_variance = self.posterior_mean_variance(x0, xt, t)
            kl = sum_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"]))
            result = torch.where(is_first, result, kl)
        if bool(is_first.any()):
            # only the examples at t = 1 need the decoder (the discretized one checks x_0's range)
            idx = is_first.nonzero().squeeze(1)
            if decoder == "discretized":
                log_p_x0 = discretized_gaussian_log_likelihood(
                    x0[idx], out["mean"][idx], 0.5 * out["log_variance"][idx], num_levels=num_levels
                )
            else:
                log_p_x0 = gaussian_log_likelihood(x0[idx], out["mean"][idx], out["log_variance"][idx])
            decoder_nll = -sum_flat(log_p_x0)
            result = result.index_put((idx,), decoder_nll)
        return result

    def variational_bound(
        self,
        model: Model,
        x0: torch.Tensor,
        clip_x0: bool = False,
        model_kwargs: dict | None = None,
        decoder: str = "discretized",
        num_levels: int = 256,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> dict[str, torch.Tensor]:
        r"""The full variational bound on -log p(x_0), per example, in nats (one sample of x_t per t).

            -log p(x_0) <= L_T + sum_{t=2}^{T} L_{t-1} + L_0 = total,

        with L_T = :meth:`prior_kl`, L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) and
        L_0 = -log p(x_0 | x_1), each x_t drawn independently from q(x_t | x_0). Sums run over all
        dimensions of an example (not means). Returns a dict:

        * "total": (B,) the bound in nats;
        * "prior": (B,) L_T;
        * "terms": (B, T+1) with terms[:, t] = L_{t-1} for t = 1..T (terms[:, 1] = L_0, the decoder
          NLL; terms[:, t] the KL at step t) and terms[:, 0] = 0, so total = prior + terms.sum(1);
        * "bits_per_dim": (B,) total / (num_dims * ln 2).

        Costs T model calls; runs under torch.no_grad().

        Implements :eq:`eq-ddpm-bound` (chapter ``ddpm_digits``).
        """
        check_floating(x0, "x0")
        B = x0.shape[0]
        terms = torch.zeros((B, self.T + 1), dtype=x0.dtype, device=x0.device)
        steps = range(self.T, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="variational bound", total=self.T)
        with torch.no_grad():
            for t in steps:
                t_batch = torch.full((B,), t, dtype=torch.long, device=x0.device)
                xt = self.q_sample(x0, t_batch, generator=generator)
                terms[:, t] = self.vb_term(
                    model, x0, xt, t_batch, clip_x0=clip_x0, model_kwargs=model_kwargs,
                    decoder=decoder, num_levels=num_levels,
                )
            prior = self.prior_kl(x0)
        total = prior + terms.sum(dim=1)
        num_dims = x0[0].numel()
        return {
            "total": total,
            "prior": prior,
            "terms": terms,
            "bits_per_dim": total / (num_dims * math.log(2.0)),
        }

    # ------------------------------------------------------------------ training
    def training_losses(
        self,
        model: Model,
        x0: torch.Tensor,
        t: Any = None,
        eps: torch.Tensor | None = None,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
        decoder: str = "discretized",
        num_levels: int = 256,
        vb_weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Per-example training losses at random (or given) timesteps: a dict of (B,) tensors.

        x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with t ~ Uniform{1..T} when ``t`` is None.

        * l2 / l1 / huber: "loss" = "mse" = simple_loss(model output, target, kind), target eps
          or x_0 (the key is "mse" for every regression kind, as in the DDPM code);
        * kl: "loss" = "vb" = L_{t-1} / (num_dims ln 2), the bound term at the drawn t in bits per
          dimension (T * "vb" is an unbiased estimate of the whole bound L_vlb, up to L_T);
        * hybrid: "loss" = "mse" (l2) + vb_weight * T * "vb", i.e. L_simple + lambda L_vlb, with the
          model's mean detached in the bound term so that it trains only the variance. With
          T = 1000 and lambda = 0.001 this is mse + vb, as in the improved-DDPM code.

        Take ``.mean()`` of "loss" for an optimiser step. ``decoder`` / ``num_levels`` set the t = 1
        term of the bound (see :meth:`vb_term`). ``vb_weights``: (B,) importance weights
        w(t) = 1 / (T p(t)) of the bound term when ``t`` was drawn from a non-uniform p(t)
        (:func:`diffusion_lib.core.timesteps.sample_timesteps`); "loss" then uses w * "vb", which keeps
        the estimate of L_vlb unbiased ("vb" itself stays unweighted).

        Implements :eq:`eq-ddpm-simple` (chapter ``ddpm_digits``).
        Implements :eq:`eq-ddpm-hybrid` (chapter ``ddpm_digits``).
        """
        check_floating(x0, "x0")
        if x0.ndim == 0:
            raise ValueError("x0 must have a batch dimension (shape (B, ...)), got a scalar tensor")
        B = x0.shape[0]
        if t is None:
            t = torch.randint(1, self.T + 1, (B,), generator=generator, device=x0.device)
        t = self._t(t, x0)
        eps = self._check_noise(eps, x0, "x0", generator)
        xt = self.q_sample(x0, t, eps=eps)
        mean_part, var_part = self._call_model(model, xt, t, model_kwargs)
        target = eps if self.model_mean_type == "eps" else x0
        terms: dict[str, torch.Tensor] = {}
        if self.loss_type in LOSS_KINDS:
            terms["mse"] = simple_loss(mean_part, target, kind=self.loss_type, huber_delta=self.huber_delta)
            terms["loss"] = terms["mse"]
            return terms
        check_choice(decoder, DECODER_TYPES, "decoder")
        num_levels = check_int(num_levels, "num_levels", minimum=2)
        detach_mean = self.loss_type == "hybrid"
        moments = self._reverse_moments(
            model, xt, t, False, model_kwargs, detach_mean, model_output=(mean_part, var_part)
        )
        vb_nats = self._vb_from_moments(moments, x0, xt, t, decoder, num_levels)
        terms["vb"] = vb_nats / (x0[0].numel() * math.log(2.0))
        vb = terms["vb"]
        if vb_weights is not None:
            if not isinstance(vb_weights, torch.Tensor) or vb_weights.shape != (B,):
                raise ValueError(f"vb_weights must be a tensor of shape ({B},), one weight per example")
            vb = vb * vb_weights.to(vb.dtype)
        if self.loss_type == "kl":
            terms["loss"] = vb
        else:
            terms["mse"] = simple_loss(mean_part, target, kind="l2")
            terms["loss"] = terms["mse"] + self.vb_weight * self.T * vb
        return terms
