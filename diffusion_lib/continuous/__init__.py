"""Continuous time (Part IV): the VP SDE and its probability-flow ODE, fast ODE solvers, ODE likelihoods, flow matching.

Each module lists its public names in __all__; the package re-exports exactly those, so a chapter
needs one import (from diffusion_lib.continuous import ...).
"""

from __future__ import annotations

from diffusion_lib.continuous import flow_matching, likelihood, mixture, sde, solvers
from diffusion_lib.continuous.flow_matching import *  # noqa: F401,F403
from diffusion_lib.continuous.likelihood import *  # noqa: F401,F403
from diffusion_lib.continuous.mixture import *  # noqa: F401,F403
from diffusion_lib.continuous.sde import *  # noqa: F401,F403
from diffusion_lib.continuous.solvers import *  # noqa: F401,F403

__all__ = [*sde.__all__, *mixture.__all__, *solvers.__all__, *likelihood.__all__, *flow_matching.__all__]
