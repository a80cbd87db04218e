"""Data sets used throughout the book: the 2-D Swiss roll and the 8x8 digits.

Both ship with scikit-learn, so nothing is downloaded and every chapter runs offline.

* ``swiss_roll`` draws points from a 2-D Swiss roll: scikit-learn's 3-D roll, keeping
  columns 0 and 2 and dividing by 10, so the noise-free roll lies in [-0.95, 1.27] x [-1.1, 1.42].
* ``load_digits_split`` returns one part of the fixed split of scikit-learn's 1,797 digits
  (the UCI optical-recognition set, 8x8 images whose pixels take the 17 values 0..16):
  ``train`` = the first 1,000 images in ``load_digits()`` order, ``val`` = the next 350,
  ``test`` = the last 447. Every chapter uses this split, so numbers are comparable.
  Pixels are mapped from the level v in {0, ..., 16} to x = v / 8 - 1 in [-1, 1].
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
import torch

from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "swiss_roll",
    "load_digits_split",
    "digits_to_levels",
    "quantize_digits",
    "DIGITS_NUM_LEVELS",
    "DIGITS_SPLITS",
]

#: Number of distinct pixel values in the digits (0, 1, ..., 16).
DIGITS_NUM_LEVELS: int = 17
#: The fixed split, as half-open index ranges into ``sklearn.datasets.load_digits()`` order.
DIGITS_SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 1000),
    "val": (1000, 1350),
    "test": (1350, 1797),
}
_SPLIT_ALIASES = {"validation": "val", "valid": "val"}
_MAX_LEVEL = DIGITS_NUM_LEVELS - 1  # 16
_HALF = _MAX_LEVEL / 2  # 8: x = v / 8 - 1


def _count(value: object, name: str, minimum: int) -> int:
    """An int (Python, NumPy or 0-dim integer tensor) >= ``minimum``; ``InputValueError`` otherwise."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point() and value.dtype != torch.bool:
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        kind = "a positive int" if minimum == 1 else f"a non-negative int"
        raise InputValueError(f"swiss_roll: {name} must be {kind}, got {value!r}")
    return int(value)


def swiss_roll(n: int, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Draw ``n`` points from the 2-D Swiss roll, as a float32 tensor of shape ``(n, 2)``.

    The points are ``sklearn.datasets.make_swiss_roll(n, noise=noise, random_state=seed)``
    with columns 0 and 2 kept and divided by 10: with the roll parameter
    s ~ Uniform(1.5 pi, 4.5 pi), a point is (s cos s, s sin s) / 10 plus Gaussian noise of
    standard deviation ``noise / 10`` per coordinate.

    Args:
        n: number of points, a positive int (NumPy ints too).
        noise: standard deviation of the Gaussian noise scikit-learn adds *before* the
            division by 10 (so ``noise=0.5`` gives a spread of 0.05 in the returned units).
        seed: seed of the random draw, an int in 0..2**32 - 1; the same seed gives the same points.
    """
    n = _count(n, "n (number of points)", 1)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(float(noise)) or float(noise) < 0:
        raise InputValueError(f"swiss_roll: noise must be a finite float >= 0 (a standard deviation), got {noise!r}")
    seed = _count(seed, "seed", 0)
    if seed >= 2**32:
        raise InputValueError(f"swiss_roll: seed must be a non-negative int below 2**32 (NumPy's limit), got {seed}")
    from sklearn.datasets import make_swiss_roll

    points, _ = make_swiss_roll(n_samples=n, noise=float(noise), random_state=seed)
    return torch.from_numpy(points[:, [0, 2]] / 10.0).to(torch.float32)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.int64)  # (1797, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _canonical_split(split: str) -> str:
    if not isinstance(split, str):
        raise InputTypeError(f"split must be a string, one of {sorted(DIGITS_SPLITS)}, got {type(split).__name__}")
    key = _SPLIT_ALIASES.get(split.lower(), split.lower())
    if key not in DIGITS_SPLITS:
        raise InputValueError(
            f"unknown digits split {split!r}; allowed splits are 'train' (first 1000 images), "
            f"'val' (next 350) and 'test' (last 447)"
        )
    return key


def load_digits_split(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)`` of one part of the book's fixed split of the 8x8 digits.

    ``images`` is a float32 tensor of shape ``(N, 1, 8, 8)`` with values x = v / 8 - 1 in
    [-1, 1], where v in {0, ..., 16} is the original pixel level; ``labels`` is a LongTensor
    of shape ``(N,)`` with the digit classes 0..9.

    Args:
        split: ``"train"`` (images 0-999 of ``load_digits()``), ``"val"`` (1000-1349,
            alias ``"validation"``) or ``"test"`` (1350-1796).
    """
    start, stop = DIGITS_SPLITS[_canonical_split(split)]
    images, labels = _digits_arrays()
    levels = torch.from_numpy(images[start:stop].copy()).unsqueeze(1)
    return _levels_to_digits(levels), torch.from_numpy(labels[start:stop].copy())


def _levels_to_digits(levels: torch.Tensor) -> torch.Tensor:
    """Map integer pixel levels v in {0, ..., 16} (a checked integer tensor) to x = v / 8 - 1 in [-1, 1]."""
    return levels.to(torch.float32) / _HALF - 1.0


def digits_to_levels(images: torch.Tensor) -> torch.Tensor:
    """Map images on the [-1, 1] scale to the nearest pixel level v = round(8 (x + 1)) in {0, ..., 16}.

    Finite values outside [-1, 1] (e.g. from a sampler) are clipped to the nearest end level, so
    this also quantizes a model's continuous samples; NaN and infinity are refused. Returns a
    LongTensor of the same shape.
    """
    if not isinstance(images, torch.Tensor):
        raise InputTypeError(f"digits_to_levels expects a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise InputTypeError(
            f"digits_to_levels expects a float tensor on the [-1, 1] scale, got dtype {images.dtype}; "
            "integer tensors are probably already levels"
        )
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise InputValueError(
            "digits_to_levels: the images contain NaN or infinite values (a diverged sampler?); "
            "only finite images can be mapped to pixel levels"
        )
    return torch.round((images.clamp(-1.0, 1.0) + 1.0) * _HALF).to(torch.long)


def quantize_digits(images: torch.Tensor) -> torch.Tensor:
    """Round float images on the [-1, 1] scale to the nearest of the 17 valid pixel values (float32).

    Values outside [-1, 1] are clipped first; NaN and infinity are refused.
    """
    return _levels_to_digits(digits_to_levels(images))
