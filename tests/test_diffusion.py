"""GaussianDiffusion: forward process, posterior, reverse steps, DDIM and training losses.

Statistical checks compare sample moments with closed forms using a tolerance of 5 standard
errors (for a sample mean SE = sd / sqrt(N); for a sample variance of Gaussian data
SE = var * sqrt(2 / (N - 1))). Every seed is fixed, so the tests are deterministic; the 5-SE
margin makes them robust to changing the seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_lib import SCHEDULE_NAMES, GaussianDiffusion, NoiseSchedule, make_beta, mean_flat

torch.set_num_threads(1)
Z = 5.0  # number of standard errors allowed


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, what: str) -> None:
    """Column-wise sample mean / variance of ``samples`` (N, D) against the closed forms (D,)."""
    samples = samples.double()
    n = samples.shape[0]
    m_hat = samples.mean(0)
    v_hat = samples.var(0)
    se_mean = torch.sqrt(var / n)
    se_var = var * math.sqrt(2.0 / (n - 1))
    assert bool(((m_hat - mean).abs() <= Z * se_mean + 1e-12).all()), f"{what}: mean {m_hat} vs {mean}"
    assert bool(((v_hat - var).abs() <= Z * se_var + 1e-12).all()), f"{what}: var {v_hat} vs {var}"


def abar_reference(name: str, T: int) -> np.ndarray:
    """abar_0..abar_T computed here from the betas (float64)."""
    return np.concatenate([[1.0], np.cumprod(1.0 - make_beta(name, T).numpy())])


# ----------------------------------------------------------------------------- forward process
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_closed_form_q_matches_iterated_single_steps(name: str) -> None:
    """Iterating q(x_t | x_{t-1}) t times reproduces q(x_t | x_0) = N(sqrt(abar_t) x_0, 1 - abar_t)."""
    T, N = 1000, 100_000
    diffusion = GaussianDiffusion(NoiseSchedule.from_name(name, T))
    abar = torch.from_numpy(abar_reference(name, T))
    g = torch.Generator().manual_seed(1)
    value = {"linear": -0.8, "cosine": 0.3, "quadratic": 1.0, "sigmoid": 0.6}[name]
    x0 = torch.full((N, 1), value)
    checkpoints = {1, 10, 100, 400, 1000}
    x = x0
    for t in range(1, T + 1):
        x = diffusion.q_step_sample(x, t, generator=g)
        if t in checkpoints:
            expected_mean = math.sqrt(abar[t]) * x0[0].double()
            expected_var = torch.full((1,), 1.0 - abar[t].item(), dtype=torch.float64)
            assert_moments(x, expected_mean, expected_var, f"{name} iterated t={t}")
            # the one-shot sampler has the same law
            direct = diffusion.q_sample(x0, t, generator=g)
            assert_moments(direct, expected_mean, expected_var, f"{name} q_sample t={t}")


def test_q_sample_t0_is_data_and_given_eps_is_used() -> None:
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 100))
    x0 = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(diffusion.q_sample(x0, 0, eps=eps), x0)
    t = torch.tensor([1, 5, 50, 100])
    s = diffusion.schedule
    expected = s.sqrt_alpha_bar[t].view(4, 1, 1) * x0 + s.sqrt_one_minus_alpha_bar[t].view(4, 1, 1) * eps
    torch.testing.assert_close(diffusion.q_sample(x0, t, eps=eps), expected)
    mean, var, log_var = diffusion.q_mean_variance(x0, t)
    torch.testing.assert_close(mean, s.sqrt_alpha_bar[t].view(4, 1, 1) * x0)
    torch.testing.assert_close(var, (1 - s.alpha_bar[t]).view(4, 1, 1).expand(4, 2, 3))
    torch.testing.assert_close(log_var, var.log())


# ----------------------------------------------------------------------------- posterior
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_posterior_matches_bayes_rule(name: str) -> None:
    """q(x_{t-1} | x_t, x_0) from the product of q(x_t | x_{t-1}) and q(x_{t-1} | x_0).

    Completing the square: precision = 1/(1 - abar_{t-1}) + alpha_t / beta_t and
    mean = (sqrt(abar_{t-1}) x_0 / (1 - abar_{t-1}) + sqrt(alpha_t) x_t / beta_t) / precision.
    """
    T = 300
    diffusion = GaussianDiffusion(NoiseSchedule.from_name(name, T, dtype=torch.float64))
    beta = np.concatenate([[0.0], make_beta(name, T).numpy()])
    abar = abar_reference(name, T)
    t = torch.arange(2, T + 1)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(t), 3, generator=g, dtype=torch.float64)
    xt = torch.randn(len(t), 3, generator=g, dtype=torch.float64) * 2
    tn = t.numpy()
    precision = 1.0 / (1.0 - abar[tn - 1]) + (1.0 - beta[tn]) / beta[tn]
    var_ref = torch.from_numpy(1.0 / precision)
    mean_ref = (
        torch.from_numpy(np.sqrt(abar[tn - 1]) / (1.0 - abar[tn - 1]))[:, None] * x0
        + torch.from_numpy(np.sqrt(1.0 - beta[tn]) / beta[tn])[:, None] * xt
    ) * var_ref[:, None]
    mean, var, log_var = diffusion.posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, mean_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(var, var_ref[:, None].expand(-1, 3), rtol=1e-9, atol=0.0)
    torch.testing.assert_close(log_var, var.log(), rtol=1e-9, atol=1e-9)
    # t = 1: the posterior is the point x_0
    one = torch.ones(len(t), dtype=torch.long)
    mean_1, var_1, _ = diffusion.posterior_mean_variance(x0, xt, one)
    assert torch.equal(mean_1, x0)
    assert bool((var_1 == 0).all())


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_matches_regression_on_sampled_pairs(name: str) -> None:
    """Sample (x_{t-1}, x_t) given x_0 and regress x_{t-1} on x_t: slope, intercept, residual variance."""
    T, N = 1000, 200_000
    diffusion = GaussianDiffusion(NoiseSchedule.from_name(name, T, dtype=torch.float64))
    g = torch.Generator().manual_seed(3)
    c = 0.6
    for t in (2, 50, 500, 1000):
        x0 = torch.full((N, 1), c, dtype=torch.float64)
        x_prev = diffusion.q_sample(x0, t - 1, generator=g)
        xt = diffusion.q_step_sample(x_prev, t, generator=g)
        X = torch.cat([torch.ones(N, 1, dtype=torch.float64), xt], dim=1)
        coef = torch.linalg.lstsq(X, x_prev).solution.squeeze(1)
        residual_var = (x_prev - X @ coef[:, None]).var().item()
        tilde_beta = diffusion.schedule.posterior_variance[t].item()
        slope = diffusion.schedule.posterior_mean_coef_xt[t].item()
        intercept = diffusion.schedule.posterior_mean_coef_x0[t].item() * c
        # OLS standard errors: var(slope) = s^2 / (N var(x_t)); intercept adds s^2 mean^2 / (N var)
        var_xt = xt.var().item()
        se_slope = math.sqrt(tilde_beta / (N * var_xt))
        se_intercept = math.sqrt(tilde_beta / N * (1 + xt.mean().item() ** 2 / var_xt))
        assert abs(coef[1].item() - slope) < Z * se_slope, (t, coef, slope)
        assert abs(coef[0].item() - intercept) < Z * se_intercept, (t, coef, intercept)
        assert abs(residual_var - tilde_beta) < Z * tilde_beta * math.sqrt(2 / N), (t, residual_var, tilde_beta)


# ----------------------------------------------------------------------------- reparameterisations
def test_eps_x0_round_trip() -> None:
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        diffusion = GaussianDiffusion(NoiseSchedule.from_name("cosine", 1000, dtype=dtype))
        g = torch.Generator().manual_seed(0)
        x0 = torch.rand(64, 2, 4, generator=g, dtype=dtype) * 2 - 1
        eps = torch.randn(64, 2, 4, generator=g, dtype=dtype)
        t = torch.randint(1, 1001, (64,), generator=g)
        xt = diffusion.q_sample(x0, t, eps=eps)
        torch.testing.assert_close(diffusion.predict_x0_from_eps(xt, t, eps), x0, atol=tol, rtol=0)
        torch.testing.assert_close(diffusion.predict_eps_from_x0(xt, t, x0), eps, atol=tol, rtol=0)
        score = diffusion.score_from_eps(eps, t)
        torch.testing.assert_close(-diffusion.schedule.sqrt_one_minus_alpha_bar[t].view(64, 1, 1) * score, eps, atol=tol, rtol=0)


def test_score_from_optimal_eps_is_score_of_q_xt_for_gaussian_data() -> None:
    """For x_0 ~ N(m, s^2): fit E[eps | x_t] by regression on samples, turn it into a score, and
    compare with grad log q(x_t) of q(x_t) = N(sqrt(abar) m, abar s^2 + 1 - abar) (autograd)."""
    T, N, m, s = 1000, 200_000, 0.5, 0.4
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T, dtype=torch.float64))
    abar = abar_reference("linear", T)
    g = torch.Generator().manual_seed(4)
    grid = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    for t in (100, 400, 800):
        x0 = m + s * torch.randn(N, 1, generator=g, dtype=torch.float64)
        eps = torch.randn(N, 1, generator=g, dtype=torch.float64)
        xt = diffusion.q_sample(x0, t, eps=eps)
        X = torch.cat([torch.ones(N, 1, dtype=torch.float64), xt], dim=1)
        coef = torch.linalg.lstsq(X, eps).solution  # E[eps | x_t] is affine in x_t for Gaussian data
        eps_hat = coef[0] + coef[1] * grid
        score = diffusion.score_from_eps(eps_hat, t)
        x = grid.clone().requires_grad_(True)
        q_xt = torch.distributions.Normal(math.sqrt(abar[t]) * m, math.sqrt(abar[t] * s * s + 1 - abar[t]))
        (true_score,) = torch.autograd.grad(q_xt.log_prob(x).sum(), x)
        # tolerance from the OLS standard errors of the fitted intercept a and slope b, carried
        # through score = -(a + b x) / sqrt(1 - abar)
        resid_sd = (eps - X @ coef).std().item()
        var_x, mean_x = xt.var().item(), xt.mean().item()
        se_slope = resid_sd / math.sqrt(N * var_x)
        se_intercept = resid_sd * math.sqrt(1.0 / N + mean_x**2 / (N * var_x))
        tol = Z * (se_intercept + grid.abs() * se_slope) / math.sqrt(1 - abar[t])
        assert bool(((score - true_score).abs() <= tol).all()), (t, score.flatten(), true_score.flatten())
        # and the tolerance is tight: well below the size of the score itself (except near its zero)
        assert float((tol / true_score.abs().clamp(min=1.0)).max()) < 0.1, float((tol / true_score.abs().clamp(min=1.0)).max())


# ----------------------------------------------------------------------------- reverse process
class OracleEps:
    """The eps-prediction that recovers a known x_0 exactly: eps = (x_t - sqrt(abar) x_0) / sqrt(1 - abar)."""

    def __init__(self, x0: torch.Tensor, abar: np.ndarray) -> None:
        self.x0, self.abar = x0, torch.from_numpy(abar)

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
        return (xt - a.sqrt() * self.x0) / (1 - a).sqrt()


def smooth_model(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An arbitrary deterministic 'network' for consistency checks."""
    return torch.tanh(xt) * (t.to(xt.dtype) / 1000.0).reshape(-1, *([1] * (xt.ndim - 1))) + 0.1


