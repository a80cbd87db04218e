r"""Checkers for the exercises of the U-Net chapter (``book/unet.ipynb``).

=============================  ===========================  ==============================================
checker                        exercise label               the function the student writes
=============================  ===========================  ==============================================
``check_sinusoidal``           ``ex-unet-sinusoidal``       ``sinusoidal(t, dim) -> (B, dim)``
``check_film``                 ``ex-unet-film``             ``film(h, e) -> h * (1 + scale) + shift``
``check_split_heads``          ``ex-unet-heads``            ``split_heads(qkv, heads) -> (q, k, v)``
=============================  ===========================  ==============================================

The equations:

.. math::

    \omega_k = 10000^{-k / (d/2)},\quad
    \mathrm{emb}(t) = [\sin(t\omega_0), \dots, \sin(t\omega_{d/2-1}), \cos(t\omega_0), \dots, \cos(t\omega_{d/2-1})];

    \mathrm{FiLM}(h, e) = h \odot (1 + s) + b,\quad (s, b) = \text{the first and second half of } e
    \text{ (one value per channel, broadcast over the pixels)};

and ``split_heads`` turns a ``(B, 3 h d, H, W)`` projection, whose channels are ordered
(q|k|v, head, feature), into three ``(B, h, H W, d)`` tensors with pixels in row-major order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from einops import rearrange

from diffusion_lib.exercises._core import Case, Checker, Mistake
from diffusion_lib.models.embedding import sinusoidal_embedding

__all__ = ["check_sinusoidal", "check_film", "check_split_heads"]


# ------------------------------------------------------------------------- sinusoidal embedding
def _sinusoidal(t, dim):
    return sinusoidal_embedding(t, dim)


def _freqs(dim, denom_shift=0, sign=-1.0):
    half = dim // 2
    return torch.exp(sign * math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - denom_shift))


def _interleaved(t, dim):
    a = t.float()[:, None] * _freqs(dim)[None]
    return torch.stack([a.sin(), a.cos()], dim=-1).flatten(1)


def _sin_cos_swapped(t, dim):
    a = t.float()[:, None] * _freqs(dim)[None]
    return torch.cat([a.cos(), a.sin()], dim=1)


def _half_minus_one(t, dim):
    a = t.float()[:, None] * _freqs(dim, denom_shift=1)[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


def _growing(t, dim):
    a = t.float()[:, None] * _freqs(dim, sign=1.0)[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


def _sin_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("5 random timesteps in 1..1000, dim = 16", torch.randint(1, 1001, (5,), generator=g), 16),
        Case("t = 1, 2, 3 and dim = 8", torch.tensor([1, 2, 3]), 8),
        Case("one late timestep t = 999, dim = 32", torch.tensor([999]), 32),
    ]


_SIN = Checker(
    name="sinusoidal",
    label="ex-unet-sinusoidal",
    reference=_sinusoidal,
    cases=_sin_cases,
    mistakes=[
        Mistake("You interleaved sines and cosines (sin, cos, sin, cos, ...). This book concatenates them: all "
                "dim/2 sines first, then all dim/2 cosines (torch.cat([sin, cos], dim=1)).", _interleaved, "interleaved"),
        Mistake("The cosines come first in your code; put the sines first: cat([sin(t w), cos(t w)]).",
                _sin_cos_swapped, "cos-first"),
        Mistake("Your frequency exponent divides k by (dim/2 - 1), as some implementations do; this book uses "
                "omega_k = 10000^(-k / (dim/2)) for k = 0..dim/2-1.", _half_minus_one, "half-minus-one"),
        Mistake("Your frequencies grow with k (exp(+...)); they must shrink geometrically from 1 to about "
                "1/10000: omega_k = 10000^(-k/(dim/2)).", _growing, "growing"),
    ],
)


def check_sinusoidal(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``sinusoidal(t, dim)`` against the library's :func:`sinusoidal_embedding` (``ex-unet-sinusoidal``)."""
    __tracebackhide__ = True  # noqa: F841
    return _SIN(fn)


