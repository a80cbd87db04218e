"""Property tests of the training layer: run configs, the loop, the checkpoint format, the bound evaluator.

Each test generates bad and edge-case arguments and asserts a correct result (checked against a
value computed here) or one of the library's own errors; never a raw error, never a silent wrong
result. Models are tiny and runs a few steps long, to stay within the suite's budget.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from diffusion_lib.data import augment_digits
from diffusion_lib.errors import CheckpointError, NonFiniteError
from diffusion_lib.eval.digits import negative_bound, stratified_bound_timesteps
from diffusion_lib.eval.fid import DigitClassifier, load_digit_classifier, save_digit_classifier
from diffusion_lib.train import (
    DEFAULT_CONFIG, TrainResult, diffusion_loss_fn, load_checkpoint, load_pretrained, make_config, make_diffusion,
    save_checkpoint, train,
)
from diffusion_lib.train.config import validate_config
from tests.property._harness import call, must_refuse

torch.set_num_threads(1)

ints = st.one_of(st.integers(-3, 40), st.integers(-3, 40).map(np.int64), st.sampled_from([0, -1, 10**6]))
reals = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-2, 2).map(np.float32),
                  st.sampled_from([0.0, -1.0, 1.0, 1e-4, float("nan")]))
weird = st.one_of(st.none(), st.booleans(), st.text(max_size=6), st.just("1000"), st.lists(st.integers(0, 3), max_size=3))
values = st.one_of(ints, reals, weird, st.sampled_from(["linear", "linearr", "cosine", "hybrid", "v", "eps", "x0",
                                                          "inverse_mix", "digits"]))
keys = st.sampled_from(sorted(DEFAULT_CONFIG) + ["learning_rate", "Steps"])


def _is_plain(v) -> bool:
    if v is None or type(v) in (bool, int, float, str):
        return True
    if type(v) is list:
        return all(_is_plain(x) for x in v)
    if type(v) is dict:
        return all(type(k) is str and _is_plain(x) for k, x in v.items())
    return False


@given(st.dictionaries(keys, values, max_size=4))
def test_make_config_validates_every_key(overrides):
    config, err = call(make_config, **overrides)
    if err is None:
        assert _is_plain(config) and validate_config(config) == config
        for k, v in overrides.items():
            if k != "model" and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                assert config[k] == v  # numbers are kept (as Python numbers)
        assert config["steps"] >= 1 and config["T"] >= 2 and config["lr"] > 0 and math.isfinite(config["lr"])


@given(st.dictionaries(st.sampled_from(["dim", "dim_mults", "groups", "attention", "colour", "num_classes"]),
                       values, max_size=2))
def test_make_config_checks_the_model_keys(model):
    config, err = call(make_config, model=model)
    if err is None:
        assert set(config["model"]) <= set(DEFAULT_CONFIG["model"]) | set(model)
        assert "colour" not in model and "num_classes" not in model


_TINY = make_config(T=25, steps=1, batch_size=4, model={"dim": 8, "groups": 4})
_TINY_MODEL = None


def _tiny_model():
    global _TINY_MODEL
    if _TINY_MODEL is None:
        from diffusion_lib.train import make_model

        torch.manual_seed(0)
        _TINY_MODEL = make_model(_TINY)
    return _TINY_MODEL


@given(seed=st.one_of(st.integers(0, 2**31), st.integers(0, 99).map(np.int64)),
       lr=st.one_of(st.floats(1e-6, 1.0), st.floats(1e-6, 1.0).map(np.float64)),
       steps=st.one_of(st.integers(1, 10**5), st.integers(1, 99).map(np.int32)),
       ema=st.one_of(st.none(), st.floats(0.01, 0.99)), metric=st.one_of(st.integers(), st.floats(allow_nan=False),
                                                                     st.integers(0, 9).map(np.int16)))
def test_save_load_round_trip_of_generated_configs(seed, lr, steps, ema, metric):
    config = {**_TINY, "seed": seed, "lr": lr, "steps": steps, "ema_decay": ema}
    with tempfile.TemporaryDirectory() as d:
        path = save_checkpoint(Path(d) / "c.pt", _tiny_model(), config, metrics={"m": metric, "name": "x"})
        ckpt = load_checkpoint(path)
    assert ckpt["config"] == make_config(**{k: v for k, v in config.items() if k != "model"}, model=_TINY["model"])
    assert type(ckpt["config"]["seed"]) is int and ckpt["metrics"] == {"m": metric, "name": "x"}
    for k, v in _tiny_model().state_dict().items():
        assert torch.equal(ckpt["model"][k], v)


_GOOD_BYTES: bytes | None = None


def _good_bytes() -> bytes:
    global _GOOD_BYTES
    if _GOOD_BYTES is None:
        with tempfile.TemporaryDirectory() as d:
            _GOOD_BYTES = save_checkpoint(Path(d) / "g.pt", _tiny_model(), _TINY).read_bytes()
    return _GOOD_BYTES


@given(st.one_of(st.binary(max_size=3000), st.integers(0, 10**6).map(lambda n: ("cut", n))))
def test_damaged_files_become_one_checkpoint_error(spec):
    good = _good_bytes()
    data = spec if isinstance(spec, bytes) else good[: spec[1] % len(good)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "damaged.pt"
        path.write_bytes(data)
        for loader in (load_checkpoint, load_pretrained, load_digit_classifier):
            err = must_refuse(loader, path)
            assert isinstance(err, CheckpointError) and str(path) in str(err)
            assert "\n" not in str(err) and "weights_only=False" not in str(err)


def _mse(m, b, g):
    return ((m(b[:, :1]) - b[:, 1:]) ** 2).mean()


_DATA = torch.cat([torch.linspace(-1, 1, 32)[:, None], 2 * torch.linspace(-1, 1, 32)[:, None]], 1)


@given(steps=ints, batch_size=ints, lr=reals, warmup=ints, ema=st.one_of(st.none(), reals),
       clip=st.one_of(st.none(), reals), schedule=st.sampled_from(["cosine", "constant", "linear"]),
       stop_at=st.one_of(st.none(), ints))
def test_train_arguments(steps, batch_size, lr, warmup, ema, clip, schedule, stop_at):
    if isinstance(steps, (int, np.integer)) and steps > 40:
        steps = 40
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    result, err = call(train, model, _mse, _DATA, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup,
                       ema_decay=ema, grad_clip=clip, lr_schedule=schedule, stop_at=stop_at, progress=False)
    if err is None:
        assert isinstance(result, TrainResult)
        expected = int(steps) if stop_at is None else int(stop_at)
        assert result.steps == len(result.losses) == len(result.lrs) == expected
        assert all(math.isfinite(v) for v in result.losses)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
        assert all(0 < v <= float(lr) * (1 + 1e-6) for v in result.lrs)
    else:
        assert not isinstance(err, NonFiniteError) or float(lr) > 1


@given(st.sampled_from([float("nan"), float("inf"), -float("inf")]), st.integers(1, 6))
def test_non_finite_data_or_loss_never_returns_weights(bad, step):
    data = _DATA.clone()
    must_refuse(train, nn.Linear(1, 1), _mse, torch.cat([data, torch.tensor([[bad, 0.0]])]), steps=2, progress=False,
                names="data")
    model = nn.Linear(1, 1)
    calls = []

    def loss(m, b, g):
        calls.append(1)
        return _mse(m, b, g) * (bad if len(calls) == step else 1.0)

    err = must_refuse(train, model, loss, data, steps=6, progress=False)
    assert isinstance(err, NonFiniteError) and f"step {step}" in str(err)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


_DIFF = make_diffusion(make_config(T=25, loss="simple"))


def _zero_eps(x, t, **kwargs):
    return torch.zeros_like(x)


@given(st.sampled_from([None, 0, 1, 2, 5, 25, 26, np.int64(4), -1, 2.5, "5"]),
       st.sampled_from([1, 3, 512, 0, -2, np.int64(2), 1.5]),
       st.sampled_from(["grid", "empty", "offgrid", "nan", "flat", "f64"]))
def test_negative_bound_arguments(num_timesteps, batch_size, kind):
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 17, (5, 1, 8, 8), generator=g)
    images = {"grid": levels / 8 - 1, "empty": torch.zeros(0, 1, 8, 8), "offgrid": levels / 8 - 0.97,
              "nan": torch.full((2, 1, 8, 8), float("nan")), "flat": torch.zeros(8),
              "f64": (levels / 8 - 1).double()}[kind]
    res, err = call(negative_bound, _DIFF, _zero_eps, images, num_timesteps=num_timesteps, batch_size=batch_size,
                    generator=torch.Generator().manual_seed(1))
    if err is None:
        assert kind in ("grid", "f64")
        assert res.per_image.shape == (images.shape[0],) and bool(torch.isfinite(res.per_image).all())
        parts = res.prior.mean() + res.decoder.mean() + res.terms[2:].sum()
        assert abs(float(parts) - res.nats_per_image) < 1e-6 * (1 + abs(res.nats_per_image))
        assert res.bits_per_dim == pytest.approx(res.nats_per_image / (64 * math.log(2)))


@given(ints, ints, ints)
def test_stratified_bound_timesteps_arguments(T, K, batch):
    out, err = call(stratified_bound_timesteps, T, K, batch, torch.Generator().manual_seed(0))
    if err is None:
        t, w = out
        assert t.shape == (int(K) - 1, int(batch)) and float(w.sum()) == int(T) - 1
        assert t.numel() == 0 or (int(t.min()) >= 2 and int(t.max()) <= int(T))


@given(st.sampled_from([0.0, 0.5, 1.0, -0.1, float("nan"), np.float64(0.2)]),
       st.sampled_from(["uniform", "inverse_mix", "loss_aware", "Uniform"]),
       st.sampled_from(["ok", "int", "short", "float"]),
       st.sampled_from(["none", "shift", "flip"]))
def test_diffusion_loss_fn_arguments(p_uncond, t_sampling, labels_kind, augment):
    images = torch.zeros(6, 1, 8, 8)
    labels = {"ok": torch.arange(6), "int": torch.arange(6).int(), "short": torch.arange(3),
              "float": torch.zeros(6)}[labels_kind]
    fn, err = call(diffusion_loss_fn, _DIFF, images, labels, p_uncond=p_uncond, t_sampling=t_sampling, augment=augment)
    if err is None:
        assert labels_kind == "ok" and 0 <= float(p_uncond) < 1 and t_sampling != "Uniform" and augment != "flip"
        assert hasattr(fn, "state_dict") == (t_sampling == "loss_aware")


@given(st.sampled_from(["shift", "none", "rotate", 3]),
       st.sampled_from([(5, 1, 8, 8), (2, 3, 4, 4), (8, 8), (0, 1, 8, 8)]),
       st.sampled_from([torch.float32, torch.float64, torch.long]), st.integers(0, 3))
def test_augment_digits(kind, shape, dtype, seed):
    x = (torch.randint(0, 17, shape) / 8 - 1).to(dtype) if dtype != torch.long else torch.zeros(shape, dtype=dtype)
    out, err = call(augment_digits, x, kind, torch.Generator().manual_seed(seed))
    assert (err is None) == (kind in ("shift", "none") and len(shape) == 4 and dtype != torch.long)
    if err is None:
        assert out.shape == x.shape and out.dtype == x.dtype
        # every pixel of the result is a pixel of the input or the background
        assert bool(torch.isin(out, torch.cat([x.flatten(), torch.tensor([-1.0], dtype=dtype)])).all())
        assert kind == "shift" or out is x


@given(st.dictionaries(st.text(min_size=1, max_size=4),
                       st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=4),
                                 st.integers(0, 9).map(np.int64), st.just(torch.__version__), st.just(object())),
                       max_size=3))
def test_classifier_metadata_round_trip(metadata):
    torch.manual_seed(0)
    model = DigitClassifier()
    with tempfile.TemporaryDirectory() as d:
        path, err = call(save_digit_classifier, model, Path(d) / "c.pt", metadata=metadata)
        if err is None:
            loaded = load_digit_classifier(path)
            assert loaded.metadata == {k: v for k, v in metadata.items()}
            assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
        else:
            assert any(type(v) is object for v in metadata.values())


@given(st.one_of(st.integers(-2, 5), st.just(np.int64(3)), st.just(2.5), st.none()))
def test_smoothed_losses_window(window):
    r = TrainResult(losses=[1.0, 2.0, 3.0, 4.0], steps=4, seconds=1.0)
    out, err = call(r.smoothed_losses, window)
    if err is None:
        w = int(window)
        expected = [float(np.mean([1.0, 2.0, 3.0, 4.0][max(0, i + 1 - w): i + 1])) for i in range(4)]
        assert out.tolist() == pytest.approx(expected)
