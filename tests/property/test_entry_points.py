"""Property tests of the public entry points that run training or touch files directly.

The other property modules cover the functions a chapter calls per step; these are the ones that
train (the VAE, the HVAE's encoder, the digit classifier, an image run) or read and write the one
checkpoint format at its lowest level. Runs are a few steps of tiny models. Each call returns a
correct result or raises one of the library's own errors with a message; never a raw error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lib.errors import CheckpointError, InputTypeError, InputValueError, NonFiniteError
from diffusion_lib.eval import train_digit_classifier
from diffusion_lib.topics import VAE, LinearGaussianHVAE, MarkovEncoder, fit_encoder, train_vae
from diffusion_lib.train import (
    KINDS, estimate_steps, load_weights, make_config, make_model, read_checkpoint, train_run, write_checkpoint,
)
from tests.property._harness import call, must_refuse

torch.set_num_threads(1)
NAN = float("nan")
counts = st.sampled_from([0, -1, 1, 2, 2.5, "2", np.int64(2), True, None])
rates = st.sampled_from([1e-3, 0.0, -1e-3, NAN, float("inf"), "0.1"])


def _good_count(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def _good_rate(v) -> bool:
    return isinstance(v, float) and np.isfinite(v) and v > 0


@settings(max_examples=25)
@given(counts, counts, rates, st.sampled_from(["ok", "shape", "nan", "empty", "int"]))
def test_train_vae(steps, batch_size, lr, data):
    torch.manual_seed(0)
    vae = VAE(data_dim=16, latent_dim=2, hidden=8)
    x = {"ok": torch.randn(12, 16), "shape": torch.randn(12, 15), "nan": torch.full((12, 16), NAN),
         "empty": torch.zeros(0, 16), "int": torch.zeros(12, 16, dtype=torch.long)}[data]
    losses, err = call(train_vae, vae, x, steps=steps, batch_size=batch_size, lr=lr,
                       generator=torch.Generator().manual_seed(0), progress=False)
    ok = _good_count(steps) and _good_count(batch_size) and _good_rate(lr) and data == "ok"
    assert (err is None) == ok, err
    if ok:
        assert len(losses) == int(steps) and all(np.isfinite(losses))


def _hvae() -> LinearGaussianHVAE:
    g = torch.Generator().manual_seed(1)
    A, a = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    B, b = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    return LinearGaussianHVAE(A, a, 0.3, B, b, 0.1)


@settings(max_examples=25)
@given(counts, rates, st.sampled_from(["ok", "dims", "f32", "type"]))
def test_fit_encoder_raises_the_elbo_or_refuses(steps, lr, fault):
    model, g = _hvae(), torch.Generator().manual_seed(2)
    enc = {"ok": MarkovEncoder(4, 3, 2, generator=g), "dims": MarkovEncoder(4, 2, 2, generator=g),
           "f32": MarkovEncoder(4, 3, 2, generator=g), "type": "encoder"}[fault]
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    if fault == "f32":
        x = x.float()
    before = model.elbo_terms(x, enc)["elbo"].mean().item() if fault == "ok" else None
    history, err = call(fit_encoder, model, x, enc, steps=steps, lr=lr)
    ok = _good_count(steps) and _good_rate(lr) and fault == "ok"
    assert (err is None) == ok, err
    if ok and lr == 1e-3 and int(steps) >= 2:
        after = model.elbo_terms(x, enc)["elbo"].mean().item()
        assert after >= before - 1e-9  # gradient ascent on the ELBO with a small step


def _mse(model, batch, generator):
    return ((model(batch) - batch) ** 2).mean()


@settings(max_examples=20)
@given(st.sampled_from([0.2, 0.0, -1.0, NAN, "1"]), counts, st.sampled_from([1.0, 0.5, 0.0, -1.0, NAN]))
def test_estimate_steps(seconds, probe_steps, safety):
    model = torch.nn.Linear(2, 2)
    before = [p.clone() for p in model.parameters()]
    out, err = call(estimate_steps, model, _mse, torch.randn(40, 2), seconds=seconds, batch_size=8,
                    probe_steps=probe_steps, safety=safety)
    ok = (isinstance(seconds, float) and np.isfinite(seconds) and seconds > 0 and _good_count(probe_steps)
          and isinstance(safety, float) and np.isfinite(safety) and safety > 0)
    assert (err is None) == ok, err
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # probing leaves the model alone
    if ok:
        steps, rate = out
        assert steps >= 1 and rate > 0


_CFG = make_config(T=25, steps=2, batch_size=4, model={"dim": 8, "groups": 4})


@pytest.mark.parametrize("kwargs, error", [
    ({"config": {"T": 3}}, InputValueError),
    ({"config": _CFG, "stop_at": -1}, InputValueError),
    ({"config": _CFG, "time_budget_s": NAN}, InputValueError),
    ({"config": _CFG, "resume": {"a": 1}}, InputTypeError),
    ({"config": _CFG, "model": "unet"}, InputTypeError),
])
def test_train_run_refuses(kwargs, error):
    err = must_refuse(train_run, progress=False, **kwargs)
    assert isinstance(err, error)


def test_train_run_runs_the_configured_steps():
    model, result = train_run(_CFG, progress=False)
    assert len(result.losses) == _CFG["steps"] and all(np.isfinite(result.losses))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@given(st.sampled_from(sorted(KINDS) + ["foo", 3]), st.sampled_from(["ok", "not_tensor", "not_dict"]),
       st.sampled_from(sorted(KINDS) + ["bar"]))
def test_write_then_read_checkpoint(kind, weights, read_kind):
    state = make_model(_CFG).state_dict()
    model = {"ok": state, "not_tensor": {"w": 3}, "not_dict": [1, 2]}[weights]
    with tempfile.TemporaryDirectory() as d:
        path, err = call(write_checkpoint, Path(d) / "c.pt", kind, _CFG, model)
        if err is not None:
            assert kind not in KINDS or weights != "ok"
            return
        assert kind in KINDS and weights == "ok"
        ckpt, err = call(read_checkpoint, path, read_kind)
        if read_kind != kind:
            assert isinstance(err, (CheckpointError, InputTypeError)), err
            return
        assert ckpt["kind"] == kind and all(torch.equal(ckpt["model"][k], v) for k, v in state.items())
        filled = load_weights(make_model(_CFG), ckpt["model"], path)
        assert all(torch.equal(filled.state_dict()[k], v) for k, v in state.items())
        must_refuse(load_weights, torch.nn.Linear(2, 2), ckpt["model"], path)
        must_refuse(load_weights, "model", ckpt["model"], path, names="module")
        must_refuse(load_weights, make_model(_CFG), [1], path, names="weights")


def test_read_checkpoint_of_a_missing_file_names_it():
    with tempfile.TemporaryDirectory() as d:
        err = must_refuse(read_checkpoint, Path(d) / "nope.pt", "ddpm_unet")
        assert isinstance(err, CheckpointError) and "nope.pt" in str(err)


@settings(max_examples=25)
@given(counts, st.sampled_from([1, 0, -1, 1.5]), st.sampled_from([0.1, 0.0, -0.1, NAN]),
       st.sampled_from(["ok", "labels", "shape", "length", "nan"]))
def test_train_digit_classifier(steps, max_shift, noise_std, fault):
    g = torch.Generator().manual_seed(3)
    images, labels = torch.rand(24, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 10, (24,), generator=g)
    if fault == "labels":
        labels = labels + 10
    elif fault == "shape":
        images = images.reshape(24, 64)
    elif fault == "length":
        labels = labels[:20]
    elif fault == "nan":
        images[0, 0, 0, 0] = NAN
    out, err = call(train_digit_classifier, images, labels, steps=steps, batch_size=8, max_shift=max_shift,
                    noise_std=noise_std)
    ok = _good_count(steps) and max_shift in (0, 1) and noise_std in (0.1, 0.0) and fault == "ok"
    assert (err is None) == ok, err
    if ok:
        assert len(out.losses) == int(steps)


@pytest.mark.parametrize("kind", ["new", "existing", "file", "type"])
def test_unwritable_reason(kind, tmp_path):
    from diffusion_lib.utils import unwritable_reason

    if kind == "type":
        must_refuse(unwritable_reason, 3, names="folder")
        return
    target = {"new": tmp_path / "a" / "b", "existing": tmp_path, "file": tmp_path / "f"}[kind]
    if kind == "file":
        target.write_text("x")
    reason = unwritable_reason(target)
    if kind == "file":
        assert reason is not None and "cannot write in" in reason and "is a file" in reason
    else:
        assert reason is None and target.is_dir() and not list(target.glob(".write_test_*"))  # probe removed


# ------------------------------------------------------------------- every public name is tested
PACKAGES = ("core", "models", "topics", "train", "eval", "data", "viz", "utils", "continuous")


def _public_callables() -> list[tuple[str, str]]:
    import importlib
    import inspect
    from dataclasses import is_dataclass

    found = []
    for pkg in PACKAGES:
        module = importlib.import_module(f"diffusion_lib.{pkg}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            returned_only = inspect.isclass(obj) and (issubclass(obj, (BaseException, tuple)) or is_dataclass(obj))
            if callable(obj) and not returned_only:  # result records are returned, never given input
                found.append((pkg, name))
    return found


def test_every_public_callable_has_a_property_test():
    """A new public function or class must come with a property test that calls it by name."""
    import re

    text = "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py")
                     if p.name != Path(__file__).name) + Path(__file__).read_text(encoding="utf-8").split("# ----")[0]
    callables = _public_callables()
    assert len(callables) > 80  # the enumeration itself works
    untested = [f"{pkg}.{name}" for pkg, name in callables if not re.search(rf"\b{name}\b", text)]
    assert not untested, f"public callables no property test names: {untested}"

