"""diffusion_lib: the small PyTorch library behind the diffusion-models textbook.

Time convention (used everywhere in the book and the code): timesteps count from 1,
t in {1, ..., T}, exactly as in the equations. t = 0 denotes the data x_0 itself. Every
per-timestep schedule tensor has length T + 1 and is indexed by t directly, with the
entry at index 0 describing the data (beta_0 = 0, alpha_bar_0 = 1).
"""

from diffusion_lib.utils import set_seed, set_threads

__all__ = ["set_seed", "set_threads"]
__version__ = "0.1.0"
