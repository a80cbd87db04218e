"""Noise schedules: named beta sequences and the derived per-timestep tensors.

Reference values are computed here independently (NumPy / math, float64) from the definitions,
not by calling back into the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_lib import SCHEDULE_NAMES, NoiseSchedule, make_beta


@pytest.mark.parametrize("T", [1000, 100])
def test_linear_schedule_endpoints_and_spacing(T: int) -> None:
    beta = make_beta("linear", T).numpy()
    scale = 1000 / T  # DDPM's 1e-4 .. 0.02 at T = 1000, scaled by 1000 / T otherwise
    assert beta.dtype == np.float64 and beta.shape == (T,)
    assert beta[0] == pytest.approx(1e-4 * scale, rel=1e-12)
    assert beta[-1] == pytest.approx(0.02 * scale, rel=1e-12)
    steps = np.diff(beta)
    np.testing.assert_allclose(steps, (0.02 - 1e-4) * scale / (T - 1), rtol=1e-9)


def test_explicit_endpoints_are_not_rescaled() -> None:
    beta = make_beta("linear", 50, beta_start=1e-3, beta_end=0.05).numpy()
    assert beta[0] == pytest.approx(1e-3) and beta[-1] == pytest.approx(0.05)


def test_quadratic_schedule_is_square_of_linear_sqrt() -> None:
    beta = make_beta("quadratic", 1000).numpy()
    root = np.sqrt(beta)
    assert beta[0] == pytest.approx(1e-4) and beta[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(root, 2), 0.0, atol=1e-12)  # sqrt(beta) is affine in t
    assert np.all(np.diff(beta) > 0)


def test_sigmoid_schedule_shape() -> None:
    T, lo, hi = 1000, 1e-4, 0.02
    beta = make_beta("sigmoid", T).numpy()
    u = np.linspace(-6, 6, T)
    expected = lo + (hi - lo) / (1.0 + np.exp(-u))
    np.testing.assert_allclose(beta, expected, rtol=1e-12)
    # the sigmoid is point-symmetric about its centre: beta_t + beta_{T+1-t} = lo + hi
    np.testing.assert_allclose(beta + beta[::-1], lo + hi, rtol=1e-12)


def test_cosine_alpha_bar_matches_formula() -> None:
    T, s = 1000, 0.008
    schedule = NoiseSchedule.from_name("cosine", T, dtype=torch.float64)

    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    expected = np.array([f(t) / f(0) for t in range(T + 1)])
    got = schedule.alpha_bar.numpy()
    # beta_T is clipped to 0.999 (the formula gives beta_T = 1), so compare t < T exactly ...
    np.testing.assert_allclose(got[:T], expected[:T], rtol=1e-10, atol=1e-15)
    # ... and check the clip itself
    assert schedule.beta[T].item() == pytest.approx(0.999)
    assert got[T] == pytest.approx(expected[T - 1] * 0.001, rel=1e-10)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_derived_tensors_match_definitions(name: str) -> None:
    T = 200
    betas = make_beta(name, T).numpy()
    schedule = NoiseSchedule.from_name(name, T)
    s64 = NoiseSchedule.from_name(name, T, dtype=torch.float64)

    # storage: float32, length T + 1, indexed by t
    for key in NoiseSchedule._TENSOR_ATTRS:
        value = getattr(schedule, key)
        assert value.dtype == torch.float32, key
        assert value.shape == (T + 1,), key
    assert schedule.T == T and schedule.name == name and len(schedule) == T

    # independent float64 reference
    beta = np.concatenate([[0.0], betas])
    alpha = 1.0 - beta
    abar = np.cumprod(alpha)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    t = np.arange(1, T + 1)
    tilde_beta = beta[t] * (1 - abar_prev[t]) / (1 - abar[t])
    coef_x0 = np.sqrt(abar_prev[t]) * beta[t] / (1 - abar[t])
    coef_xt = np.sqrt(alpha[t]) * (1 - abar_prev[t]) / (1 - abar[t])

    np.testing.assert_allclose(s64.beta.numpy(), beta, rtol=1e-14)
    np.testing.assert_allclose(s64.alpha_bar.numpy(), abar, rtol=1e-12)
    np.testing.assert_allclose(s64.alpha_bar_prev.numpy(), abar_prev, rtol=1e-12)
    np.testing.assert_allclose(s64.sqrt_one_minus_alpha_bar.numpy(), np.sqrt(1 - abar), rtol=1e-9)
    np.testing.assert_allclose(s64.snr.numpy()[1:], abar[1:] / (1 - abar[1:]), rtol=1e-9)
    np.testing.assert_allclose(s64.posterior_variance.numpy()[1:], tilde_beta, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(s64.posterior_mean_coef_x0.numpy()[1:], coef_x0, rtol=1e-9)
    np.testing.assert_allclose(s64.posterior_mean_coef_xt.numpy()[1:], coef_xt, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(s64.posterior_log_variance_clipped.numpy()[2:], np.log(tilde_beta[1:]), rtol=1e-9)
    # the float32 copy agrees with the float64 one to float32 precision
    np.testing.assert_allclose(schedule.alpha_bar.numpy(), abar, rtol=1e-5)
    np.testing.assert_allclose(schedule.posterior_variance.numpy()[1:], tilde_beta, rtol=1e-5, atol=1e-30)

    # index 0 is the data; t = 1 has a degenerate posterior (it is the point x_0)
    assert schedule.beta[0] == 0 and schedule.alpha[0] == 1 and schedule.alpha_bar[0] == 1
    assert schedule.alpha_bar_prev[0] == 1 and schedule.alpha_bar_prev[1] == 1
    assert schedule.snr[0] == math.inf and schedule.sqrt_one_minus_alpha_bar[0] == 0
    assert schedule.posterior_variance[1] == 0
    assert s64.posterior_log_variance_clipped[1] == pytest.approx(math.log(tilde_beta[1]), rel=1e-12)
    assert schedule.posterior_mean_coef_x0[1] == 1 and schedule.posterior_mean_coef_xt[1] == 0

    # monotonicity: more noise every step
    assert bool((schedule.alpha_bar[1:] < schedule.alpha_bar[:-1]).all())
    assert bool((schedule.snr[1:] < schedule.snr[:-1]).all())
    assert bool((schedule.log_snr[1:] < schedule.log_snr[:-1]).all())


def test_to_and_repr_and_betas_roundtrip() -> None:
    schedule = NoiseSchedule.from_name("linear", 10, beta_start=0.01, beta_end=0.2)
    assert "linear" in repr(schedule) and "T=10" in repr(schedule)
    schedule.to("cpu", torch.float64)
    assert schedule.alpha_bar.dtype == torch.float64
    np.testing.assert_allclose(schedule.betas.numpy(), np.linspace(0.01, 0.2, 10))
    rebuilt = NoiseSchedule(schedule.betas)
    torch.testing.assert_close(rebuilt.alpha_bar, schedule.alpha_bar.float())
