"""Two pieces of improved DDPM (Nichol & Dhariwal 2021): respaced sampling and the loss-aware timestep sampler.

Also the digit augmentation of the generalising recipe (chapter ``evaluation_digits``).
"""

import torch

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.core.timesteps import LossAwareTimesteps
from diffusion_lib.data import augment_digits, load_digits_split
from diffusion_lib.train import diffusion_loss_fn, make_config, make_diffusion, make_model, train


def _net(x, t):
    return torch.tanh(x) * 0.3 + 0.01 * t.view(-1, 1).to(x.dtype)


def _learned(x, t):  # an eps-prediction and a variance output v in [-1, 1]
    return torch.cat([torch.tanh(x) * 0.3, torch.sin(x + t.view(-1, 1).to(x.dtype))], dim=1)


def _float64(T=100, var="fixed_small", name="cosine"):
    loss = "hybrid" if var == "learned_range" else "l2"
    return GaussianDiffusion(NoiseSchedule.from_name(name, T, dtype=torch.float64), model_var_type=var, loss_type=loss)


def _run(d, model, **kw):
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return d.p_sample_loop(model, (6, 2), x_T=x, generator=torch.Generator().manual_seed(1), **kw)


def test_respaced_fixed_small_is_ddim_eta_one():
    # sigma^2 of DDIM with eta = 1 is the respaced posterior variance, and its mean the respaced posterior mean
    d = _float64()
    for K in (2, 7, 25):
        x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        a = _run(d, _net, num_steps=K)
        b = d.ddim_sample_loop(_net, (6, 2), x_T=x, generator=torch.Generator().manual_seed(1), num_steps=K, eta=1.0)
        assert (a - b).abs().max() < 1e-9


def test_respacing_to_every_step_is_plain_ddpm():
    for var, model in (("fixed_small", _net), ("fixed_large", _net), ("learned_range", _learned)):
        d = _float64(T=40, var=var)
        assert torch.equal(_run(d, model), _run(d, model, num_steps=40))
        assert torch.equal(_run(d, model), _run(d, model, timesteps=list(range(40, 0, -1))))


def test_respaced_learned_variance_interpolates_the_respaced_betas():
    # one step t -> s: the variance is exp(frac log beta + (1 - frac) log tilde beta) with the recomputed betas
    from diffusion_lib.core.sampling import _respaced_posterior

    d = _float64(T=100, var="learned_range")
    xt = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t, s = torch.full((5,), 80), torch.full((5,), 50)
    v = torch.linspace(-1, 1, 5, dtype=torch.float64).view(5, 1).expand(5, 2)
    x0 = torch.zeros(5, 2, dtype=torch.float64)
    _, logvar = _respaced_posterior(d, xt, t, s, x0, v)
    ab = d.schedule.alpha_bar.double()
    beta = 1 - ab[80] / ab[50]
    beta_tilde = (1 - ab[50]) / (1 - ab[80]) * beta
    frac = (v + 1) / 2
    assert torch.allclose(logvar, frac * beta.log() + (1 - frac) * beta_tilde.log(), atol=1e-12)
    assert beta > d.schedule.beta.double()[80] * 5  # the respaced step is much larger than one step of the chain


def test_respaced_sampling_of_the_shipped_model_gives_digits():
    from diffusion_lib.train import load_pretrained

    model, diffusion, _ = load_pretrained("ddpm_digits.pt")
    x = diffusion.p_sample_loop(model, (8, 1, 8, 8), num_steps=50, clip_x0=True,
                                generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 8, 8) and bool(torch.isfinite(x).all())
    assert -1.05 <= float(x.min()) and float(x.max()) <= 1.05
    assert 0.15 < float((x > 0).double().mean()) < 0.6  # ink on a share of the pixels like the digits' (0.35)


def test_loss_aware_sampler_is_uniform_until_warm_then_follows_rms():
    s = LossAwareTimesteps(4, history=2, uniform_prob=0.2)
    assert torch.allclose(s.probs(), torch.full((4,), 0.25, dtype=torch.float64))
    s.update(torch.tensor([1, 2, 3, 4, 1, 2, 3]), torch.tensor([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]))
    assert not s.warmed_up  # t = 4 has one value
    s.update(torch.tensor([4]), torch.tensor([0.0]))
    rms = torch.tensor([(1 + 9) / 2, 4.0, (9 + 1) / 2, 16 / 2], dtype=torch.float64).sqrt()
    expected = 0.8 * rms / rms.sum() + 0.2 / 4
    assert s.warmed_up and torch.allclose(s.probs(), expected, atol=1e-12)
    s.update(torch.tensor([2]), torch.tensor([10.0]))  # the ring buffer drops the oldest value of t = 2
    assert torch.allclose(s.values[1], torch.tensor([10.0, 2.0], dtype=torch.float64))
    t, w = s.sample(50_000, torch.Generator().manual_seed(0))
    p = s.probs()
    freq = torch.bincount(t, minlength=5)[1:].double() / t.numel()
    assert torch.allclose(freq, p, atol=0.01)
    assert torch.allclose(w, (1 / (4 * p[t - 1])).float())
    # E_p[w(t) L_t] = the mean of L_t for any L: the estimate stays unbiased whatever p the history gives
    L = torch.tensor([5.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    assert abs(float((p * (1 / (4 * p)) * L).sum()) - float(L.mean())) < 1e-12


def test_loss_aware_training_resumes_bit_for_bit():
    cfg = make_config(loss="vlb", T=50, steps=24, t_sampling="loss_aware", model={"dim": 8})
    images = load_digits_split("train")[0][:64]

    def run(stop=None, resume=None, model=None):
        if model is None:
            torch.manual_seed(0)
            model = make_model(cfg)
        fn = diffusion_loss_fn(make_diffusion(cfg), images, t_sampling="loss_aware")
        return model, fn, train(model, fn, torch.arange(64), steps=24, batch_size=32, progress=False,
                                stop_at=stop, resume=resume)

    _, fn_full, full = run()
    model, _, half = run(stop=12)
    assert half.state["loss_fn"]["counts"].sum() == 12 * 32
    _, fn_rest, rest = run(resume=half.state, model=model)
    assert rest.losses == full.losses
    assert torch.equal(fn_rest.state_dict()["values"], fn_full.state_dict()["values"])
    assert fn_full.state_dict()["counts"].sum() == 24 * 32


def test_shift_augmentation_keeps_digits_on_the_grid():
    x = load_digits_split("train")[0][:400]
    y = augment_digits(x, "shift", torch.Generator().manual_seed(0))
    moved = (x != y).flatten(1).any(1)
    assert 0.4 < float(moved.double().mean()) < 0.6  # about half of the images move
    levels = (y + 1) * 8
    assert torch.equal(levels, levels.round()) and float(y.min()) >= -1 and float(y.max()) <= 1
    for i in moved.nonzero().flatten()[:40].tolist():  # each moved image is a one-pixel translate of its original
        a, b = x[i, 0], y[i, 0]
        shifts = [torch.equal(b[1:], a[:-1]) and bool((b[0] == -1).all()),   # down
                  torch.equal(b[:-1], a[1:]) and bool((b[-1] == -1).all()),  # up
                  torch.equal(b[:, 1:], a[:, :-1]) and bool((b[:, 0] == -1).all()),   # right
                  torch.equal(b[:, :-1], a[:, 1:]) and bool((b[:, -1] == -1).all())]  # left
        assert sum(shifts) >= 1
    assert augment_digits(x, "none") is x
