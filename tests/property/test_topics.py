"""Property tests of diffusion_lib.topics (vae, hvae, vdm, langevin, guidance): bad and edge-case input
gives either a correct result (checked against an independent computation) or a library error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.errors import DiffusionLibError
from diffusion_lib.topics.guidance import ClassifierFreeGuidance, drop_labels, guided_eps
from diffusion_lib.topics.hvae import LinearGaussianHVAE, MarkovEncoder, gaussian_condition
from diffusion_lib.topics.langevin import (
    annealed_langevin,
    annealed_step_sizes,
    langevin_dynamics,
    score_from_eps_model,
    tweedie_x0,
)
from diffusion_lib.topics.vae import (
    PPCA,
    VAE,
    fit_ppca,
    gradient_samples,
    kl_diag_gaussians,
    kl_diag_gaussians_mc,
    kl_mvn,
    mvn_log_prob,
    reparameterize,
)
from diffusion_lib.topics.vdm import (
    GaussianDataDenoiser,
    default_reverse_variance,
    elbo_consistency_terms,
    elbo_denoising_terms,
    kl_weights,
    total_elbo,
)
from tests.property._harness import call, must_refuse

T = 6
SCHED = NoiseSchedule.from_name("cosine", T, dtype=torch.float64)
NAN, INF = float("nan"), float("inf")

seeds = st.integers(0, 2**16)
dims = st.integers(1, 3)
batches = st.integers(0, 3)
dtypes = st.sampled_from([torch.float32, torch.float64])
# every timestep form a student may pass, with the value it means (None: not a timestep)
T_CASES = [0, 1, T, T + 1, -1, np.int64(2), torch.tensor(3), 2.5, True, "3", torch.tensor([2.0])]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _spd(d: int, g: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=dtype)
    c = a @ a.T + 0.5 * torch.eye(d, dtype=dtype)
    return 0.5 * (c + c.T)


def _t_value(t: object, lo: int, hi: int) -> int | None:
    """The int a valid timestep form means, or None when it must be refused."""
    if isinstance(t, bool) or isinstance(t, (str, float)):
        return None
    if isinstance(t, torch.Tensor):
        if t.ndim != 0 or t.is_floating_point():
            return None
        t = int(t)
    t = int(t)
    return t if lo <= t <= hi else None


# ------------------------------------------------------------------------------------------ vae
COV_FAULTS = ["ok", "nonsym", "notpd", "nan", "shape", "mixed_dtype", "int"]


def _corrupt_cov(cov: torch.Tensor, fault: str) -> torch.Tensor:
    c = cov.clone()
    if fault == "nonsym":
        c[0, -1] += 1.0 if c.shape[0] > 1 else 0.0
        if c.shape[0] == 1:
            c = -c
    elif fault == "notpd":
        c = -c
    elif fault == "nan":
        c[0, 0] = NAN
    elif fault == "shape":
        c = torch.eye(c.shape[0] + 1, dtype=c.dtype)
    elif fault == "mixed_dtype":
        c = c.float()
    elif fault == "int":
        c = c.long()
    return c


@given(seeds, dims, batches, st.sampled_from(COV_FAULTS), st.booleans())
def test_mvn_log_prob(seed, d, n, fault, nan_x):
    g = _gen(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    mean = torch.randn(d, generator=g, dtype=torch.float64)
    cov = _spd(d, g)
    if nan_x and n:
        x[0, 0] = NAN
    bad = _corrupt_cov(cov, fault)
    out, err = call(mvn_log_prob, x, mean, bad)
    if fault != "ok" or (nan_x and n):
        assert err is not None, f"accepted {fault}"
        return
    assert err is None
    ref = torch.distributions.MultivariateNormal(mean, cov, validate_args=False).log_prob(x)
    assert out.shape == (n,)
    assert torch.allclose(out, ref, atol=1e-9)


@given(seeds, dims, st.sampled_from(COV_FAULTS), st.sampled_from(["q", "p"]), st.integers(0, 2))
def test_kl_mvn(seed, d, fault, which, n):
    g = _gen(seed)
    mq, mp = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    cq, cp = _spd(d, g), _spd(d, g)
    args = [mq, cq, mp, cp]
    args[1 if which == "q" else 3] = _corrupt_cov(args[1 if which == "q" else 3], fault)
    out, err = call(kl_mvn, *args)
    if fault != "ok":
        assert err is not None
        return
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mq, cq, validate_args=False), torch.distributions.MultivariateNormal(mp, cp, validate_args=False)
    )
    assert torch.allclose(out, ref, atol=1e-8)


@given(seeds, st.integers(1, 4), batches, st.sampled_from(["ok", "shape", "nan", "prior_big", "prior_tensor", "int", "mixed"]))
def test_kl_diag_gaussians(seed, k, n, fault):
    g = _gen(seed)
    m = torch.randn(n, k, generator=g, dtype=torch.float64)
    lv = torch.randn(n, k, generator=g, dtype=torch.float64)
    mp, lp = 0.3, -0.2
    if fault == "shape":
        lv = lv[..., :1] if k > 1 else torch.zeros(n, 2, dtype=torch.float64)
    elif fault == "nan" and n:
        m[0, 0] = NAN
    elif fault == "prior_big":
        mp = torch.zeros(5, n, k, dtype=torch.float64)
    elif fault == "prior_tensor":
        mp = torch.full((k,), 0.3, dtype=torch.float64)
    elif fault == "int":
        m = m.long()
    elif fault == "mixed":
        lv = lv.float()
    out, err = call(kl_diag_gaussians, m, lv, mp, lp)
    if fault in ("shape", "prior_big", "int", "mixed") or (fault == "nan" and n):
        assert err is not None
        return
    assert err is None
    ref = 0.5 * (lp - lv + (lv.exp() + (m - 0.3) ** 2) / math.exp(lp) - 1.0)
    assert torch.allclose(out, ref.sum(-1), atol=1e-12)


N_SAMPLES = [None, 1, 3, np.int64(2), 0, -1, 2.5, True, "2"]


@given(seeds, st.sampled_from(N_SAMPLES), dtypes)
def test_reparameterize_and_mc_kl(seed, n_samples, dtype):
    mean = torch.randn(2, 3, generator=_gen(seed), dtype=dtype)
    logvar = torch.randn(2, 3, generator=_gen(seed + 1), dtype=dtype)
    out, err = call(reparameterize, mean, logvar, n_samples, _gen(seed))
    valid = n_samples is None or (not isinstance(n_samples, (bool, float, str)) and int(n_samples) >= 1)
    if not valid:
        assert err is not None
        must_refuse(kl_diag_gaussians_mc, mean, logvar, n_samples)
        return
    shape = (2, 3) if n_samples is None else (int(n_samples), 2, 3)
    eps = torch.randn(shape, generator=_gen(seed), dtype=dtype)
    assert out.dtype == dtype and torch.allclose(out, mean + (0.5 * logvar).exp() * eps)
    if n_samples is not None:
        mc = kl_diag_gaussians_mc(mean, logvar, n_samples, _gen(seed))
        z = out
        log_q = (-0.5 * (math.log(2 * math.pi) + logvar + (z - mean) ** 2 / logvar.exp())).sum(-1)
        log_p = (-0.5 * (math.log(2 * math.pi) + z**2)).sum(-1)
        assert torch.allclose(mc, log_q - log_p, atol=1e-4)


@given(seeds, st.sampled_from(["reparam", "score", "pathwise", "", None]), st.sampled_from([4, 0, -2, 1.5]),
       st.sampled_from(["linear", "wrong_shape", "numpy", "nan"]))
def test_gradient_samples(seed, estimator, n, f_kind):
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    fs = {
        "linear": lambda z: z @ c,
        "wrong_shape": lambda z: z,
        "numpy": lambda z: torch.as_tensor(z.detach().numpy() @ c.numpy()),
        "nan": lambda z: z @ c * NAN,
    }
    mean, log_std = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    out, err = call(gradient_samples, fs[f_kind], mean, log_std, n, estimator, _gen(seed))
    ok = estimator in ("reparam", "score") and isinstance(n, int) and n >= 1
    if not ok or f_kind in ("wrong_shape", "nan") or (f_kind == "numpy" and estimator == "reparam"):
        assert err is not None
        return
    assert out.shape == (n, 2, 2)
    if estimator == "reparam":
        assert torch.allclose(out[:, 0], c.expand(n, 2))  # d/d mean of a linear f is c, exactly
    else:
        eps = torch.randn((n, 2), generator=_gen(seed), dtype=torch.float64)
        f = (eps @ c)[:, None]
        assert torch.allclose(out[:, 0], f * eps) and torch.allclose(out[:, 1], f * (eps**2 - 1))


@given(seeds, st.sampled_from([0.3, 0, -1.0, NAN, INF, "0.3", np.float64(0.2)]), st.sampled_from(["ok", "dim", "f32", "nan"]))
def test_ppca(seed, sigma2, x_fault):
    g = _gen(seed)
    W, mu = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    model, err = call(PPCA, W, mu, sigma2)
    if isinstance(sigma2, str) or not (0 < float(sigma2) < INF):
        assert err is not None
        return
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x = {"ok": x, "dim": x[:, :2], "f32": x.float(), "nan": x.clone().fill_(NAN)}[x_fault]
    out, err = call(model.log_evidence, x)
    if x_fault != "ok":
        assert err is not None
        must_refuse(model.posterior, x)
        return
    C = W @ W.T + float(sigma2) * torch.eye(3, dtype=torch.float64)
    assert torch.allclose(out, torch.distributions.MultivariateNormal(mu, C, validate_args=False).log_prob(x))
    pm, pc = model.posterior(x)
    assert torch.allclose(model.elbo(x, pm, pc), out, atol=1e-9)  # tight at the exact posterior
    must_refuse(model.elbo, x, pm, pc + torch.triu(torch.ones(2, 2, dtype=torch.float64), 1))  # non-symmetric
    must_refuse(model.elbo_mc, x, pm, pc, 0)
    assert model.elbo_mc(x, pm, pc, 3, _gen(seed)).shape == (3, 4)
    xs, zs = model.sample(np.int64(2), _gen(seed))
    assert xs.shape == (2, 3) and zs.shape == (2, 2)
    must_refuse(model.sample, -1)


@given(st.sampled_from([1, 2, 3, 4, 0, -1, 2.0, np.int64(2)]), st.integers(1, 6))
def test_fit_ppca(k, n):
    x = torch.randn(n, 4, generator=_gen(n), dtype=torch.float64)
    model, err = call(fit_ppca, x, k)
    if isinstance(k, float) or not 1 <= int(k) < 4 or n < 2:
        assert err is not None
        return
    assert model.K == int(k) and torch.allclose(model.mu, x.mean(0))


@given(seeds, st.sampled_from(["flat", "image", "f64", "f64_double", "dim", "1d", "empty", "nan", "int"]),
       st.sampled_from([1, 2, 0, -1, 1.5]))
def test_vae(seed, kind, n_samples):
    torch.manual_seed(seed)
    vae = VAE(data_dim=16, latent_dim=2, hidden=8)
    if kind == "f64_double":
        vae = vae.double()
    g = _gen(seed)
    x = {
        "flat": torch.randn(3, 16, generator=g), "image": torch.randn(3, 1, 4, 4, generator=g),
        "f64": torch.randn(3, 16, generator=g, dtype=torch.float64),
        "f64_double": torch.randn(3, 16, generator=g, dtype=torch.float64),
        "dim": torch.randn(3, 15, generator=g), "1d": torch.randn(16, generator=g), "empty": torch.zeros(0, 16),
        "nan": torch.full((3, 16), NAN), "int": torch.zeros(3, 16, dtype=torch.long),
    }[kind]
    out, err = call(vae.elbo_terms, x, n_samples, _gen(seed))
    if kind in ("f64", "dim", "1d", "nan", "int") or not (isinstance(n_samples, int) and n_samples >= 1):
        assert err is not None
        return
    flat = x.reshape(x.shape[0], -1)
    mean, logvar = vae.encode(flat)
    kl = 0.5 * (mean**2 + logvar.exp() - logvar - 1).sum(-1)
    assert torch.allclose(out["kl"], kl, atol=1e-5) and torch.allclose(out["elbo"], out["reconstruction"] - kl)
    assert vae.sample(2, _gen(seed)).dtype == vae.log_std_x.dtype
    assert vae.log_evidence_is(x, 4, _gen(seed)).shape == (x.shape[0],)
    must_refuse(vae.decode, torch.zeros(2, 3, dtype=vae.log_std_x.dtype))


@pytest.mark.parametrize("sizes", [(16, 0, 8), (0, 2, 8), (16, 2, -1), (16, 2.5, 8), (True, 2, 8)])
def test_vae_sizes(sizes):
    must_refuse(VAE, *sizes)


# ----------------------------------------------------------------------------------------- hvae
def _hvae(g: torch.Generator, s1: object = 0.3, s0: object = 0.1) -> LinearGaussianHVAE:
    A, a = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    B, b = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    return LinearGaussianHVAE(A, a, s1, B, b, s0)


@given(seeds, st.sampled_from(["ok", "shape", "f32", "nan", "enc_dims", "enc_type", "empty"]))
def test_hvae_elbo_plus_gap_is_log_evidence(seed, fault):
    g = _gen(seed)
    model = _hvae(g)
    enc = MarkovEncoder(4, 3, 2, generator=g)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    if fault == "shape":
        x = x[:, :3]
    elif fault == "f32":
        x = x.float()
    elif fault == "nan":
        x[1, 1] = NAN
    elif fault == "enc_dims":
        enc = MarkovEncoder(4, 2, 2, generator=g)
    elif fault == "enc_type":
        enc = "encoder"
    elif fault == "empty":
        x = x[:0]
    out, err = call(model.elbo_terms, x, enc)
    if fault not in ("ok", "empty"):
        assert err is not None
        return
    gap = model.gap(x, enc)
    assert torch.allclose(out["elbo"] + gap, model.log_evidence(x), atol=1e-8)
    assert (gap >= -1e-10).all()
    opt = model.optimal_encoder()
    assert torch.allclose(model.elbo_terms(x, opt)["elbo"], model.log_evidence(x), atol=1e-8)
    must_refuse(model.elbo_terms_mc, x, enc, 0)


@given(st.sampled_from([0.3, 0.0, -1.0, NAN, INF, "1"]), st.sampled_from([0.1, 0.0, NAN]))
def test_hvae_noise_variances(s1, s0):
    _, err = call(_hvae, _gen(0), s1, s0)
    assert (err is None) == (s1 == 0.3 and s0 == 0.1)


@given(seeds, st.sampled_from([[3], [0, 2], [], [0, 1, 2, 3], [1, 1], [4], [-1], [1.0], [np.int64(2)]]))
def test_gaussian_condition(seed, obs):
    g = _gen(seed)
    mean, cov = torch.randn(4, generator=g, dtype=torch.float64), _spd(4, g)
    k = len(obs)
    x_obs = torch.randn(2, k, generator=g, dtype=torch.float64)
    out, err = call(gaussian_condition, mean, cov, obs, x_obs)
    try:
        ids = [int(i) for i in obs if not isinstance(i, float)]
    except TypeError:
        ids = []
    valid = len(ids) == k and 1 <= k < 4 and len(set(ids)) == k and all(0 <= i < 4 for i in ids)
    if not valid:
        assert err is not None
        return
    hid = [i for i in range(4) if i not in ids]
    prec = torch.linalg.inv(cov)[hid][:, hid]  # the conditional precision is the hidden block of cov^{-1}
    assert torch.allclose(torch.linalg.inv(out[1]), prec, atol=1e-8)
    must_refuse(gaussian_condition, mean, cov.T + torch.triu(torch.ones(4, 4, dtype=torch.float64), 1), obs, x_obs)


# ------------------------------------------------------------------------------------------ vdm
@given(seeds, st.sampled_from(["ok", "b1", "b_extra", "none", "int", "nan"]), st.integers(0, 3),
       st.sampled_from([elbo_denoising_terms, elbo_consistency_terms]))
def test_vdm_terms(seed, out_kind, n, estimator):
    den = GaussianDataDenoiser(SCHED, 0.5, 0.25)

    def mean_fn(x, t):
        m = den.mean(x, t)
        return {"ok": m, "b1": m[:, :1], "b_extra": m[None], "none": None, "int": m.long(), "nan": m * NAN}[out_kind]

    x0 = torch.randn(n, 2, generator=_gen(seed), dtype=torch.float64)
    out, err = call(estimator, SCHED, mean_fn, x0, None, _gen(seed))
    if out_kind != "ok" and not (out_kind == "nan" and n == 0):
        assert err is not None
        return
    assert err is None
    steps = out["denoising" if estimator is elbo_denoising_terms else "consistency"]
    assert steps.shape == (n, T - 1) and total_elbo(out).shape == (n,)


@given(st.sampled_from(["ok", "short", "zero", "nan", "int"]))
def test_vdm_reverse_variance(kind):
    var = default_reverse_variance(SCHED)
    var = {"ok": var, "short": var[1:], "zero": var * 0, "nan": var * NAN, "int": var.long()}[kind]
    den = GaussianDataDenoiser(SCHED, 0.0, 1.0)
    out, err = call(den.exact_terms, torch.zeros(1, 2, dtype=torch.float64), var)
    assert (err is None) == (kind == "ok")


@given(st.sampled_from(T_CASES), st.sampled_from(["mean", "x0_mean", "score"]), dtypes)
def test_gaussian_denoiser_timesteps(t, method, dtype):
    den = GaussianDataDenoiser(SCHED, 0.5, 0.25, shrink=0.9)
    xt = torch.tensor([[0.3, -1.0]], dtype=dtype)
    out, err = call(getattr(den, method), xt, t)
    tv = _t_value(t, 1 if method == "mean" else 0, T)
    if tv is None:
        assert err is not None
        return
    ab = float(SCHED.alpha_bar[tv])
    v = ab * 0.25 + 1 - ab
    x0 = 0.5 + 0.9 * math.sqrt(ab) * 0.25 / v * (xt.double() - math.sqrt(ab) * 0.5)
    if method == "score":
        ref = -(xt.double() - math.sqrt(ab) * 0.5) / v
    elif method == "x0_mean":
        ref = x0
    else:
        ab_prev, beta = float(SCHED.alpha_bar[tv - 1]), float(SCHED.beta[tv])
        ref = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * xt.double()
    assert out.dtype == dtype and torch.allclose(out.double(), ref, atol=1e-5)


@given(st.sampled_from([0.5, NAN, INF, "a"]), st.sampled_from([0.25, 0.0, -1.0, NAN]), st.sampled_from([1.0, NAN]))
def test_gaussian_denoiser_constructor(m, s2, shrink):
    _, err = call(GaussianDataDenoiser, SCHED, m, s2, shrink)
    assert (err is None) == (m == 0.5 and s2 == 0.25 and shrink == 1.0)


@given(st.sampled_from(["x0", "eps", "score", "v", "X0", None]))
def test_kl_weights(p):
    out, err = call(kl_weights, SCHED, p)
    if p not in ("x0", "eps", "score"):
        assert err is not None
        return
    snr = SCHED.alpha_bar / (1 - SCHED.alpha_bar)
    if p == "x0":
        assert torch.allclose(out[2:], 0.5 * (snr[1:-1] - snr[2:]))
    assert torch.isnan(out[:2]).all()


@given(st.sampled_from(["ok", "missing", "both", "shape", "list"]))
def test_total_elbo(kind):
    terms = {"reconstruction": torch.ones(2), "prior_matching": torch.ones(2), "denoising": torch.ones(2, 3)}
    if kind == "missing":
        del terms["prior_matching"]
    elif kind == "both":
        terms["consistency"] = torch.ones(2, 3)
    elif kind == "shape":
        terms["denoising"] = torch.ones(3, 3)
    elif kind == "list":
        terms = list(terms.values())
    out, err = call(total_elbo, terms)
    if kind != "ok":
        assert err is not None
        return
    assert torch.equal(out, torch.full((2,), 5.0))


# ------------------------------------------------------------------------------------- langevin
class _Eps(nn.Module):
    """A fixed linear 'noise predictor' eps(x, t) = 0.1 t x, with the model convention of the book."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.1 * t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))) * x


