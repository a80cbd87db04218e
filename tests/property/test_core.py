"""Property tests of the diffusion core and the 2015 model: bad and edge-case input.

Every call either returns the value computed here independently or raises one of the library's
own errors with a message; never a raw error, never a silently wrong result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lib.core import (
    GaussianDiffusion,
    LossAwareTimesteps,
    NoiseSchedule,
    balanced_timesteps,
    bits_per_dim,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    importance_bound,
    make_beta,
    mean_flat,
    normal_kl,
    sample_timesteps,
    simple_loss,
    sum_flat,
    timestep_probs,
)
from diffusion_lib.errors import DiffusionLibError, NonFiniteError
from diffusion_lib.topics.sohl2015 import Sohl2015Diffusion
from tests.property._harness import call, must_refuse

torch.set_num_threads(1)
T = 10
SCHED = NoiseSchedule.from_name("linear", T, beta_start=0.01, beta_end=0.2)
DIFF = GaussianDiffusion(SCHED)
LEARNED = GaussianDiffusion(SCHED, "eps", "learned_range", "hybrid")

BAD_T = st.sampled_from([-1, T + 1, 10**6, 0])
ANY_T = st.one_of(st.integers(-3, T + 3), st.sampled_from([np.int64(3), np.int32(T), torch.tensor(2)]))
DTYPES = st.sampled_from([torch.float32, torch.float64])
BATCH = st.integers(0, 4)


def zero_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def learned_zero(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:], dtype=x.dtype)


def t_ok(t: object, allow_zero: bool = False) -> bool:
    return (0 if allow_zero else 1) <= int(t) <= T


def abar(t: int) -> float:
    b = make_beta("linear", T, beta_start=0.01, beta_end=0.2).numpy()
    return float(np.prod(1 - b[:t]))


# ----------------------------------------------------------------------------- forward process
@given(B=BATCH, t=ANY_T, dtype=DTYPES, d=st.integers(1, 3))
def test_q_sample_value_or_refusal(B: int, t: object, dtype: torch.dtype, d: int) -> None:
    x0 = torch.linspace(-1, 1, B * d, dtype=dtype).reshape(B, d)
    eps = torch.ones_like(x0)
    out, err = call(DIFF.q_sample, x0, t, eps=eps)
    if not t_ok(t, allow_zero=True):
        assert err is not None and "t must lie in" in str(err)
        return
    assert err is None and out.dtype == dtype and out.shape == x0.shape
    a = abar(int(t))
    torch.testing.assert_close(out.double(), math.sqrt(a) * x0.double() + math.sqrt(1 - a), rtol=1e-5, atol=1e-6)


@given(t=ANY_T, B=BATCH)
def test_q_mean_variance_and_step(t: object, B: int) -> None:
    x0 = torch.full((B, 2), 0.5, dtype=torch.float64)
    res, err = call(DIFF.q_mean_variance, x0, t)
    assert (err is None) == t_ok(t, allow_zero=True)
    if err is None:
        a = abar(int(t))
        torch.testing.assert_close(res[0], torch.full_like(x0, 0.5 * math.sqrt(a)), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(res[1], torch.full_like(x0, 1 - a), rtol=1e-5, atol=1e-7)
    res, err = call(DIFF.q_step_sample, x0, t, eps=torch.zeros_like(x0))
    assert (err is None) == t_ok(t)
    if err is None:
        beta = SCHED.betas[int(t) - 1].item()
        torch.testing.assert_close(res, x0 * math.sqrt(1 - beta), rtol=1e-5, atol=1e-7)


@given(bad=st.sampled_from(["nan", "inf", "int", "half", "shape", "scalar", "broadcast"]))
def test_forward_refuses_bad_data(bad: str) -> None:
    x0 = {"nan": torch.tensor([[float("nan"), 0.0]]), "inf": torch.tensor([[float("inf"), 0.0]]),
          "int": torch.zeros(2, 2, dtype=torch.long), "half": torch.zeros(2, 2, dtype=torch.float16),
          "shape": torch.zeros(2, 2), "scalar": torch.tensor(1.0), "broadcast": torch.zeros(2, 2)}[bad]
    eps = torch.zeros(2, 1) if bad in ("shape", "broadcast") else None
    for fn in (DIFF.q_sample, DIFF.q_step_sample):
        must_refuse(fn, x0, 3, eps=eps)
    if bad not in ("shape", "broadcast"):  # those two are about eps
        must_refuse(DIFF.q_mean_variance, x0, 3)
    else:
        must_refuse(DIFF.q_mean_variance, "not a tensor", 3)
    must_refuse(DIFF.q_sample, torch.zeros(2, 2), 3, generator="seed")


# ----------------------------------------------------------------------------- reparameterisations and posterior
@given(t=ANY_T, B=BATCH, dtype=DTYPES)
def test_reparameterisations_round_trip(t: object, B: int, dtype: torch.dtype) -> None:
    x0 = torch.linspace(-1, 1, 2 * B, dtype=dtype).reshape(B, 2)
    eps = torch.linspace(1, -1, 2 * B, dtype=dtype).reshape(B, 2)
    if not t_ok(t):
        for fn, a in ((DIFF.predict_x0_from_eps, eps), (DIFF.predict_eps_from_x0, x0)):
            must_refuse(fn, x0, t, a, names="t")
        must_refuse(DIFF.score_from_eps, eps, t)
        must_refuse(DIFF.posterior_mean_variance, x0, x0, t)
        return
    xt = DIFF.q_sample(x0, t, eps=eps)
    torch.testing.assert_close(DIFF.predict_x0_from_eps(xt, t, eps), x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(DIFF.predict_eps_from_x0(xt, t, x0), eps, atol=1e-3, rtol=0)
    score = DIFF.score_from_eps(eps, t)
    torch.testing.assert_close(score.double(), -eps.double() / math.sqrt(1 - abar(int(t))), rtol=1e-5, atol=1e-6)
    mean, var, _ = DIFF.posterior_mean_variance(x0, xt, t)
    a, a_prev = abar(int(t)), abar(int(t) - 1)
    beta = 1 - a / a_prev
    ref = (math.sqrt(a_prev) * beta * x0.double() + math.sqrt(1 - beta) * (1 - a_prev) * xt.double()) / (1 - a)
    torch.testing.assert_close(mean.double(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(var.double(), torch.full_like(ref, beta * (1 - a_prev) / (1 - a)), rtol=1e-4, atol=1e-9)


def test_posterior_variance_and_broadcast_refusal() -> None:
    must_refuse(DIFF.posterior_mean_variance, torch.zeros(0, 2), torch.zeros(0, 2), 0)  # empty batch: t still checked
    must_refuse(DIFF.posterior_mean_variance, torch.zeros(4, 2), torch.zeros(4, 1), 3, names="same shape")
    must_refuse(DIFF.predict_x0_from_eps, torch.zeros(4, 2), 3, torch.zeros(4, 1))


# ----------------------------------------------------------------------------- reverse step and samplers
@given(t=ANY_T, B=st.integers(0, 3), clip=st.booleans())
def test_p_mean_variance_oracle(t: object, B: int, clip: bool) -> None:
    x0 = torch.linspace(-0.9, 0.9, 2 * B, dtype=torch.float64).reshape(B, 2)
    eps = torch.linspace(1, -1, 2 * B, dtype=torch.float64).reshape(B, 2)
    if not t_ok(t):
        must_refuse(DIFF.p_mean_variance, zero_model, x0, t)
        must_refuse(DIFF.p_sample, zero_model, x0, t)
        return
    xt = DIFF.q_sample(x0, t, eps=eps)
    out = DIFF.p_mean_variance(lambda x, tt: eps, xt, t, clip_x0=clip)
    torch.testing.assert_close(out["pred_x0"], x0, atol=1e-4, rtol=0)  # x0 in [-1, 1]: the clip changes nothing
    torch.testing.assert_close(out["mean"], DIFF.posterior_mean_variance(x0, xt, t)[0], atol=1e-4, rtol=0)


def test_reverse_step_refusals() -> None:
    x = torch.zeros(2, 2)
    must_refuse(DIFF.p_mean_variance, "model", x, 3)
    must_refuse(DIFF.p_mean_variance, lambda a, b: torch.zeros(2, 1), x, 3, names="same shape")
    must_refuse(DIFF.p_mean_variance, lambda a, b: [0.0], x, 3)
    must_refuse(DIFF.p_mean_variance, zero_model, x, 3, model_kwargs=[1])
    must_refuse(DIFF.p_mean_variance, lambda a, b: torch.full_like(a, float("nan")), x, 3)
    must_refuse(LEARNED.p_mean_variance, zero_model, x, 3, names="2 x the channels")
    out = LEARNED.p_mean_variance(learned_zero, x, 3)
    torch.testing.assert_close(out["log_variance"], 0.5 * (SCHED.posterior_log_variance_clipped[3] + SCHED.beta[3].log()).expand(2, 2))


@given(eta=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-1.0, 0.0, 1.0, np.float64(0.5)])),
       t=ANY_T, t_prev=st.integers(-1, T + 1))
def test_ddim_step(eta: float, t: object, t_prev: int) -> None:
    x0 = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    eps = torch.tensor([[0.5, 0.1]], dtype=torch.float64)
    xt = torch.tensor([[0.2, 0.7]], dtype=torch.float64)
    oracle = lambda x, tt: (x - DIFF._at(SCHED.sqrt_alpha_bar, tt, x) * x0) / DIFF._at(SCHED.sqrt_one_minus_alpha_bar, tt, x)  # noqa: E731
    out, err = call(DIFF.ddim_step, oracle, xt, t, t_prev, eta=eta, generator=torch.Generator().manual_seed(0))
    valid = t_ok(t) and 0 <= t_prev < int(t) and math.isfinite(float(eta)) and float(eta) >= 0
    assert (err is None) == valid, (t, t_prev, eta, err)
    if valid and float(eta) == 0.0:
        a_s, a_t = abar(t_prev), abar(int(t))
        e = (xt - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        torch.testing.assert_close(out["sample"], math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * e, rtol=1e-4, atol=1e-5)
    del eps


@given(shape=st.sampled_from([(2.5, 2), (0, 2), (-1,), (), "22", (2, np.int64(2)), [3], (True, 2)]))
def test_sample_shapes(shape: object) -> None:
    out, err = call(DIFF.p_sample_loop, zero_model, shape, generator=torch.Generator().manual_seed(0))
    ok = isinstance(shape, (tuple, list)) and len(shape) > 0 and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape)
    assert (err is None) == ok, (shape, err)
    if ok:
        assert tuple(out.shape) == tuple(int(n) for n in shape)
    out2, err2 = call(DIFF.ddim_sample_loop, zero_model, shape, num_steps=3)
    assert (err2 is None) == ok


@given(timesteps=st.lists(st.integers(-2, T + 2), min_size=0, max_size=4), eta=st.sampled_from([0.0, 1.0, float("nan")]))
def test_ddim_loop_sequence_and_callback(timesteps: list[int], eta: float) -> None:
    seen: list[int] = []
    out, err = call(DIFF.ddim_sample_loop, zero_model, (2, 1), timesteps=timesteps, eta=eta,
                    callback=lambda t, x, x0: seen.append(t), generator=torch.Generator().manual_seed(0))
    valid = (len(timesteps) > 0 and all(1 <= t <= T for t in timesteps)
             and all(a > b for a, b in zip(timesteps, timesteps[1:])) and math.isfinite(eta))
    assert (err is None) == valid
    if valid:
        assert seen == timesteps and out.shape == (2, 1)


def test_sampler_refusals_and_ddpm_equals_ddim_eta1() -> None:
    d64 = GaussianDiffusion(NoiseSchedule.from_name("linear", T, beta_start=0.01, beta_end=0.2, dtype=torch.float64))
    model = lambda x, t: torch.tanh(x) * 0.3  # noqa: E731
    a = d64.p_sample_loop(model, (3, 2), generator=torch.Generator().manual_seed(1))
    b = d64.ddim_sample_loop(model, (3, 2), eta=1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    x_T = torch.randn(3, 2, dtype=torch.float64)
    assert DIFF.p_sample_loop(zero_model, (3, 2), x_T=x_T).dtype == torch.float64  # float64 end to end
    must_refuse(DIFF.p_sample_loop, zero_model, (3, 2), x_T=torch.zeros(2, 2))
    must_refuse(DIFF.p_sample_loop, zero_model, (3, 2), callback=5)
    must_refuse(DIFF.ddim_sample_loop, zero_model, (3, 2), timesteps=[5, 1], num_steps=2)
    must_refuse(DIFF.ddim_timesteps, 0)
    must_refuse(DIFF.ddim_timesteps, T + 1)
    assert DIFF.ddim_timesteps(np.int64(2)).tolist() == [T, 1]
    err = must_refuse(DIFF.p_sample_loop, lambda x, t: torch.full_like(x, float("nan")), (2, 1))
    assert isinstance(err, NonFiniteError)


# ----------------------------------------------------------------------------- bound and objectives
@given(t=ANY_T, B=st.integers(0, 3), decoder=st.sampled_from(["gaussian", "discretized", "bernoulli"]),
       levels=st.sampled_from([1, 2, 17, 2.0]))
def test_vb_term(t: object, B: int, decoder: str, levels: object) -> None:
    x0 = torch.linspace(-1, 1, 2 * B, dtype=torch.float64).reshape(B, 2)
    xt = torch.zeros_like(x0)
    out, err = call(DIFF.vb_term, zero_model, x0, xt, t, decoder=decoder, num_levels=levels)
    valid = t_ok(t) and decoder != "bernoulli" and isinstance(levels, int) and levels >= 2
    assert (err is None) == valid, err
    if valid and int(t) >= 2:
        m = DIFF.p_mean_variance(zero_model, xt, t)
        q_mean, _, q_logvar = DIFF.posterior_mean_variance(x0, xt, t)
        ref = (0.5 * (m["log_variance"] - q_logvar + (q_logvar.exp() + (q_mean - m["mean"]) ** 2) / m["variance"] - 1)).sum(1)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@given(B=st.integers(0, 3), loss=st.sampled_from(["l2", "kl", "hybrid"]), t=st.one_of(st.none(), ANY_T))
def test_training_losses(B: int, loss: str, t: object) -> None:
    d = GaussianDiffusion(SCHED, "eps", "learned_range" if loss != "l2" else "fixed_small", loss)
    model = learned_zero if loss != "l2" else zero_model
    x0 = torch.linspace(-1, 1, 2 * B).reshape(B, 2)
    eps = torch.ones_like(x0)
    out, err = call(d.training_losses, model, x0, t, eps=eps, decoder="gaussian")
    assert (err is None) == (t is None or t_ok(t))
    if err is None:
        assert out["loss"].shape == (B,)
        if loss == "l2":
            torch.testing.assert_close(out["loss"], torch.ones(B))
    must_refuse(d.training_losses, model, x0, 3, eps=eps, vb_weights=torch.full((B + 1,), 1.0)) if loss != "l2" else None


def test_bound_and_prior() -> None:
    x0 = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    a = abar(T)
    ref = 0.5 * (-math.log(1 - a) + (1 - a) + a * x0**2 - 1).sum(1)
    torch.testing.assert_close(DIFF.prior_kl(x0), ref.to(torch.float64), rtol=1e-5, atol=1e-7)
    vb = DIFF.variational_bound(zero_model, x0, decoder="gaussian", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(vb["total"], vb["prior"] + vb["terms"].sum(1))
    empty = DIFF.variational_bound(zero_model, torch.zeros(0, 2), decoder="gaussian")
    assert empty["total"].shape == (0,)
    must_refuse(DIFF.variational_bound, zero_model, x0, decoder="x")
    must_refuse(DIFF.prior_kl, torch.tensor([[float("nan")]]))
    probs = timestep_probs(T)
    res = importance_bound(DIFF, zero_model, x0, probs, draws=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res["total"], res["prior"] + (T * res["w"] * res["terms"]).mean(0))
    must_refuse(importance_bound, "diffusion", zero_model, x0, probs, draws=2)
    must_refuse(importance_bound, DIFF, zero_model, x0, probs, draws=0)


@given(vb_weight=st.sampled_from([float("nan"), -1.0, float("inf"), 0.0, 0.5, "1"]),
       mean=st.sampled_from(["eps", "x0", "v"]), var=st.sampled_from(["fixed_small", "fixed_large", "learned_range", "x"]),
       loss=st.sampled_from(["l2", "kl", "hybrid", "l1", "huber"]))
def test_constructor_options(vb_weight: object, mean: str, var: str, loss: str) -> None:
    out, err = call(GaussianDiffusion, SCHED, mean, var, loss, vb_weight=vb_weight)
    valid = (isinstance(vb_weight, float) and math.isfinite(vb_weight) and vb_weight >= 0 and mean != "v"
             and var != "x" and loss in ("l2", "kl", "hybrid") and not (var == "learned_range" and loss == "l2"))
    assert (err is None) == valid
    must_refuse(GaussianDiffusion, make_beta("linear", 10, beta_start=0.01, beta_end=0.2))


# ----------------------------------------------------------------------------- Gaussian identities
@given(B=BATCH, dtype=DTYPES, bad=st.sampled_from([None, "nan", "shape", "float_nan"]))
def test_losses(B: int, dtype: torch.dtype, bad: str | None) -> None:
    a = torch.linspace(-1, 1, 3 * B, dtype=dtype).reshape(B, 3)
    b = torch.zeros_like(a)
    if bad == "nan":
        a = torch.full((max(B, 1), 3), float("nan"), dtype=dtype)
        b = torch.zeros_like(a)
        must_refuse(normal_kl, a, 0.0, b, 0.0)
        must_refuse(gaussian_log_likelihood, a, b, 0.0)
        return
    if bad == "shape":
        must_refuse(simple_loss, a, torch.zeros(B + 1, 3, dtype=dtype))
        must_refuse(normal_kl, a, 0.0, torch.zeros(B + 2, 2, dtype=dtype), 0.0)
        return
    if bad == "float_nan":
        must_refuse(normal_kl, a, float("nan"), b, 0.0)
        return
    torch.testing.assert_close(simple_loss(a, b), (a**2).mean(1) if B else torch.zeros(0, dtype=dtype))
    torch.testing.assert_close(mean_flat(a), a.mean(1) if B else torch.zeros(0, dtype=dtype))
    torch.testing.assert_close(sum_flat(a), a.sum(1))
    torch.testing.assert_close(normal_kl(a, 0.0, b, 0.0), 0.5 * a**2)
    torch.testing.assert_close(gaussian_log_likelihood(a, b, 0.0), -0.5 * (math.log(2 * math.pi) + a**2))
    assert mean_flat(torch.zeros(0, 4, 5)).shape == (0,)
    must_refuse(mean_flat, torch.tensor(1.0))
    must_refuse(sum_flat, "x")


@given(log_scale=st.floats(-200, 200), mean=st.floats(-3, 3), k=st.integers(0, 16), dtype=DTYPES)
def test_discretized_likelihood_is_finite_and_a_probability(log_scale: float, mean: float, k: int, dtype: torch.dtype) -> None:
    L = 17
    levels = torch.linspace(-1, 1, L, dtype=dtype)
    log_p = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean), log_scale, num_levels=L)
    assert not bool(torch.isnan(log_p).any()) and bool((log_p <= 1e-6).all())
    if -8 < log_scale < 8:  # the bins' probabilities sum to one
        assert abs(log_p.double().exp().sum().item() - 1.0) < 1e-4
    del k


def test_discretized_examples_from_the_issue() -> None:
    x = torch.tensor([0.0, -1.0, 1.0, 0.5])
    out = discretized_gaussian_log_likelihood(x, x, -50.0, num_levels=5)
    torch.testing.assert_close(out, torch.zeros(4))  # all the mass in the bin of the mean
    out = discretized_gaussian_log_likelihood(x, x + 0.3, -50.0, num_levels=5)
    assert not bool(torch.isnan(out).any())
    must_refuse(discretized_gaussian_log_likelihood, x, x, 0.0, num_levels=1)
    must_refuse(discretized_gaussian_log_likelihood, x * 3, x, 0.0)
    assert bits_per_dim(math.log(2) * 4, 4) == pytest.approx(1.0)
    must_refuse(bits_per_dim, 1.0, 0)


# ----------------------------------------------------------------------------- schedules and timesteps
@given(name=st.sampled_from(["linear", "cosine", "quadratic", "sigmoid", "linearr", 3]),
       T_=st.one_of(st.integers(-1, 40), st.sampled_from([np.int64(30), "30", 30.0])))
def test_make_beta(name: object, T_: object) -> None:
    out, err = call(make_beta, name, T_)
    if err is None:
        assert out.shape == (int(T_),) and bool(((out > 0) & (out < 1)).all())
        sched = NoiseSchedule(out)
        torch.testing.assert_close(sched.alpha_bar[1:].double(), torch.cumprod(1 - out, 0), rtol=1e-5, atol=1e-7)
    else:
        assert name not in ("linear", "cosine", "quadratic", "sigmoid") or not isinstance(T_, (int, np.integer)) \
            or int(T_) < 21 or name == "cosine"


def test_schedule_refusals() -> None:
    must_refuse(NoiseSchedule, [0.1, float("nan")])
    must_refuse(NoiseSchedule, "abc")
    must_refuse(make_beta, "linear", 100, beta_start="x")
    must_refuse(make_beta, "cosine", 100, s=float("nan"))
    must_refuse(NoiseSchedule, [0.1], dtype=torch.long)


@given(T_=st.one_of(st.integers(-1, 12), st.just(np.int64(10))), batch=st.integers(-1, 25),
       mix=st.sampled_from([0.0, 0.5, 1.0, float("nan")]))
def test_timestep_sampling(T_: object, batch: int, mix: float) -> None:
    p, err = call(timestep_probs, T_, "inverse_mix", mix=mix)
    assert (err is None) == (int(T_) >= 1 and mix in (0.0, 0.5))
    if err is None:
        assert abs(float(p.sum()) - 1) < 1e-12
        t, w = call(sample_timesteps, p, batch)[0] or (None, None)
        if batch >= 1:
            assert t.shape == (batch,) and int(t.min()) >= 1 and int(t.max()) <= int(T_)
            torch.testing.assert_close(w.double(), 1 / (int(T_) * p[t - 1]), rtol=1e-6, atol=0)
    t, err = call(balanced_timesteps, T_, batch, torch.Generator().manual_seed(0))
    assert (err is None) == (int(T_) >= 1 and batch >= 1)
    if err is None:
        counts = torch.bincount(t, minlength=int(T_) + 1)[1:]
        assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == batch


# ----------------------------------------------------------------------------- the 2015 model
SOHL = Sohl2015Diffusion(NoiseSchedule.from_name("linear", 6, beta_start=1e-3, beta_end=0.3))


def sohl_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.cat([0.1 * x, torch.zeros_like(x)], dim=1)


@given(t=st.sampled_from([-1, 0, 1, 3, 6, 7, np.int64(2)]), B=st.integers(0, 3))
def test_sohl_methods(t: object, B: int) -> None:
    x0 = torch.linspace(-1, 1, 2 * B).reshape(B, 2)
    eps = torch.ones_like(x0)
    ok = 1 <= int(t) <= 6
    out, err = call(SOHL.q_sample, x0, t, eps)
    assert (err is None) == ok
    if ok:
        a = SOHL.schedule.alpha_bar[int(t)]
        torch.testing.assert_close(out, a.sqrt() * x0 + (1 - a).sqrt() * eps)
        mean, log_var = SOHL.reverse_moments(sohl_model, out, t)
        s = SOHL.schedule
        ref = (out - s.beta[int(t)] / s.sqrt_one_minus_alpha_bar[int(t)] * 0.1 * out) / s.alpha[int(t)].sqrt()
        torch.testing.assert_close(mean, ref, rtol=1e-5, atol=1e-6)
        ref_lv = 0.5 * s.beta[int(t)].log() + 0.5 * s.posterior_log_variance_clipped[int(t)]
        torch.testing.assert_close(log_var, ref_lv.expand_as(out))
        assert SOHL.bound_terms(sohl_model, x0, t, eps).shape == (B,)
        SOHL.posterior(x0, out, t)
    else:
        must_refuse(SOHL.bound_terms, sohl_model, x0, t, eps)
        must_refuse(SOHL.posterior, x0, x0, t)


def test_sohl_refusals_and_sampler() -> None:
    must_refuse(SOHL.sample, sohl_model, 0)
    must_refuse(SOHL.sample, sohl_model, 2.5)
    assert SOHL.sample(sohl_model, np.int64(3), generator=torch.Generator().manual_seed(0)).shape == (3, 2)
    must_refuse(SOHL.reverse_moments, lambda x, t: torch.zeros(x.shape[0], 3), torch.zeros(2, 2), 3, names="out_dim")
    must_refuse(SOHL.q_sample, torch.zeros(2, 2, 1), 3, torch.zeros(2, 2, 1))
    must_refuse(SOHL.loss, sohl_model, torch.zeros(0, 2))
    must_refuse(Sohl2015Diffusion, NoiseSchedule([0.1]))
    must_refuse(SOHL.as_learned_range_model, 3)
    fwd = SOHL.forward_trajectory(torch.zeros(4, 2, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert fwd.shape == (7, 4, 2) and fwd.dtype == torch.float64
    bound = SOHL.variational_bound(sohl_model, torch.zeros(3, 2))
    torch.testing.assert_close(bound["total"], bound["prior"] + bound["terms"].sum(1))
    assert math.isfinite(SOHL.loss(sohl_model, torch.zeros(4, 2), torch.Generator().manual_seed(0)).item())
    try:
        SOHL.variational_bound(lambda x, t: torch.full((x.shape[0], 4), float("nan")), torch.zeros(3, 2))
    except DiffusionLibError:
        pass
    else:
        raise AssertionError("a NaN model output must not pass silently")


@given(T_=st.sampled_from([0, 1, 5, 2.5, "4"]), history=st.sampled_from([0, 1, 3, None]),
       uniform_prob=st.sampled_from([0.0, 0.001, 0.5, 1.0, 1.5, float("nan")]),
       losses=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40))
def test_loss_aware_timesteps(T_: object, history: object, uniform_prob: float, losses: list[float]) -> None:
    s, err = call(LossAwareTimesteps, T_, history, uniform_prob)
    ok = (isinstance(T_, int) and T_ >= 1 and isinstance(history, int) and history >= 1
          and 0 < uniform_prob <= 1)
    assert (err is None) == ok
    if err is not None:
        return
    t = (torch.arange(len(losses)) % T_) + 1
    s.update(t, torch.tensor(losses))
    p = s.probs()
    assert p.shape == (T_,) and abs(float(p.sum()) - 1) < 1e-9 and bool((p > 0).all())
    if not s.warmed_up:
        assert torch.allclose(p, torch.full((T_,), 1.0 / T_, dtype=torch.float64))
    tt, w = s.sample(7, torch.Generator().manual_seed(0))
    assert int(tt.min()) >= 1 and int(tt.max()) <= T_
    torch.testing.assert_close(w.double(), 1 / (T_ * p[tt - 1]), rtol=1e-6, atol=0)
    must_refuse(s.update, t + T_, torch.tensor(losses), names="t must lie")
    must_refuse(s.update, t, torch.tensor(losses + [1.0]), names="losses")
    must_refuse(s.load_state_dict, {"values": torch.zeros(T_ + 1, history), "counts": torch.zeros(T_ + 1)})
    other = LossAwareTimesteps(T_, history, uniform_prob)
    other.load_state_dict(s.state_dict())
    assert torch.equal(other.probs(), p)
