"""Evaluation: the 2-D Wasserstein distance, the digit Fréchet distance and its classifier, bounds and samples of the digit models."""

from __future__ import annotations

from diffusion_lib.eval.digits import (
    BoundResult,
    negative_bound,
    stratified_timesteps,
    independent_pixel_nll,
    SampleResult,
    sample_digits,
    ddim_invert,
    slerp,
    load_digits_reference,
    write_digits_reference,
)
from diffusion_lib.eval.fid import (
    FEATURE_DIM,
    DEFAULT_CLASSIFIER_PATH,
    DigitClassifier,
    ClassifierTrainResult,
    train_digit_classifier,
    save_digit_classifier,
    load_digit_classifier,
    classifier_accuracy,
    feature_statistics,
    frechet_distance,
    FrechetDigitDistance,
)
from diffusion_lib.eval.metrics import (
    wasserstein2_squared,
    W2Estimate,
    w2_to_reference,
    w2_floor,
    w2_gaussian_ceiling,
    w2_ratio,
)

__all__ = [
    "BoundResult",
    "negative_bound",
    "stratified_timesteps",
    "independent_pixel_nll",
    "SampleResult",
    "sample_digits",
    "ddim_invert",
    "slerp",
    "load_digits_reference",
    "write_digits_reference",
    "FEATURE_DIM",
    "DEFAULT_CLASSIFIER_PATH",
    "DigitClassifier",
    "ClassifierTrainResult",
    "train_digit_classifier",
    "save_digit_classifier",
    "load_digit_classifier",
    "classifier_accuracy",
    "feature_statistics",
    "frechet_distance",
    "FrechetDigitDistance",
    "wasserstein2_squared",
    "W2Estimate",
    "w2_to_reference",
    "w2_floor",
    "w2_gaussian_ceiling",
    "w2_ratio",
]
