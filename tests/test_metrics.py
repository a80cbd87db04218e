"""Tests of diffusion_lib.eval.metrics: exact W2^2 against closed forms and brute force."""

import itertools

import numpy as np
import pytest
import torch

from diffusion_lib.data import swiss_roll
from diffusion_lib.eval.metrics import (
    W2Estimate,
    w2_floor,
    w2_gaussian_ceiling,
    w2_to_reference,
    wasserstein2_squared,
)


def test_translation_gives_squared_shift():
    # Moving every point by the same vector v costs exactly |v|^2 (the identity matching is optimal).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g)
    v = torch.tensor([0.3, -0.4])
    assert wasserstein2_squared(x, x + v) == pytest.approx(0.25, rel=1e-6)


def test_identical_clouds_in_any_order_cost_zero():
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(2))
    assert wasserstein2_squared(x, x[perm]) == pytest.approx(0.0, abs=1e-12)


def test_matches_brute_force_over_permutations():
    # For equal sizes the optimal coupling is a permutation: check against all 6! of them.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    best = min(np.mean(np.sum((x - y[list(p)]) ** 2, axis=1)) for p in itertools.permutations(range(6)))
    assert wasserstein2_squared(x, y) == pytest.approx(best, rel=1e-9)


def test_unequal_sizes_one_dimension_closed_form():
    # 1-D: W2^2 between {0, 1} (weights 1/2) and {0, 1/2, 1} (weights 1/3) by quantile functions:
    # the monotone coupling sends mass 1/6 from 0 and from 1 to 1/2, each at cost 1/4.
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [0.5], [1.0]])
    assert wasserstein2_squared(x, y) == pytest.approx(2 * (1 / 6) * 0.25, rel=1e-9)


def test_swiss_roll_floor_and_ceiling_levels():
    ref = lambda n, seed: swiss_roll(n, seed=seed)  # noqa: E731
    floor = w2_floor(ref, n=1000, repeats=2)
    ceil = w2_gaussian_ceiling(ref, n=1000, repeats=1)
    # Independent draws of the same roll are close; N(0, I) is ~30x further away.
    assert 0.001 < floor.mean < 0.04
    assert 0.35 < ceil.mean < 0.55
    assert isinstance(floor, W2Estimate) and len(floor.values) == 2 and floor.sem >= 0


def test_w2_to_reference_uses_blocks():
    ref = lambda n, seed: swiss_roll(n, seed=seed)  # noqa: E731
    est = w2_to_reference(swiss_roll(1500, seed=5), ref, n=500)
    assert len(est.values) == 3 and est.mean < 0.05
    with pytest.raises(ValueError, match="fewer than one block"):
        w2_to_reference(torch.zeros(10, 2), ref, n=500)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(5), torch.zeros(5, 2), "shape \\(n, d\\)"),
        (torch.zeros(5, 2), torch.zeros(5, 3), "same space"),
        (torch.full((5, 2), float("nan")), torch.zeros(5, 2), "NaN"),
        ([[0.0, 1.0]], torch.zeros(5, 2), "torch.Tensor or numpy array"),
    ],
)
def test_bad_inputs_explain_the_problem(x, y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        wasserstein2_squared(x, y)


def test_w2_ratio_is_the_ratio_of_means_with_first_order_error():
    from diffusion_lib.eval.metrics import w2_ratio

    score, floor = W2Estimate((0.30, 0.34, 0.32, 0.36)), W2Estimate((0.010, 0.012, 0.014))
    ratio, sem = w2_ratio(score, floor)
    a, b = np.mean([0.30, 0.34, 0.32, 0.36]), np.mean([0.010, 0.012, 0.014])
    sa = np.std([0.30, 0.34, 0.32, 0.36], ddof=1) / 2
    sb = np.std([0.010, 0.012, 0.014], ddof=1) / np.sqrt(3)
    assert ratio == pytest.approx(a / b, rel=1e-12)
    assert sem == pytest.approx(a / b * np.sqrt((sa / a) ** 2 + (sb / b) ** 2), rel=1e-12)
    # a single value has no spread: only the floor's error remains; a zero score has ratio 0
    assert w2_ratio(W2Estimate((0.5,)), floor)[1] == pytest.approx(0.5 / b * sb / b, rel=1e-12)
    assert w2_ratio(W2Estimate((0.0, 0.0)), floor) == (0.0, 0.0)
    with pytest.raises(ValueError, match="floor must be positive"):
        w2_ratio(score, W2Estimate((0.0,)))
    with pytest.raises(TypeError, match="two W2Estimate"):
        w2_ratio(0.3, floor)


def test_w2_estimate_refuses_values_that_are_not_w2():
    with pytest.raises(ValueError, match="empty"):
        W2Estimate(())
    with pytest.raises(ValueError, match=r"values\[1\]"):
        W2Estimate((0.1, float("nan")))
    with pytest.raises(ValueError, match=">= 0"):
        W2Estimate((-0.1,))
    assert W2Estimate([np.float32(0.25)]).values == (0.25,)
