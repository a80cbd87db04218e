r"""Classifier-free guidance (Ho & Salimans, 2022).

One network is trained both as a conditional model eps(x_t, t, y) and, with the label replaced
by a *null label* (written ∅) on a random fraction of the training examples, as an
unconditional model eps(x_t, t, ∅). At sampling time the two predictions are combined,

    eps_w(x_t, t, y) = (1 + w) eps(x_t, t, y) - w eps(x_t, t, ∅),

with guidance scale w >= 0 (w = 0: the plain conditional model; w = -1 gives the unconditional
one). Since eps = -sqrt(1 - abar_t) * score, this is the score of the sharpened density
p(x_t | y)^{1+w} / p(x_t)^w ∝ p(x_t) p(y | x_t)^{1+w}: samples move towards images the implicit
classifier p(y | x_t) is surer of, at the cost of diversity.

:class:`ClassifierFreeGuidance` wraps a conditional network into a model that
:meth:`GaussianDiffusion.p_sample_loop` and :meth:`GaussianDiffusion.ddim_sample_loop` can call
as ``model(x_t, t, y=labels)``; :func:`guided_eps` is the combination itself and
:func:`drop_labels` the label dropout used in training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffusion_lib._checks import check_finite, check_floating, check_int, check_real, check_timesteps
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["guided_eps", "drop_labels", "ClassifierFreeGuidance"]


def _check_scale(w: Any) -> float:
    return check_real(w, "the guidance scale w")


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    r"""eps_w = (1 + w) eps_cond - w eps_uncond = eps_cond + w (eps_cond - eps_uncond).

    Both predictions must have one shape and one dtype (no broadcasting) and be finite.
    """
    w = _check_scale(w)
    for name, e in (("eps_cond", eps_cond), ("eps_uncond", eps_uncond)):
        check_floating(e, name)
    if eps_cond.shape != eps_uncond.shape:
        raise InputValueError(
            f"eps_cond and eps_uncond must have the same shape, got {tuple(eps_cond.shape)} and "
            f"{tuple(eps_uncond.shape)}"
        )
    if eps_cond.dtype != eps_uncond.dtype:
        raise InputTypeError(
            f"eps_cond ({eps_cond.dtype}) and eps_uncond ({eps_uncond.dtype}) must have the same dtype; "
            f"convert one with .to(other.dtype)"
        )
    check_finite(eps_cond, "eps_cond")
    check_finite(eps_uncond, "eps_uncond")
    return _combine(eps_cond, eps_uncond, w)


def _combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """The unchecked combination of :func:`guided_eps` (used once per sampling step)."""
    return (1.0 + w) * eps_cond - w * eps_uncond


def drop_labels(
    labels: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by ``null_label`` with probability ``p_uncond`` (training-time label dropout).

    Returns a new LongTensor; the input is unchanged. ``p_uncond`` = 0.1-0.2 is typical.
    """
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        got = f"a {labels.dtype} tensor" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputTypeError(f"labels must be a LongTensor of class indices, got {got}; convert with labels.long()")
    p = check_real(p_uncond, "p_uncond (a probability)", minimum=0.0, maximum=1.0)
    null_label = check_int(null_label, "null_label", minimum=0)
    u = torch.rand(labels.shape, generator=generator, device=labels.device)
    return torch.where(u < p, torch.full_like(labels, null_label), labels)


