"""Networks used by the book's chapters. Every model is called as ``model(x_t, t)``."""

from diffusion_lib.models.embedding import SinusoidalTimeEmbedding, sinusoidal_embedding
from diffusion_lib.models.mlp import PerTimestepMLP, TimeMLP

__all__ = ["PerTimestepMLP", "TimeMLP", "SinusoidalTimeEmbedding", "sinusoidal_embedding"]
