"""Train (or continue) an image DDPM run described by a config: :func:`train_run`."""

from __future__ import annotations

import torch

from diffusion_lib.data import load_digits_split
from diffusion_lib.errors import CheckpointError, InputTypeError
from diffusion_lib.models.unet import UNet
from diffusion_lib.train.config import validate_config
from diffusion_lib.train.factories import make_diffusion, make_model
from diffusion_lib.train.loop import TrainResult, train
from diffusion_lib.train.objectives import diffusion_loss_fn

__all__ = ["train_run"]


def train_run(config: dict, model: UNet | None = None, resume: dict | None = None, stop_at: int | None = None,
              progress: bool = True, time_budget_s: float | None = None) -> tuple[UNet, TrainResult]:
    """Train (or continue) the run ``config``; return ``(model, TrainResult)``.

    Without ``model`` a fresh U-Net is built after seeding torch with ``config["seed"]`` (so its
    initial weights are reproducible). ``resume``: a checkpoint dict from
    :func:`~diffusion_lib.train.checkpoints.load_checkpoint` (its weights and training state are
    restored; its config is the run's). ``stop_at``: stop after this many steps in total, e.g. to
    save a checkpoint and continue later. A run continued from a file is bit-identical to an
    uninterrupted one only without dropout: rebuilding the model re-seeds torch's global
    generator, which the dropout masks draw from (see :func:`~diffusion_lib.train.loop.train`).
    """
    if resume is not None:
        if not isinstance(resume, dict) or "config" not in resume or "model" not in resume:
            raise InputTypeError("resume must be a checkpoint dict returned by load_checkpoint(path)")
        if resume.get("train_state") is None:
            raise CheckpointError("this checkpoint has no training state (a shipped, weights-only file), so it cannot "
                                  "be resumed; start a new run with train_run(config) instead")
        config = resume["config"]
    config = validate_config(config)
    if model is None:
        torch.manual_seed(config["seed"])
        model = make_model(config)
    elif not isinstance(model, UNet):
        raise InputTypeError(f"model must be the run's UNet (make_model(config)) or None, got {type(model).__name__}")
    if resume is not None:
        model.load_state_dict(resume["model"])
    diffusion = make_diffusion(config)
    images, labels = load_digits_split("train")
    loss_fn = diffusion_loss_fn(diffusion, images, labels if config["conditional"] else None,
                                p_uncond=config["p_uncond"], t_sampling=config["t_sampling"], augment=config["augment"])
    result = train(
        model, loss_fn, torch.arange(images.shape[0]), steps=config["steps"], batch_size=config["batch_size"],
        lr=config["lr"], seed=config["seed"], warmup_steps=config["warmup_steps"], grad_clip=config["grad_clip"],
        weight_decay=config["weight_decay"], ema_decay=config["ema_decay"], ema_warmup=config["ema_warmup"], progress=progress,
        desc=f"DDPM on digits ({config['loss']})", resume=None if resume is None else resume["train_state"],
        stop_at=stop_at, time_budget_s=time_budget_s,
    )
    return model, result
