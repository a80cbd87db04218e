"""Models and ideas the book derives around the core: the VAE (Part I), the hierarchical VAE, the variational diffusion model's bound, the 2015 model, score matching and Langevin dynamics, guidance."""

from __future__ import annotations

from diffusion_lib.topics.guidance import (
    guided_eps,
    drop_labels,
    ClassifierFreeGuidance,
)
from diffusion_lib.topics.hvae import (
    LinearGaussianHVAE,
    MarkovEncoder,
    gaussian_condition,
    fit_encoder,
)
from diffusion_lib.topics.langevin import (
    score_from_eps_model,
    tweedie_x0,
    langevin_dynamics,
    annealed_langevin,
    annealed_step_sizes,
)
from diffusion_lib.topics.sohl2015 import (
    Sohl2015Diffusion,
)
from diffusion_lib.topics.vae import (
    mvn_log_prob,
    kl_mvn,
    kl_diag_gaussians,
    kl_diag_gaussians_mc,
    reparameterize,
    gradient_samples,
    PPCA,
    fit_ppca,
    VAE,
    train_vae,
)
from diffusion_lib.topics.vdm import (
    default_reverse_variance,
    elbo_consistency_terms,
    elbo_denoising_terms,
    total_elbo,
    GaussianDataDenoiser,
    kl_weights,
)

__all__ = [
    "guided_eps",
    "drop_labels",
    "ClassifierFreeGuidance",
    "LinearGaussianHVAE",
    "MarkovEncoder",
    "gaussian_condition",
    "fit_encoder",
    "score_from_eps_model",
    "tweedie_x0",
    "langevin_dynamics",
    "annealed_langevin",
    "annealed_step_sizes",
    "Sohl2015Diffusion",
    "mvn_log_prob",
    "kl_mvn",
    "kl_diag_gaussians",
    "kl_diag_gaussians_mc",
    "reparameterize",
    "gradient_samples",
    "PPCA",
    "fit_ppca",
    "VAE",
    "train_vae",
    "default_reverse_variance",
    "elbo_consistency_terms",
    "elbo_denoising_terms",
    "total_elbo",
    "GaussianDataDenoiser",
    "kl_weights",
]
