r"""A U-Net noise predictor for images, in the spirit of DDPM (Ho et al., 2020).

The network maps a noisy image ``x_t`` of shape ``(B, C, H, W)`` and its timesteps ``t`` (a
``LongTensor`` of shape ``(B,)``, values in 1..T) to a tensor of the same spatial size: the
predicted noise (or x_0), and with ``learned_variance=True`` a second block of ``C`` channels that
interpolates the reverse variance (``model_var_type="learned_range"`` of
:class:`~diffusion_lib.core.diffusion.GaussianDiffusion`).

Layout, for ``dim_mults = (m_1, ..., m_L)`` and base width ``dim``::

    x ──conv3x3──► h0 (dim)                                            ┐ (kept for the last block)
    level 1 at H x W:        block, block, [attention], down  ──► H/2  │ every block output is
    level 2 at H/2 x W/2:    block, block, [attention], down  ──► H/4  │ pushed on a stack ...
    ...
    level L at H/2^(L-1):    block, block, [attention]                 │
    middle:                  block, full attention, block              │
    level L .. 1 (upwards):  [cat skip] block, [cat skip] block,       │ ... and popped here
                             [attention], up                           │
    [cat h0] block ──conv1x1──► output                                 ┘

* The timestep enters every block: ``t`` → sinusoidal code (:func:`sinusoidal_embedding`) → a
  two-layer MLP → a vector ``e`` of size ``4 * dim``. With ``num_classes`` set, a learned class
  embedding is added to ``e``; label ``num_classes`` is the reserved *null* label that means
  "unconditional" (used by classifier-free guidance, Ho & Salimans 2022).
* Blocks: ``"resnet"`` (GroupNorm, SiLU, 3x3 conv, twice, with ``e`` injected as a per-channel
  scale and shift, or added) or ``"convnext"`` (7x7 depthwise conv, ``e`` added, GroupNorm, an
  expanding 1x1 conv, GELU, a projecting 1x1 conv) -- both with a residual connection.
* Attention: ``"full"`` (softmax attention over all H*W positions, cost O((HW)^2)) or
  ``"linear"`` (softmax over features for queries and over positions for keys, then
  ``q (k^T v)``, cost O(HW)), chosen per level.
* Down-sampling is a stride-2 4x4 convolution, up-sampling nearest-neighbour x2 then a 3x3 conv,
  so each side of the image must be divisible by ``2 ** (L - 1)``.

Every convolution uses ``padding_mode`` (``"zeros"`` as in DDPM, or ``"circular"``); with circular
padding the whole network commutes with circular shifts of the image by multiples of
``2 ** (L - 1)`` pixels (tested), with zero padding it does not: the borders tell it where it is.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from diffusion_lib._checks import check_choice, check_finite, check_floating, check_input_dtype, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.models.embedding import SinusoidalTimeEmbedding, sinusoidal_embedding

__all__ = [
    "UNet",
    "fourier_features",
    "ResnetBlock",
    "ConvNextBlock",
    "Attention",
    "LinearAttention",
    "Downsample",
    "Upsample",
    "BLOCK_TYPES",
    "ATTENTION_TYPES",
    "count_parameters",
    "conv_parameters_by_resolution",
]

BLOCK_TYPES: tuple[str, ...] = ("resnet", "convnext")
ATTENTION_TYPES: tuple[str, ...] = ("full", "linear")
TIME_CONDITIONINGS: tuple[str, ...] = ("scale_shift", "add")
PADDING_MODES: tuple[str, ...] = ("zeros", "circular")


#: True while a UNet.forward runs: its input was checked once, so its blocks skip their own checks
#: (which a block called on its own, as the unet chapter does, still runs).
_INSIDE_UNET: contextvars.ContextVar[bool] = contextvars.ContextVar("diffusion_lib_inside_unet", default=False)


def _check_feature_map(x: Any, channels: int, owner: nn.Module, name: str = "x") -> torch.Tensor:
    """A finite ``(B, channels, H, W)`` tensor in the dtype of ``owner``'s parameters."""
    if _INSIDE_UNET.get():
        return x
    check_floating(x, name)
    if x.ndim != 4 or x.shape[1] != channels:
        raise InputValueError(
            f"{type(owner).__name__} expects {name} of shape (B, {channels}, H, W), but got {tuple(x.shape)}"
        )
    weight = next(owner.parameters(), None)
    if weight is not None:
        check_input_dtype(x, weight.dtype, name, f"this {type(owner).__name__}")
    return x  # shape and dtype only: blocks run inside every U-Net forward, whose input is checked once


