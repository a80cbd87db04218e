"""diffusion_lib.continuous: the VP SDE, the exact mixture marginals, the ODE solvers, ODE likelihoods, flow matching.

Everything runs in float64 on a 2-D Gaussian mixture whose noisy marginals and scores are exact, so
every tolerance below is either round-off, a discretisation error measured here, or a multiple of
the Monte-Carlo standard error of the sample size used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.continuous import (
    GaussianMixture,
    ODEGrid,
    VPSDE,
    cfm_as_eps_weighting,
    cfm_loss,
    cfm_path,
    discrete_grid,
    dpm_solver_pp_2m,
    draw_probes,
    eps_from_score,
    eps_from_velocity,
    euler,
    exact_divergence,
    heun,
    hutchinson_divergence,
    ode_log_likelihood,
    sample_digits_ode,
    sample_flow,
    solve,
    time_grid,
    two_d_mixture,
    velocity_from_eps,
    velocity_from_x0,
    x0_from_velocity,
)
from diffusion_lib.errors import InputTypeError, InputValueError

SDE = VPSDE()
MIX = two_d_mixture()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return MIX.marginal_score(x, t, SDE)


def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return MIX.marginal_eps(x, t, SDE)


def moments_within(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, n_se: float = 4.0, bias: float = 0.0) -> None:
    """Sample mean and covariance of x equal (mean, cov) within n_se standard errors (+ a known bias)."""
    n = x.shape[0]
    centred = x - x.mean(0)
    se_mean = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - mean).abs() <= n_se * se_mean + bias).all(), (x.mean(0), mean, se_mean)
    products = centred[:, :, None] * centred[:, None, :]  # the covariance is the mean of these
    se_cov = products.std(0) / math.sqrt(n)
    assert ((torch.cov(x.T) - cov).abs() <= n_se * se_cov + bias).all(), (torch.cov(x.T), cov, se_cov)


# ------------------------------------------------------------------------------------------ the SDE
def test_alpha_is_the_exponential_of_the_integrated_rate_and_the_schedule_is_consistent():
    t = torch.tensor([0.0, 0.05, 0.3, 0.7, 1.0], dtype=torch.float64)
    for ti in t.tolist():
        s = torch.linspace(0.0, ti, 4001, dtype=torch.float64)
        integral = torch.trapezoid(SDE.beta(s), s) if ti > 0 else torch.tensor(0.0, dtype=torch.float64)
        assert float(SDE.alpha(ti)) == pytest.approx(math.exp(-0.5 * float(integral)), rel=1e-12)
    assert float(SDE.alpha(0.0)) == 1.0 and float(SDE.sigma(0.0)) == 0.0
    assert torch.allclose(SDE.alpha(t) ** 2 + SDE.sigma(t) ** 2, torch.ones_like(t), atol=1e-15)
    inner = t[1:]
    assert torch.allclose(SDE.log_snr(inner), torch.log(SDE.alpha(inner) ** 2 / SDE.sigma(inner) ** 2), atol=1e-12)
    assert torch.allclose(SDE.t_from_sigma_tilde(SDE.sigma_tilde(inner)), inner, atol=1e-12)
    assert float(SDE.g(0.5)) == pytest.approx(math.sqrt(0.1 + 0.5 * 19.9))


def test_ddpm_linear_schedule_is_the_discretised_vp_sde():
    T = 1000
    schedule = NoiseSchedule.from_name("linear", T=T, dtype=torch.float64)
    steps = torch.arange(T + 1, dtype=torch.float64)
    continuous = SDE.alpha(steps / T) ** 2
    relative = (schedule.alpha_bar / continuous - 1.0).abs()
    # measured: 6.0e-3 at t = T/2 and 8.1e-4 in absolute terms over all t (the O(1/T) gap of 1 - beta vs exp(-beta))
    assert relative[T // 2] < 1e-2
    assert (schedule.alpha_bar - continuous).abs().max() < 1e-3
    # beta_t ~= beta(t/T) / T, and discrete_betas makes abar_t = alpha(t/T)^2 exactly
    betas = SDE.discrete_betas(T)
    assert (betas - SDE.beta(steps[1:] / T) / T).abs().max() < 3e-4
    exact = NoiseSchedule(betas, dtype=torch.float64)
    assert torch.allclose(exact.alpha_bar, continuous, atol=1e-14)


def test_euler_maruyama_forward_matches_the_closed_form_marginal():
    x0 = MIX.sample(4000, gen(0))
    grid = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    path = SDE.simulate_forward(x0, grid, gen(1))
    assert path.shape == (1001, 4000, 2) and torch.equal(path[0], x0)
    for index, t in ((300, 0.3), (1000, 1.0)):
        mean, cov = MIX.marginal_moments(t, SDE)
        # Euler-Maruyama's variance bias is about beta h / 4 <= 5e-3 for h = 1e-3
        moments_within(path[index], mean, cov, bias=5e-3)


def test_the_marginal_score_is_the_gradient_of_the_marginal_log_density():
    x = MIX.sample(64, gen(2)) * 1.3
    for t in (0.0, 1e-3, 0.2, torch.rand(64, generator=gen(3), dtype=torch.float64)):
        x_req = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(MIX.marginal_log_prob(x_req, t, SDE).sum(), x_req)
        assert torch.allclose(MIX.marginal_score(x, t, SDE), grad, atol=1e-8, rtol=0)
    assert torch.allclose(MIX.marginal_log_prob(x, 0.0, SDE), MIX.log_prob(x), atol=1e-12)
    sigma = SDE.sigma(0.4)
    assert torch.allclose(MIX.marginal_eps(x, 0.4, SDE), eps_from_score(MIX.marginal_score(x, 0.4, SDE), sigma))


def test_reverse_sde_and_ode_with_the_exact_score_return_to_the_mixture():
    x_T = torch.randn(2000, 2, generator=gen(4), dtype=torch.float64)
    mean, cov = MIX.marginal_moments(1e-3, SDE)  # the samplers stop at t_end = 1e-3
    sde_samples = SDE.sample_reverse_sde(exact_score, x_T, n_steps=500, generator=gen(5))
    ode_samples = SDE.sample_ode(exact_score, x_T, n_steps=100, method="heun")
    # measured deviations: means 0.007 / 0.017, covariances 0.012 / 0.020 (standard errors ~0.02)
    moments_within(sde_samples, mean, cov, bias=0.01)
    moments_within(ode_samples, mean, cov, bias=0.01)
    rk4 = SDE.sample_ode(exact_score, x_T[:200], n_steps=50, method="rk4")
    # two solvers of one ODE agree pointwise (measured 6.7e-3: uniform steps in t are coarse near t_end)
    assert (rk4 - ode_samples[:200]).abs().max() < 2e-2


# ------------------------------------------------------------------------------------------ solvers
class ToyEps(torch.nn.Module):
    """A fixed smooth eps-model on (B, 2): eps = tanh(W x + b t / T)."""

    def __init__(self, T: int) -> None:
        super().__init__()
        g = gen(6)
        self.W = torch.randn(2, 2, generator=g, dtype=torch.float64)
        self.b = torch.randn(2, generator=g, dtype=torch.float64)
        self.T = T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long
        return torch.tanh(x @ self.W.T + self.b * (t.to(x.dtype)[:, None] / self.T))


def _random_diffusion(T: int = 40) -> GaussianDiffusion:
    betas = torch.sort(torch.rand(T, generator=gen(7), dtype=torch.float64) * 0.2 + 1e-3).values
    return GaussianDiffusion(NoiseSchedule(betas, dtype=torch.float64))


def test_euler_on_an_integer_grid_is_ddim_with_eta_zero():
    diffusion = _random_diffusion()
    model = ToyEps(diffusion.T)
    x_T = torch.randn(16, 2, generator=gen(8), dtype=torch.float64)
    for kind, n in (("uniform", 8), ("karras", 6), ("quadratic", 10), ("uniform", 40)):
        grid = discrete_grid(diffusion, kind, n)
        taus = list(grid.times[:-1])
        assert grid.times[-1] == 0 and all(a > b for a, b in zip(taus, taus[1:])) and len(taus) == n
        ddim = diffusion.ddim_sample_loop(model, (16, 2), timesteps=taus, eta=0.0, x_T=x_T)
        out = euler(model, x_T, grid)
        assert out.nfe == n
        assert torch.allclose(out.x, ddim, atol=1e-10, rtol=0), (kind, (out.x - ddim).abs().max())
    assert list(discrete_grid(diffusion, "uniform", 8).times[:-1]) == diffusion.ddim_timesteps(8).tolist()
    one = diffusion.ddim_step(model, x_T, diffusion.T, 0, eta=0.0)["sample"]  # a single jump T -> 0
    assert torch.allclose(euler(model, x_T, discrete_grid(diffusion, "uniform", 1)).x, one, atol=1e-12)


def test_discrete_grids_are_distinct_even_when_rounding_collides():
    diffusion = _random_diffusion(T=12)
    for kind in ("uniform", "quadratic", "karras"):
        for n in (1, 5, 11, 12):
            taus = discrete_grid(diffusion, kind, n).times
            assert len(set(taus)) == n + 1 and taus[0] == 12 and all(1 <= t <= 12 for t in taus[:-1])
            assert all(a > b for a, b in zip(taus, taus[1:]))


def test_time_grids_run_from_t_start_to_t_end():
    for kind in ("uniform", "quadratic", "karras"):
        grid = time_grid(kind, 12, SDE, 1.0, 1e-3)
        t = torch.tensor(grid.times)
        assert t[0] == 1.0 and t[-1] == pytest.approx(1e-3) and bool((t[1:] < t[:-1]).all())
    quadratic = torch.tensor(time_grid("quadratic", 12, SDE).times)
    uniform = torch.tensor(time_grid("uniform", 12, SDE).times)
    assert bool((quadratic[1:-1] < uniform[1:-1]).all())  # denser near the data
    levels = time_grid("karras", 12, SDE).sigma_tilde
    root = levels ** (1 / 7)
    assert torch.allclose(root[1:] - root[:-1], (root[-1] - root[0]) / 12 * torch.ones(12, dtype=torch.float64))


def test_convergence_orders_of_euler_heun_and_dpm_solver():
    # The karras grid from t = 1 to t_end = 1e-3 (the exact score is singular at t = 0, so stop just above it);
    # the reference is Heun with 2048 steps (its own error ~1e-6, far below the errors measured). A trajectory
    # that passes between two modes reaches Euler's asymptotic regime late (128 points of seed 9 give a slope of
    # 0.85 over N = 16..128, and 2.0 from 128 to 256), so the error is averaged over 256 points.
    x_T = torch.randn(256, 2, generator=gen(0), dtype=torch.float64)
    ref = heun(exact_eps, x_T, time_grid("karras", 2048, SDE)).x

    def error(solver, n):
        return float((solver(exact_eps, x_T, time_grid("karras", n, SDE)).x - ref).norm(dim=1).mean())

    ns = np.array([16, 32, 64, 128])
    slopes = {}
    for name, solver in (("euler", euler), ("heun", heun)):
        errors = np.array([error(solver, int(n)) for n in ns])
        slopes[name] = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    # measured: euler 0.99, heun 2.10
    assert 0.8 <= slopes["euler"] <= 1.2, slopes
    assert 1.6 <= slopes["heun"] <= 2.4, slopes
    # measured at N = 10: DPM-Solver++(2M) 0.18, Euler 0.25 (both 10 evaluations)
    assert error(dpm_solver_pp_2m, 10) < error(euler, 10)
    assert heun(exact_eps, x_T, time_grid("karras", 10, SDE)).nfe == 20
    assert solve(exact_eps, x_T, time_grid("karras", 10, SDE), "dpm_solver_pp_2m").nfe == 10


def test_sample_digits_ode_wraps_a_discrete_model():
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", T=50))

    def model(x, t):
        return 0.1 * x

    out = sample_digits_ode(diffusion, model, 3, solver="heun", num_steps=5, grid="karras", generator=gen(10))
    assert out.x.shape == (3, 1, 8, 8) and out.nfe == 9 and bool(torch.isfinite(out.x).all())
    again = sample_digits_ode(diffusion, model, 3, solver="heun", num_steps=5, grid="karras", generator=gen(10))
    assert torch.equal(out.x, again.x)
    ddim = sample_digits_ode(diffusion, model, 2, solver="euler", num_steps=5, grid="uniform", generator=gen(11))
    x_T = torch.randn((2, 1, 8, 8), generator=gen(11))
    ref = diffusion.ddim_sample_loop(model, (2, 1, 8, 8), num_steps=5, x_T=x_T)
    assert torch.allclose(ddim.x, ref, atol=1e-5)


# ---------------------------------------------------------------- karras grid from sigma_max, Heun on large steps
COSINE = GaussianDiffusion(NoiseSchedule.from_name("cosine", T=1000))  # abar_T = 2.4e-9: sigma_tilde_T = 2.0e4


def _sigma_tilde(diffusion: GaussianDiffusion) -> torch.Tensor:
    abar = torch.cumprod(1.0 - diffusion.schedule.betas, 0)
    return torch.sqrt((1.0 - abar) / abar)  # index t - 1


def test_karras_grid_starts_at_sigma_max_and_spaces_the_levels_by_rho():
    sig = _sigma_tilde(COSINE)
    start = int(torch.nonzero(sig <= 80.0).max()) + 1  # the largest timestep with sigma_tilde <= 80
    assert start == 991 and sig[start] > 80.0
    grid = discrete_grid(COSINE, "karras", 10)
    # before: (1000, 999, 998, 997, 996, 995, 984, 896, 260, 1, 0), six of ten steps at t >= 995
    assert grid.times == (991, 984, 969, 936, 858, 675, 355, 111, 20, 1, 0)
    assert grid.times[0] == start and float(grid.sigma_tilde[0]) <= 80.0
    # every chosen timestep is the one nearest in sigma_tilde to eq. 5's level between 80-ish and sigma_tilde_1
    root_max, root_min = float(sig[start - 1]) ** (1 / 7), float(sig[0]) ** (1 / 7)
    levels = (root_max + torch.linspace(0, 1, 10, dtype=torch.float64) * (root_min - root_max)) ** 7
    for tau, level in zip(grid.times[:-1], levels):
        assert int(torch.argmin((sig[:start] - level).abs())) + 1 == tau
    # the old grid is sigma_max = sigma_tilde_T; a start below T is never used by uniform / quadratic
    assert discrete_grid(COSINE, "karras", 10, sigma_max=1e9).times == (1000, 999, 998, 997, 996, 995, 984, 896, 260, 1, 0)
    assert discrete_grid(COSINE, "uniform", 10).times[0] == 1000 == discrete_grid(COSINE, "quadratic", 10).times[0]
    assert list(discrete_grid(COSINE, "uniform", 10).times[:-1]) == COSINE.ddim_timesteps(10).tolist()
    # sigma_min moves the low end; bad values are refused with the argument named
    assert discrete_grid(COSINE, "karras", 5, sigma_min=0.5).times[-2] == int(torch.argmin((sig - 0.5).abs())) + 1
    with pytest.raises(InputValueError, match="sigma_max"):
        discrete_grid(COSINE, "karras", 4, sigma_max=1e-4)
    with pytest.raises(InputValueError, match="sigma_min"):
        discrete_grid(COSINE, "karras", 4, sigma_min=100.0)
    with pytest.raises(InputValueError, match="sigma_max"):
        discrete_grid(COSINE, "karras", 995)


class GaussianDataEps:
    """The exact eps(x_t, t) of a discrete chain for data N(m, s^2 I): sigma (x - alpha m) / (alpha^2 s^2 + sigma^2)."""

    def __init__(self, diffusion: GaussianDiffusion, m: float, s: float) -> None:
        self.abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - diffusion.schedule.betas, 0)])
        self.m, self.s = m, s

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].sqrt().to(x.dtype)[:, None]
        sigma = (1.0 - self.abar[t]).sqrt().to(x.dtype)[:, None]
        return sigma * (x - a * self.m) / (a**2 * self.s**2 + sigma**2)

    def solution(self, x_T: torch.Tensor, sigma_tilde_T: float) -> torch.Tensor:
        """The exact ODE endpoint at t = 0: x_tilde(sigma) = m + sqrt(s^2 + sigma^2) z is linear in z."""
        z = (x_T.double() * math.sqrt(1.0 + sigma_tilde_T**2) - self.m) / math.sqrt(self.s**2 + sigma_tilde_T**2)
        return self.m + self.s * z


def test_heun_on_a_tiny_abar_T_schedule_is_the_method_not_round_off():
    eps = GaussianDataEps(COSINE, m=0.3, s=0.5)
    x_T = torch.randn(256, 2, generator=gen(30))
    for kind, n in (("quadratic", 10), ("karras", 10), ("karras", 4)):
        grid = discrete_grid(COSINE, kind, n)
        single, double = heun(eps, x_T, grid).x, heun(eps, x_T.double(), grid).x
        # the state is carried in float64, so a float32 eps_fn agrees with a float64 one (measured: 5e-2 of 148 on
        # the quadratic grid, whose corrector multiplies the input's round-off by 1e4; 3e-7 on the karras grid)
        assert (single.double() - double).abs().max() <= 1e-3 * max(1.0, float(double.abs().max())), kind
    # exact data-prediction along the grid; the corrector's change is half the step ratio times the change of D
    grid = discrete_grid(COSINE, "quadratic", 10)
    x = x_T.double()
    a, s, sig = grid.alpha.tolist(), grid.sigma.tolist(), grid.sigma_tilde.tolist()
    t0, t1 = (torch.full((256,), t, dtype=torch.long) for t in grid.times[:2])
    e0 = eps(x, t0)
    d0, predicted = x / a[0] - sig[0] * e0, x / a[0] + (sig[1] - sig[0]) * e0
    d1 = predicted - sig[1] * eps(a[1] * predicted, t1)
    one_step = heun(eps, x, ODEGrid(grid.times[:2], grid.alpha[:2], grid.sigma[:2])).x / a[1]
    torch.testing.assert_close(one_step - predicted, (sig[0] / sig[1] - 1) / 2 * (d1 - d0), rtol=1e-9, atol=1e-9)
    assert sig[0] / sig[1] > 6000  # first step 1000 -> 790
    # so Heun's error on exact eps is the grid's: large from t = T on the quadratic grid, small from sigma_max = 80
    heun_err = {kind: float((heun(eps, x_T.double(), discrete_grid(COSINE, kind, 10)).x
                             - eps.solution(x_T, float(discrete_grid(COSINE, kind, 10).sigma_tilde[0]))).abs().max())
                for kind in ("quadratic", "karras")}
    euler_err = float((euler(eps, x_T.double(), grid).x - eps.solution(x_T, sig[0])).abs().max())
    # measured: Heun 146 (quadratic) and 0.27 (karras), Euler 0.21 on the quadratic grid
    assert heun_err["quadratic"] > 100.0 * euler_err and heun_err["quadratic"] > 100.0 * heun_err["karras"], heun_err


# ------------------------------------------------------------------------------------------ likelihood
def test_ode_likelihood_with_the_exact_divergence_is_the_mixture_log_density():
    x = MIX.sample(200, gen(12))

    def prior(x1):  # p_1 exactly (N(0, I) differs by ~1e-5 nats here, as alpha(1) ~= 0.0066)
        return MIX.marginal_log_prob(x1, 1.0, SDE)

    log_p = ode_log_likelihood(x, SDE, exact_score, n_steps=100, divergence="exact", prior_log_prob=prior)
    error = (log_p - MIX.log_prob(x)).abs()
    assert float(error.mean()) < 1e-3  # measured: 1.6e-5 mean, 1.7e-4 max
    default_prior = ode_log_likelihood(x[:50], SDE, exact_score, n_steps=100)
    assert float((default_prior - MIX.log_prob(x[:50])).abs().mean()) < 1e-3


def test_hutchinson_is_an_unbiased_estimate_of_the_divergence():
    x = MIX.sample(20, gen(13)) * 0.8
    t = 0.3

    def field(y):
        return SDE.ode_drift(y, t, MIX.marginal_score(y, t, SDE))

    exact = exact_divergence(field, x)
    for kind in ("rademacher", "gaussian"):
        probes = draw_probes(tuple(x.shape), 4000, kind, gen(14))
        estimates = hutchinson_divergence(field, x, probes, per_probe=True)  # (4000, 20)
        standard_error = estimates.std(0) / math.sqrt(estimates.shape[0])
        assert ((estimates.mean(0) - exact).abs() <= 4 * standard_error).all(), kind
        assert torch.allclose(hutchinson_divergence(field, x, probes), estimates.mean(0))
    # the log-likelihood with one Rademacher probe per trajectory: unbiased, variance measured 0.51 nats^2 / point (mean 0.050 +- 0.050)
    points = MIX.sample(200, gen(15))
    exact_lp = ode_log_likelihood(points, SDE, exact_score, n_steps=40)
    hutch_lp = ode_log_likelihood(points, SDE, exact_score, n_steps=40, divergence="hutchinson", generator=gen(16))
    difference = hutch_lp - exact_lp
    assert abs(float(difference.mean())) <= 4 * float(difference.std()) / math.sqrt(200)
    assert 0.05 < float(difference.var()) < 5.0


# ------------------------------------------------------------------------------------------ flow matching
def test_velocity_conversions_round_trip_and_the_eps_weighting():
    g = gen(17)
    x0, eps = torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randn(32, 3, generator=g, dtype=torch.float64)
    t = torch.rand(32, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x_t, v = cfm_path(x0, t, eps)
    assert torch.allclose(x0_from_velocity(x_t, t, v), x0, atol=1e-12)
    assert torch.allclose(eps_from_velocity(x_t, t, v), eps, atol=1e-12)
    assert torch.allclose(velocity_from_eps(x_t, t, eps), v, atol=1e-10)
    assert torch.allclose(velocity_from_x0(x_t, t, x0), v, atol=1e-10)
    v_hat = torch.randn(32, 3, generator=g, dtype=torch.float64)  # an arbitrary network output
    eps_hat = eps_from_velocity(x_t, t, v_hat)  # the same prediction, read as noise
    ratio = (v_hat - v).pow(2).sum(1) / (eps_hat - eps).pow(2).sum(1)
    assert torch.allclose(ratio, cfm_as_eps_weighting(t), rtol=1e-10)
    assert float(cfm_as_eps_weighting(0.5)) == 4.0


def test_cfm_loss_is_zero_for_the_conditional_velocity_and_mean_squared_otherwise():
    g = gen(18)
    x0, eps = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    t = torch.rand(8, generator=g, dtype=torch.float64)

    def oracle(x_t, tt):  # knows the pair: returns eps - x0
        return eps - x0

    assert float(cfm_loss(oracle, x0, t, eps)) == 0.0
    per = cfm_loss(lambda x_t, tt: torch.zeros_like(x_t), x0, t, eps, reduction="none")
    assert torch.allclose(per, (eps - x0).pow(2).mean(1))


def gaussian_velocity(m: torch.Tensor, s: float):
    r"""The marginal velocity E[eps - x0 | x_t = x] for data N(m, s^2 I) on the straight path.

    x_t = (1 - t) x0 + t eps is Gaussian with mean (1 - t) m and variance var(t) = (1 - t)^2 s^2 + t^2;
    v = eps - x0 has mean -m and Cov(v, x_t) = t - (1 - t) s^2 per coordinate; the Gaussian
    conditional mean is E[v | x_t = x] = -m + (t - (1 - t) s^2) / var(t) (x - (1 - t) m). Its flow
    maps x_1 to x_0 = m + s x_1 (the ODE keeps (x - (1 - t) m) / sqrt(var(t)) constant).
    """
    def v(x, t):
        t = t[:, None]
        var = (1 - t) ** 2 * s**2 + t**2
        return -m + (t - (1 - t) * s**2) / var * (x - (1 - t) * m)

    return v


def test_sample_flow_with_the_exact_gaussian_velocity_recovers_the_data():
    m, s = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.3
    x1 = torch.randn(4000, 2, generator=gen(19), dtype=torch.float64)
    out = sample_flow(gaussian_velocity(m, s), x1, n_steps=100, method="heun")
    assert out.nfe == 200
    assert (out.x - (m + s * x1)).abs().max() < 5e-4  # the exact map, pointwise (measured 1.6e-4)
    moments_within(out.x, m, s**2 * torch.eye(2, dtype=torch.float64))
    coarse = sample_flow(gaussian_velocity(m, s), x1, n_steps=100, method="euler")
    assert coarse.nfe == 100 and (coarse.x - (m + s * x1)).abs().max() < 0.05  # first order: measured 0.022


# ------------------------------------------------------------------------------------------ argument checks
def test_vpsde_arguments_are_checked():
    with pytest.raises(InputValueError, match="beta_max"):
        VPSDE(beta_min=1.0, beta_max=0.5)
    with pytest.raises(InputValueError, match="beta_min"):
        VPSDE(beta_min=0.0)
    with pytest.raises(InputValueError, match="t must"):
        SDE.alpha(1.5)
    with pytest.raises(InputTypeError, match="t must hold continuous times"):
        SDE.alpha(torch.tensor([1, 2]))
    with pytest.raises(InputValueError, match="eps"):
        SDE.marginal(torch.zeros(3, 2), 0.5, torch.zeros(3, 3))
    with pytest.raises(InputValueError, match="t_grid"):
        SDE.simulate_forward(torch.zeros(3, 2), [0.5, 0.2])
    with pytest.raises(InputTypeError, match="score_fn"):
        SDE.sample_ode("not a function", torch.zeros(3, 2))
    with pytest.raises(InputValueError, match="method"):
        SDE.sample_ode(exact_score, torch.zeros(3, 2), method="rk45")
    with pytest.raises(InputValueError, match="t_end"):
        SDE.sample_reverse_sde(exact_score, torch.zeros(3, 2), t_start=0.1, t_end=0.2)
    with pytest.raises(InputTypeError, match="generator"):
        SDE.sample_reverse_sde(exact_score, torch.zeros(3, 2), generator=0)
    with pytest.raises(InputValueError, match="n_steps"):
        SDE.sample_ode(exact_score, torch.zeros(3, 2), n_steps=0)


def test_mixture_arguments_are_checked():
    eye = torch.eye(2, dtype=torch.float64)[None]
    with pytest.raises(InputValueError, match="weights"):
        GaussianMixture([0.5, 0.6], torch.zeros(2, 2), eye.repeat(2, 1, 1))
    with pytest.raises(InputValueError, match="covariances"):
        GaussianMixture([1.0], torch.zeros(1, 2), torch.zeros(1, 3, 3))
    with pytest.raises(InputValueError, match="positive definite"):
        GaussianMixture([1.0], torch.zeros(1, 2), -eye)
    with pytest.raises(InputValueError, match=r"x must be a batch of points of shape \(B, 2\)"):
        MIX.log_prob(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(InputTypeError, match="sde must have alpha"):
        MIX.marginal_score(torch.zeros(4, 2, dtype=torch.float64), 0.5, "vp")
    with pytest.raises(InputValueError, match="n must be"):
        MIX.sample(0)
    with pytest.raises(InputValueError, match="scale"):
        two_d_mixture(scale=-1.0)


def test_solver_arguments_are_checked():
    x = torch.zeros(3, 2, dtype=torch.float64)
    grid = time_grid("karras", 4, SDE)
    with pytest.raises(InputValueError, match="grid kind"):
        time_grid("cosine", 4, SDE)
    with pytest.raises(InputValueError, match="t_end"):
        time_grid("uniform", 4, SDE, t_start=0.1, t_end=0.5)
    with pytest.raises(InputTypeError, match="eps_fn"):
        euler(None, x, grid)
    with pytest.raises(InputTypeError, match="grid must be an ODEGrid"):
        heun(exact_eps, x, [1.0, 0.5])
    backwards = ODEGrid(grid.times[::-1], grid.alpha.flip(0), grid.sigma.flip(0))
    with pytest.raises(InputValueError, match="grid must run from noise towards data"):
        dpm_solver_pp_2m(exact_eps, x, backwards)
    with pytest.raises(InputValueError, match="solver"):
        solve(exact_eps, x, grid, "rk4")
    diffusion = _random_diffusion(T=10)
    with pytest.raises(InputValueError, match="n must be <= T"):
        discrete_grid(diffusion, "uniform", 11)
    with pytest.raises(InputTypeError, match="diffusion must be a GaussianDiffusion"):
        discrete_grid(SDE, "uniform", 4)
    with pytest.raises(InputTypeError, match="shape"):
        sample_digits_ode(diffusion, lambda x, t: x, 2, shape="1x8x8")


def test_likelihood_arguments_are_checked():
    x = MIX.sample(4, gen(20))
    with pytest.raises(InputValueError, match="divergence"):
        ode_log_likelihood(x, SDE, exact_score, divergence="skilling")
    with pytest.raises(InputTypeError, match="sde must be a VPSDE"):
        ode_log_likelihood(x, "vp", exact_score)
    with pytest.raises(InputValueError, match="probes must have shape"):
        hutchinson_divergence(lambda y: y, x, torch.ones(4, 2, dtype=torch.float64))
    with pytest.raises(InputValueError, match=r"fn\(x\) must return"):
        exact_divergence(lambda y: y.sum(1), x)
    with pytest.raises(InputValueError, match="probe kind"):
        draw_probes((4, 2), 3, "uniform")
    with pytest.raises(InputValueError, match="prior_log_prob"):
        ode_log_likelihood(x, SDE, exact_score, n_steps=1, prior_log_prob=lambda y: y)


def test_flow_matching_arguments_are_checked():
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(InputValueError, match="t must be < 1"):
        cfm_as_eps_weighting(1.0)
    with pytest.raises(InputValueError, match="t must not equal 1"):
        velocity_from_eps(x, 1.0, x)
    with pytest.raises(InputValueError, match="x_t and v"):
        x0_from_velocity(x, 0.5, torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(InputValueError, match="t must be a 1-D"):
        cfm_loss(lambda y, t: y, x, 0.5, x)
    with pytest.raises(InputValueError, match="method"):
        sample_flow(lambda y, t: y, x, method="rk4")
    with pytest.raises(InputTypeError, match="velocity_fn"):
        sample_flow(3, x)