SCHED32 = NoiseSchedule.from_name("cosine", T)


@given(st.sampled_from(T_CASES + [torch.tensor([1, 2, 3]), torch.tensor([1, 2])]), dtypes)
def test_score_from_eps_model(t, dtype):
    score = score_from_eps_model(_Eps(), SCHED32)
    x = torch.ones(3, 2, dtype=dtype)
    out, err = call(score, x, t)
    if isinstance(t, torch.Tensor) and t.ndim == 1:
        tv = t if len(t) == 3 else None
    else:
        tv = _t_value(t, 1, T)
    if tv is None:
        assert err is not None
        return
    tt = torch.as_tensor(tv).expand(3)
    ref = -0.1 * tt[:, None].double() * x.double() / (1 - SCHED32.alpha_bar[tt]).sqrt()[:, None].double()
    assert torch.allclose(out.double(), ref, atol=1e-5)


@given(st.sampled_from([[5, 3, 1], [5, 0], [5, -2], [3, 5], [], [4.5, 1], [T + 1, 1], (np.int64(4), 2)]),
       st.sampled_from([0.01, 0.0, -1.0, NAN, INF]), st.sampled_from([2, 0, -1, 1.5]))
def test_annealed_langevin(levels, step, n_each):
    score = score_from_eps_model(_Eps(), SCHED32)
    x = torch.zeros(4, 2)
    out, err = call(annealed_langevin, score, x, list(levels), [step] * len(levels), n_each, _gen(0), True)
    ints = [int(t) for t in levels if not isinstance(t, float)]
    valid = (len(ints) == len(levels) >= 1 and all(1 <= t <= T for t in ints)
             and all(a > b for a, b in zip(ints, ints[1:])) and 0 < step < INF and isinstance(n_each, int) and n_each >= 0)
    if not valid:
        assert err is not None
        return
    assert len(out) == len(levels) + 1 and torch.isfinite(out[-1]).all()
    if n_each == 0:
        assert torch.equal(out[-1], x)


