"""The training objective of an image DDPM run, as a ``loss_fn`` for :func:`diffusion_lib.train.loop.train`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from diffusion_lib._checks import check_choice, check_floating, check_int, check_real
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.core.timesteps import TIMESTEP_SAMPLINGS, sample_timesteps, timestep_probs
from diffusion_lib.data import DIGITS_NUM_LEVELS
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.topics.guidance import drop_labels

__all__ = ["diffusion_loss_fn"]


def diffusion_loss_fn(diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor | None = None,
                      num_classes: int = 10, p_uncond: float = 0.0, t_sampling: str = "uniform",
                      ) -> Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]:
    """A ``loss_fn(model, idx, g)`` for :func:`diffusion_lib.train.loop.train` that trains on ``images[idx]``.

    The loss is the mean over the batch of :meth:`GaussianDiffusion.training_losses` (L_simple, the
    bound, or L_simple + lambda L_vlb, after the diffusion's ``loss_type``). The training loop
    draws a batch of *indices* (pass ``torch.arange(len(images))`` as its data), so that the labels
    of the same images are at hand. With ``labels``, each label is replaced by the null label
    ``num_classes`` with probability ``p_uncond`` (:func:`diffusion_lib.topics.guidance.drop_labels`,
    classifier-free guidance training). ``t_sampling``: how the timesteps are drawn
    (:data:`diffusion_lib.core.timesteps.TIMESTEP_SAMPLINGS`); the bound term is then weighted by
    w(t) = 1 / (T p(t)), so that it stays an unbiased estimate of L_vlb. The discretised decoder uses
    the digits' 17 levels.

    Implements :eq:`eq-ddpm-hybrid` (chapter ``ddpm_digits``).
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    check_floating(images, "images")
    if images.ndim < 2 or images.shape[0] < 1:
        raise InputValueError(f"images must be a batch (N, C, H, W) with N >= 1, got shape {tuple(images.shape)}")
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    p_uncond = check_real(p_uncond, "p_uncond", minimum=0.0)
    if p_uncond >= 1.0:
        raise InputValueError(f"p_uncond must lie in [0, 1) (1 would drop every label), got {p_uncond}")
    check_choice(t_sampling, TIMESTEP_SAMPLINGS, "t_sampling")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.shape != images.shape[:1]:
            raise InputTypeError(f"labels must be a LongTensor with one class per image, shape ({images.shape[0]},)")
    probs = timestep_probs(diffusion.T, t_sampling)

    def loss_fn(model: nn.Module, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x0 = images[idx]
        t, w = None, None
        if t_sampling != "uniform":
            t, w = sample_timesteps(probs, x0.shape[0], g)
        kwargs = {}
        if labels is not None:
            y = labels[idx]
            kwargs["y"] = drop_labels(y, p_uncond, num_classes, generator=g) if p_uncond > 0 else y
        out = diffusion.training_losses(model, x0, t=t, model_kwargs=kwargs, generator=g,
                                        num_levels=DIGITS_NUM_LEVELS, vb_weights=w)
        return out["loss"].mean()

    return loss_fn