def test_p_mean_variance_with_oracle_is_the_true_posterior() -> None:
    T = 100
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 3, generator=g, dtype=torch.float64) * 2 - 1
    t = torch.randint(1, T + 1, (8,), generator=g)
    xt = diffusion.q_sample(x0, t, generator=g)
    out = diffusion.p_mean_variance(OracleEps(x0, abar_reference("linear", T)), xt, t)
    mean, var, log_var = diffusion.posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(out["pred_x0"], x0)
    torch.testing.assert_close(out["mean"], mean)
    torch.testing.assert_close(out["variance"], var)
    torch.testing.assert_close(out["log_variance"], log_var)
    torch.testing.assert_close(diffusion.q_sample(out["pred_x0"], t, eps=out["pred_eps"]), xt)


def test_clipping_applies_to_pred_x0_before_the_mean() -> None:
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 50), model_mean_type="x0")
    xt = torch.zeros(2, 4)
    far = torch.tensor([[3.0, -3.0, 0.5, -0.2], [1.5, 0.0, -7.0, 0.9]])
    model = lambda x, t: far  # noqa: E731
    t = torch.tensor([20, 20])
    out = diffusion.p_mean_variance(model, xt, t, clip_x0=True)
    clipped = far.clamp(-1, 1)
    torch.testing.assert_close(out["pred_x0"], clipped)
    torch.testing.assert_close(out["mean"], diffusion.posterior_mean_variance(clipped, xt, t)[0])
    # pred_eps is consistent with the clipped x_0
    torch.testing.assert_close(diffusion.q_sample(out["pred_x0"], t, eps=out["pred_eps"]), xt, atol=1e-5, rtol=0)
    unclipped = diffusion.p_mean_variance(model, xt, t)
    torch.testing.assert_close(unclipped["pred_x0"], far)


