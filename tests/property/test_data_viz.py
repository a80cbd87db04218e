"""Property tests of diffusion_lib.data, diffusion_lib.viz and diffusion_lib.utils: bad and edge-case
input gives a correct result (checked against an independent computation) or a library error."""

from __future__ import annotations

import contextlib

import io
import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import make_swiss_roll  # noqa: E402

from diffusion_lib import utils as U  # noqa: E402
from diffusion_lib.data import DIGITS_SPLITS, digits_to_levels, load_digits_split, quantize_digits, swiss_roll  # noqa: E402
from diffusion_lib.data import online as online_data  # noqa: E402
from diffusion_lib.viz import plotting as P  # noqa: E402
from diffusion_lib.viz import widgets as W  # noqa: E402

from ._harness import call as _call
from ._harness import must_refuse  # noqa: E402

odd = st.sampled_from([float("nan"), float("inf"), -1, 0, 2.5, True, "2", None, np.int64(3), np.float32(0.5)])


def _is_int(v, minimum):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) >= minimum



def call(fn, *args, **kwargs):
    """The harness's call, counting in the statistics how many cases were answered and how many refused."""
    result, err = _call(fn, *args, **kwargs)
    event("answered (result checked)" if err is None else f"refused: {type(err).__name__}")
    return result, err

# ------------------------------------------------------------------------------------ data
@given(st.one_of(st.integers(-2, 30), odd), st.one_of(st.floats(-1, 1), odd), st.one_of(st.integers(-1, 5), odd, st.just(2**40)))
def test_swiss_roll(n, noise, seed):
    result, err = call(swiss_roll, n, noise=noise, seed=seed)
    if err is None:
        assert _is_int(n, 1) and _is_int(seed, 0) and not isinstance(noise, bool) and math.isfinite(noise) and noise >= 0
        ref, _ = make_swiss_roll(n_samples=int(n), noise=float(noise), random_state=int(seed))
        np.testing.assert_allclose(result.numpy(), ref[:, [0, 2]] / 10.0, rtol=1e-6, atol=1e-7)


@given(st.one_of(st.sampled_from(["train", "val", "test", "validation", "VAL", "Train"]), st.text(max_size=6), st.integers(), st.none()))
def test_load_digits_split(split):
    result, err = call(load_digits_split, split)
    if err is None:
        key = {"validation": "val", "valid": "val"}.get(split.lower(), split.lower())
        start, stop = DIGITS_SPLITS[key]
        assert result[0].shape == (stop - start, 1, 8, 8) and result[1].shape == (stop - start,)


