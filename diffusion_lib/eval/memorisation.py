r"""Has a model learned its training digits by heart? Nearest-neighbour tests of memorisation.

A model that generalises produces samples that are as far from the training digits as *new* real
digits are. A model that memorises produces samples that sit on top of training digits. Both
tests compare a set of samples with held-out real digits (the TEST split) through the Euclidean
distance d(x, TRAIN) = min_j ||x - x_j|| to the nearest training digit:

* the **nearest-neighbour ratio** median_i d(sample_i, TRAIN) / median_j d(test_j, TRAIN): about 1
  for a model that generalises, below 1 when samples crowd the training digits;
* the **near-copy share**: the fraction of samples with d(sample, TRAIN) below the 5 % quantile of
  the held-out digits' distances. Held-out digits score 5 % by construction; a model that copies
  scores far more.

A Fréchet distance cannot see copying: a model that returned its training digits unchanged would
match the statistics of real digits almost perfectly, so its Fréchet distance would be as good as
that of real data (see chapter ``evaluation_digits``).

Implements :eq:`eq-nn-ratio` (chapter ``evaluation_digits``) and :eq:`eq-near-copy` (chapter
``evaluation_digits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion_lib._checks import check_real
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["nearest_train_distance", "MemorisationReport", "memorisation_report"]


def _flat(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise InputTypeError(f"{name} must be a float tensor of images (N, ...), got "
                             f"{type(x).__name__ if not isinstance(x, torch.Tensor) else f'{x.dtype} {tuple(x.shape)}'}")
    if x.shape[0] < 1:
        raise InputValueError(f"{name} is empty: pass at least one image")
    if not bool(torch.isfinite(x).all()):
        raise InputValueError(f"{name} contains NaN or inf; distances need finite images")
    return x.reshape(x.shape[0], -1).double()


def nearest_train_distance(images: torch.Tensor, train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d, j)``: for every image the distance to its nearest training image and that image's index.

    ``images`` (N, ...) and ``train`` (M, ...) must have the same image shape. Euclidean distance
    on the pixel values, float64.
    """
    a, b = _flat(images, "images"), _flat(train, "train")
    if a.shape[1] != b.shape[1]:
        raise InputValueError(f"images {tuple(images.shape[1:])} and train {tuple(train.shape[1:])} must have the same "
                              "image shape")
    d2 = (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)).clamp(min=0.0)
    d2min, j = d2.min(1)
    return d2min.sqrt(), j


@dataclass
class MemorisationReport:
    """What :func:`memorisation_report` returns (all distances in pixel units of [-1, 1] images)."""

    ratio: float  #: median d(sample, TRAIN) / median d(held-out, TRAIN)
    near_copy_share: float  #: share of samples closer to TRAIN than the held-out quantile
    heldout_share: float  #: the same share for the held-out digits (the quantile's level)
    threshold: float  #: the held-out quantile of d(held-out, TRAIN)
    sample_distances: torch.Tensor  #: d(sample_i, TRAIN)
    heldout_distances: torch.Tensor  #: d(held-out_j, TRAIN)
    nearest_index: torch.Tensor  #: index into TRAIN of each sample's nearest training digit


def memorisation_report(samples: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor,
                        quantile: float = 0.05) -> MemorisationReport:
    """Nearest-neighbour ratio and near-copy share of ``samples`` against ``train``, calibrated on ``heldout``.

    ``heldout``: real digits the model never saw (the TEST split); ``quantile``: the level of the
    near-copy threshold (5 %: a held-out digit is a "near copy" 5 % of the time).
    """
    quantile = check_real(quantile, "quantile", minimum=0.0, maximum=1.0, strict=True)
    d_s, j = nearest_train_distance(samples, train)
    d_h, _ = nearest_train_distance(heldout, train)
    if samples.shape[1:] != heldout.shape[1:]:
        raise InputValueError(f"samples {tuple(samples.shape[1:])} and heldout {tuple(heldout.shape[1:])} must have "
                              "the same image shape")
    threshold = float(torch.quantile(d_h, quantile))
    return MemorisationReport(
        ratio=float(d_s.median() / d_h.median()),
        near_copy_share=float((d_s < threshold).double().mean()),
        heldout_share=float((d_h < threshold).double().mean()),
        threshold=threshold, sample_distances=d_s, heldout_distances=d_h, nearest_index=j,
    )
