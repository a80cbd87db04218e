"""diffusion_lib: the small PyTorch library behind the diffusion-models textbook.

Time convention (used everywhere in the book and the code): timesteps count from 1,
t in {1, ..., T}, exactly as in the equations. t = 0 denotes the data x_0 itself. Every
per-timestep schedule tensor has length T + 1 and is indexed by t directly, with the
entry at index 0 describing the data (beta_0 = 0, alpha_bar_0 = 1).
"""

from diffusion_lib.utils import record_metric, set_seed, set_threads
# The most used names: the schedule, the Gaussian identities and the diffusion process, whole
# (each module's __all__), so that `import diffusion_lib as dl; dl.GaussianDiffusion` works.
from diffusion_lib.core import diffusion, losses, schedules
from diffusion_lib.core.schedules import *  # noqa: F401,F403
from diffusion_lib.core.diffusion import *  # noqa: F401,F403
from diffusion_lib.core.losses import *  # noqa: F401,F403

__all__ = ["set_seed", "set_threads", "record_metric", *schedules.__all__, *diffusion.__all__, *losses.__all__]
__version__ = "0.1.0"
