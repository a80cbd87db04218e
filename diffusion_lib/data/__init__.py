"""Data sets: the Swiss roll and the 8x8 digits that ship with scikit-learn, and the optional online image sets."""

from __future__ import annotations

from diffusion_lib.data.builtin import (
    swiss_roll,
    load_digits_split,
    digits_to_levels,
    levels_to_digits,
    quantize_digits,
    DIGITS_NUM_LEVELS,
    DIGITS_SPLITS,
    DIGITS_SHAPE,
)
from diffusion_lib.data.online import (
    read_idx,
    write_idx,
    load_mnist,
    load_fashion_mnist,
    download,
    MIRRORS,
    FILES,
)

__all__ = [
    "swiss_roll",
    "load_digits_split",
    "digits_to_levels",
    "levels_to_digits",
    "quantize_digits",
    "DIGITS_NUM_LEVELS",
    "DIGITS_SPLITS",
    "DIGITS_SHAPE",
    "read_idx",
    "write_idx",
    "load_mnist",
    "load_fashion_mnist",
    "download",
    "MIRRORS",
    "FILES",
]
