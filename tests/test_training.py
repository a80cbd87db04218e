"""Tests of the generic training loop."""

import math

import pytest
import torch
from torch import nn

from diffusion_lib.errors import NonFiniteError
from diffusion_lib.train.loop import estimate_steps, train


def _mse(model, batch, g):
    return ((model(batch[:, :1]) - batch[:, 1:]) ** 2).mean()


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, generator=g)
    return torch.cat([x, 3 * x - 1], 1)  # y = 3x - 1


def test_learns_a_line_and_is_deterministic():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Linear(1, 1)
        r = train(model, _mse, _data(), steps=400, batch_size=64, lr=0.05, warmup_steps=10, progress=False)
        results.append((model.weight.item(), model.bias.item(), r.losses))
    w, b, losses = results[0]
    assert w == pytest.approx(3.0, abs=1e-2) and b == pytest.approx(-1.0, abs=1e-2)
    assert losses[-1] < 1e-3 < losses[0]
    assert results[0] == results[1]  # same seed, same run, bit for bit


def test_lr_schedule_warmup_and_cosine():
    """The learning rate the loop used at each step follows warm-up then cosine (or constant)."""
    lrs = train(nn.Linear(1, 1), _mse, _data(), steps=110, lr=1.0, warmup_steps=10, progress=False).lrs
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5)
    low = train(nn.Linear(1, 1), _mse, _data(), steps=110, lr=1.0, warmup_steps=10, final_lr_fraction=0.1,
                progress=False).lrs
    assert low[109] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    flat = train(nn.Linear(1, 1), _mse, _data(), steps=100, lr=1.0, warmup_steps=10, lr_schedule="constant",
                 progress=False).lrs
    assert flat[50] == 1.0 and flat[4] == pytest.approx(0.5)


def test_ema_callback_and_sampler_data():
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    seen = []
    sampler = lambda n, g: _data()[torch.randint(0, 512, (n,), generator=g)]  # noqa: E731
    r = train(model, _mse, sampler, steps=300, batch_size=32, lr=0.05, ema_decay=0.9, progress=False,
              callback=lambda step, sec, m: seen.append(step))
    assert seen == list(range(1, 301)) and r.steps == 300 and len(r.lrs) == 300
    # the average of the last iterates is close to the final weights
    assert r.ema_model.weight.item() == pytest.approx(model.weight.item(), abs=0.05)
    assert r.smoothed_losses(10).shape == (300,)


def test_ema_warmup_follows_its_formula():
    # record the weights after every step, then rebuild the EMA by hand from them
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    init = model.weight.detach().clone()
    history = []
    r = train(model, _mse, _data(), steps=40, batch_size=32, lr=0.05, ema_decay=0.99, ema_warmup=True,
              progress=False, callback=lambda step, sec, m: history.append(m.weight.detach().clone()))
    ema = init
    for n, w in enumerate(history):
        decay = min(0.99, (1 + n) / (10 + n))
        ema = decay * ema + (1 - decay) * w
    assert torch.allclose(r.ema_model.weight, ema, atol=1e-6)
    # without warm-up the average still remembers the initial weights much more
    torch.manual_seed(0)
    plain = train(nn.Linear(1, 1), _mse, _data(), steps=40, batch_size=32, lr=0.05, ema_decay=0.99, progress=False)
    final = history[-1]
    assert (r.ema_model.weight - final).abs().item() < 0.5 * (plain.ema_model.weight - final).abs().item()


def test_time_budget_stops_early_with_a_warning():
    model = nn.Linear(1, 1)
    slow = lambda m, b, g: (__import__("time").sleep(0.02), _mse(m, b, g))[1]  # noqa: E731
    with pytest.warns(RuntimeWarning, match="time budget"):
        r = train(model, slow, _data(), steps=10_000, time_budget_s=0.2, progress=False)
    assert r.stopped_early and r.steps < 100


def test_estimate_steps_does_not_touch_the_model():
    model = nn.Linear(1, 1)
    before = [p.clone() for p in model.parameters()]
    steps, rate = estimate_steps(model, _mse, _data(), seconds=1.0, probe_steps=5)
    assert steps >= 1 and rate > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be >= 1"),
        (dict(steps=5, lr=-1.0), r"lr must be .*> 0"),
        (dict(steps=5, ema_decay=1.5), "ema_decay"),
        (dict(steps=5, lr_schedule="linear"), "lr_schedule"),
        (dict(steps=5, stop_at=9), "stop_at"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(nn.Linear(1, 1), _mse, _data(), progress=False, **kwargs)


def test_non_scalar_and_nan_losses_are_explained():
    with pytest.raises(TypeError, match="scalar"):
        train(nn.Linear(1, 1), lambda m, b, g: (m(b[:, :1]) - b[:, 1:]) ** 2, _data(), steps=2, progress=False)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(nn.Linear(1, 1), lambda m, b, g: m(b[:, :1]).sum() * float("nan"), _data(), steps=2, progress=False)


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.w * x


def test_an_inf_gradient_on_the_last_step_stops_and_keeps_the_weights_finite():
    calls = []

    def loss_fn(m, b, g):
        calls.append(1)
        loss = (m(b) ** 2).mean()
        if len(calls) == 5:  # d/dw sqrt(w - w0) at w = w0 is inf, times 0 gives NaN: a finite loss, a NaN gradient
            loss = loss + 0 * torch.sqrt(m.w - m.w.detach()).sum()
        return loss

    model = _Scale()
    with pytest.raises(NonFiniteError, match=r"gradient of parameter 'w'.*step 5.*lower the learning rate"):
        train(model, loss_fn, torch.randn(16, 1), steps=5, progress=False)
    assert torch.isfinite(model.w).all()


def test_weights_that_overflow_are_reported_as_weights():
    model = _Scale()
    with pytest.raises(NonFiniteError, match=r"weight 'w' became NaN or inf in the update of step [2-9]"):
        train(model, lambda m, b, g: torch.tanh(m(b)).mean(), torch.randn(8, 1), steps=10, lr=1e6,
              weight_decay=1e6, progress=False)


def test_ema_is_a_torch_averaged_model_copy_and_resume_restores_it():
    torch.manual_seed(0)
    a = nn.Linear(1, 1)
    full = train(a, _mse, _data(), steps=12, ema_decay=0.8, ema_warmup=True, progress=False)
    torch.manual_seed(0)
    b = nn.Linear(1, 1)
    part = train(b, _mse, _data(), steps=12, ema_decay=0.8, ema_warmup=True, stop_at=5, progress=False)
    rest = train(b, _mse, _data(), steps=12, ema_decay=0.8, ema_warmup=True, resume=part.state, progress=False)
    assert isinstance(full.ema_model, nn.Linear) and not full.ema_model.weight.requires_grad
    assert torch.equal(full.ema_model.weight, rest.ema_model.weight) and full.lrs == rest.lrs
    assert full.losses == rest.losses and torch.equal(a.weight, b.weight)
