r"""Augmentation of the 8x8 digits that keeps a digit a digit: :func:`augment_digits`.

A transformation may be used for training only if the augmented image is still a plausible digit
*and* lies on the data grid, so that the discretised bound of the model stays defined. Flips and
rotations fail the first test (a mirrored 3 is no digit; a rotated 8x8 image needs
interpolation off the grid). A one-pixel translation passes both: the digits are centred by the
scanner to within about a pixel, and moving the image fills one border row or column with the
background level. ``"shift"`` moves each image, with probability 1/2, by one pixel up, down,
left or right (the direction drawn uniformly); the pixels that enter are background (-1).

Implements the augmentation of the recipe in ``checkpoints/README.md`` (chapter ``evaluation_digits``).
"""

from __future__ import annotations

import torch

from diffusion_lib._checks import check_choice, check_floating
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["AUGMENTATIONS", "augment_digits"]

#: Names accepted by :func:`augment_digits` (and by a run's ``config["augment"]``).
AUGMENTATIONS: tuple[str, ...] = ("none", "shift")

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns): up, down, left, right


def augment_digits(images: torch.Tensor, kind: str = "shift", generator: torch.Generator | None = None,
                   background: float = -1.0) -> torch.Tensor:
    """``images`` (B, C, H, W) augmented by ``kind`` (a new tensor; ``"none"`` returns the input).

    ``"shift"``: each image is kept with probability 1/2, otherwise moved by one pixel in one of
    the four directions, the uncovered border filled with ``background``. Two draws per image
    come from ``generator`` (whether to move, which way). Values stay on the input's grid.
    """
    check_choice(kind, AUGMENTATIONS, "kind")
    check_floating(images, "images")
    if images.ndim != 4:
        raise InputValueError(f"images must be a batch (B, C, H, W), got shape {tuple(images.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if kind == "none":
        return images
    B = images.shape[0]
    move = torch.rand(B, generator=generator) < 0.5
    direction = torch.randint(0, len(_MOVES), (B,), generator=generator)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), value=background)
    H, W = images.shape[-2:]
    out = images.clone()
    for k, (dr, dc) in enumerate(_MOVES):
        rows = (move & (direction == k)).nonzero().flatten()
        if rows.numel():
            # the image moved by (dr, dc) reads the padded one at offset (1 - dr, 1 - dc)
            out[rows] = padded[rows, :, 1 - dr : 1 - dr + H, 1 - dc : 1 - dc + W]
    return out