class ClassifierFreeGuidance(nn.Module):
    r"""Wrap a conditional eps-model into the guided model eps_w(x_t, t, y) (see the module docstring).

    ``model(x_t, t, y=labels)`` must accept labels 0..num_classes-1 and the null label (by
    default ``model.num_classes``, the convention of :class:`diffusion_lib.models.unet.UNet`).
    Each call runs the network once on a batch twice as large: the inputs with their labels,
    then with the null label.

    For a model with a learned variance (output with 2C channels, ``learned_range``) the
    guidance combines the first C channels (the eps prediction) and keeps the conditional
    variance channels unchanged.

    Args:
        model: the conditional network.
        guidance_scale: w (0: conditional sampling, no guidance).
        null_label: the label that means "no label"; default ``model.num_classes``.
        learned_variance: whether the output has 2C channels; default ``model.learned_variance``
            if the model has that attribute, else False.

    ``t`` may be a LongTensor ``(B,)``, an int or a 0-d integer tensor (the same step for the whole
    batch); values must lie in 1..T, with T read from ``model.num_timesteps`` (or ``model.T``)
    when the model has it.

    Use: ``diffusion.p_sample_loop(ClassifierFreeGuidance(net, 2.0), shape, model_kwargs={"y": labels})``.
    Calling it with ``y=None`` (or all labels null) returns the unconditional prediction.
    """

    def __init__(
        self,
        model: nn.Module,
        guidance_scale: float = 1.0,
        null_label: int | None = None,
        learned_variance: bool | None = None,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise InputTypeError(f"model must be a callable network model(x_t, t, y=labels), got {type(model).__name__}")
        self.model = model
        self.guidance_scale = _check_scale(guidance_scale)
        if null_label is None:
            null_label = getattr(model, "num_classes", None)
            if null_label is None:
                raise InputValueError(
                    "cannot tell the null label: the model has no `num_classes` attribute. Pass "
                    "null_label=... (the label used for 'no label' during training)"
                )
        self.null_label = check_int(null_label, "null_label", minimum=0)
        if learned_variance is None:
            learned_variance = bool(getattr(model, "learned_variance", False))
        elif not isinstance(learned_variance, bool):
            raise InputTypeError(f"learned_variance must be True, False or None, got {learned_variance!r}")
        self.learned_variance = bool(learned_variance)

    def _timesteps(self, t: Any, x: torch.Tensor) -> torch.Tensor:
        T = getattr(self.model, "num_timesteps", None) or getattr(self.model, "T", None)
        if isinstance(T, int) and T >= 1:
            return check_timesteps(t, T, batch=x.shape[0], device=x.device)
        # T unknown: check the form and the lower bound here; the model checks the upper bound
        try:
            return check_timesteps(t, 2**62, batch=x.shape[0], device=x.device)
        except InputValueError as err:
            if "must lie in" not in str(err):
                raise
            raise InputValueError(
                f"t must be >= 1 (t counts from 1; t = 0 is the data itself), but got {t if isinstance(t, int) else 'values below 1'}"
            ) from None

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | None = None) -> torch.Tensor:
        """The guided prediction eps_w(x_t, t, y); the unconditional one for ``y=None`` or null labels."""
        check_floating(x, "x")
        if x.ndim < 2:
            raise InputValueError(f"x must be a batch (B, C, ...), got shape {tuple(x.shape)}")
        B = x.shape[0]
        t = self._timesteps(t, x)
        null = torch.full((B,), self.null_label, dtype=torch.long, device=x.device)
        if y is None:
            return self.model(x, t, y=null)
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (B,):
            raise InputValueError(
                f"y must be a LongTensor of {B} labels (one per image in x_t), got "
                f"{type(y).__name__ if not isinstance(y, torch.Tensor) else f'{y.dtype} of shape {tuple(y.shape)}'}"
            )
        if self.guidance_scale == 0.0:
            return self.model(x, t, y=y)
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, null]))
        if not isinstance(out, torch.Tensor) or out.shape[0] != 2 * B:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputValueError(f"the model must return one prediction per input ({2 * B}, ...), but returned {got}")
        out_c, out_u = out[:B], out[B:]
        if self.learned_variance:
            C = x.shape[1]
            if out.shape[1] != 2 * C:
                raise InputValueError(
                    f"learned_variance=True needs a model output with 2 * C = {2 * C} channels, got {out.shape[1]}"
                )
            eps = _combine(out_c[:, :C], out_u[:, :C], self.guidance_scale)
            guided = torch.cat([eps, out_c[:, C:]], dim=1)
        else:
            guided = _combine(out_c, out_u, self.guidance_scale)
        # examples that asked for the null label get the plain unconditional prediction
        is_null = (y == self.null_label).reshape((B,) + (1,) * (x.ndim - 1))
        return torch.where(is_null, out_u, guided)

    def extra_repr(self) -> str:
        return f"guidance_scale={self.guidance_scale}, null_label={self.null_label}"