@given(st.sampled_from([[5, 1], [0, 1], [T + 1], [], [2.5]]), st.sampled_from([0.1, 0.0, NAN]))
def test_annealed_step_sizes(levels, eps):
    out, err = call(annealed_step_sizes, SCHED32, levels, eps)
    if not (levels and all(isinstance(t, int) and 1 <= t <= T for t in levels) and eps == 0.1):
        assert err is not None
        return
    var = [1 - float(SCHED32.alpha_bar[t]) for t in levels]
    assert out == pytest.approx([0.1 * v / min(var) for v in var])


@given(st.sampled_from([0.01, 0.0, -1, NAN, INF, 5.0]), st.sampled_from([3, 0, -1, 2.0]), st.sampled_from(["ok", "nan", "shape"]))
def test_langevin_dynamics(step, n, kind):
    x = torch.zeros(3, 2) if kind != "nan" else torch.full((3, 2), NAN)
    score = (lambda y: -y) if kind != "shape" else (lambda y: y[:, :1])
    out, err = call(langevin_dynamics, score, x, step, n, _gen(1))
    valid = 0 < step < INF and isinstance(n, int) and n >= 0 and kind == "ok" or (kind == "shape" and n == 0 and 0 < step < INF)
    if step == 5.0 and isinstance(n, int) and n > 0 and kind == "ok":
        valid = True  # a large step on a Gaussian still gives finite values in 3 steps
    if not valid:
        assert err is not None
        return
    g, y = _gen(1), x.clone()
    for _ in range(n):
        z = torch.randn(y.shape, generator=g)
        y = y - 0.5 * step * y + step**0.5 * z
    assert torch.allclose(out, y)


