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
adaptively, with p(t) proportional to the root mean square of recent L_{t-1} values:
:class:`LossAwareTimesteps` (``t_sampling="loss_aware"`` of a training run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError

if TYPE_CHECKING:  # only for type hints: this module does not import the diffusion code at run time
    from diffusion_lib.core.diffusion import GaussianDiffusion

__all__ = ["TIMESTEP_SAMPLINGS", "TRAINING_T_SAMPLINGS", "LossAwareTimesteps", "timestep_probs", "sample_timesteps", "balanced_timesteps", "importance_bound"]

TIMESTEP_SAMPLINGS: tuple[str, ...] = ("uniform", "inverse_mix")
#: What a training run may use: the fixed distributions, or the adaptive :class:`LossAwareTimesteps`.
TRAINING_T_SAMPLINGS: tuple[str, ...] = (*TIMESTEP_SAMPLINGS, "loss_aware")


def timestep_probs(T: int, kind: str = "uniform", mix: float = 0.5) -> torch.Tensor:
    r"""p(t) for t = 1..T as a float64 tensor of length T (entry ``t - 1`` is p(t)); sums to 1.

    ``"uniform"``: p(t) = 1/T. ``"inverse_mix"``: p(t) = (1 - mix) / T + mix * (1/t) / H_T with
    H_T = sum_{s=1}^{T} 1/s, i.e. a fraction ``mix`` of the draws from p(t) proportional to 1/t.

    Implements :eq:`eq-ddpm-inverse-mix` (chapter ``ddpm_digits``).
    """
    T = check_int(T, "T", minimum=1)
    check_choice(kind, TIMESTEP_SAMPLINGS, "kind")
    mix = check_real(mix, "mix", minimum=0.0)
    if not mix < 1.0:
        raise InputValueError(f"mix must lie in [0, 1) so that every t keeps p(t) > 0, got {mix}")
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
    if not isinstance(probs, torch.Tensor) or probs.ndim != 1 or probs.numel() < 1 or not probs.is_floating_point():
        raise InputValueError("probs must be a 1-D float tensor p(t) for t = 1..T (see timestep_probs)")
    if not bool(torch.isfinite(probs).all()) or (probs <= 0).any() or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise InputValueError("probs must be positive and sum to 1: every t needs p(t) > 0 for an unbiased bound")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    T = probs.numel()
    t = torch.multinomial(probs, batch_size, replacement=True, generator=generator) + 1
    w = (1.0 / (T * probs[t - 1])).float()
    return t, w


def balanced_timesteps(T: int, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``batch`` timesteps that cover 1..T equally often (up to one), in random order: a LongTensor (batch,).

    t_i = ((i + o) mod T) + 1 for i = 0..batch-1 with a uniform random offset o, then shuffled.
    Each t_i is marginally uniform on 1..T, so T * L_{t_i - 1} stays an unbiased estimate of the
    sum over t, with less variance than independent draws (the 2015 model's loss uses it).
    """
    T = check_int(T, "T", minimum=1)
    batch = check_int(batch, "batch", minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    offset = torch.randint(0, T, (1,), generator=generator)
    t = (torch.arange(batch) + offset) % T + 1
    return t[torch.randperm(batch, generator=generator)]


def importance_bound(
    diffusion: "GaussianDiffusion",
    model: Any,
    x0: torch.Tensor,
    probs: torch.Tensor,
    draws: int,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    num_levels: int = 256,
    batch_size: int = 1024,
    model_kwargs: dict | None = None,
) -> dict[str, torch.Tensor]:
    r"""Estimate the variational bound of every image from ``draws`` timesteps drawn from p(t).

    For image i and draws t_{i1}, ..., t_{iK} ~ p (K = ``draws``, independent),

        total_i = L_T(x0_i) + (1/K) sum_k T w(t_ik) L_{t_ik - 1}(x0_i),   w(t) = 1 / (T p(t)),

    where L_0 (t = 1) is the decoder term -log p(x_0 | x_1) and L_{t-1} (t >= 2) the KL of step t,
    each with its own draw of x_t ~ q(x_t | x_0) (:meth:`GaussianDiffusion.vb_term`). Since
    E_{t~p}[T w(t) L_{t-1}] = sum_{t=1}^{T} L_{t-1}, the estimate is unbiased for every p > 0;
    p decides its variance. It costs N K network evaluations, made in batches of ``batch_size``
    (image, t) pairs, under ``torch.no_grad()``; the result does not depend on ``batch_size``.

    Args:
        diffusion: the model's :class:`~diffusion_lib.core.diffusion.GaussianDiffusion`.
        model: the network, ``model(x_t, t, **model_kwargs)``.
        x0: (N, ...) data; for the discretised decoder on the grid of ``num_levels`` levels.
        probs: p(t) for t = 1..T (length ``diffusion.T``), e.g. :func:`timestep_probs`.
        draws: K, timesteps per image.
        generator: seeds the timesteps and the draws of x_t.
        clip_x0, num_levels: passed to ``vb_term`` (17 levels for the digits).
        model_kwargs: extra model arguments with a leading batch axis of N (e.g. labels), or none.

    Returns a dict of float64 tensors: ``"total"`` (N,), ``"prior"`` (N,) L_T, and per draw
    ``"t"`` (K, N) the timesteps (LongTensor), ``"w"`` (K, N) their weights and ``"terms"``
    (K, N) the values L_{t-1}, so that ``total = prior + (T * w * terms).mean(0)``.

    Implements :eq:`eq-ddpm-importance-bound` (chapter ``ddpm_digits``).
    """
    from diffusion_lib.core import _validate
    from diffusion_lib.core.diffusion import GaussianDiffusion

    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.ndim < 2 or x0.shape[0] < 1:
        raise InputTypeError("x0 must be a float tensor (N, ...) of images with N >= 1, e.g. load_digits_split('test')[0]")
    _validate.data(x0, "x0")
    T = int(diffusion.T)
    if not isinstance(probs, torch.Tensor) or probs.shape != (T,):
        raise InputValueError(
            f"probs must be p(t) for t = 1..T, a tensor of length T = {T} (see timestep_probs(T, kind)); "
            f"got {type(probs).__name__}{'' if not isinstance(probs, torch.Tensor) else f' of shape {tuple(probs.shape)}'}"
        )
    K = check_int(draws, "draws", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    N = x0.shape[0]
    t, w = sample_timesteps(probs, K * N, generator)  # pair j = k N + i: image i, draw k
    images = x0.repeat(K, *([1] * (x0.ndim - 1)))
    kwargs = {k: (v.repeat(K, *([1] * (v.ndim - 1))) if isinstance(v, torch.Tensor) and v.shape[:1] == (N,) else v)
              for k, v in (model_kwargs or {}).items()}
    eps = torch.randn(images.shape, generator=generator, dtype=images.dtype)  # all noise first: batching changes nothing
    terms = []
    with torch.no_grad():
        for start in range(0, K * N, batch_size):
            sl = slice(start, start + batch_size)
            xt = diffusion.q_sample(images[sl], t[sl], eps=eps[sl])
            kw = {k: (v[sl] if isinstance(v, torch.Tensor) and v.shape[:1] == (K * N,) else v) for k, v in kwargs.items()}
            terms.append(diffusion.vb_term(model, images[sl], xt, t[sl], clip_x0=clip_x0, model_kwargs=kw,
                                           num_levels=num_levels).double())
        prior = diffusion.prior_kl(x0).double()
    terms_kn = torch.cat(terms).reshape(K, N)
    w_kn = w.double().reshape(K, N)
    total = prior + (T * w_kn * terms_kn).mean(0)
    return {"total": total, "prior": prior, "t": t.reshape(K, N), "w": w_kn, "terms": terms_kn}


class LossAwareTimesteps:
    r"""The loss-aware timestep sampler of improved DDPM (Nichol & Dhariwal 2021, section 3.3).

    The variance of the one-timestep estimate T w(t) L_{t-1} of L_vlb is smallest when p(t) is
    proportional to the size of L_{t-1}. The sampler keeps, for every t, the last ``history``
    values of L_{t-1} seen in training and draws

        p(t) = (1 - uniform_prob) sqrt(E[L_{t-1}^2]) / sum_s sqrt(E[L_{s-1}^2]) + uniform_prob / T,

    with E over the stored values; until every t has ``history`` values it draws uniformly
    (improved DDPM's warm-up). The weights w(t) = 1 / (T p(t)) keep the estimate unbiased for any
    p, so only its variance changes. The history is part of the training state
    (:meth:`state_dict`), so a resumed run draws the same timesteps.

    Implements :eq:`eq-ddpm-loss-aware` (chapter ``evaluation_digits``).
    """

    def __init__(self, T: int, history: int = 10, uniform_prob: float = 0.001) -> None:
        self.T = check_int(T, "T", minimum=1)
        self.history = check_int(history, "history", minimum=1)
        self.uniform_prob = check_real(uniform_prob, "uniform_prob", minimum=0.0, maximum=1.0)
        if self.uniform_prob == 0.0:
            raise InputValueError("uniform_prob must be > 0, so that every t keeps p(t) > 0 (improved DDPM uses 0.001)")
        self.values = torch.zeros(self.T, self.history, dtype=torch.float64)  # a ring buffer per t
        self.counts = torch.zeros(self.T, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        """True once every t holds ``history`` values (before that, p is uniform)."""
        return bool((self.counts >= self.history).all())

    def probs(self) -> torch.Tensor:
        """p(t) for t = 1..T (float64, sums to 1)."""
        if not self.warmed_up:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        rms = self.values.pow(2).mean(1).sqrt()
        if not float(rms.sum()) > 0:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        return (1.0 - self.uniform_prob) * rms / rms.sum() + self.uniform_prob / self.T

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(t, w)`` as :func:`sample_timesteps` does, from the current :meth:`probs`."""
        return sample_timesteps(self.probs(), batch_size, generator)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record the bound terms ``losses`` (B,) observed at timesteps ``t`` (B,) in 1..T."""
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.ndim != 1:
            raise InputTypeError("t must be a 1-D LongTensor of timesteps in 1..T")
        if not isinstance(losses, torch.Tensor) or losses.shape != t.shape:
            raise InputValueError(f"losses must be a tensor with one value per timestep, shape {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 1 or int(t.max()) > self.T):
            raise InputValueError(f"t must lie in 1..T = {self.T}")
        for ti, li in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            k = ti - 1
            self.values[k, int(self.counts[k]) % self.history] = li
            self.counts[k] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The history, as plain tensors (saved in a checkpoint's training state)."""
        return {"values": self.values.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (of a sampler with the same T and history)."""
        if not isinstance(state, dict) or set(state) != {"values", "counts"}:
            raise InputValueError("state must be a LossAwareTimesteps.state_dict() (keys 'values' and 'counts')")
        if tuple(state["values"].shape) != (self.T, self.history) or tuple(state["counts"].shape) != (self.T,):
            raise InputValueError(f"state was saved by a sampler with another T or history (this one: T = {self.T}, "
                                  f"history = {self.history})")
        self.values = state["values"].to(torch.float64).clone()
        self.counts = state["counts"].to(torch.long).clone()
