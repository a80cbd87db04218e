"""What a run's config builds: its U-Net and its :class:`~diffusion_lib.core.diffusion.GaussianDiffusion`."""

from __future__ import annotations

from diffusion_lib._checks import check_choice
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.models.unet import UNet
from diffusion_lib.train.config import LOSSES, validate_config

__all__ = ["make_model", "make_diffusion"]

_VAR_TYPES = ("fixed_small", "fixed_large", "learned_range")


def make_model(config: dict) -> UNet:
    """The U-Net of a run: 1 input channel, ``num_timesteps = T``, 10 classes if conditional."""
    config = validate_config(config)
    kwargs = dict(config["model"])
    kwargs.setdefault("in_channels", 1)
    kwargs["num_timesteps"] = config["T"]
    if config["conditional"]:
        kwargs["num_classes"] = 10
    kwargs["learned_variance"] = LOSSES[config["loss"]][1] == "learned_range"
    return UNet(**kwargs)


def make_diffusion(config: dict, model_var_type: str | None = None) -> GaussianDiffusion:
    """The :class:`GaussianDiffusion` of a run (``model_var_type`` overrides the loss's default)."""
    config = validate_config(config)
    loss_type, var_type = LOSSES[config["loss"]]
    if model_var_type is not None:
        check_choice(model_var_type, _VAR_TYPES, "model_var_type")
    schedule = NoiseSchedule.from_name(config["schedule"], config["T"])
    return GaussianDiffusion(schedule, model_mean_type=config["model_mean_type"],
                             model_var_type=model_var_type or var_type, loss_type=loss_type)