@given(st.sampled_from([0.5, 1.0, 0.0, 1.5, NAN, "0.5", "b1", "b", "scalar_t", "wide"]), dtypes)
def test_tweedie_x0(ab, dtype):
    x = torch.randn(2, 2, generator=_gen(3), dtype=dtype)
    s = torch.randn(2, 2, generator=_gen(4), dtype=dtype)
    abv = {"b1": torch.tensor([[0.5], [0.8]]), "b": torch.tensor([0.5, 0.8]), "scalar_t": torch.tensor(0.7),
           "wide": torch.full((3, 2, 2), 0.5)}.get(ab, ab)
    out, err = call(tweedie_x0, x, s, abv)
    if isinstance(ab, str) and ab in ("b", "wide", "0.5") or (not isinstance(ab, str) and not 0 < ab <= 1):
        assert err is not None
        return
    a = torch.as_tensor(abv, dtype=torch.float64)
    assert torch.allclose(out.double(), (x.double() + (1 - a) * s.double()) / a.sqrt(), atol=1e-5)


# ------------------------------------------------------------------------------------- guidance
class _Cond(nn.Module):
    num_classes = 3
    num_timesteps = T

    def __init__(self, learned_variance: bool = False) -> None:
        super().__init__()
        self.learned_variance = learned_variance

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],) and int(t.min()) >= 1
        out = x * (1.0 + y.to(x.dtype)).reshape(-1, 1, 1, 1) + t.to(x.dtype).reshape(-1, 1, 1, 1)
        return torch.cat([out, -out], 1) if self.learned_variance else out


