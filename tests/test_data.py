"""Tests for diffusion_lib.data: the Swiss roll convention and the fixed digits split."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_swiss_roll

from diffusion_lib.data import (
    DIGITS_NUM_LEVELS,
    DIGITS_SPLITS,
    digits_to_levels,
    load_digits_split,
    quantize_digits,
    swiss_roll,
)

# ----------------------------------------------------------------------------- Swiss roll


def test_swiss_roll_is_sklearn_columns_0_and_2_over_10():
    x = swiss_roll(500, noise=0.3, seed=7)
    ref, _ = make_swiss_roll(n_samples=500, noise=0.3, random_state=7)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), ref[:, [0, 2]] / 10.0, rtol=1e-6, atol=1e-7)


def test_swiss_roll_noise_free_points_lie_on_the_spiral():
    # Without noise a point is (s cos s, s sin s) / 10 with s in [1.5 pi, 4.5 pi]: its radius
    # times 10 is s, and its polar angle equals s modulo 2 pi.
    x = swiss_roll(2000, noise=0.0, seed=1).double()
    s = 10 * x.norm(dim=1)
    assert s.min() >= 1.5 * math.pi - 1e-4 and s.max() <= 4.5 * math.pi + 1e-4
    angle = torch.atan2(x[:, 1], x[:, 0])
    diff = torch.remainder(angle - s + math.pi, 2 * math.pi) - math.pi
    assert diff.abs().max() < 1e-4
    # s is uniform on [1.5 pi, 4.5 pi]: mean 3 pi, standard deviation 3 pi / sqrt(12)
    assert abs(s.mean().item() - 3 * math.pi) < 0.15
    assert abs(s.std().item() - 3 * math.pi / math.sqrt(12)) < 0.1


def test_swiss_roll_noise_has_the_stated_scale():
    clean = swiss_roll(4000, noise=0.0, seed=3)
    noisy = swiss_roll(4000, noise=0.5, seed=3)
    # scikit-learn draws s first and the noise afterwards from the same stream, so the
    # difference is the noise itself: N(0, (0.5 / 10)^2) per coordinate.
    d = noisy - clean
    assert abs(d.mean().item()) < 0.003
    assert abs(d.std().item() - 0.05) < 0.003


def test_swiss_roll_seeds():
    assert torch.equal(swiss_roll(100, seed=5), swiss_roll(100, seed=5))
    assert not torch.allclose(swiss_roll(100, seed=5), swiss_roll(100, seed=6))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0), "positive int"),
        (dict(n=2.5), "positive int"),
        (dict(n=10, noise=-0.1), "noise"),
        (dict(n=10, noise=float("nan")), "noise"),
        (dict(n=10, seed=-1), "seed"),
    ],
)
def test_swiss_roll_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        swiss_roll(**kwargs)


# ----------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_order():
    bunch = load_digits()
    sizes = {}
    for split, (start, stop) in DIGITS_SPLITS.items():
        images, labels = load_digits_split(split)
        sizes[split] = len(images)
        assert images.shape == (stop - start, 1, 8, 8) and images.dtype == torch.float32
        assert labels.shape == (stop - start,) and labels.dtype == torch.long
        # the same images, in the same order, as load_digits(), mapped by v -> v / 8 - 1
        expected = torch.from_numpy(bunch.images[start:stop]).float() / 8 - 1
        assert torch.equal(images[:, 0], expected)
        assert torch.equal(labels, torch.from_numpy(bunch.target[start:stop]).long())
    assert sizes == {"train": 1000, "val": 350, "test": 447}
    assert sum(sizes.values()) == len(bunch.images) == 1797


def test_digits_values_are_the_17_levels():
    images, labels = load_digits_split("train")
    assert images.min() == -1.0 and images.max() == 1.0
    levels = (images + 1) * 8
    assert torch.equal(levels, levels.round())
    assert len(torch.unique(levels)) == DIGITS_NUM_LEVELS == 17
    assert set(labels.tolist()) == set(range(10))


def test_digits_default_split_and_alias():
    a, _ = load_digits_split()
    b, _ = load_digits_split("train")
    assert torch.equal(a, b)
    c, _ = load_digits_split("validation")
    d, _ = load_digits_split("val")
    assert torch.equal(c, d)


def test_digits_returns_copies():
    a, la = load_digits_split("test")
    a.fill_(0.0)
    la.fill_(0)
    b, lb = load_digits_split("test")
    assert b.min() == -1.0 and lb.max() == 9


def test_digits_unknown_split_lists_allowed():
    with pytest.raises(ValueError, match="'train'.*'val'.*'test'"):
        load_digits_split("training")
    with pytest.raises(TypeError):
        load_digits_split(0)


def test_levels_round_trip_and_quantize():
    levels = torch.arange(17)
    x = levels.float() / 8 - 1
    assert torch.equal(digits_to_levels(x), levels)
    # nearest level, with clipping outside [-1, 1]
    y = torch.tensor([-3.0, -1.0, -0.94, -0.9, 0.05, 0.99, 7.0])
    assert digits_to_levels(y).tolist() == [0, 0, 0, 1, 8, 16, 16]
    q = quantize_digits(torch.linspace(-1.5, 1.5, 101))
    assert torch.equal(quantize_digits(q), q)
    assert torch.all((q + 1) * 8 == ((q + 1) * 8).round())
    # quantization moves a value in [-1, 1] by at most half a level, 1/16
    inside = torch.linspace(-1, 1, 101)
    assert (quantize_digits(inside) - inside).abs().max() <= 1 / 16 + 1e-6


def test_levels_bad_input():
    with pytest.raises(TypeError, match="float"):
        digits_to_levels(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        digits_to_levels(torch.tensor([float("nan")]))
