"""Models and ideas the book derives around the core: the VAE (Part I), the hierarchical VAE, the variational diffusion model's bound, the 2015 model, score matching and Langevin dynamics, guidance."""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.topics import ...).
from diffusion_lib.topics import guidance, hvae, langevin, sohl2015, vae, vdm
from diffusion_lib.topics.guidance import *  # noqa: F401,F403
from diffusion_lib.topics.hvae import *  # noqa: F401,F403
from diffusion_lib.topics.langevin import *  # noqa: F401,F403
from diffusion_lib.topics.sohl2015 import *  # noqa: F401,F403
from diffusion_lib.topics.vae import *  # noqa: F401,F403
from diffusion_lib.topics.vdm import *  # noqa: F401,F403

__all__ = [*guidance.__all__, *hvae.__all__, *langevin.__all__, *sohl2015.__all__, *vae.__all__, *vdm.__all__]
