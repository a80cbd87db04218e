"""Evaluation: the 2-D Wasserstein distance, the digit Fréchet distance and its classifier, bounds and samples of the digit models."""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.eval import ...).
from diffusion_lib.eval import digits, fid, memorisation, metrics
from diffusion_lib.eval.digits import *  # noqa: F401,F403
from diffusion_lib.eval.fid import *  # noqa: F401,F403
from diffusion_lib.eval.memorisation import *  # noqa: F401,F403
from diffusion_lib.eval.metrics import *  # noqa: F401,F403

__all__ = [*digits.__all__, *fid.__all__, *memorisation.__all__, *metrics.__all__]
