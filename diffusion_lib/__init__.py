"""diffusion_lib: the small PyTorch library behind the diffusion-models textbook.

Time convention (used everywhere in the book and the code): timesteps count from 1,
t in {1, ..., T}, exactly as in the equations. t = 0 denotes the data x_0 itself. Every
per-timestep schedule tensor has length T + 1 and is indexed by t directly, with the
entry at index 0 describing the data (beta_0 = 0, alpha_bar_0 = 1).
"""

from diffusion_lib.utils import record_metric, set_seed, set_threads
from diffusion_lib.core.schedules import SCHEDULE_NAMES, NoiseSchedule, extract, make_beta
from diffusion_lib.core.losses import (
    bits_per_dim,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    mean_flat,
    normal_kl,
    simple_loss,
    sum_flat,
)
from diffusion_lib.core.diffusion import (
    DECODER_TYPES,
    LOSS_TYPES,
    MODEL_MEAN_TYPES,
    MODEL_VAR_TYPES,
    GaussianDiffusion,
)

__all__ = [
    "set_seed",
    "set_threads",
    "record_metric",
    # schedules
    "SCHEDULE_NAMES",
    "make_beta",
    "NoiseSchedule",
    "extract",
    # diffusion
    "GaussianDiffusion",
    "MODEL_MEAN_TYPES",
    "MODEL_VAR_TYPES",
    "LOSS_TYPES",
    "DECODER_TYPES",
    # losses
    "normal_kl",
    "gaussian_log_likelihood",
    "discretized_gaussian_log_likelihood",
    "simple_loss",
    "mean_flat",
    "sum_flat",
    "bits_per_dim",
]
__version__ = "0.1.0"