@given(st.sampled_from(T_CASES + [torch.tensor([1, 2])]), st.sampled_from([0.0, 2.0, NAN, "2"]), st.booleans(),
       st.sampled_from(["ok", "null", "none", "float", "short"]))
def test_classifier_free_guidance(t, w, lv, ykind):
    net = _Cond(lv)
    cfg, err = call(ClassifierFreeGuidance, net, w)
    if isinstance(w, str) or w != w:
        assert err is not None
        return
    x = torch.randn(2, 1, 2, 2, generator=_gen(5))
    y = {"ok": torch.tensor([0, 2]), "null": torch.tensor([3, 1]), "none": None, "float": torch.tensor([0.0, 1.0]),
         "short": torch.tensor([1])}[ykind]
    out, err = call(cfg, x, t, y)
    tv = (t if isinstance(t, torch.Tensor) and t.ndim == 1 and t.dtype == torch.long else _t_value(t, 1, T))
    if tv is None or ykind in ("float", "short"):
        assert err is not None
        return
    tt = torch.as_tensor(tv).expand(2).float().reshape(-1, 1, 1, 1)
    uncond = x * 4.0 + tt
    if y is None:
        ref = uncond
    else:
        cond = x * (1.0 + y.float()).reshape(-1, 1, 1, 1) + tt
        ref = torch.where((y == 3).reshape(-1, 1, 1, 1), uncond, (1 + w) * cond - w * uncond)
    assert torch.allclose(out[:, :1], ref, atol=1e-5)


