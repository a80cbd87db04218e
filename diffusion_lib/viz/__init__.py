"""Pictures: static plots and the self-contained HTML player behind every scrubber."""

from __future__ import annotations

# Each module lists its public names in __all__; the package re-exports exactly those, so a
# chapter needs one import (from diffusion_lib.viz import ...).
from diffusion_lib.viz import plotting, widgets
from diffusion_lib.viz.plotting import *  # noqa: F401,F403
from diffusion_lib.viz.widgets import *  # noqa: F401,F403

__all__ = [*plotting.__all__, *widgets.__all__]
