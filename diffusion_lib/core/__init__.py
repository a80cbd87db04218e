"""The diffusion core: noise schedules, Gaussian identities, the forward process with its posterior and reverse step, the DDPM/DDIM sampler, the bound and the training objectives."""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.core import ...).
from diffusion_lib.core import diffusion, losses, schedules, timesteps
from diffusion_lib.core.diffusion import *  # noqa: F401,F403
from diffusion_lib.core.losses import *  # noqa: F401,F403
from diffusion_lib.core.schedules import *  # noqa: F401,F403
from diffusion_lib.core.timesteps import *  # noqa: F401,F403

__all__ = [*diffusion.__all__, *losses.__all__, *schedules.__all__, *timesteps.__all__]