# ------------------------------------------------------------------------------------------- FiLM
def _film(h, e):
    scale, shift = e[:, :, None, None].chunk(2, dim=1)
    return h * (1 + scale) + shift


def _film_no_one(h, e):
    scale, shift = e[:, :, None, None].chunk(2, dim=1)
    return h * scale + shift


def _film_swapped(h, e):
    shift, scale = e[:, :, None, None].chunk(2, dim=1)
    return h * (1 + scale) + shift


def _film_shift_only(h, e):
    return h + e[:, :, None, None].chunk(2, dim=1)[1]


def _film_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("B = 2 images with C = 3 channels of 4 x 4 pixels, e of shape (2, 6)",
             torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 6, generator=g)),
        Case("B = 4, C = 2, 2 x 3 pixels (not square)", torch.randn(4, 2, 2, 3, generator=g), torch.randn(4, 4, generator=g)),
    ]


_FILM = Checker(
    name="film",
    label="ex-unet-film",
    reference=_film,
    cases=_film_cases,
    mistakes=[
        Mistake("You multiplied by scale instead of (1 + scale). With scale near 0 at initialisation that "
                "zeroes the features; FiLM in the U-Net uses h * (1 + scale) + shift so that e = 0 means 'no change'.",
                _film_no_one, "no-one"),
        Mistake("Scale and shift are swapped: the first C entries of e are the scale, the last C the shift.",
                _film_swapped, "swapped"),
        Mistake("You only added the shift; the block also multiplies by (1 + scale), with scale the first C entries of e.",
                _film_shift_only, "shift-only"),
    ],
)


def check_film(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``film(h, e) = h * (1 + e[:, :C]) + e[:, C:]`` broadcast over pixels (``ex-unet-film``)."""
    __tracebackhide__ = True  # noqa: F841
    return _FILM(fn)


# ------------------------------------------------------------------------------- attention reshape
def _split(qkv, heads):
    q, k, v = rearrange(qkv, "b (three h d) x y -> three b h (x y) d", three=3, h=heads)
    return q, k, v


def _split_dh(qkv, heads):
    q, k, v = rearrange(qkv, "b (three d h) x y -> three b h (x y) d", three=3, h=heads)
    return q, k, v


def _split_three_last(qkv, heads):
    q, k, v = rearrange(qkv, "b (h d three) x y -> three b h (x y) d", three=3, h=heads)
    return q, k, v


def _split_yx(qkv, heads):
    q, k, v = rearrange(qkv, "b (three h d) x y -> three b h (y x) d", three=3, h=heads)
    return q, k, v


def _split_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("B = 2, 2 heads of 3 features, a 4 x 5 image (channels 3*2*3 = 18)", torch.randn(2, 18, 4, 5, generator=g), 2),
        Case("B = 1, 4 heads of 2 features, 3 x 3 pixels", torch.randn(1, 24, 3, 3, generator=g), 4),
    ]


_HEADS = Checker(
    name="split_heads",
    label="ex-unet-heads",
    reference=_split,
    cases=_split_cases,
    mistakes=[
        Mistake("Heads and features are grouped the wrong way round: the channels are ordered (q|k|v, head, "
                "feature), so the pattern is 'b (three h d) x y', not '(three d h)'.", _split_dh, "d-h"),
        Mistake("You took q, k, v as the innermost factor ('(h d three)'); the projection stacks them outermost: "
                "the first third of the channels is q, then k, then v -> '(three h d)'.", _split_three_last, "three-last"),
        Mistake("The pixels are flattened column by column ('(y x)'); use row-major order '(x y)' so that the "
                "inverse reshape 'b h (x y) d -> b (h d) x y' puts each pixel back in its place.", _split_yx, "y-x"),
    ],
)


def check_split_heads(fn: Callable[..., tuple]) -> None:
    """Check ``split_heads(qkv, heads) -> (q, k, v)``, each (B, heads, H*W, d) (``ex-unet-heads``)."""
    __tracebackhide__ = True  # noqa: F841
    return _HEADS(fn)
