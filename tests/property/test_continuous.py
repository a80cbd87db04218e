"""Property tests of diffusion_lib.continuous (the VP SDE, the exact mixture, the ODE solvers and grids,
ODE likelihoods, flow matching): bad and edge-case input.

Every call either returns the value computed here independently (a closed form, or the same quantity
by another route) or raises one of the library's own errors whose message names the argument; never
a raw error, never a silently wrong result. The type aliases ``ScoreFn`` (score_fn(x, t) -> score) and
``NoiseLevels`` (anything with alpha(t) and sigma(t)) are exercised through every score_fn and sde below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.continuous import (
    GRID_KINDS,
    GaussianMixture,
    NoiseLevels,
    ODEGrid,
    ScoreFn,
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
    standard_normal_log_prob,
    time_grid,
    two_d_mixture,
    velocity_from_eps,
    velocity_from_x0,
    x0_from_velocity,
)
from tests.property._harness import call, must_refuse

torch.set_num_threads(1)
NAN, INF = float("nan"), float("inf")
SDE = VPSDE()
SMALL = settings(max_examples=30)
TINY = settings(max_examples=15)

DTYPES = st.sampled_from([torch.float32, torch.float64])
BATCH = st.integers(0, 3)
# every time form a student may pass: (value, what it means; None = must be refused)
TIME_CASES = [0.0, 0.5, 1.0, 1e-3, -0.1, 1.1, NAN, INF, True, "0.5", None, np.float64(0.25), 1,
              torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float32), torch.tensor(True), torch.tensor([0.2, 0.7]),
              torch.tensor([0.2, 0.7], dtype=torch.float32), torch.tensor([1, 0]), torch.tensor([0.5, NAN]),
              torch.tensor([0.5, 1.5]), torch.zeros(0)]
times = st.sampled_from(TIME_CASES)
counts = st.sampled_from([0, -1, 1, 3, 2.5, "3", np.int64(3), True, None])


def _time_value(t: object) -> np.ndarray | None:
    """The times (float64 array, 0-d or 1-D) a valid time argument means, or None when it must be refused."""
    if isinstance(t, bool) or isinstance(t, str) or t is None:
        return None
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            return None
        v = t.double().numpy()
    else:
        v = np.asarray(float(t))
    if not np.isfinite(v).all() or (v.size and (v.min() < 0 or v.max() > 1)):
        return None
    return v


def _good_count(v: object, minimum: int = 1) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum


def _B(t: np.ndarray) -> np.ndarray:
    return 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)  # B(t) for the default VPSDE, written out


def _data(kind: str, B: int, d: int, dtype: torch.dtype) -> object:
    return {"ok": torch.linspace(-1, 1, B * d, dtype=dtype).reshape(B, d), "nan": torch.full((max(B, 1), d), NAN),
            "inf": torch.full((max(B, 1), d), INF, dtype=dtype), "int": torch.zeros(B, d, dtype=torch.long),
            "half": torch.zeros(B, d, dtype=torch.float16), "scalar": torch.tensor(1.0), "list": [[0.0] * d] * B,
            "bool": torch.zeros(B, d, dtype=torch.bool)}[kind]


DATA_KINDS = st.sampled_from(["ok", "ok", "ok", "nan", "inf", "int", "half", "scalar", "list", "bool"])


# ------------------------------------------------------------------------------------------ VPSDE
@SMALL
@given(st.sampled_from([0.1, 1.0, 0.0, -1.0, NAN, INF, "0.1", True, np.float64(0.5)]),
       st.sampled_from([20.0, 0.5, 0.1, 0.0, NAN, INF, "20", False, np.float32(10.0)]))
def test_vpsde_constructor(beta_min, beta_max):
    sde, err = call(VPSDE, beta_min, beta_max)
    def real(v):
        return isinstance(v, (float, np.floating)) and np.isfinite(v) and v > 0
    ok = real(beta_min) and real(beta_max) and float(beta_max) >= float(beta_min)
    assert (err is None) == ok, (beta_min, beta_max, err)
    if ok:
        t = 0.3
        expected = math.exp(-0.5 * (float(beta_min) * t + 0.5 * t * t * (float(beta_max) - float(beta_min))))
        assert float(sde.alpha(t)) == pytest.approx(expected, rel=1e-12)
    elif isinstance(beta_min, float) and isinstance(beta_max, float) and real(beta_min) and real(beta_max):
        assert "beta_max" in str(err)


@given(times)
def test_vpsde_schedule_functions_match_the_closed_form(t):
    v = _time_value(t)
    fns = (SDE.beta, SDE.integrated_beta, SDE.alpha, SDE.sigma, SDE.log_snr, SDE.sigma_tilde, SDE.g)
    if v is None:
        for fn in fns:
            must_refuse(fn, t, names="t")
        return
    B = _B(v)
    alpha = np.exp(-0.5 * B)
    expected = {SDE.beta: 0.1 + v * 19.9, SDE.integrated_beta: B, SDE.alpha: alpha, SDE.sigma: np.sqrt(1 - alpha**2),
                SDE.sigma_tilde: np.sqrt(1 - alpha**2) / alpha, SDE.g: np.sqrt(0.1 + v * 19.9)}
    for fn, ref in expected.items():
        out = fn(t)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and tuple(out.shape) == v.shape, fn
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-9, atol=1e-12)
    log_snr = SDE.log_snr(t).numpy()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(log_snr, np.log(alpha**2 / (1 - alpha**2)), rtol=1e-6)
    back = SDE.t_from_sigma_tilde(SDE.sigma_tilde(t))
    np.testing.assert_allclose(back.numpy(), v, atol=1e-9)


@given(st.sampled_from([0.0, 1.0, 152.0, 1e6, -1.0, NAN, INF, "1", True, torch.tensor([0.5, 2.0]),
                        torch.tensor([-1.0]), torch.tensor(2.0), torch.zeros(0), torch.tensor([1, 2])]))
def test_t_from_sigma_tilde_inverts_or_refuses(s):
    top = float(SDE.sigma_tilde(1.0))
    if isinstance(s, torch.Tensor):
        vals = s.double().numpy() if s.is_floating_point() else None
    else:
        vals = None if isinstance(s, (bool, str)) else np.asarray(float(s))
    ok = vals is not None and np.isfinite(vals).all() and (vals.size == 0 or (vals.min() >= 0 and vals.max() <= top))
    out, err = call(SDE.t_from_sigma_tilde, s)
    assert (err is None) == ok, (s, err)
    if ok:
        assert bool(((out >= 0) & (out <= 1)).all())
        np.testing.assert_allclose(SDE.sigma_tilde(out).numpy(), vals, rtol=1e-9, atol=1e-12)
    else:
        assert "sigma_tilde" in str(err)


@SMALL
@given(DATA_KINDS, BATCH, st.integers(1, 3), DTYPES, times)
def test_drift_marginal_and_reverse_drifts(kind, B, d, dtype, t):
    x = _data(kind, B, d, dtype)
    v = _time_value(t)
    batch_ok = v is not None and (v.ndim == 0 or v.shape[0] == B)
    ok = kind == "ok" and batch_ok
    results = {}
    for name, fn, args in (("drift", SDE.drift, (x, t)), ("marginal", SDE.marginal, (x, t, x)),
                           ("reverse", SDE.reverse_drift, (x, t, x)), ("ode", SDE.ode_drift, (x, t, x))):
        out, err = call(fn, *args)
        assert (err is None) == ok, (name, kind, t, err)
        results[name] = out
        if err is not None and kind == "ok":
            assert "t" in str(err)
    if not ok:
        return
    per = torch.as_tensor(v).reshape(-1, *([1] * (x.ndim - 1))) if v.ndim else torch.as_tensor(v)
    beta = (0.1 + per * 19.9).double()
    alpha = torch.exp(-0.5 * torch.as_tensor(_B(per.numpy())))
    x64 = x.double()
    for name, ref in (("drift", -0.5 * beta * x64), ("marginal", alpha * x64 + torch.sqrt(1 - alpha**2) * x64),
                      ("reverse", -0.5 * beta * x64 - beta * x64), ("ode", -0.5 * beta * x64 - 0.5 * beta * x64)):
        out = results[name]
        assert out.dtype == dtype and out.shape == x.shape, name
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def _gaussian_score(m: float, s: float):
    """The exact score of p_t for data N(m, s^2 I) under the default VP SDE (a ScoreFn)."""
    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(-0.5 * (0.1 * t + 0.5 * t**2 * 19.9)).to(x.dtype)[:, None]
        return -(x - alpha * m) / (alpha**2 * s**2 + 1 - alpha**2)
    return score


SCORE_FNS = {"gauss": _gaussian_score(0.5, 0.3), "shape": lambda x, t: x[:, :1], "list": lambda x, t: [0.0],
             "none": None}
score_fns: st.SearchStrategy[str] = st.sampled_from(["gauss", "gauss", "shape", "list", "none"])


@TINY
@given(score_fns, DATA_KINDS, st.sampled_from([1, 4, 0, True, 2.5]), st.sampled_from(["heun", "rk4", "euler", "midpoint"]),
       st.sampled_from([(1.0, 1e-3), (0.5, 0.6), (1.0, 1.0), (1.2, 0.0), (NAN, 0.1)]))
def test_sample_ode_and_reverse_sde(fn, kind, n_steps, method, interval):
    score: ScoreFn | None = SCORE_FNS[fn]
    x = _data(kind, 3, 2, torch.float64)
    t_start, t_end = interval
    ok_common = fn == "gauss" and kind == "ok" and _good_count(n_steps) and interval in ((1.0, 1e-3),)
    out, err = call(SDE.sample_ode, score, x, n_steps=n_steps, method=method, t_start=t_start, t_end=t_end)
    assert (err is None) == (ok_common and method != "midpoint"), (fn, kind, n_steps, method, interval, err)
    if err is None and method == "rk4":  # the ODE keeps z = (x - alpha m) / sqrt(alpha^2 s^2 + sigma^2) fixed
        def std(tt):
            a = math.exp(-0.5 * float(_B(np.asarray(tt))))
            return a, math.sqrt(a * a * 0.09 + 1 - a * a)
        (a1, s1), (a0, s0) = std(1.0), std(1e-3)
        ref = a0 * 0.5 + s0 * (x - a1 * 0.5) / s1
        tol = 0.05 if int(n_steps) == 1 else 2e-3
        torch.testing.assert_close(out, ref, atol=tol, rtol=0)
    out, err = call(SDE.sample_reverse_sde, score, x, n_steps=n_steps, generator=torch.Generator().manual_seed(0),
                    t_start=t_start, t_end=t_end)
    assert (err is None) == ok_common, err
    if err is None and int(n_steps) == 1:  # one step, no noise: x - [f - g^2 score] h
        h = 1.0 - 1e-3
        beta = 20.0
        ref = x - (-0.5 * beta * x - beta * score(x, torch.ones(3, dtype=torch.float64))) * h
        torch.testing.assert_close(out, ref)
    if fn == "shape" and kind == "ok" and _good_count(n_steps) and interval == (1.0, 1e-3) and method != "midpoint":
        assert "score" in str(err)


@TINY
@given(DATA_KINDS, st.sampled_from([[0.0, 0.5, 1.0], [0.0], [0.5, 0.2], [0.0, 1.5], "abc", torch.tensor([0.0, 0.5]),
                                    torch.tensor([0, 1]), [0.0, NAN]]),
       st.sampled_from([None, "seed", 0]))
def test_simulate_forward(kind, grid, generator):
    x = _data(kind, 4, 2, torch.float64)
    g = torch.Generator().manual_seed(1) if generator is None else generator
    out, err = call(SDE.simulate_forward, x, grid, generator=g)
    ok_grid = (isinstance(grid, list) and len(grid) >= 2 and all(0 <= v <= 1 for v in grid)
               and all(b > a for a, b in zip(grid[:-1], grid[1:]))) or (
        isinstance(grid, torch.Tensor) and grid.is_floating_point())
    ok = kind == "ok" and ok_grid and generator is None
    assert (err is None) == ok, (kind, grid, generator, err)
    if ok:
        pts = grid.tolist() if isinstance(grid, torch.Tensor) else grid
        assert out.shape == (len(pts), 4, 2) and torch.equal(out[0], x)
        z = torch.randn((4, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        h = pts[1] - pts[0]
        ref = x - 0.5 * (0.1 + pts[0] * 19.9) * x * h + math.sqrt((0.1 + pts[0] * 19.9) * h) * z
        torch.testing.assert_close(out[1], ref)


@SMALL
@given(st.sampled_from([3, 10, 0, True, 2.5, "4"]))
def test_discrete_betas(T):
    out, err = call(SDE.discrete_betas, T)
    assert (err is None) == _good_count(T), err
    if err is None:
        abar = np.cumprod(1 - out.numpy())
        np.testing.assert_allclose(abar, np.exp(-_B(np.arange(1, T + 1) / T)), rtol=1e-10)
    else:
        assert "T" in str(err)


# ------------------------------------------------------------------------------------------ the mixture
def _mvn_log_prob(x: np.ndarray, m: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = len(m)
    diff = x - m
    sol = np.linalg.solve(c, diff.T).T
    return -0.5 * (d * math.log(2 * math.pi) + math.log(np.linalg.det(c)) + (diff * sol).sum(1))


MIX_ARGS = {
    "ok": ([0.3, 0.7], [[0.0, 0.0], [1.0, -1.0]], [[[1.0, 0.2], [0.2, 0.5]], [[0.3, 0.0], [0.0, 0.3]]]),
    "sum": ([0.3, 0.6], [[0.0, 0.0], [1.0, -1.0]], [np.eye(2).tolist()] * 2),
    "negative": ([1.3, -0.3], [[0.0, 0.0], [1.0, -1.0]], [np.eye(2).tolist()] * 2),
    "nan": ([0.5, 0.5], [[NAN, 0.0], [1.0, -1.0]], [np.eye(2).tolist()] * 2),
    "shape": ([0.5, 0.5], [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]], [np.eye(2).tolist()] * 2),
    "asym": ([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]),
    "not_pd": ([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]),
    "string": ("abc", [[0.0, 0.0]], [np.eye(2).tolist()]),
    "empty": ([], [], []),
    "means_1d": ([1.0], [0.0, 0.0], [np.eye(2).tolist()]),
}


@given(st.sampled_from(sorted(MIX_ARGS)))
def test_gaussian_mixture_constructor_and_log_prob(case):
    weights, means, covs = MIX_ARGS[case]
    mix, err = call(GaussianMixture, weights, means, covs)
    assert (err is None) == (case == "ok"), (case, err)
    if err is not None:
        return
    x = torch.tensor([[0.1, -0.2], [1.5, 0.3], [-2.0, 1.0]], dtype=torch.float64)
    comps = [math.log(w) + _mvn_log_prob(x.numpy(), np.array(m), np.array(c)) for w, m, c in zip(weights, means, covs)]
    ref = np.logaddexp(*comps)
    np.testing.assert_allclose(mix.log_prob(x).numpy(), ref, rtol=1e-10)
    mu = np.array(weights) @ np.array(means)
    np.testing.assert_allclose(mix.mean().numpy(), mu)
    second = sum(w * (np.array(c) + np.outer(m, m)) for w, m, c in zip(weights, means, covs))
    np.testing.assert_allclose(mix.covariance().numpy(), second - np.outer(mu, mu), atol=1e-12)


MIX = two_d_mixture()


@SMALL
@given(st.sampled_from(["ok", "ok", "dim", "nan", "int", "1d", "f32", "empty"]), times,
       st.sampled_from(["vp", "vp", "string", "levels"]))
def test_mixture_marginals_and_scores(kind, t, sde_kind):
    x = {"ok": torch.tensor([[0.1, -0.2], [1.5, 0.3]], dtype=torch.float64), "dim": torch.zeros(2, 3, dtype=torch.float64),
         "nan": torch.tensor([[NAN, 0.0], [0.0, 0.0]]), "int": torch.zeros(2, 2, dtype=torch.long),
         "1d": torch.zeros(2, dtype=torch.float64), "f32": torch.tensor([[0.1, -0.2], [1.5, 0.3]]),
         "empty": torch.zeros(0, 2, dtype=torch.float64)}[kind]

    class Levels:  # a NoiseLevels that is not a VPSDE: a straight-line interpolation
        def alpha(self, tt):
            return 1.0 - torch.as_tensor(tt, dtype=torch.float64)

        def sigma(self, tt):
            return 0.5 * torch.as_tensor(tt, dtype=torch.float64) + 0.01

    sde: NoiseLevels | str = {"vp": SDE, "string": "vp", "levels": Levels()}[sde_kind]
    v = _time_value(t)
    B = x.shape[0]
    ok = kind in ("ok", "f32", "empty") and v is not None and (v.ndim == 0 or v.shape[0] == B) and sde_kind != "string"
    outs = {}
    for name in ("marginal_log_prob", "marginal_score", "marginal_eps"):
        out, err = call(getattr(MIX, name), x, t, sde)
        assert (err is None) == ok, (name, kind, t, sde_kind, err)
        outs[name] = out
    if not ok:
        return
    assert outs["marginal_score"].dtype == x.dtype and outs["marginal_score"].shape == x.shape
    if B == 0:
        return
    # the score is the gradient of the log-density (autograd on a separate float64 path)
    y = x.double().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(MIX.marginal_log_prob(y, t, sde).sum(), y)
    torch.testing.assert_close(outs["marginal_score"].double(), grad, rtol=1e-4, atol=1e-6)
    sigma = torch.as_tensor(sde.sigma(torch.as_tensor(v))).double().reshape(-1, 1)
    torch.testing.assert_close(outs["marginal_eps"].double(), -sigma * grad, rtol=1e-4, atol=1e-6)
    # the marginal density, component by component (alpha m_k, alpha^2 S_k + sigma^2 I)
    if v.ndim == 0:
        a, s = float(sde.alpha(float(v))), float(sde.sigma(float(v)))
        comps = [math.log(float(w)) + _mvn_log_prob(x.double().numpy(), a * m.numpy(), a * a * c.numpy() + s * s * np.eye(2))
                 for w, m, c in zip(MIX.weights, MIX.means, MIX.covariances)]
        ref = np.log(np.sum(np.exp(np.array(comps)), axis=0))
        np.testing.assert_allclose(outs["marginal_log_prob"].numpy(), ref, rtol=1e-8)
        mean, cov = MIX.marginal_moments(float(v), sde)
        np.testing.assert_allclose(mean.numpy(), a * MIX.mean().numpy(), atol=1e-12)
        np.testing.assert_allclose(cov.numpy(), a * a * MIX.covariance().numpy() + s * s * np.eye(2), atol=1e-12)


@SMALL
@given(counts, st.sampled_from([None, "gen", 3]), st.sampled_from([1.0, 0.5, 0.0, -1.0, NAN, "2", True]))
def test_mixture_sample_and_two_d_mixture(n, generator, scale):
    g = torch.Generator().manual_seed(0) if generator == "gen" else generator
    out, err = call(MIX.sample, n, generator=g)
    assert (err is None) == (_good_count(n) and generator != 3), (n, generator, err)
    if err is None:
        assert out.shape == (int(n), 2) and out.dtype == torch.float64 and bool(torch.isfinite(out).all())
    mix, err = call(two_d_mixture, scale)
    ok = isinstance(scale, float) and math.isfinite(scale) and scale > 0
    assert (err is None) == ok, (scale, err)
    if ok:
        torch.testing.assert_close(mix.means, MIX.means * scale)
        torch.testing.assert_close(mix.covariances, MIX.covariances * scale**2)
    else:
        assert "scale" in str(err)


def test_mixture_moments_match_a_large_sample():
    x = MIX.sample(40000, torch.Generator().manual_seed(5))
    se = x.std(0) / math.sqrt(x.shape[0])
    assert bool(((x.mean(0) - MIX.mean()).abs() < 5 * se).all())
    torch.testing.assert_close(torch.cov(x.T), MIX.covariance(), atol=0.03, rtol=0)
    must_refuse(MIX.marginal_moments, torch.tensor([0.2, 0.3]), SDE, names="single time")


@SMALL
@given(DATA_KINDS, BATCH, st.sampled_from([0.5, 0.0, -1.0, NAN, "1", True, torch.tensor([0.5, 1.0, 2.0]),
                                           torch.tensor(0.3), torch.tensor([NAN])]))
def test_eps_from_score(kind, B, sigma):
    score = _data(kind, B, 2, torch.float64)
    out, err = call(eps_from_score, score, sigma)
    if isinstance(sigma, torch.Tensor):
        s_ok = bool(torch.isfinite(sigma).all()) and (sigma.ndim == 0 or sigma.shape[0] == B)
    else:
        s_ok = isinstance(sigma, float) and math.isfinite(sigma) and sigma >= 0
    ok = kind == "ok" and s_ok
    assert (err is None) == ok, (kind, B, sigma, err)
    if ok:
        s = sigma.reshape(-1, 1) if isinstance(sigma, torch.Tensor) and sigma.ndim == 1 else sigma
        torch.testing.assert_close(out, -s * score)


# ------------------------------------------------------------------------------------------ grids
@SMALL
@given(st.sampled_from(list(GRID_KINDS) + ["cosine", 3]), counts,
       st.sampled_from([(1.0, 1e-3), (0.8, 0.0), (0.5, 0.5), (1.0, 1.5), (NAN, 0.1), (0.3, 0.7)]),
       st.sampled_from([7.0, 1.0, 0.0, NAN, "7"]), st.sampled_from(["vp", "vp", "other", "none"]))
def test_time_grid(kind, n, interval, rho, sde_kind):
    sde = {"vp": VPSDE(0.1, 10.0), "other": "vp", "none": None}[sde_kind]
    t_start, t_end = interval
    grid, err = call(time_grid, kind, n, sde, t_start, t_end, rho)
    ok = (kind in GRID_KINDS and _good_count(n) and interval in ((1.0, 1e-3), (0.8, 0.0))
          and isinstance(rho, float) and math.isfinite(rho) and rho > 0 and sde_kind != "other"
          and not (kind == "karras" and t_end == 0.0))
    assert (err is None) == ok, (kind, n, interval, rho, sde_kind, err)
    if not ok:
        return
    used = sde or VPSDE()
    t = torch.tensor(grid.times, dtype=torch.float64)
    assert len(grid) == int(n) and t[0] == t_start and t[-1] == pytest.approx(t_end) and bool((t[1:] < t[:-1]).all())
    torch.testing.assert_close(grid.alpha, torch.exp(-0.5 * (used.beta_min * t + 0.5 * t**2 * (used.beta_max - used.beta_min))))
    torch.testing.assert_close(grid.sigma, torch.sqrt(1 - grid.alpha**2))
    u = torch.arange(int(n) + 1, dtype=torch.float64) / int(n)
    if kind == "uniform":
        torch.testing.assert_close(t, t_start + u * (t_end - t_start))
    elif kind == "quadratic":
        torch.testing.assert_close(t, t_end + (t_start - t_end) * (1 - u) ** 2)
    else:
        root = grid.sigma_tilde ** (1.0 / rho)
        torch.testing.assert_close(root, root[0] + u * (root[-1] - root[0]), rtol=1e-6, atol=1e-9)


DIFFS = {"linear": GaussianDiffusion(NoiseSchedule.from_name("linear", T=20, beta_start=0.01, beta_end=0.3)),
         "cosine": GaussianDiffusion(NoiseSchedule.from_name("cosine", T=40))}


@SMALL
@given(st.sampled_from(["linear", "cosine", "sde"]), st.sampled_from(list(GRID_KINDS) + ["log"]),
       st.sampled_from([1, 2, 5, 19, 20, 21, 0, True, 2.5, np.int64(4)]),
       st.sampled_from([80.0, 5.0, 1e-4, 0.0, NAN, "80"]), st.sampled_from([None, None, 0.05, 0.0, 1e3, NAN]))
def test_discrete_grid(which, kind, n, sigma_max, sigma_min):
    diffusion = DIFFS.get(which, SDE)
    grid, err = call(discrete_grid, diffusion, kind, n, sigma_max=sigma_max, sigma_min=sigma_min)
    if which == "sde" or kind not in GRID_KINDS or not _good_count(n):
        assert err is not None
        return
    real_ok = isinstance(sigma_max, float) and math.isfinite(sigma_max) and sigma_max > 0 and (
        sigma_min is None or (math.isfinite(sigma_min) and sigma_min > 0))
    T = diffusion.T
    abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - diffusion.schedule.betas, 0)])
    sig = torch.sqrt((1 - abar[1:]) / abar[1:])
    start = int(torch.nonzero(sig <= sigma_max).max()) + 1 if real_ok and bool((sig <= sigma_max).any()) else None
    ok = real_ok and int(n) <= T
    if kind == "karras" and ok:
        low = float(sig[0]) if sigma_min is None else sigma_min
        ok = start is not None and int(n) <= start and low < float(sig[start - 1])
    assert (err is None) == ok, (which, kind, n, sigma_max, sigma_min, err)
    if not ok:
        if real_ok and int(n) <= T:
            assert "sigma_m" in str(err), err
        return
    taus = list(grid.times)
    assert taus[-1] == 0 and len(taus) == int(n) + 1 and all(a > b for a, b in zip(taus, taus[1:])) and taus[-2] >= 1
    torch.testing.assert_close(grid.alpha, abar[taus].sqrt())
    torch.testing.assert_close(grid.sigma, (1 - abar[taus]).sqrt())
    assert grid.discrete
    if kind == "uniform":
        assert taus[:-1] == diffusion.ddim_timesteps(int(n)).tolist()
    elif kind == "karras":
        assert taus[0] == start and float(sig[taus[0] - 1]) <= sigma_max
    else:
        assert taus[0] == T


# ------------------------------------------------------------------------------------------ solvers
M_POINT = 0.4  # data = a point mass at 0.4: eps(x, t) = (x - alpha m) / sigma, and every solver is exact


def _point_eps_continuous(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    alpha = torch.exp(-0.5 * (0.1 * t + 0.5 * t**2 * 19.9)).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return (x - alpha * M_POINT) / torch.sqrt(1 - alpha**2)


def _point_eps_discrete(diffusion: GaussianDiffusion):
    abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - diffusion.schedule.betas, 0)])

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long
        a = abar[t].sqrt().to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return (x - a * M_POINT) / torch.sqrt(1 - a**2)
    return eps


SOLVER_FNS = {"euler": euler, "heun": heun, "dpm_solver_pp_2m": dpm_solver_pp_2m}


@SMALL
@given(st.sampled_from(["euler", "heun", "dpm_solver_pp_2m", "solve:heun", "solve:ddim", "solve:rk4"]),
       st.sampled_from(["continuous", "discrete", "list", "backwards", "ragged", "nan_alpha"]),
       st.sampled_from(["point", "point", "shape", "list", "none"]), DATA_KINDS, BATCH, DTYPES, st.integers(1, 4))
def test_solvers(name, grid_kind, eps_kind, kind, B, dtype, n):
    base = discrete_grid(DIFFS["cosine"], "karras", n) if grid_kind == "discrete" else time_grid("quadratic", n, SDE)
    grid = {"continuous": base, "discrete": base, "list": list(base.times),
            "backwards": ODEGrid(base.times[::-1], base.alpha.flip(0), base.sigma.flip(0)),
            "ragged": ODEGrid(base.times, base.alpha[:-1], base.sigma),
            "nan_alpha": ODEGrid(base.times, base.alpha * NAN, base.sigma)}[grid_kind]
    point = _point_eps_discrete(DIFFS["cosine"]) if grid_kind == "discrete" else _point_eps_continuous
    eps_fn = {"point": point, "shape": lambda x, t: x[:1], "list": lambda x, t: [0.0], "none": None}[eps_kind]
    x = _data(kind, B, 2, dtype)
    if name.startswith("solve:"):
        out, err = call(solve, eps_fn, x, grid, name.split(":")[1])
        solver = name.split(":")[1]
    else:
        out, err = call(SOLVER_FNS[name], eps_fn, x, grid)
        solver = name
    shape_bad = eps_kind == "shape" and B != 1  # x[:1] has x's shape when B == 1
    ok = (solver != "rk4" and grid_kind in ("continuous", "discrete") and kind == "ok"
          and eps_kind in ("point", "shape") and not shape_bad)
    assert (err is None) == ok, (name, grid_kind, eps_kind, kind, B, err)
    if not ok:
        if eps_kind == "shape" and solver != "rk4" and grid_kind in ("continuous", "discrete") and kind == "ok":
            assert "eps_fn" in str(err)
        if grid_kind in ("list", "ragged", "nan_alpha", "backwards") and solver != "rk4" and eps_kind == "point" and kind == "ok":
            assert "grid" in str(err)
        return
    assert out.x.dtype == dtype and out.x.shape == x.shape
    last = grid.sigma[-1].item()
    expect_nfe = {"euler": n, "ddim": n, "dpm_solver_pp_2m": n, "heun": 2 * n - (1 if last == 0 else 0)}[solver]
    assert out.nfe == expect_nfe
    if eps_kind == "point":
        # exact for a point mass: x_N = alpha_N m + sigma_N eps_0, eps_0 = (x_0 - alpha_0 m) / sigma_0
        a0, s0, aN, sN = (float(v) for v in (grid.alpha[0], grid.sigma[0], grid.alpha[-1], grid.sigma[-1]))
        ref = aN * M_POINT + sN * (x.double() - a0 * M_POINT) / s0
        tol = 1e-4 if dtype == torch.float32 else 1e-9
        torch.testing.assert_close(out.x.double(), ref, atol=tol, rtol=tol)


def test_heun_and_dpm_solver_converge_on_gaussian_data():
    """On N(m, s^2 I) data the ODE endpoint is x_tilde(sigma) = m + sqrt(s^2 + sigma^2) z, known exactly."""
    m, s = 0.3, 0.5

    def eps(x, t):
        a = torch.exp(-0.5 * (0.1 * t + 0.5 * t**2 * 19.9)).to(x.dtype)[:, None]
        sigma = torch.sqrt(1 - a**2)
        return sigma * (x - a * m) / (a**2 * s**2 + sigma**2)

    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    errors = {}
    for n in (32, 128):
        grid = time_grid("karras", n, SDE)
        st0, stN = float(grid.sigma_tilde[0]), float(grid.sigma_tilde[-1])
        z = (x / float(grid.alpha[0]) - m) / math.sqrt(s * s + st0 * st0)
        ref = float(grid.alpha[-1]) * (m + math.sqrt(s * s + stN * stN) * z)
        for name, fn in SOLVER_FNS.items():
            errors[name, n] = float((fn(eps, x, grid).x - ref).abs().max())
    # measured (max over 64 points): euler 0.138 -> 0.036, heun 0.025 -> 0.0015, DPM-Solver++(2M) 0.027 -> 0.0015
    assert errors["euler", 128] < errors["euler", 32] / 3, errors  # first order: / 4
    for name in ("heun", "dpm_solver_pp_2m"):
        assert errors[name, 128] < errors[name, 32] / 10, errors  # second order: / 16


TOY_DIFF = GaussianDiffusion(NoiseSchedule.from_name("linear", T=20, beta_start=0.01, beta_end=0.3))


def _toy_model(x, t):
    return 0.1 * x


@SMALL
@given(counts, st.sampled_from(["euler", "heun", "dpm_solver_pp_2m", "ddim", "rk4"]),
       st.sampled_from([1, 3, 20, 21, 0, True]), st.sampled_from(list(GRID_KINDS) + ["log"]),
       st.sampled_from(["gen", "gen", None, 3]),
       st.sampled_from([(1, 8, 8), (2,), (), "1x8x8", (0, 4), (True, 2), [1, 2, 2], (2.0,)]),
       st.sampled_from([None, {}, [1], "kw"]))
def test_sample_digits_ode(num_images, solver, num_steps, grid, generator, shape, model_kwargs):
    g = torch.Generator().manual_seed(4) if generator == "gen" else generator
    out, err = call(sample_digits_ode, TOY_DIFF, _toy_model, num_images, solver=solver, num_steps=num_steps, grid=grid,
                    generator=g, shape=shape, clip_x0=False, model_kwargs=model_kwargs)
    shape_ok = isinstance(shape, (tuple, list)) and len(shape) > 0 and all(_good_count(v) for v in shape)
    ok = (_good_count(num_images) and solver != "rk4" and _good_count(num_steps) and int(num_steps) <= 20
          and grid in GRID_KINDS and generator != 3 and shape_ok and model_kwargs in (None, {}))
    assert (err is None) == ok, (num_images, solver, num_steps, grid, generator, shape, model_kwargs, err)
    if not ok:
        if model_kwargs in ([1], "kw") and _good_count(num_images) and solver != "rk4" and generator != 3 and shape_ok:
            assert "model_kwargs" in str(err) or "num_steps" in str(err) or "n must" in str(err) or "grid" in str(err)
        return
    assert tuple(out.x.shape) == (int(num_images), *shape)
    if solver in ("euler", "ddim") and grid == "uniform" and generator == "gen":
        x_T = torch.randn((int(num_images), *shape), generator=torch.Generator().manual_seed(4))
        ref = TOY_DIFF.ddim_sample_loop(_toy_model, (int(num_images), *shape), num_steps=int(num_steps), x_T=x_T)
        torch.testing.assert_close(out.x, ref, atol=1e-5, rtol=1e-5)


def test_sample_digits_ode_refuses_a_non_diffusion_and_a_non_model():
    must_refuse(sample_digits_ode, SDE, _toy_model, 2, names="diffusion")
    must_refuse(sample_digits_ode, TOY_DIFF, "unet", 2, names="model")
    must_refuse(sample_digits_ode, TOY_DIFF, lambda x, t: x[:, :, :1], 2)
    must_refuse(sample_digits_ode, TOY_DIFF, _toy_model, 2, model_kwargs=[1], names="model_kwargs")
    assert sample_digits_ode(TOY_DIFF, _toy_model, 2, grid="karras", num_steps=5).nfe == 9


def test_score_and_velocity_functions_of_the_wrong_shape_are_named():
    x = torch.zeros(3, 2, dtype=torch.float64)
    half = lambda y, t: y[:, :1]  # noqa: E731 broadcasts against y: without the check a silently wrong drift
    for method in ("euler", "heun", "rk4"):
        must_refuse(SDE.sample_ode, half, x, n_steps=2, method=method, names="score_fn")
    must_refuse(SDE.sample_reverse_sde, half, x, n_steps=2, names="score_fn")
    must_refuse(ode_log_likelihood, x, SDE, half, n_steps=1, names="score_fn")
    must_refuse(sample_flow, half, x, n_steps=2, names="velocity_fn")
    for fn in SOLVER_FNS.values():
        must_refuse(fn, lambda y, t: y[:, :1], x, time_grid("uniform", 2, SDE), names="eps_fn")


# ------------------------------------------------------------------------------------------ likelihood
A = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64)
FIELDS = {"linear": lambda y: y @ A.T.to(y.dtype), "square": lambda y: y**2, "shape": lambda y: y[:, :1],
          "list": lambda y: [0.0], "detached": lambda y: y.detach() * 2.0, "constant": lambda y: torch.ones_like(y),
          "none": None}


@SMALL
@given(st.sampled_from(sorted(FIELDS)), DATA_KINDS, BATCH, DTYPES, st.booleans())
def test_exact_divergence(field, kind, B, dtype, no_grad):
    x = _data(kind, B, 2, dtype)
    fn = FIELDS[field]
    with torch.set_grad_enabled(not no_grad):  # a caller inside torch.no_grad() gets the same answer
        out, err = call(exact_divergence, fn, x)
    ok = kind == "ok" and field in ("linear", "square")
    assert (err is None) == ok, (field, kind, B, err)
    if ok:
        ref = torch.full((B,), 0.75, dtype=torch.float64) if field == "linear" else 2 * x.double().sum(1)
        assert out.shape == (B,)
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    elif kind == "ok" and field != "none":
        assert "fn" in str(err)


@SMALL
@given(st.sampled_from(sorted(FIELDS)), st.sampled_from(["ok", "ok", "shape", "nan", "int", "f32"]), BATCH, st.booleans())
def test_hutchinson_divergence(field, probe_kind, B, per_probe):
    x = torch.linspace(-1, 1, 2 * B, dtype=torch.float64).reshape(B, 2)
    probes = {"ok": draw_probes((B, 2), 3, generator=torch.Generator().manual_seed(0)), "shape": torch.ones(3, B, 3),
              "nan": torch.full((3, B, 2), NAN), "int": torch.ones(3, B, 2, dtype=torch.long),
              "f32": torch.ones(3, B, 2)}[probe_kind]
    out, err = call(hutchinson_divergence, FIELDS[field], x, probes, per_probe=per_probe)
    nan_ok = probe_kind == "nan" and B == 0  # no probe entries at all: nothing is non-finite
    ok = field in ("linear", "square") and (probe_kind in ("ok", "f32") or nan_ok)
    assert (err is None) == ok, (field, probe_kind, B, err)
    if not ok:
        if field in ("linear", "square"):
            assert "probes" in str(err)
        return
    v = probes.double()
    jv = v @ A.T if field == "linear" else 2 * x * v  # J v
    ref = (v * jv).sum(-1)  # (P, B)
    torch.testing.assert_close(out, ref if per_probe else ref.mean(0))


@SMALL
@given(st.sampled_from([(2, 3), (0, 2), (4,), (), "ab", (-1, 2), (2.5,), (True, 2)]), counts,
       st.sampled_from(["rademacher", "gaussian", "uniform"]), st.sampled_from(["gen", None, 3]),
       st.sampled_from([torch.float64, torch.float32, torch.long, "float"]))
def test_draw_probes(shape, num_probes, kind, generator, dtype):
    g = torch.Generator().manual_seed(0) if generator == "gen" else generator
    out, err = call(draw_probes, shape, num_probes, kind, g, dtype)
    shape_ok = isinstance(shape, tuple) and all(_good_count(v, 0) for v in shape)
    ok = (shape_ok and _good_count(num_probes) and kind != "uniform" and generator != 3
          and dtype in (torch.float64, torch.float32))
    assert (err is None) == ok, (shape, num_probes, kind, generator, dtype, err)
    if not ok:
        return
    assert out.shape == (int(num_probes), *shape) and out.dtype == dtype
    if kind == "rademacher":
        assert bool((out.abs() == 1).all())
    if generator == "gen":
        again = draw_probes(shape, num_probes, kind, torch.Generator().manual_seed(0), dtype)
        assert torch.equal(out, again)


@SMALL
@given(DATA_KINDS, BATCH, st.sampled_from([(2,), (1, 2, 2), ()]), DTYPES)
def test_standard_normal_log_prob(kind, B, tail, dtype):
    x = _data(kind, B, int(np.prod(tail)) if tail else 1, dtype)
    if kind == "ok":
        x = x.reshape(B, *tail)
    out, err = call(standard_normal_log_prob, x)
    assert (err is None) == (kind == "ok"), (kind, err)
    if err is None:
        flat = x.double().reshape(B, int(np.prod(tail)) if tail else 1)
        ref = -0.5 * (flat.shape[1] * math.log(2 * math.pi) + (flat**2).sum(1))
        assert out.shape == (B,)
        torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


def _gauss_log_prob(x: torch.Tensor, var: float) -> torch.Tensor:
    return -0.5 * (x.shape[1] * math.log(2 * math.pi * var) + (x**2).sum(1) / var)


@TINY
@given(st.sampled_from(["gauss", "gauss", "shape", "none"]), st.sampled_from([8, 0, True]),
       st.sampled_from(["exact", "hutchinson", "skilling"]), st.sampled_from(["rk4", "heun", "euler"]),
       st.sampled_from([1e-5, 0.0, 0.6, NAN]), st.sampled_from(["exact", "exact", "bad", "none"]),
       st.sampled_from([(1, "rademacher", "gen"), (0, "rademacher", "gen"), (2, "normal", "gen"), (2, "gaussian", 5)]))
def test_ode_log_likelihood(score_kind, n_steps, divergence, method, t_eps, prior_kind, probe_args):
    s2 = 0.09  # data N(0, 0.09 I): p_t = N(0, v(t) I), v(t) = alpha^2 s2 + sigma^2

    def score(x, t):
        a2 = torch.exp(-(0.1 * t + 0.5 * t**2 * 19.9)).to(x.dtype)[:, None]
        return -x / (a2 * s2 + 1 - a2)

    a1 = math.exp(-float(_B(np.asarray(1.0))))
    score_fn = {"gauss": score, "shape": lambda x, t: x[:, :1], "none": None}[score_kind]
    prior = {"exact": lambda y: _gauss_log_prob(y, a1 * s2 + 1 - a1), "bad": lambda y: y, "none": None}[prior_kind]
    num_probes, probe, gen = probe_args
    g = torch.Generator().manual_seed(1) if gen == "gen" else gen
    x = torch.tensor([[0.1, -0.2], [0.3, 0.05]], dtype=torch.float64)
    out, err = call(ode_log_likelihood, x, SDE, score_fn, n_steps=n_steps, divergence=divergence, generator=g,
                    num_probes=num_probes, probe=probe, method=method, t_eps=t_eps, prior_log_prob=prior)
    ok = (score_kind == "gauss" and _good_count(n_steps) and divergence != "skilling" and method != "euler"
          and t_eps in (1e-5, 0.0) and prior_kind != "bad" and probe_args == (1, "rademacher", "gen"))
    assert (err is None) == ok, (score_kind, n_steps, divergence, method, t_eps, prior_kind, probe_args, err)
    if not ok:
        if score_kind == "shape" and _good_count(n_steps) and divergence != "skilling" and method != "euler" \
                and t_eps in (1e-5, 0.0) and probe_args == (1, "rademacher", "gen"):
            assert "score" in str(err)
        return
    # the drift is linear with divergence -d beta/2 (1 - 1/v) for every probe, so hutchinson is exact here too
    ref = _gauss_log_prob(x, s2)
    tol = 0.02 if prior_kind == "exact" else 0.05  # measured: 8.5e-3 with 8 RK4 steps and the exact prior
    torch.testing.assert_close(out, ref, atol=tol, rtol=0)


def test_ode_log_likelihood_refuses_a_non_vpsde():
    must_refuse(ode_log_likelihood, torch.zeros(2, 2, dtype=torch.float64), "vp", lambda x, t: -x, names="sde")


# ------------------------------------------------------------------------------------------ flow matching
@SMALL
@given(DATA_KINDS, BATCH, DTYPES, times, st.booleans())
def test_cfm_path_and_velocity_conversions(kind, B, dtype, t, mismatch):
    x0 = _data(kind, B, 2, dtype)
    eps = torch.linspace(2, -2, 2 * B + (2 if mismatch else 0), dtype=dtype).reshape(-1, 2)
    v = _time_value(t)
    t_ok = v is not None and (v.ndim == 0 or v.shape[0] == B)
    ok = kind == "ok" and t_ok and not mismatch
    res, err = call(cfm_path, x0, t, eps)
    assert (err is None) == ok, (kind, t, mismatch, err)
    for fn in (x0_from_velocity, eps_from_velocity, velocity_from_eps, velocity_from_x0):
        out, err2 = call(fn, x0, t, eps)
        open_at = {velocity_from_eps: 1.0, velocity_from_x0: 0.0}.get(fn)
        hit = ok and open_at is not None and bool((np.asarray(v) == open_at).any())
        assert (err2 is None) == (ok and not hit), (fn.__name__, t, err2)
        if hit:
            assert "t must not equal" in str(err2)
    if not ok:
        if kind == "ok" and mismatch and t_ok:
            assert "same shape" in str(err)
        return
    tt = torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1) if v.ndim else float(v)
    x_t, vel = res
    torch.testing.assert_close(x_t.double(), (1 - tt) * x0.double() + tt * eps.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vel, eps - x0)
    # the conversions invert each other along the straight line
    torch.testing.assert_close(x0_from_velocity(x_t, t, vel).double(), x0.double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eps_from_velocity(x_t, t, vel).double(), eps.double(), rtol=1e-4, atol=1e-5)
    interior = not bool(((np.asarray(v) == 0) | (np.asarray(v) == 1)).any())
    if interior and B:
        torch.testing.assert_close(velocity_from_eps(x_t, t, eps).double(), vel.double(), rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(velocity_from_x0(x_t, t, x0).double(), vel.double(), rtol=1e-3, atol=1e-4)


@SMALL
@given(times)
def test_cfm_as_eps_weighting(t):
    v = _time_value(t)
    out, err = call(cfm_as_eps_weighting, t)
    ok = v is not None and not bool((v == 1.0).any())
    assert (err is None) == ok, (t, err)
    if ok:
        assert out.dtype == torch.float64 and tuple(out.shape) == v.shape
        np.testing.assert_allclose(out.numpy(), 1.0 / (1.0 - v) ** 2, rtol=1e-12)
    else:
        assert "t" in str(err)


@SMALL
@given(st.sampled_from(["ok", "ok", "shape", "list", "none"]), DATA_KINDS, BATCH,
       st.sampled_from(["ok", "ok", "float", "long", "len", "2d", "range"]), st.sampled_from(["mean", "none", "sum"]))
def test_cfm_loss(model_kind, kind, B, t_kind, reduction):
    x0 = _data(kind, B, 2, torch.float64)
    eps = torch.linspace(1, -1, 2 * B, dtype=torch.float64).reshape(B, 2)
    t = {"ok": torch.linspace(0, 1, B, dtype=torch.float64), "float": 0.5, "long": torch.zeros(B, dtype=torch.long),
         "len": torch.zeros(B + 1, dtype=torch.float64), "2d": torch.zeros(B, 1, dtype=torch.float64),
         "range": torch.full((B,), 2.0, dtype=torch.float64)}[t_kind]
    model = {"ok": lambda x, tt: 0.5 * x, "shape": lambda x, tt: x[:, :1], "list": lambda x, tt: [0.0], "none": None}[model_kind]
    out, err = call(cfm_loss, model, x0, t, eps, reduction=reduction)
    t_ok = t_kind == "ok" or (t_kind == "range" and B == 0) or (t_kind == "long" and B == 0 and False)
    ok = model_kind == "ok" and kind == "ok" and t_ok and reduction != "sum"
    if model_kind == "shape" and B == 0:
        ok = False  # x[:, :1] of an empty batch still has the wrong shape
    assert (err is None) == ok, (model_kind, kind, B, t_kind, reduction, err)
    if ok:
        x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
        per = ((0.5 * x_t - (eps - x0)) ** 2).mean(1)
        torch.testing.assert_close(out, per.mean() if reduction == "mean" else per, equal_nan=True)


@SMALL
@given(st.sampled_from(["const", "linear_t", "shape", "list", "none"]), DATA_KINDS, BATCH,
       st.sampled_from([4, 1, 0, True, 2.5]), st.sampled_from(["euler", "heun", "rk4"]),
       st.sampled_from([(1.0, 0.0), (0.8, 0.2), (0.2, 0.8), (1.5, 0.0), (NAN, 0.0)]), DTYPES)
def test_sample_flow(field, kind, B, n_steps, method, interval, dtype):
    c = torch.tensor([0.5, -1.5], dtype=dtype)
    fn = {"const": lambda x, t: c.expand_as(x), "linear_t": lambda x, t: t[:, None] * c, "shape": lambda x, t: x[:, :1],
          "list": lambda x, t: [0.0], "none": None}[field]
    x1 = _data(kind, B, 2, dtype)
    t_start, t_end = interval
    out, err = call(sample_flow, fn, x1, n_steps=n_steps, method=method, t_start=t_start, t_end=t_end)
    shape_bad = field == "shape" or field == "list"
    ok = (field != "none" and not shape_bad and kind == "ok" and _good_count(n_steps) and method != "rk4"
          and interval in ((1.0, 0.0), (0.8, 0.2)))
    assert (err is None) == ok, (field, kind, B, n_steps, method, interval, err)
    if not ok:
        if shape_bad and kind == "ok" and _good_count(n_steps) and method != "rk4" and interval in ((1.0, 0.0), (0.8, 0.2)):
            assert "velocity_fn" in str(err)
        return
    assert out.x.shape == x1.shape and out.x.dtype == dtype
    assert out.nfe == int(n_steps) * (1 if method == "euler" else 2)
    if field == "const":
        ref = x1 + (t_end - t_start) * c
    elif method == "heun":  # the trapezoid is exact for a velocity linear in t
        ref = x1 + 0.5 * (t_end**2 - t_start**2) * c
    else:
        ts = [t_start + (t_end - t_start) * i / int(n_steps) for i in range(int(n_steps) + 1)]
        ref = x1 + sum((b - a) * a for a, b in zip(ts[:-1], ts[1:])) * c
    torch.testing.assert_close(out.x, ref, rtol=1e-5, atol=1e-5)