def _check_emb(emb: Any, batch: int, emb_dim: int, owner: nn.Module) -> None:
    if _INSIDE_UNET.get():
        return
    check_floating(emb, "emb")
    if emb.ndim != 2 or tuple(emb.shape) != (batch, emb_dim):
        raise InputValueError(
            f"{type(owner).__name__} expects the conditioning vector emb of shape ({batch}, {emb_dim}) "
            f"(one per image), but got {tuple(emb.shape)}"
        )


def fourier_features(x: torch.Tensor, exponents: Sequence[int]) -> torch.Tensor:
    r"""``x`` with the channels ``sin(2^n pi x)``, ``cos(2^n pi x)`` for each ``n`` appended (dim 1).

    Fourier features of the noisy input (Kingma et al., 2021, "Variational diffusion models").
    Near t = 0 the network must find how far each pixel of x_t lies from the nearest level of the
    data grid; that residual is a saw-tooth function of x_t, with one tooth per level. For the
    digits (levels 1/8 apart on [-1, 1]) ``sin(2^4 pi x)`` has exactly the period of the grid and
    ``n = 3`` twice it, so ``exponents=(3, 4)`` hands the network that periodic structure directly.
    Output: ``(B, C * (1 + 2 * len(exponents)), H, W)``.
    """
    check_floating(x, "x")
    if x.ndim < 2:
        raise InputValueError(f"x must be a batch (B, C, ...) with a channel dimension, got shape {tuple(x.shape)}")
    check_finite(x, "x")
    if isinstance(exponents, (str, bytes)) or not hasattr(exponents, "__iter__"):
        raise InputTypeError(f"exponents must be a sequence of ints n (features sin(2^n pi x)), got {exponents!r}")
    exponents = [check_int(n, "each entry of exponents") for n in exponents]
    feats = [x]
    for n in exponents:
        arg = (2.0**n * math.pi) * x
        feats += [torch.sin(arg), torch.cos(arg)]
    return torch.cat(feats, dim=1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (entries of tensors with ``requires_grad``) of ``module``."""
    if not isinstance(module, nn.Module):
        raise InputTypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def conv_parameters_by_resolution(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[tuple[int, int], int]:
    """Where a network's convolution parameters work: one forward pass, counted by image size and kernel.

    Runs ``model(*inputs, **kwargs)`` once (without gradients) and returns a dict
    ``{(H, k): n}``: the trainable parameters ``n`` of all ``nn.Conv2d`` layers that received an
    input of height ``H`` and have a ``k x k`` kernel. Layers that run more than once are counted
    once, at their first call.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    counts: dict[tuple[int, int], int] = {}
    seen: set[int] = set()

    def hook(module: nn.Module, args: tuple, _output: Any) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        key = (int(args[0].shape[-2]), int(module.kernel_size[0]))
        counts[key] = counts.get(key, 0) + count_parameters(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return counts


def _positive_ints(**values: Any) -> tuple[int, ...]:
    return tuple(check_int(v, name, minimum=1) for name, v in values.items())


def _groups_for(channels: int, groups: int) -> int:
    """The largest divisor of ``channels`` that is <= ``groups`` (GroupNorm needs a divisor)."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


def _conv(c_in: int, c_out: int, k: int, padding_mode: str, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    pad = (k - stride) // 2 if stride > 1 else k // 2
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, groups=groups, padding_mode=padding_mode)


# --------------------------------------------------------------------------------------- blocks
class ResnetBlock(nn.Module):
    r"""Residual block of DDPM: ``out = x W_skip + conv(SiLU(N2(conv(SiLU(N1(x)))) ⊙ (1 + s) + b))``.

    ``N1, N2`` are GroupNorms, the convolutions 3x3. The conditioning vector ``e`` (time, plus
    class) is projected by ``SiLU -> Linear`` to per-channel ``(s, b)`` and applied after the
    second normalisation as ``h (1 + s) + b`` (``time_conditioning="scale_shift"``, FiLM), or
    projected to ``b`` alone and added (``"add"``, the original DDPM). ``W_skip`` is a 1x1
    convolution when the channel count changes, the identity otherwise.

    Implements :eq:`eq-unet-film` (chapter ``unet``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        groups: int = 8,
        time_conditioning: str = "scale_shift",
        dropout: float = 0.0,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        in_channels, out_channels, emb_dim, groups = _positive_ints(
            in_channels=in_channels, out_channels=out_channels, emb_dim=emb_dim, groups=groups)
        check_choice(time_conditioning, TIME_CONDITIONINGS, "time_conditioning")
        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        dropout = check_real(dropout, "dropout", minimum=0.0, maximum=1.0)
        self.in_channels, self.emb_dim = in_channels, emb_dim
        self.time_conditioning = time_conditioning
        self.norm1 = nn.GroupNorm(_groups_for(in_channels, groups), in_channels)
        self.conv1 = _conv(in_channels, out_channels, 3, padding_mode)
        n_emb = 2 * out_channels if time_conditioning == "scale_shift" else out_channels
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, n_emb))
        self.norm2 = nn.GroupNorm(_groups_for(out_channels, groups), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv(out_channels, out_channels, 3, padding_mode)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` and ``emb`` ``(B, emb_dim)`` -> ``(B, out_channels, H, W)``."""
        _check_feature_map(x, self.in_channels, self)
        _check_emb(emb, x.shape[0], self.emb_dim, self)
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb_proj(emb)[:, :, None, None]  # (B, n_emb, 1, 1): one value per channel
        if self.time_conditioning == "scale_shift":
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1.0 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class ConvNextBlock(nn.Module):
    r"""ConvNeXt-style block (Liu et al., 2022) with a time input, as in the annotated DDPM U-Net.

    ``h = dwconv7x7(x) + Linear(GELU(e))``; ``h = conv1x1(GELU(conv1x1(GroupNorm(h))))`` with an
    inner width ``mult * out_channels``; ``out = h + x W_skip``. One norm, one non-linearity and
    a cheap depthwise convolution: fewer parameters than a ResNet block of the same width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        groups: int = 1,
        mult: int = 2,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        in_channels, out_channels, emb_dim, groups, mult = _positive_ints(
            in_channels=in_channels, out_channels=out_channels, emb_dim=emb_dim, groups=groups, mult=mult)
        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.in_channels, self.emb_dim = in_channels, emb_dim
        self.dwconv = _conv(in_channels, in_channels, 7, padding_mode, groups=in_channels)
        self.emb_proj = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, in_channels))
        self.norm = nn.GroupNorm(_groups_for(in_channels, groups), in_channels)
        self.pw1 = nn.Conv2d(in_channels, out_channels * mult, 1)
        self.pw2 = nn.Conv2d(out_channels * mult, out_channels, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` and ``emb`` ``(B, emb_dim)`` -> ``(B, out_channels, H, W)``."""
        _check_feature_map(x, self.in_channels, self)
        _check_emb(emb, x.shape[0], self.emb_dim, self)
        h = self.dwconv(x) + self.emb_proj(emb)[:, :, None, None]
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return h + self.skip(x)


# ------------------------------------------------------------------------------------ attention
class _HeadAttention(nn.Module):
    """What both attention blocks share: GroupNorm, a 1x1 projection to q, k, v per head, an output
    projection and the residual connection. A subclass defines ``attend(q, k, v)``."""

    def __init__(self, channels: int, heads: int, dim_head: int, groups: int, out_norm: bool) -> None:
        super().__init__()
        channels, heads, dim_head, groups = _positive_ints(channels=channels, heads=heads, dim_head=dim_head, groups=groups)
        self.channels = channels
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm = nn.GroupNorm(_groups_for(channels, groups), channels)
        self.to_qkv = nn.Conv2d(channels, 3 * inner, 1, bias=False)
        out = nn.Conv2d(inner, channels, 1)
        self.to_out = nn.Sequential(out, nn.GroupNorm(1, channels)) if out_norm else out

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, channels, H, W)`` -> the same shape (attention output added to the input)."""
        _check_feature_map(x, self.channels, self)
        H, W = x.shape[-2:]
        qkv = self.to_qkv(self.norm(x))
        q, k, v = rearrange(qkv, "b (three h d) x y -> three b h (x y) d", three=3, h=self.heads)
        out = rearrange(self.attend(q, k, v), "b h (x y) d -> b (h d) x y", x=H, y=W)
        return x + self.to_out(out)


class Attention(_HeadAttention):
    r"""Multi-head softmax self-attention over the H*W positions, with a residual connection.

    With ``q, k, v`` the 1x1-convolution projections of the normalised input, per head
    ``out = softmax(q k^T / sqrt(d)) v``: every position looks at every other, O((HW)^2) time.
    No position encoding: on its own, attention treats the pixels as a set.

    Implements :eq:`eq-unet-full-attn` (chapter ``unet``).
    """

    def __init__(self, channels: int, heads: int = 4, dim_head: int = 16, groups: int = 8) -> None:
        super().__init__(channels, heads, dim_head, groups, out_norm=False)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(B, h, n, d)`` queries, keys, values -> ``(B, h, n, d)``: ``softmax(q k^T / sqrt(d)) v``."""
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(self.dim_head)
        return torch.einsum("bhij,bhjd->bhid", scores.softmax(dim=-1), v)


class LinearAttention(_HeadAttention):
    r"""Linear attention (Shen et al., 2021): softmax over features for ``q``, over positions for ``k``.

    Per head, with ``q_i`` normalised over its ``d`` features and ``k_j`` over the ``n = HW``
    positions, ``out_i = sum_j (q_i . k_j) v_j = q_i (K^T V)``: computing the d x d matrix
    ``K^T V`` first costs O(n d^2) instead of O(n^2 d). The output passes through a 1x1 conv and a
    GroupNorm, and is added to the input.

    Implements :eq:`eq-unet-linear-attn` (chapter ``unet``).
    """

    def __init__(self, channels: int, heads: int = 4, dim_head: int = 16, groups: int = 8) -> None:
        super().__init__(channels, heads, dim_head, groups, out_norm=True)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(B, h, n, d)`` queries, keys, values -> ``(B, h, n, d)``: ``softmax_d(q) (softmax_n(k)^T v)``.

        Implements :eq:`eq-unet-linear-attn` (chapter ``unet``).
        """
        for name, m in (("q", q), ("k", k), ("v", v)):
            check_floating(m, name)
            if m.ndim != 4:
                raise InputValueError(f"{name} must have shape (B, heads, n, d), got {tuple(m.shape)}")
        if q.shape[:3] != k.shape[:3] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
            raise InputValueError(
                f"q, k, v must share (B, heads, n) and q, k their feature size d; got q {tuple(q.shape)}, "
                f"k {tuple(k.shape)}, v {tuple(v.shape)}"
            )
        q = q.softmax(dim=-1) / math.sqrt(self.dim_head)
        k = k.softmax(dim=-2)
        context = torch.einsum("bhnd,bhne->bhde", k, v)  # (d x e) per head: the O(n) summary
        return torch.einsum("bhnd,bhde->bhne", q, context)


class Downsample(nn.Module):
    """Halve the height and width with a stride-2 4x4 convolution (``c_in -> c_out`` channels)."""

    def __init__(self, c_in: int, c_out: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        c_in, c_out = _positive_ints(c_in=c_in, c_out=c_out)
        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.c_in = c_in
        self.conv = _conv(c_in, c_out, 4, padding_mode, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W)`` with even H and W -> ``(B, c_out, H/2, W/2)``."""
        _check_feature_map(x, self.c_in, self)
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            raise InputValueError(f"Downsample halves the image, so H and W must be even; got {tuple(x.shape[-2:])}")
        return self.conv(x)


class Upsample(nn.Module):
    """Double the height and width: nearest-neighbour copy, then a 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        c_in, c_out = _positive_ints(c_in=c_in, c_out=c_out)
        check_choice(padding_mode, PADDING_MODES, "padding_mode")
        self.c_in = c_in
        self.conv = _conv(c_in, c_out, 3, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W)`` -> ``(B, c_out, 2H, 2W)``."""
        _check_feature_map(x, self.c_in, self)
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


# ----------------------------------------------------------------------------------------- U-Net
class _Level(nn.Module):
    """Two blocks, optional attention and a resampling layer (one level of one side of the U)."""

    def __init__(self, block1: nn.Module, block2: nn.Module, attn: nn.Module | None, resample: nn.Module) -> None:
        super().__init__()
        self.block1, self.block2, self.resample = block1, block2, resample
        self.attn = attn if attn is not None else nn.Identity()


class UNet(nn.Module):
    r"""A time- (and optionally class-) conditioned U-Net: ``model(x_t, t, y=None) -> (B, out, H, W)``.

    Args:
        in_channels: channels of the images (1 for digits and MNIST).
        dim: base width; level ``i`` has ``dim * dim_mults[i]`` channels.
        dim_mults: width multipliers, one per resolution level; ``L = len(dim_mults)`` levels,
            so H and W must be divisible by ``2 ** (L - 1)`` (e.g. ``(1, 2)``: 8x8 and 4x4).
        out_channels: output channels; default ``in_channels`` (``2 * in_channels`` with
            ``learned_variance``).
        block_type: ``"resnet"`` or ``"convnext"``.
        attention: ``None`` (none), ``"full"`` / ``"linear"`` (at every level), or a sequence of
            ``L`` entries, one per level, each ``"full"``, ``"linear"`` or ``None``.
        attention_resolutions: optionally, the image sizes (e.g. ``(4,)``) at which to use the
            kind given by ``attention``; needs ``image_size``.
        mid_attention: attention in the middle (``"full"``, ``"linear"`` or ``None``).
        groups: GroupNorm groups of the ResNet blocks and attention (reduced to a divisor of the
            channel count where needed).
        num_classes: if set, ``y`` (labels ``0..num_classes-1``) is embedded and added to the
            time embedding; ``y=None`` or ``y == num_classes`` (the null label) is unconditional.
        learned_variance: output ``2 * in_channels`` channels (mean part, then variance part).
        num_timesteps: T; if given, ``t`` outside 1..T raises an error.
        image_size: if given, inputs must have this height and width.
        attn_heads, attn_dim_head: heads and width per head of the attention layers.
        time_conditioning: ``"scale_shift"`` or ``"add"`` (ResNet blocks only).
        convnext_mult: inner width multiplier of the ConvNeXt blocks.
        dropout: dropout rate inside the ResNet blocks.
        padding_mode: ``"zeros"`` or ``"circular"`` for every convolution.
        fourier_exponents: integers ``n``; for each, the channels ``sin(2^n pi x_t)`` and
            ``cos(2^n pi x_t)`` are appended to the input (Fourier features, Kingma et al. 2021).
            They let the network resolve details finer than the data's quantisation step
            (see :func:`fourier_features`); ``()`` (default) uses ``x_t`` alone.
    """

    def __init__(
        self,
        in_channels: int = 1,
        dim: int = 32,
        dim_mults: Sequence[int] = (1, 2),
        out_channels: int | None = None,
        block_type: str = "resnet",
        attention: str | None | Sequence[str | None] = "linear",
        attention_resolutions: Sequence[int] | None = None,
        mid_attention: str | None = "full",
        groups: int = 8,
        num_classes: int | None = None,
        learned_variance: bool = False,
        num_timesteps: int | None = None,
        image_size: int | None = None,
        attn_heads: int = 4,
        attn_dim_head: int = 16,
        time_conditioning: str = "scale_shift",
        convnext_mult: int = 2,
        dropout: float = 0.0,
        padding_mode: str = "zeros",
        fourier_exponents: Sequence[int] = (),
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("dim", dim), ("groups", groups),
                        ("attn_heads", attn_heads), ("attn_dim_head", attn_dim_head), ("convnext_mult", convnext_mult)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputValueError(f"UNet: {name} must be a positive int, got {v!r}")
        if dim % 2:
            raise InputValueError(f"UNet: dim must be even (the sinusoidal time code has dim/2 sines and dim/2 cosines), got {dim}")
        dim_mults = tuple(dim_mults)
        if not dim_mults or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in dim_mults):
            raise InputValueError(f"UNet: dim_mults must be a non-empty sequence of positive ints, e.g. (1, 2); got {dim_mults!r}")
        if block_type not in BLOCK_TYPES:
            raise InputValueError(f"UNet: unknown block_type {block_type!r}; allowed: {BLOCK_TYPES}")
        if padding_mode not in PADDING_MODES:
            raise InputValueError(f"UNet: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise InputValueError(f"UNet: num_classes must be a positive int or None, got {num_classes!r}")
        if num_timesteps is not None and (isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 1):
            raise InputValueError(f"UNet: num_timesteps must be a positive int (T) or None, got {num_timesteps!r}")
        fourier_exponents = tuple(fourier_exponents)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in fourier_exponents):
            raise InputValueError(f"UNet: fourier_exponents must be ints n (features sin(2^n pi x)), got {fourier_exponents!r}")
        check_choice(time_conditioning, TIME_CONDITIONINGS, "time_conditioning")
        dropout = check_real(dropout, "dropout", minimum=0.0, maximum=1.0)
        if out_channels is not None:
            out_channels = check_int(out_channels, "out_channels", minimum=1)
        if mid_attention is not None and mid_attention not in ATTENTION_TYPES:
            raise InputValueError(f"UNet: mid_attention must be 'full', 'linear' or None, got {mid_attention!r}")
        if attention is not None and not isinstance(attention, (str, Sequence)):
            raise InputTypeError(
                f"UNet: attention must be 'full', 'linear', None or a sequence of those (one per level), got {attention!r}"
            )
        if attention_resolutions is not None and (isinstance(attention_resolutions, str) or not isinstance(attention_resolutions, Sequence)):
            raise InputTypeError(f"UNet: attention_resolutions must be a sequence of image sizes, got {attention_resolutions!r}")
        self._config = dict(
            in_channels=in_channels, dim=dim, dim_mults=list(dim_mults), out_channels=out_channels,
            block_type=block_type,
            attention=attention if attention is None or isinstance(attention, str) else list(attention),
            attention_resolutions=None if attention_resolutions is None else list(attention_resolutions),
            mid_attention=mid_attention, groups=groups, num_classes=num_classes,
            learned_variance=bool(learned_variance), num_timesteps=num_timesteps, image_size=image_size,
            attn_heads=attn_heads, attn_dim_head=attn_dim_head, time_conditioning=time_conditioning,
            convnext_mult=convnext_mult, dropout=float(dropout), padding_mode=padding_mode,
            fourier_exponents=list(fourier_exponents),
        )
        L = len(dim_mults)
        self.num_levels = L
        factor = 2 ** (L - 1)
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1 or image_size % factor):
            raise InputValueError(
                f"UNet: image_size={image_size!r} must be a positive int divisible by 2**(levels-1) = {factor} "
                f"for dim_mults={dim_mults}: every level but the last halves the image"
            )
        per_level = self._attention_per_level(attention, attention_resolutions, image_size, L)
        self.in_channels = in_channels
        self.learned_variance = bool(learned_variance)
        default_out = in_channels * (2 if self.learned_variance else 1)
        self.out_channels = default_out if out_channels is None else int(out_channels)
        if self.learned_variance and self.out_channels != 2 * in_channels:
            raise InputValueError(
                f"UNet: learned_variance=True needs out_channels = 2 * in_channels = {2 * in_channels} "
                f"(mean part, then variance part); got out_channels={out_channels}"
            )
        self.num_classes = num_classes
        self.num_timesteps = num_timesteps
        self.image_size = image_size
        self.block_type = block_type
        self.attention_per_level = per_level
        self.mid_attention = mid_attention

        emb_dim = 4 * dim
        self.time_embed = SinusoidalTimeEmbedding(dim, emb_dim)
        # label num_classes is the reserved "null" label (unconditional)
        self.class_embed = nn.Embedding(num_classes + 1, emb_dim) if num_classes is not None else None

        def block(c_in: int, c_out: int) -> nn.Module:
            if block_type == "resnet":
                return ResnetBlock(c_in, c_out, emb_dim, groups, time_conditioning, dropout, padding_mode)
            return ConvNextBlock(c_in, c_out, emb_dim, mult=convnext_mult, padding_mode=padding_mode)

        def attn(kind: str | None, c: int) -> nn.Module | None:
            if kind is None:
                return None
            cls = Attention if kind == "full" else LinearAttention
            return cls(c, attn_heads, attn_dim_head, groups)

        widths = [dim * m for m in dim_mults]
        self.fourier_exponents = fourier_exponents
        self.init_conv = _conv(in_channels * (1 + 2 * len(fourier_exponents)), dim, 3, padding_mode)
        self.downs = nn.ModuleList()
        c_prev = dim
        for i, c in enumerate(widths):
            last = i == L - 1
            resample = Downsample(c_prev, c, padding_mode) if not last else _conv(c_prev, c, 3, padding_mode)
            self.downs.append(_Level(block(c_prev, c_prev), block(c_prev, c_prev), attn(per_level[i], c_prev), resample))
            c_prev = c
        mid = widths[-1]
        self.mid_block1 = block(mid, mid)
        self.mid_attn = attn(mid_attention, mid) or nn.Identity()
        self.mid_block2 = block(mid, mid)
        self.ups = nn.ModuleList()
        for i in reversed(range(L)):
            c_skip = widths[i - 1] if i > 0 else dim  # channels stored on the way down at this level
            c = widths[i]
            first = i == 0
            resample = Upsample(c, c_skip, padding_mode) if not first else _conv(c, c_skip, 3, padding_mode)
            self.ups.append(_Level(block(c + c_skip, c), block(c + c_skip, c), attn(per_level[i], c), resample))
        self.final_block = block(2 * dim, dim)
        self.final_conv = nn.Conv2d(dim, self.out_channels, 1)

    # ------------------------------------------------------------------ configuration helpers
    @staticmethod
    def _attention_per_level(attention: Any, resolutions: Sequence[int] | None, image_size: int | None, L: int) -> tuple:
        def check_kind(kind: Any) -> str | None:
            if kind is not None and kind not in ATTENTION_TYPES:
                raise InputValueError(f"UNet: attention kinds are 'full', 'linear' or None; got {kind!r}")
            return kind

        if resolutions is not None:
            if image_size is None:
                raise InputValueError("UNet: attention_resolutions needs image_size (to know the size of each level)")
            if not isinstance(attention, str):
                raise InputValueError("UNet: with attention_resolutions, attention must be 'full' or 'linear'")
            sizes = [image_size // 2**i for i in range(L)]
            unknown = [r for r in resolutions if r not in sizes]
            if unknown:
                raise InputValueError(f"UNet: attention_resolutions {tuple(unknown)} are not among the level sizes {tuple(sizes)}")
            return tuple(check_kind(attention) if s in resolutions else None for s in sizes)
        if attention is None or isinstance(attention, str):
            return (check_kind(attention),) * L
        if not isinstance(attention, Sequence):
            raise InputTypeError(
                f"UNet: attention must be 'full', 'linear', None or a sequence of those (one per level), got {attention!r}"
            )
        kinds = tuple(attention)
        if len(kinds) != L:
            raise InputValueError(
                f"UNet: attention has {len(kinds)} entries but there are {L} levels (dim_mults); give one "
                f"of 'full', 'linear', None per level, or a single string for all levels"
            )
        return tuple(check_kind(k) for k in kinds)

    def config(self) -> dict:
        """The constructor arguments (plain ints, strings, lists), as stored in checkpoints."""
        return dict(self._config)

    # ------------------------------------------------------------------ forward
    def _check_inputs(self, x: Any, t: Any, y: Any) -> None:
        if not isinstance(x, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise InputTypeError("call the U-Net as model(x_t, t) with x_t a float tensor (B, C, H, W) and t a LongTensor (B,)")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputValueError(
                f"x_t must have shape (B, {self.in_channels}, H, W) (a batch of {self.in_channels}-channel images); "
                f"got {tuple(x.shape)}" + (". Add the channel dimension with x.unsqueeze(1)" if x.ndim == 3 else "")
            )
        if not x.is_floating_point():
            raise InputTypeError(f"x_t must be a float tensor (images on the [-1, 1] scale), got dtype {x.dtype}")
        check_input_dtype(x, self.init_conv.weight.dtype, "x_t", "this U-Net")
        H, W = x.shape[-2:]
        factor = 2 ** (self.num_levels - 1)
        if H % factor or W % factor:
            raise InputValueError(
                f"the image size {H}x{W} is not divisible by 2**(levels-1) = {factor}: this U-Net has "
                f"{self.num_levels} levels and halves the image {self.num_levels - 1} times. Pad or crop the "
                f"images, or use fewer dim_mults"
            )
        if self.image_size is not None and (H, W) != (self.image_size, self.image_size):
            raise InputValueError(f"this U-Net was built for {self.image_size}x{self.image_size} images, got {H}x{W}")
        self._check_t_y(t, y, x.shape[0])
        check_finite(x, "x_t")

    def _check_t_y(self, t: Any, y: Any, batch: int) -> None:
        if not isinstance(t, torch.Tensor):
            raise InputTypeError(f"t must be a LongTensor of shape (B,) = ({batch},), got {type(t).__name__}")
        if t.ndim != 1 or t.shape[0] != batch:
            raise InputValueError(
                f"t must have shape (B,) = ({batch},), one timestep per image; got {tuple(t.shape)}. "
                "Use torch.full((B,), t, dtype=torch.long) for one timestep for the whole batch"
            )
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise InputTypeError(f"t must be an integer (Long) tensor of timesteps 1..T, got dtype {t.dtype}")
        if t.numel():
            lo, hi = int(t.min()), int(t.max())
            top = self.num_timesteps
            if lo < 1 or (top is not None and hi > top):
                raise InputValueError(
                    f"timesteps must lie in 1..T{'' if top is None else f' = 1..{top}'} (t counts from 1; t = 0 is "
                    f"the data itself); got values in [{lo}, {hi}]"
                )
        if y is not None:
            if self.num_classes is None:
                raise InputValueError("this U-Net is unconditional (num_classes=None); call it without y")
            if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != batch or y.is_floating_point() \
                    or y.is_complex() or y.dtype == torch.bool:
                raise InputValueError(f"y must be a LongTensor of shape ({batch},) with one class label per image")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
                raise InputValueError(
                    f"labels must lie in 0..{self.num_classes - 1}, or be {self.num_classes} (the null label = "
                    f"unconditional); got values in [{int(y.min())}, {int(y.max())}]"
                )

    def embed(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning vector ``e`` of every block: ``MLP(sinusoidal(t)) + class_embedding(y)``.

        ``t`` is a LongTensor ``(B,)`` of timesteps, ``y`` optional labels ``(B,)``; returns ``(B, 4 * dim)``.
        """
        self._check_t_y(t, y, t.shape[0] if isinstance(t, torch.Tensor) and t.ndim == 1 else -1)
        return self._embed(t, y)

    def _embed(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        te = self.time_embed
        code = sinusoidal_embedding(t, te.dim, te.max_period)
        emb = te.mlp(code.to(self.init_conv.weight.dtype))  # follow the model's dtype (float64 in tests)
        if self.class_embed is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes)
            emb = emb + self.class_embed(y.long())
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                return_shapes: bool = False, use_skips: bool = True) -> torch.Tensor | tuple[torch.Tensor, list[tuple[str, tuple]]]:
        """Predict from ``x_t`` (B, C, H, W) at timesteps ``t`` (B,) and optional labels ``y`` (B,).

        With ``return_shapes=True`` also return a list ``(stage name, tensor shape)`` after every
        stage (the book's walk-through prints it). ``use_skips=False`` replaces every skip tensor
        by zeros (an ablation for the book: all information must then pass the bottleneck).
        """
        self._check_inputs(x, t, y)
        token = _INSIDE_UNET.set(True)
        try:
            return self._forward(x, t, y, return_shapes, use_skips)
        finally:
            _INSIDE_UNET.reset(token)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, return_shapes: bool,
                 use_skips: bool) -> torch.Tensor | tuple[torch.Tensor, list[tuple[str, tuple]]]:
        shapes: list[tuple[str, tuple]] = []

        def note(name: str, h: torch.Tensor) -> torch.Tensor:
            if return_shapes:
                shapes.append((name, tuple(h.shape)))
            return h

        emb = note("embedding e", self._embed(t, y))
        if self.fourier_exponents:
            x = note("x_t + Fourier features", fourier_features(x, self.fourier_exponents))
        h = note("init conv", self.init_conv(x))
        h0 = h if use_skips else torch.zeros_like(h)
        skips = []
        for i, lvl in enumerate(self.downs):
            h = note(f"down {i + 1}: block 1", lvl.block1(h, emb))
            skips.append(h if use_skips else torch.zeros_like(h))
            h = lvl.attn(lvl.block2(h, emb))
            note(f"down {i + 1}: block 2 + attention", h)
            skips.append(h if use_skips else torch.zeros_like(h))
            h = note(f"down {i + 1}: " + ("downsample" if i < self.num_levels - 1 else "conv"), lvl.resample(h))
        h = note("middle: block 1", self.mid_block1(h, emb))
        h = note("middle: attention", self.mid_attn(h))
        h = note("middle: block 2", self.mid_block2(h, emb))
        for j, lvl in enumerate(self.ups):
            i = self.num_levels - j
            h = note(f"up {i}: cat skip + block 1", lvl.block1(torch.cat([h, skips.pop()], dim=1), emb))
            h = lvl.attn(lvl.block2(torch.cat([h, skips.pop()], dim=1), emb))
            note(f"up {i}: cat skip + block 2 + attention", h)
            h = note(f"up {i}: " + ("upsample" if i > 1 else "conv"), lvl.resample(h))
        h = note("cat init + final block", self.final_block(torch.cat([h, h0], dim=1), emb))
        out = note("output conv", self.final_conv(h))
        return (out, shapes) if return_shapes else out
