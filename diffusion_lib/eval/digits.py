r"""Evaluating a diffusion model of the 8x8 digits: likelihood bounds, baselines and timed sampling.

Likelihood. For discrete data (17 pixel levels) the variational bound of a diffusion model

    -log p(x_0) <= L_T + sum_{t=2}^{T} L_{t-1} + L_0 =: L(x_0)

is an upper bound on a true negative log-*probability* when L_0 = -log p(x_0 | x_1) uses the
discretised Gaussian decoder (Ho et al., 2020, section 3.3): each pixel gets the Gaussian mass of
its bin of width 2/16 (the end bins extend to infinity). :func:`negative_bound` averages L(x_0)
over a data set and reports it in **nats per image** (summed over the 64 pixels) and in
**bits per dimension** (nats / (64 ln 2)). The exact sum costs T network calls per batch; the
estimator with ``num_timesteps=K`` computes L_0 and L_T exactly and replaces the sum over
t = 2..T by a stratified sample (one random t per block of about (T-1)/(K-1) steps, weighted by
the block's size): unbiased, with K-1 network calls per batch.

Baseline. :func:`independent_pixel_nll` fits one categorical distribution over the 17 levels
to each of the 64 pixels (add-alpha smoothed counts on a training set) and returns the
negative log-likelihood of a test set: a model that knows which pixels are usually dark but
nothing about shapes. A useful generative model must beat it.

Sampling. :func:`sample_digits` runs DDPM (ancestral) or DDIM sampling in batches and reports
the wall time.

Reference figures. :func:`load_digits_reference` reads the figures of the book's benchmark
(``benchmarks/digits.py``: the exact test bound, DDPM with all T steps and DDIM with 10-100 steps on
447 samples each, their Fréchet distances and times, the real-vs-real floor) from a copy that ships
inside the package (``diffusion_lib/_data/digits_reference.json``), so a chapter can show them where
``benchmarks/`` is not beside the package (Colab, ``pip install``). It checks that the copy was
measured with the checkpoint file that is installed. :func:`write_digits_reference` rebuilds the
copy from the benchmark's ``--json`` files.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from diffusion_lib.data import DIGITS_NUM_LEVELS, digits_to_levels
from diffusion_lib._checks import check_choice, check_int, check_real, check_timesteps
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.errors import CheckpointError, InputTypeError, InputValueError, NonFiniteError

__all__ = [
    "BoundResult",
    "negative_bound",
    "stratified_bound_timesteps",
    "independent_pixel_nll",
    "SampleResult",
    "sample_digits",
    "ddim_invert",
    "slerp",
    "load_digits_reference",
    "write_digits_reference",
]

#: The packaged copy of the benchmark figures (inside the package, so it travels with ``pip install``).
_REFERENCE_FILE: str = "_data/digits_reference.json"
#: The benchmark runs the packaged copy is built from, one ``--json`` file per checkpoint.
_BENCHMARK_FILES: tuple[str, ...] = ("digits_results.json", "digits_results_hybrid_cosine.json")
_REGENERATE = (
    "python benchmarks/digits.py --bounds-from-checkpoint --json benchmarks/digits_results.json; "
    "python benchmarks/digits.py --checkpoint compare_hybrid_cosine.pt --json benchmarks/digits_results_hybrid_cosine.json; "
    "python -c 'from diffusion_lib.eval.digits import write_digits_reference; write_digits_reference()'"
)


@dataclass
class BoundResult:
    """The negative variational bound on a data set (what :func:`negative_bound` returns).

    Attributes:
        per_image: (N,) the bound L(x_0) of every image, in nats (summed over its dimensions).
        prior: (N,) L_T of every image, in nats.
        decoder: (N,) L_0 = -log p(x_0 | x_1) of every image, in nats.
        terms: (T+1,) the mean over images of each term: terms[1] = L_0, terms[t] = L_{t-1} for
            t >= 2 (for the stratified estimate: the weighted sampled KL attributed to the t drawn,
            summed over images and divided by N -- noisy per t, exact in its sum), terms[0] = 0.
        num_dims: dimensions per image (64 for the digits).
        num_timesteps: network calls per batch (T for the exact bound, K for the estimate).
        exact: True if every t was evaluated, False for the stratified estimate.
    """

    per_image: torch.Tensor
    prior: torch.Tensor
    decoder: torch.Tensor
    terms: torch.Tensor
    num_dims: int
    num_timesteps: int
    exact: bool
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def nats_per_image(self) -> float:
        """Mean bound over the images, nats per image."""
        return float(self.per_image.mean())

    @property
    def stderr_nats(self) -> float:
        """Standard error of :attr:`nats_per_image` over images (sampling of x_t included)."""
        n = self.per_image.numel()
        return float(self.per_image.std() / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def bits_per_dim(self) -> float:
        """nats_per_image / (num_dims ln 2)."""
        return self.nats_per_image / (self.num_dims * math.log(2.0))

    def __repr__(self) -> str:
        kind = "exact sum over t" if self.exact else f"stratified estimate, {self.num_timesteps} t per image"
        return (
            f"BoundResult({self.nats_per_image:.2f} ± {self.stderr_nats:.2f} nats/image = "
            f"{self.bits_per_dim:.4f} bits/dim on {self.per_image.numel()} images; {kind})"
        )


def stratified_bound_timesteps(T: int, num_timesteps: int, batch: int,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified draw of timesteps in 2..T for the estimate of the bound's KL sum in :func:`negative_bound`.

    The range 2..T is cut into ``num_timesteps - 1`` contiguous blocks of (nearly) equal size; for
    each block and each of ``batch`` examples one t is drawn uniformly inside the block. Returns
    ``(t, weight)``: t a LongTensor (num_timesteps - 1, batch), weight (num_timesteps - 1,) the block
    sizes (they sum to T - 1), so that sum_k weight[k] * L_{t[k]-1} is an unbiased estimate of
    sum_{t=2}^{T} L_{t-1}.
    """
    T = check_int(T, "T", minimum=2)
    num_timesteps = check_int(num_timesteps, "num_timesteps")
    if not 2 <= num_timesteps <= T:
        raise InputValueError(
            f"num_timesteps must be an int between 2 and T = {T} (t = 1 is always evaluated exactly, "
            f"the rest of 2..T is sampled), got {num_timesteps}; use num_timesteps=None for the exact sum"
        )
    batch = check_int(batch, "batch", minimum=0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    K = num_timesteps - 1
    edges = torch.round(torch.linspace(2, T + 1, K + 1, dtype=torch.float64)).long()  # block k: [edges[k], edges[k+1])
    lo, hi = edges[:-1], edges[1:]
    weight = (hi - lo).to(torch.float64)
    u = torch.rand((K, batch), generator=generator, dtype=torch.float64)
    t = lo[:, None] + torch.floor(u * weight[:, None]).long()
    return t.clamp(max=(hi - 1)[:, None]), weight


def negative_bound(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    images: torch.Tensor,
    num_timesteps: int | None = None,
    batch_size: int = 512,
    num_levels: int = DIGITS_NUM_LEVELS,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    clip_x0: bool = False,
) -> BoundResult:
    r"""The negative variational bound -log p(x_0) <= L(x_0) on a data set, nats per image and bits/dim.

    L(x_0) = L_T + sum_{t=2}^{T} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) - log p(x_0|x_1), with the
    discretised decoder on ``num_levels`` levels (17 for the digits) and one draw of x_t per term.
    The book's one bound evaluator: chapters, ``scripts/train_digits.py`` (validation and test
    bounds of a run) and ``benchmarks/digits.py`` all use it. To evaluate part of a split, pass
    ``images[:n]``.

    Implements :eq:`eq-ddpm-bound` (chapter ``ddpm_digits``).

    Args:
        diffusion: the model's :class:`GaussianDiffusion` (its schedule, mean and variance types).
        model: the network, called as ``model(x_t, t, **model_kwargs)``; put it in eval mode.
        images: (N, ...) data on the grid of ``num_levels`` values in [-1, 1] (e.g. the TEST split),
            N >= 1.
        num_timesteps: None for the exact sum (``diffusion.variational_bound``, T network calls per
            batch); an int K in 2..T for the unbiased stratified estimate with K calls per batch
            (L_0 and L_T exact, see :func:`stratified_bound_timesteps`).
        batch_size: images per batch.
        model_kwargs: extra keyword arguments for the model (e.g. ``{"y": labels}`` for the whole
            data set; they are sliced into batches along dimension 0 when they are tensors).
        generator: seeds the draws of x_t (and of the timesteps).
        clip_x0: evaluate the reverse process that clips its prediction of x_0 to [-1, 1] (the
            one a sampler with ``clip_x0=True`` uses); the bound is then that process's bound.
    """
    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    if not callable(model):
        raise InputTypeError(f"model must be callable as model(x_t, t, **model_kwargs), got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim < 2:
        raise InputTypeError("images must be a float tensor (N, ...) on the [-1, 1] scale, e.g. load_digits_split('test')[0]")
    if images.shape[0] < 1:
        raise InputValueError("images is empty: the bound is a mean over images, so pass at least one (e.g. images[:n] with n >= 1)")
    num_levels = check_int(num_levels, "num_levels", minimum=2)
    if not bool(torch.isfinite(images).all()):
        raise InputValueError("images contains NaN or inf; the bound is defined for data on the grid of levels in [-1, 1]")
    grid = torch.round((images.double() + 1) * (num_levels - 1) / 2) * 2 / (num_levels - 1) - 1
    if not torch.equal(images, images.clamp(-1, 1)) or not torch.allclose(images.double(), grid, atol=1e-6):
        raise InputValueError(
            f"the discretised bound needs images on the data grid ({num_levels} levels in [-1, 1]); these are not. "
            "Evaluate real data (load_digits_split), or round with diffusion_lib.data.quantize_digits"
        )
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    T = diffusion.T
    if num_timesteps is not None:
        num_timesteps = check_int(num_timesteps, "num_timesteps", minimum=2)
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise InputTypeError(f"model_kwargs must be a dict of keyword arguments for the model, got {type(model_kwargs).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    N = images.shape[0]
    num_dims = images[0].numel()
    exact = num_timesteps is None or num_timesteps >= T
    per_image, prior, decoder = [], [], []
    terms = torch.zeros(T + 1, dtype=torch.float64)
    start = time.perf_counter()
    batches = list(range(0, N, batch_size))
    outer = batches
    if progress and not exact:
        from tqdm.auto import tqdm

        outer = tqdm(batches, desc=f"bound ({num_timesteps} t per image)")
    for i in outer:
        x0 = images[i : i + batch_size]
        kw = {k: (v[i : i + batch_size] if isinstance(v, torch.Tensor) and v.shape[:1] == (N,) else v)
              for k, v in (model_kwargs or {}).items()}
        B = x0.shape[0]
        if exact:
            out = diffusion.variational_bound(
                model, x0, clip_x0=clip_x0, model_kwargs=kw, decoder="discretized", num_levels=num_levels,
                generator=generator, progress=progress,
            )
            per_image.append(out["total"].double())
            prior.append(out["prior"].double())
            decoder.append(out["terms"][:, 1].double())
            terms += out["terms"].double().sum(0)
            continue
        ts, weight = stratified_bound_timesteps(T, num_timesteps, B, generator)
        with torch.no_grad():
            one = torch.ones(B, dtype=torch.long)
            x1 = diffusion.q_sample(x0, one, generator=generator)
            l0 = diffusion.vb_term(model, x0, x1, one, clip_x0=clip_x0, model_kwargs=kw, decoder="discretized",
                                   num_levels=num_levels).double()
            lt = diffusion.prior_kl(x0).double()
            total = l0 + lt
            terms[1] += l0.sum()
            for k in range(ts.shape[0]):
                t = ts[k]
                xt = diffusion.q_sample(x0, t, generator=generator)
                kl = diffusion.vb_term(model, x0, xt, t, clip_x0=clip_x0, model_kwargs=kw,
                                       num_levels=num_levels).double() * weight[k]
                total = total + kl
                terms.index_add_(0, t, kl)
        per_image.append(total)
        prior.append(lt)
        decoder.append(l0)
    seconds = time.perf_counter() - start
    per_image_t = torch.cat(per_image)
    if not bool(torch.isfinite(per_image_t).all()):
        raise NonFiniteError("the bound came out NaN or inf for some images: the model's output is not finite there; "
                             "check the model (its weights and its input range) before evaluating it")
    return BoundResult(
        per_image=per_image_t, prior=torch.cat(prior), decoder=torch.cat(decoder),
        terms=terms / N, num_dims=num_dims, num_timesteps=T if exact else num_timesteps,
        exact=exact, seconds=seconds,
    )


def _check_grid_images(images: torch.Tensor, name: str) -> torch.Tensor:
    """``images`` (N, ...) float, finite, on the grid of the 17 digit levels in [-1, 1]; or a library error."""
    if not isinstance(images, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of images on the [-1, 1] scale, got {type(images).__name__}")
    if not images.is_floating_point():
        raise InputTypeError(
            f"{name} must be a float tensor on the [-1, 1] scale, got dtype {images.dtype}; "
            "map pixel levels v in 0..16 with v / 8 - 1"
        )
    if images.ndim < 2:
        raise InputValueError(f"{name} must have shape (N, ...) with one image per row, got shape {tuple(images.shape)}")
    if images.numel() and (
        not bool(torch.isfinite(images).all())
        or not torch.equal(images, images.clamp(-1, 1))
        or not torch.allclose(images, digits_to_levels(images).to(images.dtype) / 8 - 1, atol=1e-6)
    ):
        raise InputValueError(
            f"{name} must be on the data grid (the 17 levels v / 8 - 1 in [-1, 1]); these are not. "
            "Use real data (load_digits_split), or round with diffusion_lib.data.quantize_digits"
        )
    return images


def independent_pixel_nll(
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    alpha: float = 1.0,
) -> torch.Tensor:
    r"""Per-image NLL (nats) of ``test_images`` under independent per-pixel categoricals fit on ``train_images``.

    For pixel j and level v of the 17 levels, p_j(v) = (n_j(v) + alpha) / (N + 17 alpha) with
    n_j(v) the number of training images whose pixel j has level v (add-alpha smoothing keeps
    unseen levels possible). The NLL of an image is -sum_j log p_j(v_j). Images are on the grid of
    ``load_digits_split`` (levels v / 8 - 1), train and test with the same image shape; returns a
    float64 tensor (N_test,) -- take ``.mean()`` for nats per image.
    """
    alpha = check_real(alpha, "alpha")
    if alpha <= 0:
        raise InputValueError(f"alpha must be > 0 (with 0 a level never seen in training has probability 0 and the NLL is infinite), got {alpha}")
    train_images = _check_grid_images(train_images, "train_images")
    test_images = _check_grid_images(test_images, "test_images")
    if train_images.shape[0] < 1:
        raise InputValueError("train_images is empty: the per-pixel model needs at least one training image")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise InputValueError(
            f"train and test images must have the same shape per image, got {tuple(train_images.shape[1:])} "
            f"and {tuple(test_images.shape[1:])}"
        )
    tr = digits_to_levels(train_images).flatten(1)  # (N, D)
    te = digits_to_levels(test_images).flatten(1)
    N, D = tr.shape
    counts = torch.zeros((D, DIGITS_NUM_LEVELS), dtype=torch.float64)
    counts.scatter_add_(1, tr.T.contiguous(), torch.ones((D, N), dtype=torch.float64))
    log_p = torch.log(counts + alpha) - math.log(N + DIGITS_NUM_LEVELS * alpha)  # (D, L)
    return -log_p.gather(1, te.T.contiguous()).sum(0)


@dataclass
class SampleResult:
    """Samples and the wall-clock seconds they took (:func:`sample_digits`)."""

    samples: torch.Tensor
    seconds: float
    network_calls: int

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.samples.shape[0]


def _slice_kwargs(model_kwargs: dict | None, n: int, what: str) -> dict:
    """Check ``model_kwargs``: a dict whose tensors have one row per image (``n``) or are 0-dim."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict):
        raise InputTypeError(f"model_kwargs must be a dict of extra model arguments, got {type(model_kwargs).__name__}")
    for k, v in model_kwargs.items():
        if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] != n:
            raise InputValueError(
                f"model_kwargs[{k!r}] has {v.shape[0]} rows but there are {n} {what}; give one row per image "
                "(it is cut into batches along with them)"
            )
    return model_kwargs


def _check_diffusion_and_model(diffusion: GaussianDiffusion, model: Callable[..., torch.Tensor]) -> None:
    if not isinstance(diffusion, GaussianDiffusion):
        raise InputTypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    if not callable(model):
        raise InputTypeError(f"model must be a network called as model(x_t, t), got {type(model).__name__}")


def sample_digits(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    num_images: int,
    method: str = "ddpm",
    num_steps: int | None = None,
    eta: float = 0.0,
    clip_x0: bool = True,
    batch_size: int = 500,
    model_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    shape: tuple[int, ...] = (1, 8, 8),
    progress: bool = False,
) -> SampleResult:
    """Draw ``num_images`` samples with DDPM (``method="ddpm"``) or DDIM (``"ddim"``).

    DDPM takes all T steps, or with ``num_steps`` K < T the respaced ancestral sampler of improved
    DDPM (betas recomputed for the K evenly spaced steps, the model's own variance between them;
    :meth:`GaussianDiffusion.p_sample_loop`). DDIM uses ``num_steps`` evenly spaced steps (:meth:`GaussianDiffusion.ddim_timesteps`) and
    ``eta`` (0: deterministic). Samples are made in batches of ``batch_size`` (``model_kwargs``
    tensors, one row per image, are sliced along with them) and timed together. Samples that
    come back NaN or infinite (a diverged model) raise :class:`~diffusion_lib.errors.NonFiniteError`.
    """
    _check_diffusion_and_model(diffusion, model)
    num_images = check_int(num_images, "num_images", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_choice(method, ("ddpm", "ddim"), "method")
    if num_steps is not None:
        num_steps = check_int(num_steps, "num_steps", minimum=1)
        if num_steps > diffusion.T:
            raise InputValueError(f"num_steps must lie in 1..T = {diffusion.T}, got {num_steps}")
    eta = check_real(eta, "eta", minimum=0.0)
    if not isinstance(clip_x0, bool):
        raise InputTypeError(f"clip_x0 must be True or False, got {clip_x0!r}")
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or len(shape) == 0:
        raise InputTypeError(f"shape must be the shape of one image as a tuple, e.g. (1, 8, 8), got {shape!r}")
    shape = tuple(check_int(v, "shape entry", minimum=1) for v in shape)
    model_kwargs = _slice_kwargs(model_kwargs, num_images, "images to draw")
    chunks = []
    calls = 0
    start = time.perf_counter()
    for i in range(0, num_images, batch_size):
        B = min(batch_size, num_images - i)
        kw = {k: (v[i : i + B] if isinstance(v, torch.Tensor) and v.ndim > 0 else v) for k, v in model_kwargs.items()}
        if method == "ddpm":
            x = diffusion.p_sample_loop(model, (B, *shape), clip_x0=clip_x0, model_kwargs=kw,
                                        generator=generator, progress=progress, num_steps=num_steps)
            calls += num_steps if num_steps is not None else diffusion.T
        else:
            x = diffusion.ddim_sample_loop(model, (B, *shape), num_steps=num_steps, eta=eta, clip_x0=clip_x0,
                                           model_kwargs=kw, generator=generator, progress=progress)
            calls += num_steps if num_steps is not None else diffusion.T
        chunks.append(x)
    seconds = time.perf_counter() - start
    samples = torch.cat(chunks)
    if not bool(torch.isfinite(samples).all()):
        raise NonFiniteError(
            f"{int((~torch.isfinite(samples)).sum())} sample values are NaN or infinite: the model diverged; "
            "check its checkpoint, or sample with clip_x0=True"
        )
    return SampleResult(samples=samples, seconds=seconds, network_calls=calls)


def _predicted_eps(diffusion: GaussianDiffusion, model: Callable[..., torch.Tensor], x: torch.Tensor,
                   t: torch.Tensor, model_kwargs: dict) -> torch.Tensor:
    """The noise the model predicts at (x, t), whatever it is trained to output."""
    out = diffusion.p_mean_variance(model, x, t, model_kwargs=model_kwargs)
    return out["pred_eps"] if isinstance(out, dict) else out.pred_eps


def ddim_invert(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    timesteps: torch.Tensor,
    model_kwargs: dict | None = None,
) -> torch.Tensor:
    r"""Run deterministic DDIM (eta = 0) *upwards*: encode data x_0 into a latent x_{tau_1}.

    Implements :eq:`eq-ddpm-ddim` (chapter ``ddpm_2d``), with eta = 0 and the jump taken towards
    more noise.

    ``timesteps`` is the strictly decreasing sequence tau_1 > ... > tau_K in 1..T that
    ``ddim_sample_loop(..., timesteps=timesteps, x_T=latent)`` would use to decode; the encoder
    visits it in reverse, 0 -> tau_K -> ... -> tau_1, with the same update as a DDIM step but
    towards more noise,

        x_next = sqrt(abar_next) * x0_hat(x, t) + sqrt(1 - abar_next) * eps_hat(x, t),

    evaluating the network at the current (lower) time t (at t = 0 it uses t = 1). For a smooth
    model and small steps, decoding the latent gives x_0 back (the probability-flow ODE run both ways).
    ``x0`` is a float tensor (B, ...) with B >= 1 and finite values; the result has its shape and dtype.
    """
    _check_diffusion_and_model(diffusion, model)
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise InputTypeError(
            f"x0 must be a float tensor (B, ...), got "
            f"{x0.dtype if isinstance(x0, torch.Tensor) else type(x0).__name__}"
        )
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise InputValueError(f"x0 must hold at least one example (shape (B, ...), B >= 1), got shape {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise InputValueError("x0 contains NaN or infinite values; encode finite data")
    if isinstance(timesteps, (str, bytes)):
        raise InputTypeError("timesteps must be a decreasing sequence of ints, e.g. diffusion.ddim_timesteps(50)")
    if not isinstance(timesteps, torch.Tensor):
        try:
            timesteps = torch.as_tensor(list(timesteps))
        except (TypeError, ValueError, RuntimeError):
            raise InputTypeError("timesteps must be a decreasing sequence of ints, e.g. diffusion.ddim_timesteps(50)") from None
    if timesteps.ndim != 1 or timesteps.numel() == 0:
        raise InputValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(timesteps.shape)}")
    timesteps = check_timesteps(timesteps.cpu(), diffusion.T, name="timesteps")
    taus = timesteps.tolist()
    if any(b >= a for a, b in zip(taus[:-1], taus[1:])):
        raise InputValueError(
            f"timesteps must be strictly decreasing (the order a sampler decodes in), e.g. "
            f"diffusion.ddim_timesteps(50); got {taus[:10]}"
        )
    model_kwargs = _slice_kwargs(model_kwargs, x0.shape[0], "examples in x0")
    up = [0] + taus[::-1]
    ab = diffusion.schedule.alpha_bar.tolist()
    x = x0
    with torch.no_grad():
        for t_cur, t_next in zip(up[:-1], up[1:]):
            t_b = torch.full((x.shape[0],), max(t_cur, 1), dtype=torch.long, device=x.device)
            eps = _predicted_eps(diffusion, model, x, t_b, model_kwargs).to(x.dtype)
            x0_hat = (x - math.sqrt(1 - ab[t_cur]) * eps) / math.sqrt(ab[t_cur])
            x = math.sqrt(ab[t_next]) * x0_hat + math.sqrt(1 - ab[t_next]) * eps
    return x


def slerp(z0: torch.Tensor, z1: torch.Tensor, lam: float) -> torch.Tensor:
    r"""Spherical interpolation between two noise tensors of the same shape (each flattened as one vector):

        slerp(z0, z1; lam) = sin((1 - lam) theta) / sin(theta) * z0 + sin(lam theta) / sin(theta) * z1,

    with theta the angle between z0 and z1. For two independent Gaussian vectors in many dimensions
    theta is close to 90 degrees and the norm stays near sqrt(D) along the path, where linear
    interpolation would pass through atypically small vectors. Falls back to linear
    interpolation when z0 and z1 are (anti)parallel up to round-off. ``z0`` and ``z1`` are
    non-empty float tensors of one shape and dtype, finite and non-zero (a zero vector has no
    direction); ``lam`` lies in [0, 1].
    """
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise InputTypeError(
                f"{name} must be a float tensor, got {z.dtype if isinstance(z, torch.Tensor) else type(z).__name__}"
            )
    if z0.shape != z1.shape or z0.numel() == 0:
        raise InputValueError(f"z0 and z1 must be non-empty tensors of the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if z0.dtype != z1.dtype:
        raise InputTypeError(f"z0 and z1 must have the same dtype, got {z0.dtype} and {z1.dtype}; convert one with .to(other.dtype)")
    lam = check_real(lam, "lam")
    if not 0.0 <= lam <= 1.0:
        raise InputValueError(f"lam must lie in [0, 1] (0 gives z0, 1 gives z1), got {lam}")
    a, b = z0.flatten(), z1.flatten()
    if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
        raise InputValueError("z0 and z1 must be finite; they contain NaN or infinite values")
    na, nb = a.norm(), b.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        raise InputValueError("z0 and z1 must be non-zero: the angle between them is undefined for a zero vector")
    cos = torch.dot(a, b) / (na * nb)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(theta)) < 1e-6:
        return (1 - lam) * z0 + lam * z1
    return (torch.sin((1 - lam) * theta) * z0 + torch.sin(lam * theta) * z1) / torch.sin(theta)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_digits_reference(checkpoint: str = "ddpm_digits.pt", verify: bool = True) -> dict:
    """The benchmark figures of a shipped digit model, from the copy packaged with ``diffusion_lib``.

    Returns the dict that ``python benchmarks/digits.py --checkpoint <checkpoint> --json FILE``
    wrote: ``num_samples`` (447), ``test_nats`` (the exact bound on the TEST split, nats per image),
    ``fd_floor_train`` / ``fd_floor_train_sd`` (real TRAIN sets of ``num_samples`` digits against
    TEST) and ``samplers``, a list of rows with ``method`` ("ddpm" or "ddim"), ``steps``, ``eta``,
    ``seconds`` (for ``num_samples`` images, one thread), ``fd`` (mean over ``repeats`` sample
    sets), ``fd_sets`` and ``fd_se``. The figures are not recomputed: they are what the benchmark
    measured, with the command recorded under ``"regenerate"``.

    With ``verify=True`` the SHA-256 of the installed checkpoint file and of the digit classifier
    behind the Fréchet distance (both in :func:`diffusion_lib.utils.checkpoint_dir`) must equal the
    ones recorded when the figures were measured; a retrained file raises
    :class:`~diffusion_lib.errors.CheckpointError` instead of showing stale figures.
    """
    if not isinstance(checkpoint, str):
        raise InputTypeError(f"checkpoint must be a file name such as 'ddpm_digits.pt', got {type(checkpoint).__name__}")
    if not isinstance(verify, bool):
        raise InputTypeError(f"verify must be True or False, got {verify!r}")
    try:
        text = resources.files("diffusion_lib").joinpath(_REFERENCE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"diffusion_lib/{_REFERENCE_FILE} is missing from this installation of diffusion_lib: "
            "install the package with its data files (pip install . from the book's repository, whose "
            "pyproject.toml lists them) or run the chapter from a checkout of the repository"
        ) from None
    data = json.loads(text)
    runs = data["checkpoints"]
    if checkpoint not in runs:
        raise InputValueError(f"no benchmark figures for checkpoint {checkpoint!r}; the packaged copy has {sorted(runs)}")
    row = dict(runs[checkpoint])
    if verify:
        from diffusion_lib.utils import checkpoint_dir

        for name, key in ((checkpoint, "checkpoint_sha256"), ("digit_classifier.pt", "classifier_sha256")):
            path = checkpoint_dir() / name
            if path.is_file() and _sha256(path) != row[key]:
                raise CheckpointError(
                    f"the packaged benchmark figures were measured with another version of {name} "
                    f"(SHA-256 {row[key][:12]}..., the installed file has {_sha256(path)[:12]}...). "
                    f"Regenerate them: {data['regenerate']}"
                )
    row["regenerate"] = data["regenerate"]
    return row


def write_digits_reference(
    result_files: Sequence[str | Path] | None = None, out: str | Path | None = None
) -> Path:
    """Rebuild the packaged copy of the benchmark figures from ``benchmarks/digits.py --json`` files.

    ``result_files`` default to ``benchmarks/digits_results.json`` and
    ``benchmarks/digits_results_hybrid_cosine.json`` of the repository beside the package; ``out``
    to ``diffusion_lib/_data/digits_reference.json``. Each run is stored under its checkpoint's
    name with the SHA-256 of that checkpoint file and of the digit classifier, so :func:`load_digits_reference` can tell when a
    checkpoint was retrained after the figures were measured. Returns the path written.
    """
    from diffusion_lib.utils import checkpoint_dir

    package = Path(__file__).resolve().parents[1]  # diffusion_lib/
    if result_files is None:
        result_files = [package.parent / "benchmarks" / name for name in _BENCHMARK_FILES]
    if isinstance(result_files, (str, bytes, Path)) or not isinstance(result_files, Sequence) or not result_files:
        raise InputTypeError(f"result_files must be a non-empty list of --json files of benchmarks/digits.py, got {result_files!r}")
    runs = {}
    for f in result_files:
        f = Path(f)
        if not f.is_file():
            raise FileNotFoundError(f"no benchmark result file {f}; write it with benchmarks/digits.py --json {f}")
        try:
            res = json.loads(f.read_text(encoding="utf-8"))
            name = Path(res["checkpoint"]).name
        except (ValueError, KeyError, TypeError):
            raise InputValueError(
                f"{f} is not a result file of benchmarks/digits.py (JSON with a 'checkpoint' entry); regenerate it"
            ) from None
        path = checkpoint_dir() / name
        if not path.is_file():
            raise FileNotFoundError(f"{f} was measured with {name}, which is not in {checkpoint_dir()}")
        runs[name] = {**res, "checkpoint_sha256": _sha256(path),
                      "classifier_sha256": _sha256(checkpoint_dir() / "digit_classifier.pt"),
                      "source": f"benchmarks/{f.name}"}
    out = Path(out) if out is not None else package / _REFERENCE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "about": "Figures measured by benchmarks/digits.py (one thread) for the shipped digit models; "
                 "read them with diffusion_lib.eval.digits.load_digits_reference.",
        "regenerate": _REGENERATE,
        "checkpoints": runs,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return out
