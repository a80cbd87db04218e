r"""Checkers for the exercises of the U-Net chapter (``book/unet.ipynb``).

=============================  ===========================  ==============================================
checker                        exercise label               the function the student writes
=============================  ===========================  ==============================================
``check_film``                 ``ex-unet-film``             ``film(h, e) -> h * (1 + scale) + shift``
``check_split_heads``          ``ex-unet-heads``            ``split_heads(qkv, heads) -> (q, k, v)``
``check_attend``               ``ex-unet-attention``        ``attend(q, k, v) -> softmax(q k^T / sqrt d) v``
=============================  ===========================  ==============================================

The equations:

.. math::

    \mathrm{FiLM}(h, e) = h \odot (1 + s) + b,\quad (s, b) = \text{the first and second half of } e
    \text{ (one value per channel, broadcast over the pixels)};

``split_heads`` turns a ``(B, 3 h d, H, W)`` projection, whose channels are ordered
(q|k|v, head, feature), into three ``(B, h, H W, d)`` tensors with pixels in row-major order; and
full attention, per batch element and head, with the softmax over the keys (the last axis):

.. math::

    \operatorname{Attn}(Q, K, V) = \operatorname{softmax}\big(Q K^\top / \sqrt{d}\big)\, V.

All three are layers a network is trained through, so the checks also compare gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange

from diffusion_lib.exercises._core import Case, Checker, Mistake

__all__ = ["check_film", "check_split_heads", "check_attend"]


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


def _film_shift_scaled(h, e):
    scale, shift = e[:, :, None, None].chunk(2, dim=1)
    return (h + shift) * (1 + scale)


def _film_interleaved(h, e):
    scale, shift = e[:, 0::2, None, None], e[:, 1::2, None, None]
    return h * (1 + scale) + shift


def _film_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("B = 2 images with C = 3 channels of 4 x 4 pixels, e of shape (2, 6)",
             torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 6, generator=g)),
        Case("B = 4, C = 2, 2 x 3 pixels (not square), float64",
             torch.randn(4, 2, 2, 3, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)),
        Case("a batch of one image, C = 5 channels of 3 x 3 pixels", torch.randn(1, 5, 3, 3, generator=g),
             torch.randn(1, 10, generator=g)),
        Case("e = 0 (a freshly initialised projection): FiLM must leave h unchanged",
             torch.randn(2, 4, 2, 2, generator=g), torch.zeros(2, 8)),
    ]


_FILM = Checker(
    name="film",
    label="ex-unet-film",
    reference=_film,
    cases=_film_cases,
    differentiable=True,
    mistakes=[
        Mistake("You multiplied by scale instead of (1 + scale). With scale near 0 at initialisation that "
                "zeroes the features; FiLM in the U-Net uses h * (1 + scale) + shift so that e = 0 means 'no change'.",
                _film_no_one, "no-one"),
        Mistake("Scale and shift are swapped: the first C entries of e are the scale, the last C the shift.",
                _film_swapped, "swapped"),
        Mistake("You only added the shift; the block also multiplies by (1 + scale), with scale the first C entries of e.",
                _film_shift_only, "shift-only"),
        Mistake("You added the shift before scaling, (h + shift) * (1 + scale); the shift comes last: "
                "h * (1 + scale) + shift.", _film_shift_scaled, "shift-then-scale"),
        Mistake("You took the scale from the even entries of e and the shift from the odd ones; e is split in "
                "two halves: scale = e[:, :C], shift = e[:, C:] (e.chunk(2, dim=1)).", _film_interleaved, "interleaved"),
    ],
    alternatives=[
        lambda h, e: h * (1 + e[:, : h.shape[1], None, None]) + e[:, h.shape[1]:, None, None],
        lambda h, e: torch.addcmul(rearrange(e, "b (two c) -> two b c 1 1", two=2)[1], h,
                                   1 + rearrange(e, "b (two c) -> two b c 1 1", two=2)[0]),
        lambda h, e: torch.einsum("bchw,bc->bchw", h, 1 + e[:, : h.shape[1]]) + e[:, h.shape[1]:].reshape(h.shape[0], -1, 1, 1),
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
        Case("B = 1, 4 heads of 2 features, 3 x 3 pixels, float64", torch.randn(1, 24, 3, 3, generator=g, dtype=torch.float64), 4),
        Case("one head of 5 features, 2 x 6 pixels", torch.randn(3, 15, 2, 6, generator=g), 1),
    ]


_HEADS = Checker(
    name="split_heads",
    label="ex-unet-heads",
    reference=_split,
    cases=_split_cases,
    differentiable=True,
    arg_names=("qkv", "heads"),
    mistakes=[
        Mistake("Heads and features are grouped the wrong way round: the channels are ordered (q|k|v, head, "
                "feature), so the pattern is 'b (three h d) x y', not '(three d h)'.", _split_dh, "d-h"),
        Mistake("You took q, k, v as the innermost factor ('(h d three)'); the projection stacks them outermost: "
                "the first third of the channels is q, then k, then v -> '(three h d)'.", _split_three_last, "three-last"),
        Mistake("The pixels are flattened column by column ('(y x)'); use row-major order '(x y)' so that the "
                "inverse reshape 'b h (x y) d -> b (h d) x y' puts each pixel back in its place.", _split_yx, "y-x"),
    ],
    alternatives=[
        lambda qkv, h: tuple(qkv.reshape(qkv.shape[0], 3, h, -1, qkv.shape[2] * qkv.shape[3]).permute(1, 0, 2, 4, 3)),
        lambda qkv, h: tuple(rearrange(part, "b (h d) x y -> b h (x y) d", h=h) for part in qkv.chunk(3, dim=1)),
    ],
)


def check_split_heads(fn: Callable[..., tuple]) -> None:
    """Check ``split_heads(qkv, heads) -> (q, k, v)``, each (B, heads, H*W, d) (``ex-unet-heads``)."""
    __tracebackhide__ = True  # noqa: F841
    return _HEADS(fn)


# ---------------------------------------------------------------------------------- full attention
def _attend(q, k, v):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return scores.softmax(dim=-1) @ v


def _attend_over_queries(q, k, v):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return scores.softmax(dim=-2) @ v


def _attend_unscaled(q, k, v):
    return (q @ k.transpose(-1, -2)).softmax(dim=-1) @ v


def _attend_by_d(q, k, v):
    return (q @ k.transpose(-1, -2) / q.shape[-1]).softmax(dim=-1) @ v


def _attend_by_sqrt_n(q, k, v):
    return (q @ k.transpose(-1, -2) / math.sqrt(k.shape[-2])).softmax(dim=-1) @ v


def _attend_fixed_scale(q, k, v):
    return (q @ k.transpose(-1, -2) / 2.0).softmax(dim=-1) @ v


def _attend_transposed(q, k, v):
    return (k @ q.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v


def _attend_overflow(q, k, v):
    e = torch.exp(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
    return e / e.sum(dim=-1, keepdim=True) @ v


def _attend_no_softmax(q, k, v):
    return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])) @ v


def _manual_softmax_attend(q, k, v):
    """An alternative correct solution: the softmax written out, stabilised by its row maximum."""
    s = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    e = torch.exp(s - s.amax(dim=-1, keepdim=True))
    return torch.matmul(e / e.sum(dim=-1, keepdim=True), v)


def _shifted(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v in float64 whose scores are moderate numbers plus 800: the last feature of every query
    and key is 40, so it adds 40 * 40 / sqrt(4) = 800 to every score of a row."""
    q, k, v = (torch.randn(2, 1, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    q[..., -1] = 40.0
    k[..., -1] = 40.0
    return q, k, v


def _attend_cases(g: torch.Generator) -> list[Case]:
    def qkv(B, h, n, d, dtype=torch.float32, scale=1.0):
        return tuple(scale * torch.randn(B, h, n, d, generator=g, dtype=dtype) for _ in range(3))

    return [
        Case("B = 2, 2 heads, n = 6 positions, d = 4 features", *qkv(2, 2, 6, 4)),
        Case("a batch of one, one head, n = 5 positions, d = 3 features, float64", *qkv(1, 1, 5, 3, torch.float64)),
        Case("B = 3, 4 heads, n = 16 positions (a 4 x 4 image), d = 8", *qkv(3, 4, 16, 8)),
        Case("scores of about 800, float64 (every score shifted by the same large constant, which the softmax "
             "ignores): exp(800) overflows, so compute the softmax stably, e.g. with torch.softmax", *_shifted(g)),
        Case("a single position (n = 1): every query can only attend to it, so the output is v", *qkv(2, 2, 1, 4)),
    ]


_ATTEND = Checker(
    name="attend",
    label="ex-unet-attention",
    reference=_attend,
    cases=_attend_cases,
    differentiable=True,
    arg_names=("q", "k", "v"),
    mistakes=[
        Mistake("Your softmax runs over the queries (dim=-2). Each query's weights over the n keys must sum "
                "to one: take the softmax over the last axis of q @ k^T (dim=-1).", _attend_over_queries, "over-queries"),
        Mistake("The scores are not scaled: divide q @ k^T by sqrt(d), with d = q.shape[-1] the features per "
                "head, before the softmax.", _attend_unscaled, "unscaled"),
        Mistake("You divided the scores by d; the scale is 1 / sqrt(d) (d = q.shape[-1]).", _attend_by_d, "by-d"),
        Mistake("You scaled by the square root of the number of positions n; the scale is 1 / sqrt(d), with d "
                "the features per head (q.shape[-1]), not the sequence length.", _attend_by_sqrt_n, "by-sqrt-n"),
        Mistake("You divided the scores by a fixed 2, which is sqrt(d) only for d = 4 features; compute the "
                "scale from the input, 1 / math.sqrt(q.shape[-1]).", _attend_fixed_scale, "fixed-scale"),
        Mistake("Your scores are k @ q^T, the transpose of q @ k^T: entry (i, j) must be the score of query i "
                "against key j, so compute q @ k.transpose(-1, -2).", _attend_transposed, "transposed"),
        Mistake("Your softmax overflows: with scores of about 800, exp(score) is infinite and inf / inf is NaN. "
                "Subtract each row's maximum before exponentiating (it cancels in the ratio), or use "
                "torch.softmax(scores, dim=-1), which does so.", _attend_overflow, "overflow"),
        Mistake("The softmax is missing: the weights softmax(q @ k^T / sqrt(d)) are positive and sum to one "
                "over the keys before they multiply v.", _attend_no_softmax, "no-softmax"),
    ],
    alternatives=[
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        lambda q, k, v: torch.einsum("bhij,bhjd->bhid",
                                     torch.einsum("bhid,bhjd->bhij", q, k).div(q.shape[-1] ** 0.5).softmax(-1), v),
        _manual_softmax_attend,
    ],
)


def check_attend(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``attend(q, k, v) = softmax(q k^T / sqrt(d)) v`` per batch and head (``ex-unet-attention``)."""
    __tracebackhide__ = True  # noqa: F841
    return _ATTEND(fn)
