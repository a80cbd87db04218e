"""Training: the one training loop of the book, run configs, and the one checkpoint format every saved model uses.

Modules, one job each: ``loop`` (the training loop), ``config`` (a run's config and its checks),
``factories`` (the U-Net and diffusion a config describes), ``objectives`` (the DDPM training
loss of a run), ``run`` (train or resume a run), ``checkpoints`` (the file format, save / load), ``distributed`` (a device and several
processes with ``torch.distributed``).
"""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.train import ...).
from diffusion_lib.train import checkpoints, config, distributed, factories, loop, objectives, run
from diffusion_lib.train.loop import *  # noqa: F401,F403
from diffusion_lib.train.config import *  # noqa: F401,F403
from diffusion_lib.train.factories import *  # noqa: F401,F403
from diffusion_lib.train.objectives import *  # noqa: F401,F403
from diffusion_lib.train.run import *  # noqa: F401,F403
from diffusion_lib.train.checkpoints import *  # noqa: F401,F403
from diffusion_lib.train.distributed import *  # noqa: F401,F403

__all__ = [*loop.__all__, *config.__all__, *factories.__all__, *objectives.__all__, *run.__all__, *checkpoints.__all__,
           *distributed.__all__]
