"""Every documented bad input raises, and the message tells a student what to fix."""

from __future__ import annotations

import pytest
import torch

from diffusion_lib import (
    GaussianDiffusion,
    NoiseSchedule,
    discretized_gaussian_log_likelihood,
    make_beta,
    normal_kl,
    simple_loss,
)

T = 1000


@pytest.fixture(scope="module")
def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion(NoiseSchedule.from_name("linear", T))


def zero_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


# ----------------------------------------------------------------------------- schedules
def test_unknown_schedule_name() -> None:
    with pytest.raises(ValueError, match=r"unknown schedule name 'cosin'; allowed values are: 'linear', 'cosine', 'quadratic', 'sigmoid'"):
        make_beta("cosin")
    with pytest.raises(ValueError, match="allowed values are"):
        NoiseSchedule.from_name("exponential")


def test_schedule_keyword_and_endpoint_errors() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['s'\] for the 'linear' schedule"):
        make_beta("linear", 100, s=0.1)
    with pytest.raises(ValueError, match=r"exceed 1 for T < 21\)\. Pass beta_start=\.\.\. and beta_end=\.\.\. explicitly"):
        make_beta("linear", 10)
    with pytest.raises(ValueError, match="T \\(number of diffusion steps\\) must be >= 1"):
        make_beta("cosine", 0)


@pytest.mark.parametrize(
    "betas, position",
    [([0.1, 1.0, 0.2], r"position 1 \(t=2\) is 1"), ([0.0, 0.1], r"position 0 \(t=1\) is 0"), ([0.1, 0.2, -0.3], r"position 2 \(t=3\) is -0.3")],
)
def test_betas_outside_unit_interval(betas: list[float], position: str) -> None:
    with pytest.raises(ValueError, match=r"every beta_t must lie strictly between 0 and 1 .*" + position):
        NoiseSchedule(torch.tensor(betas))


def test_betas_not_finite_not_1d_or_empty() -> None:
    with pytest.raises(ValueError, match=r"every beta_t must be finite, but beta at position 1 \(t=2\) is nan"):
        NoiseSchedule(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match=r"betas must be a 1-D tensor of beta_1..beta_T, but got a tensor of shape \(2, 3\)"):
        NoiseSchedule(torch.full((2, 3), 0.1))
    with pytest.raises(ValueError, match="betas is empty"):
        NoiseSchedule(torch.tensor([]))


# ----------------------------------------------------------------------------- timesteps
def test_t_out_of_range(diffusion: GaussianDiffusion) -> None:
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"t must lie in 1..1000 \(t counts from 1; t=0 is the data itself\), but got values from 0 to 1000"):
        diffusion.q_step_sample(x, torch.tensor([0, 5, 9, 1000]))
    with pytest.raises(ValueError, match=r"t must lie in 0..1000 \(t = 0 is allowed here and means the data x_0\), but got values from 3 to 1001"):
        diffusion.q_sample(x, torch.tensor([3, 1001, 4, 5]))
    with pytest.raises(ValueError, match=r"t must lie in 1..1000 .* from 0 to 0"):
        diffusion.p_mean_variance(zero_model, x, 0)
    with pytest.raises(ValueError, match=r"t must lie in 1..1000"):
        diffusion.training_losses(zero_model, x, t=torch.full((4,), 1001))


def test_t_float_dtype(diffusion: GaussianDiffusion) -> None:
    with pytest.raises(TypeError, match=r"t must hold integer timesteps \(torch.long\), but got dtype torch.float32; .* convert with t.long\(\)"):
        diffusion.q_sample(torch.zeros(2, 3), torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="t must be an int or an integer torch.Tensor, but got float"):
        diffusion.q_sample(torch.zeros(2, 3), 3.0)
    with pytest.raises(TypeError, match="convert it with torch.tensor"):
        diffusion.q_sample(torch.zeros(2, 3), [1, 2])


def test_t_batch_mismatch(diffusion: GaussianDiffusion) -> None:
    with pytest.raises(ValueError, match=r"t has 3 entries but the batch has 4 examples; pass one timestep per example \(shape \(4,\)\) or a single int"):
        diffusion.q_sample(torch.zeros(4, 2), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"t must be an int or a 1-D tensor .* shape \(4, 1\)"):
        diffusion.q_sample(torch.zeros(4, 2), torch.ones(4, 1, dtype=torch.long))