def test_variance_types() -> None:
    T = 100
    schedule = NoiseSchedule.from_name("linear", T, dtype=torch.float64)
    beta = schedule.beta
    tilde = schedule.posterior_variance
    t = torch.arange(1, T + 1)
    xt = torch.zeros(T, 2, 1)
    zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731
    small = GaussianDiffusion(schedule, model_var_type="fixed_small").p_mean_variance(zero, xt, t)
    large = GaussianDiffusion(schedule, model_var_type="fixed_large").p_mean_variance(zero, xt, t)
    torch.testing.assert_close(small["variance"][:, 0, 0], tilde[1:])
    torch.testing.assert_close(small["log_variance"][1:, 0, 0], tilde[2:].log())
    torch.testing.assert_close(small["log_variance"][0, 0, 0], tilde[2].log())  # DDPM's clip at t = 1
    torch.testing.assert_close(large["variance"][1:, 0, 0], beta[2:])
    torch.testing.assert_close(large["log_variance"][1:, 0, 0], beta[2:].log())
    torch.testing.assert_close(large["log_variance"][0, 0, 0], tilde[2].log())
    # learned_range: v = -1 gives tilde beta (clipped), v = +1 gives beta, v = 0 the geometric mean
    learned = GaussianDiffusion(schedule, model_var_type="learned_range", loss_type="hybrid")
    for v, expected in ((-1.0, small["log_variance"]), (1.0, beta[1:].log().view(T, 1, 1).expand(T, 2, 1))):
        model = lambda x, tt, v=v: torch.cat([torch.zeros_like(x), torch.full_like(x, v)], dim=1)  # noqa: E731
        out = learned.p_mean_variance(model, xt, t)
        torch.testing.assert_close(out["log_variance"], expected)
    model = lambda x, tt: torch.cat([torch.zeros_like(x), torch.zeros_like(x)], dim=1)  # noqa: E731
    out = learned.p_mean_variance(model, xt, t)
    torch.testing.assert_close(out["log_variance"], 0.5 * (small["log_variance"] + beta[1:].log().view(T, 1, 1)))


