"""Tests of the generic training loop."""

import math

import pytest
import torch
from torch import nn

from diffusion_lib.train.loop import estimate_steps, lr_at_step, train


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
    assert lr_at_step(0, 100, 1.0, 10, "cosine") == pytest.approx(0.1)
    assert lr_at_step(10, 110, 1.0, 10, "cosine") == pytest.approx(1.0)
    assert lr_at_step(60, 110, 1.0, 10, "cosine") == pytest.approx(0.5)
    assert lr_at_step(109, 110, 1.0, 10, "cosine", 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert lr_at_step(50, 100, 1.0, 10, "constant") == 1.0


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
        (dict(steps=0), "steps must be a positive int"),
        (dict(steps=5, lr=-1.0), "lr must be a positive"),
        (dict(steps=5, ema_decay=1.5), "ema_decay"),
        (dict(steps=5, lr_schedule="linear"), "lr_schedule"),
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