@st.composite
def float_images(draw):
    shape = draw(st.sampled_from([(0,), (3,), (2, 2), (1, 1, 8, 8)]))
    x = torch.from_numpy(np.asarray(draw(st.lists(st.floats(-3, 3), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                                    dtype=np.float64).reshape(shape))
    x = x.to(draw(st.sampled_from([torch.float32, torch.float64, torch.int64])))
    if x.numel() and x.is_floating_point() and draw(st.booleans()):
        x.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf")]))
    return x


@given(float_images())
def test_digits_to_levels_and_quantize(x):
    result, err = call(digits_to_levels, x)
    if err is None:
        assert x.is_floating_point() and bool(torch.isfinite(x).all())
        expected = np.round((np.clip(x.double().numpy(), -1, 1) + 1) * 8)
        np.testing.assert_array_equal(result.numpy(), expected)
        q = quantize_digits(x)
        np.testing.assert_allclose(q.numpy(), expected / 8 - 1, atol=1e-7)
    else:
        must_refuse(quantize_digits, x)


@contextlib.contextmanager
def _network_down(function: str):
    """Replace ``online_data.<function>`` (the one that reaches the network) by one that fails as offline."""
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    saved = getattr(online_data, function)
    setattr(online_data, function, unreachable)
    try:
        yield
    finally:
        setattr(online_data, function, saved)


@settings(max_examples=30)
@given(st.one_of(st.sampled_from(["train", "test"]), st.text(max_size=4), st.integers()),
       st.one_of(st.none(), st.integers(-2, 1500), odd), st.sampled_from([True, False, 1]))
def test_load_fashion_mnist_offline(tmp_path_factory, split, limit, fallback):
    with _network_down("_download"):
        root = tmp_path_factory.mktemp("fm")
        try:
            result, err = call(online_data.load_fashion_mnist, root, split=split, limit=limit, fallback=fallback)
        except ConnectionError as down:  # the documented failure of fallback=False: one sentence
            assert fallback is False and split in ("train", "test") and str(down).count(". ") == 0
            return
    if err is None:
        assert split in ("train", "test") and fallback is True and (limit is None or _is_int(limit, 1))
        full = load_digits_split(split)[0]
        assert result[2] == "digits" and torch.equal(result[0], full[: None if limit is None else int(limit)])


@settings(max_examples=40)
@given(st.one_of(st.sampled_from(["mnist", "fashion-mnist", "cifar10", "fashion_mnist", "CIFAR10", "digits"]),
                 st.integers(), st.none()),
       st.sampled_from(["train", "test", "val", 0]), st.sampled_from([True, False, "yes", 1]),
       st.one_of(st.none(), st.integers(-2, 1500), odd), st.sampled_from([True, False, None]))
def test_load_image_dataset_offline(tmp_path_factory, name, split, download, limit, fallback):
    """Offline, every call returns the digits' matching part or refuses with a library error naming the argument."""
    with _network_down("_open_url"):
        root = tmp_path_factory.mktemp("img")
        try:
            result, err = call(online_data.load_image_dataset, name, root, split=split, download=download,
                               limit=limit, fallback=fallback)
        except ConnectionError as down:  # the documented failure of fallback=False with download=True
            assert fallback is False and download is True and str(down).count(". ") == 0
            return
    good = {"name": name in online_data.IMAGE_DATA_SETS, "split": split in ("train", "test"),
            "download": isinstance(download, bool), "limit": limit is None or _is_int(limit, 1),
            "fallback": isinstance(fallback, bool)}
    if err is None:
        assert all(good.values()) and fallback is True
        full = load_digits_split(split)[0]
        assert result[2] == "digits" and torch.equal(result[0], full[: None if limit is None else int(limit)])
    else:
        first_bad = next((arg for arg, ok in good.items() if not ok), None)
        if first_bad is None:  # all arguments fine: only a missing file with download=False, fallback=False
            assert download is False and fallback is False and "download=False" in str(err)
        else:
            assert first_bad in str(err)


# ------------------------------------------------------------------------------------ plotting
@st.composite
def grids(draw):
    n, h, w = draw(st.integers(0, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(n, 1, h, w), (n, h, w), (h, w), (n, 2, h, w), (n,)]))
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    if x.numel() and draw(st.integers(0, 4)) == 0:
        x.view(-1)[0] = float("nan")
    return x, draw(st.sampled_from(["tensor", "numpy", "list"]))


@given(grids(), st.one_of(st.integers(-1, 4), odd), st.one_of(st.integers(-1, 2), odd), st.one_of(st.floats(-2, 2), odd))
def test_make_grid(images, nrow, pad, pad_value):
    x, wrap = images
    arg = x.numpy() if wrap == "numpy" else x.tolist() if wrap == "list" else x
    result, err = call(P.make_grid, arg, nrow=nrow, pad=pad, pad_value=pad_value)
    if err is None:
        assert wrap != "list" and _is_int(nrow, 1) and _is_int(pad, 0) and bool(torch.isfinite(x).all())
        tiles = x.reshape(-1, *x.shape[-2:]).numpy()
        assert x.ndim == 2 or x.ndim == 3 or x.shape[1] == 1
        n, h, w = tiles.shape
        ncol, pad = min(int(nrow), n), int(pad)
        for i in range(n):
            r, c = divmod(i, ncol)
            np.testing.assert_array_equal(result[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w], tiles[i])
        assert result.shape == (-(-n // ncol) * (h + pad) + pad, ncol * (w + pad) + pad)


@settings(max_examples=25)
@given(st.integers(0, 3), st.one_of(st.floats(-2, 2), odd), st.one_of(st.floats(-2, 2), odd),
       st.sampled_from(["gray_r", "viridis", "no such map", 3]), st.sampled_from([None, "x", 5]))
def test_show_images(n, vmin, vmax, cmap, title):
    fig, ax = plt.subplots()
    try:
        result, err = call(P.show_images, torch.zeros(n, 1, 2, 2), nrow=2, ax=ax, title=title, vmin=vmin, vmax=vmax, cmap=cmap)
        if err is None:
            assert n >= 1 and cmap in ("gray_r", "viridis") and title != 5 and float(vmin) < float(vmax)
            assert result.get_images()[0].get_array().shape == P.make_grid(torch.zeros(n, 1, 2, 2), nrow=2).shape
            assert result.get_images()[0].get_clim() == (float(vmin), float(vmax))
    finally:
        plt.close(fig)


@settings(max_examples=30)
@given(st.integers(0, 4), st.sampled_from([2, 2, 3]), st.booleans(), st.one_of(st.none(), st.floats(-1, 3), odd),
       st.one_of(st.floats(-1, 3), odd), st.one_of(st.floats(-0.5, 1.5), odd))
def test_scatter2d(n, d, nan, lim, s, alpha):
    pts = torch.linspace(-1, 1, n * d).reshape(n, d)
    if nan and n:
        pts[0, 0] = float("nan")
    fig, ax = plt.subplots()
    try:
        result, err = call(P.scatter2d, pts, ax=ax, lim=lim, s=s, alpha=alpha)
        if err is None:
            assert d == 2 and not (nan and n) and (lim is None or float(lim) > 0) and float(s) >= 0 and 0 <= float(alpha) <= 1
            np.testing.assert_allclose(np.asarray(result.collections[0].get_offsets()).reshape(-1, 2), pts.numpy())
            if lim is not None:
                assert result.get_xlim() == pytest.approx((-float(lim), float(lim)))
    finally:
        plt.close(fig)


class _Sched:
    def __init__(self, values):
        self.alpha_bar = values


@settings(max_examples=30)
@given(st.lists(st.floats(-1, 2), min_size=0, max_size=5), st.sampled_from(["alpha_bar", "snr", "", 3]),
       st.sampled_from(["one", "dict", "list", "empty"]), st.booleans(), st.booleans())
def test_plot_schedule_curves(values, quantity, form, nan, log_y):
    nan = nan and len(values) % 2 == 0  # half as often
    v = torch.tensor(values, dtype=torch.float64)
    if nan and len(values) > 1:
        v[-1] = float("nan")
    sched = _Sched(v)
    arg = {"one": sched, "dict": {"toy": sched}, "list": [sched], "empty": {}}[form]
    fig, ax = plt.subplots()
    try:
        result, err = call(P.plot_schedule_curves, arg, quantity, ax=ax, log_y=log_y)
        if err is None:
            assert quantity == "alpha_bar" and form != "empty" and len(values) >= 2 and bool(torch.isfinite(v[1:]).all())
            assert not log_y or bool((v[1:] > 0).all())
            x, y = result.lines[0].get_data()
            T = len(values) - 1
            np.testing.assert_allclose(x, np.arange(1, T + 1) / T)
            np.testing.assert_allclose(y, v[1:].numpy().astype(np.float32))
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------ widgets
def _draw(v, ax):
    ax.plot([0, 1], [0, v])


@settings(max_examples=15)
@given(st.integers(0, 2), st.sampled_from([(1, 1), (1.5, 1), (0, 1), (float("nan"), 1), (float("inf"), 1), (1,), "1x1"]),
       st.sampled_from([10, 20, 0, -1, float("inf"), np.int64(10)]), st.sampled_from(["auto", "axes", "figure", "ax"]),
       st.sampled_from(["constrained", None, "fancy"]))
def test_render_frames(n, figsize, dpi, target, layout):
    draw = (lambda v, fig: fig.add_subplot().plot([0, v])) if target == "figure" else _draw
    result, err = call(W.render_frames, draw, list(range(n)), figsize=figsize, dpi=dpi, target=target, layout=layout)
    if err is None:
        assert n >= 1 and target != "ax" and layout != "fancy" and isinstance(figsize, tuple) and len(figsize) == 2
        assert all(math.isfinite(s) and s > 0 for s in figsize) and math.isfinite(dpi) and dpi > 0
        assert len(result) == n
        for png in result:
            assert Image.open(io.BytesIO(png)).size == (round(figsize[0] * dpi), round(figsize[1] * dpi))


@st.composite
def frames(draw):
    shape = draw(st.sampled_from([(2, 3), (2, 3, 1), (2, 3, 3), (2, 3, 4), (3, 2, 3), (0, 3), (4,)]))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    arr = rng.integers(0, 256, size=shape).astype(dtype) if dtype in (np.uint8, np.int64) else rng.random(shape).astype(dtype)
    if dtype in (np.float32, np.float64) and arr.size:
        arr.flat[0] = draw(st.sampled_from([0.5, 1.0, 2.0, -0.5, float("nan")]))
    return arr


@given(frames(), st.sampled_from([0, 4, 128, -1, 2.5]))
def test_to_png(arr, min_size):
    result, err = call(W.to_png, arr, min_size=min_size)
    if err is None:
        assert _is_int(min_size, 0)
        img = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
        expected = img if img.dtype == np.uint8 else np.round(img.astype(np.float64) * 255).astype(np.uint8)
        assert img.dtype != np.int64 and np.all((expected >= 0)) and (img.dtype == np.uint8 or np.nanmax(img) <= 1)
        k = math.ceil(min_size / max(img.shape[:2])) if min_size and max(img.shape[:2]) < min_size else 1
        expected = np.repeat(np.repeat(expected, k, axis=0), k, axis=1)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(result))), expected)
    must_refuse(W.to_png, "frame.png")


