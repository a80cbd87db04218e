"""Tests of the Part II networks, the time embedding and the 2015 model's bound."""

import math

import pytest
import torch

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.models import PerTimestepMLP, TimeMLP, sinusoidal_embedding
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.topics.sohl2015 import Sohl2015Diffusion
from diffusion_lib.core.timesteps import balanced_timesteps


def test_sinusoidal_embedding_values():
    t = torch.tensor([0, 3, 10])
    e = sinusoidal_embedding(t, 8, max_period=100.0)
    assert e.shape == (3, 8)
    # omega_k = 100^(-k/4): t = 3, k = 1 -> sin(3 / sqrt(10)), cos in the second half
    w1 = 100.0 ** (-1 / 4)
    assert e[1, 1].item() == pytest.approx(math.sin(3 * w1), abs=1e-6)
    assert e[1, 5].item() == pytest.approx(math.cos(3 * w1), abs=1e-6)
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    # sin^2 + cos^2 = 1 for every frequency
    assert torch.allclose(e[:, :4] ** 2 + e[:, 4:] ** 2, torch.ones(3, 4), atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_per_timestep_heads_are_independent():
    # Changing the head of step 5 changes the output at t = 5 only.
    torch.manual_seed(0)
    m = PerTimestepMLP(T=10, data_dim=2, out_dim=4, hidden=16, trunk_layers=2)
    x = torch.randn(6, 2)
    t = torch.tensor([1, 5, 5, 7, 10, 2])
    before = m(x, t).detach()
    assert torch.equal(before, torch.zeros(6, 4))  # heads start at zero
    with torch.no_grad():
        m.head_weight.normal_()
        m.head_bias.normal_()
    full = m(x, t).detach()
    W, b = m.head_parameters(5)
    h = m.trunk(x[1:3])
    assert torch.allclose(full[1:3], h @ W.T + b, atol=1e-6)
    with torch.no_grad():
        W.mul_(0)  # a view: zeroes the head of step 5 in place
        m.head_bias[16:20] = 0  # (t - 1) * out_dim = 16
    after = m(x, t).detach()
    assert torch.equal(after[[0, 3, 4, 5]], full[[0, 3, 4, 5]])
    assert torch.allclose(after[1:3], torch.zeros(2, 4))


def test_time_mlp_depends_on_t_and_shapes():
    torch.manual_seed(0)
    m = TimeMLP(T=100, data_dim=2, out_dim=4, hidden=32, n_blocks=2)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(3, 2).repeat(2, 1)
    t = torch.tensor([1, 1, 1, 100, 100, 100])
    out = m(x, t)
    assert out.shape == (6, 4)
    assert (out[:3] - out[3:]).abs().max() > 1e-3


@pytest.mark.parametrize("model", [PerTimestepMLP(T=10), TimeMLP(T=10)])
def test_bad_calls_explain(model):
    with pytest.raises(ValueError, match="1..T"):
        model(torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape \\(B, 2\\)"):
        model(torch.zeros(2, 3), torch.tensor([1, 3]))
    with pytest.raises(ValueError, match="torch.full"):
        model(torch.zeros(2, 2), torch.tensor(3))
    with pytest.raises(TypeError, match="Long"):
        model(torch.zeros(2, 2), torch.tensor([1.0, 2.0]))


def _sohl_setup():
    torch.manual_seed(0)
    sch = NoiseSchedule.from_name("linear", 8, beta_start=1e-3, beta_end=0.3, dtype=torch.float64)
    model = PerTimestepMLP(T=8, data_dim=2, out_dim=4, hidden=16, trunk_layers=2).double()
    with torch.no_grad():
        model.head_weight.normal_(0, 0.5)
        model.head_bias.normal_(0, 0.5)
    return sch, model


def test_sohl_bound_equals_gaussian_diffusion_learned_range_bound():
    # The same reverse process written two ways must give the same terms, t by t.
    sch, model = _sohl_setup()
    sd = Sohl2015Diffusion(sch)
    gd = GaussianDiffusion(sch, "eps", "learned_range", "kl")
    x0 = torch.randn(64, 2, dtype=torch.float64)
    eps = torch.randn(64, 2, dtype=torch.float64)
    for t in range(1, 9):
        tt = torch.full((64,), t)
        ours = sd.bound_terms(model, x0, tt, eps)
        xt = gd.q_sample(x0, tt, eps=eps)
        theirs = gd.vb_term(sd.as_learned_range_model(model), x0, xt, tt, decoder="gaussian")
        assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-9), t


def test_sohl_kl_term_matches_monte_carlo():
    # KL(q || p) = E_q[log q - log p], estimated with 200k samples of x_{t-1} ~ q(x_{t-1} | x_t, x_0).
    sch, model = _sohl_setup()
    sd = Sohl2015Diffusion(sch)
    x0 = torch.tensor([[0.5, -0.2]], dtype=torch.float64)
    eps = torch.tensor([[0.3, 1.1]], dtype=torch.float64)
    t = torch.tensor([5])
    kl = sd.bound_terms(model, x0, t, eps).item()
    xt = sd.q_sample(x0, t, eps)
    q_mean, _ = sd.posterior(x0, xt, t)
    q_var = sch.posterior_variance[5]
    p_mean, p_logvar = sd.reverse_moments(model, xt, t)
    g = torch.Generator().manual_seed(0)
    s = q_mean + q_var.sqrt() * torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    log_q = (-0.5 * ((s - q_mean) ** 2 / q_var + torch.log(2 * math.pi * q_var))).sum(1)
    log_p = (-0.5 * ((s - p_mean) ** 2 / p_logvar.exp() + p_logvar + math.log(2 * math.pi))).sum(1)
    mc = (log_q - log_p).mean().item()
    se = (log_q - log_p).std().item() / math.sqrt(200_000)
    assert abs(mc - kl) < 4 * se + 1e-6


def test_sohl_variance_stays_between_posterior_and_forward_variance():
    sch, model = _sohl_setup()
    sd = Sohl2015Diffusion(sch)
    with torch.no_grad():
        model.head_bias.fill_(40.0)  # sigmoid(r) -> 1: the variance approaches beta_t
    x = torch.randn(5, 2, dtype=torch.float64)
    for t in (1, 4, 8):
        _, logv = sd.reverse_moments(model, x, torch.full((5,), t))
        assert torch.all(logv <= torch.log(sch.beta[t]) + 1e-9)
        assert torch.allclose(logv, torch.log(sch.beta[t]).expand_as(logv), atol=1e-6)


def test_sohl_loss_is_unbiased_for_the_bound():
    # The stratified one-t estimate T * L_{t-1} + L_T has the mean of the full sum over t.
    sch, model = _sohl_setup()
    sd = Sohl2015Diffusion(sch)
    n = 16000
    x0 = torch.tensor([[0.4, -0.9]], dtype=torch.float64).repeat(n, 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        t = balanced_timesteps(sd.T, n, g)
        assert torch.equal(torch.bincount(t, minlength=9)[1:], torch.full((8,), n // 8))
        one_t = 8 * sd.bound_terms(model, x0, t, torch.randn(n, 2, generator=g, dtype=torch.float64))
        one_t = one_t + sd.process.prior_kl(x0)
        full = sd.variational_bound(model, x0[:4000], generator=g)["total"]
        batch = sd.loss(model, x0[:64], g).item()
    se = (one_t.var() / n + full.var() / 4000).sqrt().item()
    assert abs(one_t.mean().item() - full.mean().item()) < 4 * se
    assert math.isfinite(batch)


def test_sohl_sampler_shapes_and_errors():
    sch, model = _sohl_setup()
    sd = Sohl2015Diffusion(sch)
    model = model.float()
    sd32 = Sohl2015Diffusion(NoiseSchedule.from_name("linear", 8, beta_start=1e-3, beta_end=0.3))
    traj = torch.empty(9, 10, 2)
    seen = []
    def keep(t, x_t, x0_hat):
        seen.append(t)
        traj[t] = x_t
    traj[0] = sd32.sample(model, 10, generator=torch.Generator().manual_seed(0), callback=keep)
    assert seen == list(range(8, 0, -1)) and torch.isfinite(traj).all()
    fwd = sd32.forward_trajectory(torch.zeros(10, 2), torch.Generator().manual_seed(0))
    assert fwd.shape == (9, 10, 2) and torch.equal(fwd[0], torch.zeros(10, 2))
    with pytest.raises(ValueError, match="out_dim = 2 \\* data_dim"):
        sd32.reverse_moments(PerTimestepMLP(T=8), torch.zeros(3, 2), torch.ones(3, dtype=torch.long))
    with pytest.raises(TypeError, match="NoiseSchedule"):
        Sohl2015Diffusion("linear")