def test_p_sample_adds_noise_except_at_t1() -> None:
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 100))
    xt = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    for t, same in ((1, True), (2, False)):
        a = diffusion.p_sample(smooth_model, xt, t, generator=torch.Generator().manual_seed(1))["sample"]
        b = diffusion.p_sample(smooth_model, xt, t, generator=torch.Generator().manual_seed(2))["sample"]
        assert torch.equal(a, b) == same
    mean = diffusion.p_mean_variance(smooth_model, xt, 1)["mean"]
    assert torch.equal(diffusion.p_sample(smooth_model, xt, 1)["sample"], mean)
    # the noise has the model's standard deviation
    N = 100_000
    x = torch.zeros(N, 1)
    out = diffusion.p_sample(smooth_model, x, 50, generator=torch.Generator().manual_seed(3))["sample"]
    m = diffusion.p_mean_variance(smooth_model, x, 50)
    assert_moments(out, m["mean"][0].double(), m["variance"][0].double(), "p_sample noise")


def record(T: int, shape: tuple[int, ...]) -> tuple[dict, "callable"]:
    """A trajectory in the old layout (index t: x_t and the prediction made from it) and its callback."""
    res = {"trajectory": torch.empty((T + 1,) + shape, dtype=torch.float64), "pred_x0": torch.empty((T + 1,) + shape, dtype=torch.float64)}

    def keep(t: int, x_t: torch.Tensor, x0_hat: torch.Tensor) -> None:
        res["trajectory"][t], res["pred_x0"][t] = x_t, x0_hat

    return res, keep