def _tiny(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (4, 4), dtype=np.uint8) for _ in range(n)]


labels_strategy = st.one_of(st.none(), st.lists(st.one_of(st.integers(0, 9), st.text(max_size=3), st.just(float("nan")), st.just(None)), max_size=4),
                            st.just(np.arange(3)), st.just(5))


@given(st.data(), st.sampled_from([None, None, "frames", "labels", "initial", "interval", "description"]))
def test_scrubber(data, bad):
    """One argument at a time is bad (or none): refused, or the labels and frames are the ones given."""
    n = data.draw(st.sampled_from([0]) if bad == "frames" else st.integers(1, 3), label="n")
    if bad == "labels":
        labels = data.draw(st.sampled_from(["count", [float("nan")] * n, [None] * n, 5, "abc"]), label="labels")
        labels = list(range(n + 1)) if labels == "count" else labels
    else:
        labels = data.draw(st.sampled_from([None, "ints", "strings", "numpy"]), label="labels")
        labels = {None: None, "ints": list(range(0, 10 * n, 10)), "strings": [f"x{i}" for i in range(n)], "numpy": np.arange(n)}[labels]
    initial = data.draw(st.sampled_from([n, -1, 1.0, True]) if bad == "initial" else st.integers(0, max(n - 1, 0)), label="initial")
    interval = data.draw(st.sampled_from([0, -5, 2.5, None]) if bad == "interval" else st.sampled_from([1, 200, np.int64(40)]), label="interval")
    description = 3 if bad == "description" else "t"
    result, err = call(W.scrubber, _tiny(n), labels=labels, description=description, play_interval_ms=interval, initial=initial)
    if err is None:
        assert bad is None
        labs = None if labels is None else (labels.tolist() if isinstance(labels, np.ndarray) else labels)
        expected = [str(i) for i in range(n)] if labs is None else [v if isinstance(v, str) else f"t = {v}" for v in labs]
        assert result.labels == expected and result.frames == [W.to_png(f) for f in _tiny(n)]
        assert result.to_html().count('class="ds-frame"') == n and result.initial == int(initial)
    else:
        assert bad is not None