def test_device_mismatch(diffusion: GaussianDiffusion) -> None:
    """The 'meta' device stands in for a GPU, so this runs on any machine."""
    with pytest.raises(ValueError, match=r"t is on device meta but must be on cpu; move it with t.to\('cpu'\)"):
        diffusion.q_sample(torch.zeros(2, 3), torch.ones(2, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match=r"the data is on device meta but must be on cpu; move the diffusion with diffusion.to\('meta'\)"):
        diffusion.q_sample(torch.zeros(2, 3, device="meta"), 5)


# ----------------------------------------------------------------------------- shapes and dtypes
def test_shape_mismatch_x0_eps(diffusion: GaussianDiffusion) -> None:
    with pytest.raises(ValueError, match=r"x0 and eps must have the same shape, but x0 has shape \(4, 2\) and eps has shape \(4, 3\)"):
        diffusion.q_sample(torch.zeros(4, 2), 3, eps=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x0 and eps must have the same shape"):
        diffusion.training_losses(zero_model, torch.zeros(4, 2), eps=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="xt and eps must have the same shape"):
        diffusion.predict_x0_from_eps(torch.zeros(4, 2), 3, torch.zeros(4))
    with pytest.raises(ValueError, match="x0 and xt must have the same shape"):
        diffusion.posterior_mean_variance(torch.zeros(4, 2), torch.zeros(4, 1), 3)


def test_integer_data_is_rejected(diffusion: GaussianDiffusion) -> None:
    with pytest.raises(TypeError, match=r"x0 must be a floating-point tensor .* convert it with x0.float\(\)"):
        diffusion.q_sample(torch.zeros(4, 2, dtype=torch.long), 3)


def test_model_output_shape(diffusion: GaussianDiffusion) -> None:
    bad = lambda x, t: torch.zeros(x.shape[0], 5)  # noqa: E731
    with pytest.raises(ValueError, match=r"the model must return a tensor of the same shape as x_t \(it predicts eps\): x_t has shape \(2, 3\) but the model returned \(2, 5\)"):
        diffusion.p_sample(bad, torch.zeros(2, 3), 10)


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model_mean_type="v"), r"unknown model_mean_type 'v'; allowed values are: 'eps', 'x0'"),
        (dict(model_var_type="learned"), r"unknown model_var_type 'learned'; allowed values are: 'fixed_small', 'fixed_large', 'learned_range'"),
        (dict(loss_type="mse"), r"unknown loss_type 'mse'; allowed values are: 'l2', 'kl', 'hybrid'"),
        (dict(model_var_type="learned_range"), r"model_var_type='learned_range' needs a loss that trains the variance: use loss_type='hybrid' or 'kl'"),
    ],
)
def test_unknown_or_inconsistent_switches(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianDiffusion(NoiseSchedule.from_name("linear", 10, beta_start=0.01, beta_end=0.2), **kwargs)


def test_schedule_must_be_a_noise_schedule() -> None:
    with pytest.raises(TypeError, match=r"schedule must be a NoiseSchedule \(e.g. NoiseSchedule.from_name"):
        GaussianDiffusion(make_beta("linear", 100))


def test_learned_range_wrong_channel_count() -> None:
    d = GaussianDiffusion(NoiseSchedule.from_name("linear", 100), model_var_type="learned_range", loss_type="hybrid")
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"must return 2 x the channels of x_t \(mean part, then variance part\): expected shape \(2, 6, 4, 4\) .* returned \(2, 3, 4, 4\)"):
        d.p_mean_variance(zero_model, x, 5)
    with pytest.raises(ValueError, match=r"needs data with a channel dimension"):
        d.p_mean_variance(zero_model, torch.zeros(2), 5)


# ----------------------------------------------------------------------------- likelihoods and losses
def test_num_levels_below_two() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="num_levels must be >= 2, but got 1"):
        discretized_gaussian_log_likelihood(x, x, x, num_levels=1)
    with pytest.raises(TypeError, match="num_levels must be an int"):
        discretized_gaussian_log_likelihood(x, x, x, num_levels=255.0)
    d = GaussianDiffusion(NoiseSchedule.from_name("linear", 100))
    with pytest.raises(ValueError, match="num_levels must be >= 2"):
        d.vb_term(zero_model, torch.zeros(2, 1), torch.zeros(2, 1), 1, num_levels=0)


def test_discretized_data_out_of_range() -> None:
    x = torch.tensor([0.0, 1.5])
    with pytest.raises(ValueError, match=r"expects data scaled to \[-1, 1\] \(e.g. pixels / 127.5 - 1\), but x ranges from 0 to 1.5"):
        discretized_gaussian_log_likelihood(x, torch.zeros(2), torch.zeros(2))


def test_loss_shape_and_kind_errors() -> None:
    with pytest.raises(ValueError, match=r"pred and target must have the same shape"):
        simple_loss(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"do not broadcast"):
        normal_kl(torch.zeros(2, 3), 0.0, torch.zeros(4), 0.0)
    with pytest.raises(ValueError, match=r"unknown decoder 'bernoulli'; allowed values are: 'discretized', 'gaussian'"):
        GaussianDiffusion(NoiseSchedule.from_name("linear", 100)).vb_term(
            zero_model, torch.zeros(2, 1), torch.zeros(2, 1), 3, decoder="bernoulli"
        )


# ----------------------------------------------------------------------------- DDIM
def test_ddim_argument_errors(diffusion: GaussianDiffusion) -> None:
    with pytest.raises(ValueError, match=r"timesteps must be strictly decreasing"):
        diffusion.ddim_sample_loop(zero_model, (2, 1), timesteps=[1, 500, 1000])
    with pytest.raises(ValueError, match=r"timesteps must lie in 1..1000"):
        diffusion.ddim_sample_loop(zero_model, (2, 1), timesteps=[1001, 10])
    with pytest.raises(ValueError, match="give either timesteps or num_steps, not both"):
        diffusion.ddim_sample_loop(zero_model, (2, 1), timesteps=[10, 1], num_steps=2)
    with pytest.raises(ValueError, match="num_steps must be <= T = 1000, got 2000"):
        diffusion.ddim_timesteps(2000)
    with pytest.raises(ValueError, match="t_prev must be smaller than t"):
        diffusion.ddim_step(zero_model, torch.zeros(2, 1), 10, 10)
    with pytest.raises(ValueError, match=r"eta must be >= 0"):
        diffusion.ddim_step(zero_model, torch.zeros(2, 1), 10, 5, eta=-1.0)
    with pytest.raises(ValueError, match=r"x_T has shape \(3, 1\) but shape=\(2, 1\) was requested"):
        diffusion.p_sample_loop(zero_model, (2, 1), x_T=torch.zeros(3, 1))
