"""Data sets: the Swiss roll and the 8x8 digits that ship with scikit-learn, and the optional online image sets."""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.data import ...).
from diffusion_lib.data import augment, builtin, online
from diffusion_lib.data.augment import *  # noqa: F401,F403
from diffusion_lib.data.builtin import *  # noqa: F401,F403
from diffusion_lib.data.online import *  # noqa: F401,F403

__all__ = [*builtin.__all__, *augment.__all__, *online.__all__]