@given(st.one_of(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), max_size=3),
                 st.sampled_from([{"a": 2}, {"a": 1, "b": 1}, {"a": 3, "b": 3, "c": 3}, {"b": 2, "c": 2}])), st.sampled_from([None, "a", "b", "z", 3]),
       st.sampled_from(["auto", "toggle", "dropdown", "radio"]), st.sampled_from(["schedule", 3]))
def test_option_scrubber(counts, initial_option, selector, option_description):
    stacks = {k: _tiny(v, seed=i) for i, (k, v) in enumerate(counts.items())}
    result, err = call(W.option_scrubber, stacks, initial_option=initial_option, selector=selector, option_description=option_description)
    if err is None:
        assert counts and len(set(counts.values())) == 1 and min(counts.values()) >= 1 and selector != "radio"
        assert option_description == "schedule" and (initial_option is None or initial_option in counts)
        assert result.options == list(counts) and result.initial_option == (0 if initial_option is None else list(counts).index(initial_option))
        assert result.selector == ("toggle" if selector == "auto" else selector)
        assert result.to_html().count('class="ds-frame"') == sum(counts.values())


@given(st.sampled_from(["ok", "empty", "not png", "labels", "initial", "option"]))
def test_player_classes_check_what_they_are_given(kind):
    png = W.to_png(_tiny(1)[0])
    if kind == "ok":
        s = W.Scrubber([png, png], ["a", "b"], "t", 100, 1)
        assert s.to_html().count('class="ds-frame"') == 2
        o = W.OptionScrubber({"x": [png], "y": [png]}, ["a"], "t", "opt", 100, 0, 1, "toggle")
        assert o.frames == [png] and o.options == ["x", "y"]
        return
    bad = {
        "empty": lambda: W.Scrubber([], [], "t", 100, 0),
        "not png": lambda: W.Scrubber([b"GIF89a"], ["a"], "t", 100, 0),
        "labels": lambda: W.Scrubber([png], ["a", "b"], "t", 100, 0),
        "initial": lambda: W.Scrubber([png], ["a"], "t", 100, 5),
        "option": lambda: W.OptionScrubber({"x": [png]}, ["a"], "t", "opt", 100, 0, 3, "toggle"),
    }[kind]
    must_refuse(bad)