@given(st.sampled_from([0.0, 1.5, -1.0, NAN, INF, True]), st.sampled_from(["ok", "shape", "dtype", "nan", "int"]))
def test_guided_eps(w, kind):
    a, b = torch.randn(2, 3, generator=_gen(1)), torch.randn(2, 3, generator=_gen(2))
    b = {"ok": b, "shape": b[:1], "dtype": b.double(), "nan": b * NAN, "int": b.long()}[kind]
    out, err = call(guided_eps, a, b, w)
    if kind != "ok" or isinstance(w, bool) or not abs(w) < INF:
        assert err is not None
        return
    assert torch.allclose(out, a + w * (a - b))


@given(st.sampled_from([0.0, 0.5, 1.0, -0.1, 1.1, NAN, "0.5"]), st.sampled_from([10, -1, 2.5, np.int64(10)]),
       st.sampled_from(["long", "float", "list"]))
def test_drop_labels(p, null, kind):
    labels = {"long": torch.arange(8), "float": torch.arange(8).float(), "list": list(range(8))}[kind]
    out, err = call(drop_labels, labels, p, null, _gen(7))
    ok = kind == "long" and not isinstance(p, str) and 0 <= p <= 1 and not isinstance(null, float) and int(null) >= 0
    if not ok:
        assert err is not None
        return
    u = torch.rand(8, generator=_gen(7))
    assert torch.equal(out, torch.where(u < p, torch.full((8,), int(null)), torch.arange(8)))


def test_errors_are_the_librarys_own():
    """A spot check that the harness sees library errors, not raw ones, for a typical slip."""
    err = must_refuse(mvn_log_prob, torch.zeros(2), torch.zeros(3), torch.eye(2), names="dimension")
    assert isinstance(err, DiffusionLibError)
