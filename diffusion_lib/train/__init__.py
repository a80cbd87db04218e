"""Training: the one training loop of the book, and the one checkpoint format every saved model uses."""

from __future__ import annotations

from diffusion_lib.train.checkpoints import (
    DEFAULT_CONFIG,
    LOSSES,
    CHECKPOINT_DIR,
    make_config,
    make_model,
    make_diffusion,
    diffusion_loss_fn,
    train_run,
    save_checkpoint,
    load_checkpoint,
    load_pretrained,
    test_bound,
)
from diffusion_lib.train.loop import (
    TrainResult,
    train,
    estimate_steps,
    lr_at_step,
    sample_batch,
)

__all__ = [
    "DEFAULT_CONFIG",
    "LOSSES",
    "CHECKPOINT_DIR",
    "make_config",
    "make_model",
    "make_diffusion",
    "diffusion_loss_fn",
    "train_run",
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
    "test_bound",
    "TrainResult",
    "train",
    "estimate_steps",
    "lr_at_step",
    "sample_batch",
]