def finish(res: dict, sample: torch.Tensor) -> dict:
    res["sample"] = sample
    res["trajectory"][0] = res["pred_x0"][0] = sample
    return res


def test_p_sample_loop_trajectory_layout() -> None:
    T = 30
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T))
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    res, keep = record(T, (3, 2))
    res = finish(res, diffusion.p_sample_loop(
        smooth_model, (3, 2), generator=torch.Generator().manual_seed(1), callback=keep, x_T=x_T
    ))
    res["trajectory"], res["pred_x0"] = res["trajectory"].float(), res["pred_x0"].float()
    traj = res["trajectory"]
    assert traj.shape == (T + 1, 3, 2) and res["pred_x0"].shape == (T + 1, 3, 2)
    assert torch.equal(traj[T], x_T) and torch.equal(traj[0], res["sample"])
    assert torch.equal(res["pred_x0"][0], res["sample"])
    # the last step from x_1 is the noiseless mean, and pred_x0[t] is the prediction made from x_t
    torch.testing.assert_close(traj[0], diffusion.p_mean_variance(smooth_model, traj[1], 1)["mean"])
    torch.testing.assert_close(res["pred_x0"][7], diffusion.p_mean_variance(smooth_model, traj[7], 7)["pred_x0"])
    # same generator seed, same result without the trajectory
    plain = diffusion.p_sample_loop(smooth_model, (3, 2), generator=torch.Generator().manual_seed(1), x_T=x_T)
    assert torch.equal(plain, res["sample"])


class OptimalGaussianEps:
    """E[eps | x_t] for x_0 ~ N(m, s^2) (independently per coordinate):

    x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps has variance v = abar s^2 + 1 - abar and
    Cov(eps, x_t) = sqrt(1 - abar), so E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) / v.
    """

    def __init__(self, abar: np.ndarray, m: float, s: float, scale: float = 1.0) -> None:
        self.abar, self.m, self.s, self.scale = torch.from_numpy(abar), m, s, scale

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
        v = a * self.s**2 + 1 - a
        return self.scale * (1 - a).sqrt() * (xt - a.sqrt() * self.m) / v


def test_ddpm_sampler_with_optimal_predictor_reproduces_gaussian_data() -> None:
    """Ancestral sampling with the exact E[eps | x_t] of N(m, s^2) data returns N(m, s^2).

    With s = 1, fixed_large (sigma_t^2 = beta_t) is the exact reverse variance for t >= 2; the
    t = 1 step adds no noise, which removes variance beta_1 = 1e-4 (tiny at s = 1).
    """
    T, N, m, s = 1000, 20_000, 0.7, 1.0
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T), model_var_type="fixed_large")
    model = OptimalGaussianEps(abar_reference("linear", T), m, s)
    x = diffusion.p_sample_loop(model, (N, 1), generator=torch.Generator().manual_seed(5))
    assert_moments(x, torch.tensor([m], dtype=torch.float64), torch.tensor([s * s], dtype=torch.float64), "DDPM")


