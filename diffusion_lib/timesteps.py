r"""Which timesteps a training step looks at: the distribution p(t) and its importance weights.

The bound is a sum over t, L_vlb = sum_{t=1}^{T} L_{t-1}. A training step looks at one t per image,
and for *any* distribution p(t) > 0 on 1..T

    L_vlb = E_{t ~ p} [ L_{t-1} / p(t) ] = E_{t ~ p} [ w(t) * T * L_{t-1} ],   w(t) = 1 / (T p(t)),

so drawing t from p and weighting the bound term by w(t) keeps the estimate unbiased (uniform
p(t) = 1/T gives w = 1, the estimate T * L_{t-1} of DDPM and improved DDPM). L_simple is not
reweighted: drawing t from p simply spends more of the training on the timesteps p favours.

Why not uniform? On the 8x8 digits most of the bound sits at small t, where the network must
tell neighbouring pixel levels apart (the KL weights of the bound, SNR(t-1)/SNR(t) - 1, fall
roughly like 1/t for the linear schedule). ``"inverse_mix"`` draws half of the timesteps
uniformly and half with p(t) proportional to 1/t. Nichol & Dhariwal (2021) reach the same goal
adaptively, with p(t) proportional to the root mean square of recent L_{t-1} values.
"""

from __future__ import annotations

import torch

from diffusion_lib._checks import check_choice, check_int

__all__ = ["TIMESTEP_SAMPLINGS", "timestep_probs", "sample_timesteps"]

TIMESTEP_SAMPLINGS: tuple[str, ...] = ("uniform", "inverse_mix")


def timestep_probs(T: int, kind: str = "uniform", mix: float = 0.5) -> torch.Tensor:
    r"""p(t) for t = 1..T as a float64 tensor of length T (entry ``t - 1`` is p(t)); sums to 1.

    ``"uniform"``: p(t) = 1/T. ``"inverse_mix"``: p(t) = (1 - mix) / T + mix * (1/t) / H_T with
    H_T = sum_{s=1}^{T} 1/s, i.e. a fraction ``mix`` of the draws from p(t) proportional to 1/t.
    """
    T = check_int(T, "T", minimum=1)
    check_choice(kind, TIMESTEP_SAMPLINGS, "kind")
    if not 0.0 <= mix < 1.0:
        raise ValueError(f"mix must lie in [0, 1) so that every t keeps p(t) > 0, got {mix}")
    uniform = torch.full((T,), 1.0 / T, dtype=torch.float64)
    if kind == "uniform":
        return uniform
    inverse = 1.0 / torch.arange(1, T + 1, dtype=torch.float64)
    return (1.0 - mix) * uniform + mix * inverse / inverse.sum()


def sample_timesteps(
    probs: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw ``batch_size`` timesteps t ~ p and their importance weights w(t) = 1 / (T p(t)).

    ``probs``: p(t) for t = 1..T, as returned by :func:`timestep_probs`. Returns ``(t, w)``: a
    LongTensor of values in 1..T and a float32 tensor, both of shape ``(batch_size,)``. With
    uniform p every weight is exactly 1.
    """
    if not isinstance(probs, torch.Tensor) or probs.ndim != 1 or probs.numel() < 1:
        raise ValueError("probs must be a 1-D tensor p(t) for t = 1..T (see timestep_probs)")
    if (probs <= 0).any() or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise ValueError("probs must be positive and sum to 1: every t needs p(t) > 0 for an unbiased bound")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    T = probs.numel()
    t = torch.multinomial(probs, batch_size, replacement=True, generator=generator) + 1
    w = (1.0 / (T * probs[t - 1])).float()
    return t, w
