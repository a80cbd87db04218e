"""Tests of diffusion_lib.eval.fid: the Fréchet distance against closed forms and a 1-D transport
computation, the statistics against NumPy, and the shipped classifier's accuracy and floor."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffusion_lib.data import load_digits_split
from diffusion_lib.eval.fid import (
    DigitClassifier,
    FrechetDigitDistance,
    classifier_accuracy,
    feature_statistics,
    frechet_distance,
    load_digit_classifier,
    save_digit_classifier,
    train_digit_classifier,
)


def _random_cov(d, g):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    d = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert d == pytest.approx(9.0 + (2.0 - 0.5) ** 2, rel=1e-12)
    # commuting (diagonal) covariances: sum of squared std differences
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    d = frechet_distance(torch.zeros(3), torch.diag(v1), torch.zeros(3), torch.diag(v2))
    assert d == pytest.approx(float(((v1.sqrt() - v2.sqrt()) ** 2).sum()), rel=1e-12)
    # general covariances: against scipy's matrix square root of S1 S2
    g = torch.Generator().manual_seed(0)
    s1, s2 = _random_cov(6, g), _random_cov(6, g)
    m1, m2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = float(((m1 - m2) ** 2).sum() + torch.trace(s1) + torch.trace(s2)) - 2 * np.trace(covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(frechet_distance(m2, s2, m1, s1), rel=1e-10)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_is_the_w2_of_gaussian_samples():
    """In 1-D the optimal coupling sorts both samples; W2^2 of large samples -> the formula."""
    g = torch.Generator().manual_seed(1)
    x = 1.0 + 2.0 * torch.randn(200_000, generator=g, dtype=torch.float64)
    y = -0.5 + 0.7 * torch.randn(200_000, generator=g, dtype=torch.float64)
    w2 = float(((x.sort().values - y.sort().values) ** 2).mean())
    mx, sx = feature_statistics(x[:, None])
    my, sy = feature_statistics(y[:, None])
    assert frechet_distance(mx, sx, my, sy) == pytest.approx(w2, rel=1e-3)
    assert w2 == pytest.approx(1.5**2 + 1.3**2, rel=2e-2)


def test_feature_statistics_match_numpy():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(2))
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu.numpy(), f.numpy().mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), np.cov(f.numpy(), rowvar=False), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(f[:1])


def test_frechet_distance_checks_shapes():
    with pytest.raises(ValueError, match="covariance matrix"):
        frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2))


@pytest.fixture(scope="module")
def shipped():
    return load_digit_classifier()


def test_shipped_classifier_is_accurate(shipped):
    x, y = load_digits_split("test")
    assert classifier_accuracy(shipped, x, y) > 0.95
    assert FrechetDigitDistance(shipped).features(x).shape == (447, 64)
    assert shipped.metadata["seed"] == 0


def test_frechet_digit_distance_ranks_real_above_degraded(shipped):
    fd = FrechetDigitDistance(shipped)
    test = load_digits_split("test")[0]
    ref = fd.statistics(test)
    floor = fd(load_digits_split("val")[0], ref)
    g = torch.Generator().manual_seed(0)
    val = load_digits_split("val")[0]
    x_tr, y_tr = load_digits_split("train")
    degraded = {
        "half the classes": x_tr[y_tr < 5],  # real digits, but only 0-4: a mode-dropping model
        "shifted by 2 pixels": torch.roll(val, 2, dims=3),
        "heavy pixel noise": (val + torch.randn(val.shape, generator=g)).clamp(-1, 1),
    }
    noise = torch.rand(350, 1, 8, 8, generator=g) * 2 - 1
    d_noise = fd(noise, ref)
    for name, images in degraded.items():
        d = fd(images, ref)
        assert 2.5 * floor < d < d_noise, name
    mean, std = fd.floor(200, ref, repeats=4)
    assert 0 < std < mean < floor + 3 * std + 5  # TRAIN subsets of 200 sit near the VAL floor
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        fd(torch.zeros(4, 64), ref)
    with pytest.raises(ValueError, match="NaN"):
        fd(torch.full((4, 1, 8, 8), float("nan")), ref)


def test_training_is_seeded_and_learns(tmp_path):
    x, y = load_digits_split("train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = train_digit_classifier(x, y, steps=100, batch_size=64, seed=3)
        b = train_digit_classifier(x, y, steps=100, batch_size=64, seed=3)
    finally:
        torch.set_num_threads(threads)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert classifier_accuracy(a.model, *load_digits_split("val")) > 0.8
    path = tmp_path / "c.pt"
    save_digit_classifier(a.model, path, metadata={"steps": 100})
    loaded = load_digit_classifier(path)
    xv = load_digits_split("val")[0][:10]
    torch.testing.assert_close(loaded.features(xv), a.model.features(xv))
    assert loaded.metadata == {"steps": 100}
    from diffusion_lib.errors import CheckpointError

    with pytest.raises(CheckpointError, match="train_digit_classifier.py"):
        load_digit_classifier(tmp_path / "missing.pt")


def test_frechet_distance_refuses_a_covariance_that_is_not_psd_but_accepts_round_off():
    from diffusion_lib.errors import InputValueError

    z = torch.zeros(2, dtype=torch.float64)
    not_psd = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)  # eigenvalues 3 and -1
    with pytest.raises(InputValueError, match="sigma2 is not positive semi-definite"):
        frechet_distance(z, torch.eye(2, dtype=torch.float64), z, not_psd)
    with pytest.raises(InputValueError, match="sigma1 is not symmetric"):
        frechet_distance(z, torch.tensor([[1.0, 0.5], [0.0, 1.0]]), z, torch.eye(2))
    # a rank-1 covariance whose zero eigenvalue came out as -1e-17 is a covariance
    v = torch.tensor([1.0, 2.0], dtype=torch.float64)
    rank1 = torch.outer(v, v) - 1e-17 * torch.eye(2, dtype=torch.float64)
    assert frechet_distance(z, rank1, z, rank1) == pytest.approx(0.0, abs=1e-7)
    # the same in float32, whose round-off is larger
    assert frechet_distance(z.float(), rank1.float() - 1e-7 * torch.eye(2), z.float(), torch.eye(2)) > 0
    with pytest.raises(InputValueError, match="NaN"):
        frechet_distance(z, torch.full((2, 2), float("nan")), z, torch.eye(2))