# ----------------------------------------------------------------------------- DDIM
def test_ddim_eta1_sigma_is_posterior_variance() -> None:
    T = 1000
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("cosine", T, dtype=torch.float64))
    t = torch.arange(2, T + 1)
    xt = torch.zeros(len(t), 1, dtype=torch.float64)
    out = diffusion.ddim_step(smooth_model, xt, t, t - 1, eta=1.0)
    torch.testing.assert_close(out["sigma"].flatten() ** 2, diffusion.schedule.posterior_variance[2:], rtol=1e-9, atol=0)
    # ... and its mean is the DDPM mean, for any model
    xt = torch.randn(len(t), 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = diffusion.ddim_step(smooth_model, xt, t, t - 1, eta=1.0)
    torch.testing.assert_close(out["mean"], diffusion.p_mean_variance(smooth_model, xt, t)["mean"], rtol=1e-9, atol=1e-9)


def test_ddim_full_sequence_eta1_equals_ddpm_sampler() -> None:
    """Both samplers draw one normal vector per step from the generator and use the same mean and
    sigma (sigma = 0 at the last step of each), so with equal seeds they produce the same path."""
    T = 50
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T, dtype=torch.float64))
    ddpm, keep_ddpm = record(T, (6, 2))
    ddim, keep_ddim = record(T, (6, 2))
    seen: list[int] = []
    finish(ddpm, diffusion.p_sample_loop(smooth_model, (6, 2), generator=torch.Generator().manual_seed(9), callback=keep_ddpm))
    finish(ddim, diffusion.ddim_sample_loop(smooth_model, (6, 2), eta=1.0, generator=torch.Generator().manual_seed(9),
                                            callback=lambda t, x, x0: (seen.append(t), keep_ddim(t, x, x0))))
    torch.testing.assert_close(ddim["trajectory"], ddpm["trajectory"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ddim["pred_x0"], ddpm["pred_x0"], rtol=1e-9, atol=1e-9)
    assert seen == list(range(T, 0, -1))


def test_ddim_eta0_is_deterministic() -> None:
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 200))
    x_T = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    a = diffusion.ddim_sample_loop(smooth_model, (5, 3), num_steps=20, x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = diffusion.ddim_sample_loop(smooth_model, (5, 3), num_steps=20, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = diffusion.ddim_sample_loop(smooth_model, (5, 3), num_steps=20, eta=0.5, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_preserves_the_marginals_given_x0(eta: float) -> None:
    """Song et al.'s construction: if x_t ~ q(x_t | x_0) and the model knows x_0, then the DDIM
    step lands on q(x_{t'} | x_0) = N(sqrt(abar_{t'}) x_0, 1 - abar_{t'}) for any t' < t and eta."""
    T, N, c = 1000, 100_000, 0.4
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T))
    abar = abar_reference("linear", T)
    x0 = torch.full((N, 1), c)
    g = torch.Generator().manual_seed(6)
    xt = diffusion.q_sample(x0, 600, generator=g)
    out = diffusion.ddim_step(OracleEps(x0, abar), xt, 600, 150, eta=eta, generator=g)
    assert_moments(
        out["sample"],
        torch.tensor([math.sqrt(abar[150]) * c], dtype=torch.float64),
        torch.tensor([1 - abar[150]], dtype=torch.float64),
        f"DDIM eta={eta}",
    )


def test_ddim_timesteps_and_subsequence_layout() -> None:
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 1000))
    for k in (2, 10, 50, 999, 1000):
        taus = diffusion.ddim_timesteps(k)
        assert taus.dtype == torch.long and taus.shape == (k,)
        assert taus[0] == 1000 and taus[-1] == 1
        assert bool((taus[1:] < taus[:-1]).all())
        gaps = -torch.diff(taus)
        assert int(gaps.max() - gaps.min()) <= 1  # evenly spaced up to rounding
    assert torch.equal(diffusion.ddim_timesteps(1000), torch.arange(1000, 0, -1))
    visited: list[tuple[int, torch.Tensor]] = []
    sample = diffusion.ddim_sample_loop(
        smooth_model, (2, 2), timesteps=[900, 500, 37, 3], callback=lambda t, x, x0: visited.append((t, x)),
        generator=torch.Generator().manual_seed(0),
    )
    assert [t for t, _ in visited] == [900, 500, 37, 3]
    step = diffusion.ddim_step(smooth_model, visited[2][1], 37, 3)
    torch.testing.assert_close(step["sample"], visited[3][1])
    torch.testing.assert_close(diffusion.ddim_step(smooth_model, visited[3][1], 3, 0)["sample"], sample)


