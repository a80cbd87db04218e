"""The training objective of an image DDPM run, as a ``loss_fn`` for :func:`diffusion_lib.train.loop.train`."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as tdist
from torch import nn

from diffusion_lib._checks import check_choice, check_floating, check_int, check_real
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.core.timesteps import TRAINING_T_SAMPLINGS, LossAwareTimesteps, sample_timesteps, timestep_probs
from diffusion_lib.data import DIGITS_NUM_LEVELS
from diffusion_lib.data.augment import AUGMENTATIONS, augment_digits
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.train.distributed import _check_split, shard_batch
from diffusion_lib.topics.guidance import drop_labels

__all__ = ["diffusion_loss_fn"]


def diffusion_loss_fn(
    diffusion: GaussianDiffusion,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    num_classes: int = 10,
    p_uncond: float = 0.0,
    t_sampling: str = "uniform",
    *,
    rank: int = 0,
    world_size: int = 1,
    forward: Callable[..., torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
    num_levels: int = DIGITS_NUM_LEVELS,
    amp: bool = False,
    augment: str = "none",
) -> Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]:
    """A ``loss_fn(model, idx, g)`` for :func:`diffusion_lib.train.loop.train` that trains on ``images[idx]``.

    The loss is the mean over the batch of :meth:`GaussianDiffusion.training_losses` (L_simple, the
    bound, or L_simple + lambda L_vlb, after the diffusion's ``loss_type``). The training loop
    draws a batch of *indices* (pass ``torch.arange(len(images))`` as its data), so that the labels
    of the same images are at hand. With ``labels``, each label is replaced by the null label
    ``num_classes`` with probability ``p_uncond`` (:func:`diffusion_lib.topics.guidance.drop_labels`,
    classifier-free guidance training). ``t_sampling``: how the timesteps are drawn
    (:data:`diffusion_lib.core.timesteps.TRAINING_T_SAMPLINGS`); the bound term is then weighted by
    w(t) = 1 / (T p(t)), so that it stays an unbiased estimate of L_vlb. With ``"loss_aware"`` p(t)
    adapts to the bound terms seen so far (:class:`~diffusion_lib.core.timesteps.LossAwareTimesteps`,
    fed with the global batch's terms on every rank); its history is the returned function's
    ``state_dict()`` / ``load_state_dict()``, which :func:`~diffusion_lib.train.loop.train` saves
    in the training state. ``num_levels``: grey levels
    of the data for the discretised decoder (the digits' 17 by default).

    Several processes (:mod:`diffusion_lib.train.distributed`): every rank draws the same global
    batch, labels, timesteps and noise from ``g`` (on the CPU, in the order of one process), then
    keeps rows ``rank * B/N : (rank + 1) * B/N`` and calls ``forward`` (the DDP wrapper of the
    model; default the model itself) on ``device``. DDP averages the shards' gradients, so the
    step equals one process's on the global batch; the returned value is the all-reduced global mean,
    the same on every rank (so the loop's NaN guard stops all ranks together). ``amp``: bf16
    autocast, CUDA only. With one process on the CPU this is exactly the one-process objective.
    ``augment``: :data:`diffusion_lib.data.AUGMENTATIONS` (``"shift"`` moves half of the images by
    one pixel, drawn from ``g`` before the timesteps; ``"none"`` draws nothing).

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
    check_choice(t_sampling, TRAINING_T_SAMPLINGS, "t_sampling")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.shape != images.shape[:1]:
            raise InputTypeError(f"labels must be a LongTensor with one class per image, shape ({images.shape[0]},)")
    _check_split(world_size, rank, world_size)
    if forward is not None and not callable(forward):
        raise InputTypeError("forward must be the network to call (e.g. a DistributedDataParallel wrapper) or None")
    device = torch.device(device)
    num_levels = check_int(num_levels, "num_levels", minimum=2)
    if not isinstance(amp, bool):
        raise InputTypeError(f"amp must be True or False, got {amp!r}")
    if amp and device.type != "cuda":
        raise InputValueError(f"amp (bf16 autocast) is supported on CUDA only, not on {device.type}")
    check_choice(augment, AUGMENTATIONS, "augment")
    adaptive = LossAwareTimesteps(diffusion.T) if t_sampling == "loss_aware" else None
    probs = None if adaptive is not None else timestep_probs(diffusion.T, t_sampling)
    if device.type != "cpu":
        diffusion.to(device)

    def loss_fn(model: nn.Module, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = _check_split(idx.shape[0], rank, world_size)[0]
        x0 = images[idx]
        if augment != "none":
            x0 = augment_digits(x0, augment, generator=g)
        # the global draws, in the order of one process: label dropout, timesteps, noise
        kwargs = {}
        if labels is not None:
            y = labels[idx]
            y = drop_labels(y, p_uncond, num_classes, generator=g) if p_uncond > 0 else y
            kwargs["y"] = shard_batch(y, rank, world_size).to(device)
        w = None
        if t_sampling == "uniform":
            t = torch.randint(1, diffusion.T + 1, (b,), generator=g)
        elif adaptive is not None:
            t, w = adaptive.sample(b, g)
        else:
            t, w = sample_timesteps(probs, b, g)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)

        def mine(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else shard_batch(v, rank, world_size).to(device)

        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = diffusion.training_losses(model if forward is None else forward, mine(x0), t=mine(t), eps=mine(eps),
                                            model_kwargs=kwargs, num_levels=num_levels, vb_weights=mine(w))
        loss = out["loss"].float().mean()
        if adaptive is not None:  # every rank records the same global batch of bound terms
            vb = out["vb"].detach().float()
            if world_size > 1 and tdist.is_available() and tdist.is_initialized():
                parts = [torch.empty_like(vb) for _ in range(world_size)]
                tdist.all_gather(parts, vb)
                vb = torch.cat(parts)
            adaptive.update(t, vb.cpu())
        if world_size > 1 and tdist.is_available() and tdist.is_initialized():
            total = loss.detach().clone()
            tdist.all_reduce(total)
            loss = loss + (total / world_size - loss.detach())  # the global mean's value, this shard's gradient
        return loss

    if adaptive is not None:
        loss_fn.state_dict = adaptive.state_dict  # type: ignore[attr-defined]
        loss_fn.load_state_dict = adaptive.load_state_dict  # type: ignore[attr-defined]
    return loss_fn
