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

import numbers

import torch
from torch import nn

__all__ = ["guided_eps", "drop_labels", "ClassifierFreeGuidance"]


def _check_scale(w: float) -> float:
    if isinstance(w, bool) or not isinstance(w, numbers.Real):
        raise TypeError(f"the guidance scale w must be a number (e.g. 0, 1 or 3), got {type(w).__name__}")
    w = float(w)
    if not w == w or w in (float("inf"), float("-inf")):
        raise ValueError(f"the guidance scale w must be finite, got {w}")
    return w


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    r"""eps_w = (1 + w) eps_cond - w eps_uncond = eps_cond + w (eps_cond - eps_uncond)."""
    w = _check_scale(w)
    for name, e in (("eps_cond", eps_cond), ("eps_uncond", eps_uncond)):
        if not isinstance(e, torch.Tensor) or not e.is_floating_point():
            raise TypeError(f"{name} must be a float tensor")
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(
            f"eps_cond and eps_uncond must have the same shape, got {tuple(eps_cond.shape)} and "
            f"{tuple(eps_uncond.shape)}"
        )
    return (1.0 + w) * eps_cond - w * eps_uncond


def drop_labels(
    labels: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by ``null_label`` with probability ``p_uncond`` (training-time label dropout).

    Returns a new LongTensor; the input is unchanged. ``p_uncond`` = 0.1-0.2 is typical.
    """
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise TypeError("labels must be a LongTensor of class indices")
    if not 0.0 <= float(p_uncond) <= 1.0:
        raise ValueError(f"p_uncond is a probability and must lie in [0, 1], got {p_uncond}")
    u = torch.rand(labels.shape, generator=generator, device=labels.device)
    return torch.where(u < float(p_uncond), torch.full_like(labels, int(null_label)), labels)


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
            raise TypeError(f"model must be a callable network model(x_t, t, y=labels), got {type(model).__name__}")
        self.model = model
        self.guidance_scale = _check_scale(guidance_scale)
        if null_label is None:
            null_label = getattr(model, "num_classes", None)
            if null_label is None:
                raise ValueError(
                    "cannot tell the null label: the model has no `num_classes` attribute. Pass "
                    "null_label=... (the label used for 'no label' during training)"
                )
        self.null_label = int(null_label)
        if learned_variance is None:
            learned_variance = bool(getattr(model, "learned_variance", False))
        self.learned_variance = bool(learned_variance)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        B = x.shape[0]
        null = torch.full((B,), self.null_label, dtype=torch.long, device=x.device)
        if y is None:
            return self.model(x, t, y=null)
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (B,):
            raise ValueError(
                f"y must be a LongTensor of {B} labels (one per image in x_t), got "
                f"{type(y).__name__ if not isinstance(y, torch.Tensor) else f'{y.dtype} of shape {tuple(y.shape)}'}"
            )
        if self.guidance_scale == 0.0:
            return self.model(x, t, y=y)
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, null]))
        out_c, out_u = out[:B], out[B:]
        if self.learned_variance:
            C = x.shape[1]
            eps = guided_eps(out_c[:, :C], out_u[:, :C], self.guidance_scale)
            guided = torch.cat([eps, out_c[:, C:]], dim=1)
        else:
            guided = guided_eps(out_c, out_u, self.guidance_scale)
        # examples that asked for the null label get the plain unconditional prediction
        is_null = (y == self.null_label).reshape((B,) + (1,) * (x.ndim - 1))
        return torch.where(is_null, out_u, guided)

    def extra_repr(self) -> str:
        return f"guidance_scale={self.guidance_scale}, null_label={self.null_label}"