# ----------------------------------------------------------------------------- training losses
def test_training_loss_l2_values() -> None:
    T = 100
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(32, 2, 2, generator=g) * 2 - 1
    eps = torch.randn(32, 2, 2, generator=g)
    t = torch.randint(1, T + 1, (32,), generator=g)
    zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731
    out = diffusion.training_losses(zero, x0, t, eps=eps)
    torch.testing.assert_close(out["loss"], mean_flat(eps**2))
    oracle = diffusion.training_losses(OracleEps(x0, abar_reference("linear", T)), x0, t, eps=eps)
    assert float(oracle["loss"].max()) < 1e-8
    # x0-prediction regresses on x_0
    d_x0 = GaussianDiffusion(diffusion.schedule, model_mean_type="x0", loss_type="l2")
    out = d_x0.training_losses(zero, x0, t, eps=eps)
    torch.testing.assert_close(out["loss"], mean_flat(x0**2))


def test_training_draws_t_uniformly_from_1_to_T() -> None:
    T, N = 10, 100_000
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T, beta_start=0.01, beta_end=0.2))
    seen: list[torch.Tensor] = []

    def recorder(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        return torch.zeros_like(x)

    diffusion.training_losses(recorder, torch.zeros(N, 1), generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(seen[0], minlength=T + 2).double()
    assert counts[0] == 0 and counts[T + 1] == 0
    p = 1.0 / T
    se = math.sqrt(N * p * (1 - p))
    assert bool(((counts[1 : T + 1] - N * p).abs() < Z * se).all()), counts


def test_kl_and_hybrid_losses() -> None:
    T = 100
    schedule = NoiseSchedule.from_name("linear", T, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (8, 2, 3, 3), generator=g) / 127.5 - 1).double()
    eps = torch.randn(8, 2, 3, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 3, 10, 50, 99, 100, 1])

    w_mean = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    w_var = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)

    def model(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return torch.cat([w_mean * x, torch.tanh(w_var * x)], dim=1)

    kl = GaussianDiffusion(schedule, model_var_type="learned_range", loss_type="kl")
    out = kl.training_losses(model, x0, t, eps=eps)
    xt = kl.q_sample(x0, t, eps=eps)
    vb = kl.vb_term(model, x0, xt, t)
    torch.testing.assert_close(out["loss"], vb / (18 * math.log(2)))

    hybrid = GaussianDiffusion(schedule, model_var_type="learned_range", loss_type="hybrid")
    out = hybrid.training_losses(model, x0, t, eps=eps)
    mse = mean_flat((w_mean * xt - eps) ** 2)
    torch.testing.assert_close(out["mse"], mse)
    torch.testing.assert_close(out["loss"], mse + 0.001 * T * out["vb"])  # L_simple + lambda * (T * L_{t-1})
    # the bound term trains only the variance: no gradient reaches the mean parameter through it
    grad_mean, grad_var = torch.autograd.grad(out["vb"].sum(), [w_mean, w_var], allow_unused=True)
    assert grad_mean is None or float(grad_mean.abs()) == 0.0
    assert grad_var is not None and float(grad_var.abs()) > 0.0