# ------------------------------------------------------------------------------------ utils
@given(st.one_of(st.integers(-2, 2**64 + 1), odd))
def test_set_seed(seed):
    result, err = call(U.set_seed, seed)
    if err is None:
        assert _is_int(seed, 0) and int(seed) < 2**64
        assert torch.equal(torch.randn(2, generator=result), torch.randn(2, generator=torch.Generator().manual_seed(int(seed))))


@given(st.one_of(st.none(), st.integers(-1, 2), odd))
def test_set_threads(n):
    before = torch.get_num_threads()
    import os

    saved = os.environ.pop("DIFFUSION_BOOK_THREADS", None)
    try:
        result, err = call(U.set_threads, n)
        if err is None:
            assert n is None or _is_int(n, 1)
            assert result == (before if n is None else int(n)) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
        if saved is not None:
            os.environ["DIFFUSION_BOOK_THREADS"] = saved


@given(st.sampled_from(["w2", "", 3]), st.one_of(st.floats(allow_nan=True), odd, st.just(torch.tensor(0.25)), st.just(torch.zeros(2))),
       st.sampled_from(["", "nats", 1]), st.sampled_from([None, "ddpm_2d", 2]), st.booleans())
def test_record_metric_and_glue(tmp_path_factory, name, value, unit, chapter, via_glue):
    import os

    path = tmp_path_factory.mktemp("metrics") / "m.jsonl"
    os.environ["DIFFUSION_BOOK_METRICS"] = str(path)
    try:
        if via_glue:
            result, err = call(U.glue, name, value, unit if isinstance(unit, str) else "", record=True)
            if err is None:
                assert result is value
        else:
            result, err = call(U.record_metric, name, value, unit, chapter=chapter)
    finally:
        del os.environ["DIFFUSION_BOOK_METRICS"]
    if err is None:
        v = value.item() if isinstance(value, (torch.Tensor, np.generic)) else value
        assert isinstance(name, str) and name and not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        (row,) = [json.loads(line) for line in path.read_text().splitlines()]
        assert row["name"] == name and row["value"] == pytest.approx(float(v))
    else:
        assert not path.exists()


def test_checkpoint_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_BOOK_CHECKPOINTS", str(tmp_path))
    assert U.checkpoint_dir() == tmp_path
    monkeypatch.delenv("DIFFUSION_BOOK_CHECKPOINTS")
    assert (U.checkpoint_dir() / "digit_classifier.pt").is_file()
