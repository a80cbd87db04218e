"""The diffusion core: noise schedules, Gaussian identities, the forward process with its posterior and reverse step, the DDPM/DDIM sampler, the bound and the training objectives."""

from __future__ import annotations

from diffusion_lib.core.diffusion import (
    GaussianDiffusion,
    MODEL_MEAN_TYPES,
    MODEL_VAR_TYPES,
    LOSS_TYPES,
    DECODER_TYPES,
)
from diffusion_lib.core.losses import (
    LOSS_KINDS,
    normal_kl,
    gaussian_log_likelihood,
    discretized_gaussian_log_likelihood,
    simple_loss,
    mean_flat,
    sum_flat,
    bits_per_dim,
)
from diffusion_lib.core.schedules import (
    SCHEDULE_NAMES,
    make_beta,
    NoiseSchedule,
    extract,
)
from diffusion_lib.core.timesteps import (
    TIMESTEP_SAMPLINGS,
    timestep_probs,
    sample_timesteps,
    importance_bound,
)

__all__ = [
    "GaussianDiffusion",
    "MODEL_MEAN_TYPES",
    "MODEL_VAR_TYPES",
    "LOSS_TYPES",
    "DECODER_TYPES",
    "LOSS_KINDS",
    "normal_kl",
    "gaussian_log_likelihood",
    "discretized_gaussian_log_likelihood",
    "simple_loss",
    "mean_flat",
    "sum_flat",
    "bits_per_dim",
    "SCHEDULE_NAMES",
    "make_beta",
    "NoiseSchedule",
    "extract",
    "TIMESTEP_SAMPLINGS",
    "timestep_probs",
    "sample_timesteps",
    "importance_bound",
]
