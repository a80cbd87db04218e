"""Tests of diffusion_lib.widgets: frames, client-side links and the page-weight budget."""

from __future__ import annotations

import io
import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
from ipywidgets.embed import embed_data
from ipywidgets.widgets.widget_link import Link
from matplotlib.figure import Figure
from PIL import Image

from diffusion_lib import widgets as W


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def _draw_line(v, ax):
    ax.plot([0, 1], [0, v])
    ax.set(ylim=(0, 10), xlabel="x", ylabel="y", title=f"v = {v}")


def _link_pairs(links):
    """(source model id, trait, target model id, trait) for every jslink."""
    return {(l.source[0].model_id, l.source[1], l.target[0].model_id, l.target[1]) for l in links}


def _tiny_frames(n, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(n)]


# ---------------------------------------------------------------------------- render_frames
def test_render_frames_one_png_per_value_of_requested_size():
    values = [1, 4, 9]
    frames = W.render_frames(_draw_line, values, figsize=(3, 2), dpi=50)
    assert len(frames) == 3
    for png in frames:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert _size(png) == (150, 100)  # figsize * dpi
    # different values draw different pictures
    assert len(set(frames)) == 3


def test_render_frames_shows_nothing_and_leaves_no_figure_open():
    before = plt.get_fignums()
    W.render_frames(_draw_line, [1, 2])
    assert plt.get_fignums() == before


def test_render_frames_passes_a_figure_when_asked():
    seen = []

    def draw(v, fig: Figure):
        seen.append(type(fig))
        a, b = fig.subplots(1, 2)
        a.plot([0, v])
        b.plot([v, 0])

    def draw_by_name(v, fig):
        seen.append(type(fig))
        fig.add_subplot().plot([0, v])

    def draw_ax(v, ax):
        seen.append(type(ax))
        ax.plot([0, v])

    W.render_frames(draw, [1])
    W.render_frames(draw_by_name, [1])
    W.render_frames(draw_ax, [1])
    W.render_frames(lambda v, x: seen.append(type(x)), [1], target="figure")
    assert seen[0] is Figure and seen[1] is Figure and seen[3] is Figure
    assert issubclass(seen[2], plt.Axes)


def test_render_frames_accepts_numpy_values():
    frames = W.render_frames(_draw_line, np.arange(3), dpi=20)
    assert len(frames) == 3


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(draw="not callable", values=[1]), TypeError, "draw must be a function"),
        (dict(draw=_draw_line, values=[]), ValueError, "values is empty"),
        (dict(draw=_draw_line, values=list(range(61))), ValueError, r"values\[::2\]"),
        (dict(draw=_draw_line, values=[1], figsize=(0, 3)), ValueError, "figsize"),
        (dict(draw=_draw_line, values=[1], dpi=-1), ValueError, "dpi"),
        (dict(draw=_draw_line, values=[1], target="ax"), ValueError, "target"),
    ],
)
def test_render_frames_rejects_bad_input(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        W.render_frames(**kwargs)


# ---------------------------------------------------------------------------- to_png
def test_to_png_upscales_small_arrays_without_blurring():
    img = np.array([[0.0, 1.0], [1.0, 0.0]])
    png = W.to_png(img, min_size=128)
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (128, 128)
    # nearest-neighbour: every pixel is exactly black or white, quadrants as in the input
    assert set(np.unique(decoded)) == {0, 255}
    assert decoded[0, 0] == 0 and decoded[0, 127] == 255 and decoded[127, 0] == 255


def test_to_png_round_trips_uint8_rgb():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (130, 140, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(W.to_png(rgb))))
    np.testing.assert_array_equal(decoded, rgb)


def test_to_png_saves_and_closes_a_pyplot_figure():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    ax.plot([0, 1])
    png = W.to_png(fig)
    assert _size(png) == (80, 80)
    assert not plt.fignum_exists(fig.number)


@pytest.mark.parametrize(
    "frame, exc, message",
    [
        (np.full((4, 4), 2.0), ValueError, r"\[0, 1\]"),
        (np.zeros((3, 8, 8)), ValueError, "transpose"),
        (np.zeros((4, 4), dtype=np.int64), ValueError, "uint8 or float"),
        (np.array([[np.nan]]), ValueError, "NaN"),
        (b"GIF89a", ValueError, "PNG"),
        ("frame.png", TypeError, "PNG bytes, a NumPy image array or a matplotlib Figure"),
    ],
)
def test_to_png_rejects_bad_frames(frame, exc, message):
    with pytest.raises(exc, match=message):
        W.to_png(frame)


def test_to_png_explains_torch_tensors():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="permute"):
        W.to_png(torch.zeros(3, 8, 8))


# ---------------------------------------------------------------------------- scrubber
def test_scrubber_holds_every_frame_in_order_and_links_controls_client_side():
    frames = W.render_frames(_draw_line, [0, 3, 6, 9], dpi=30)
    s = W.scrubber(frames, labels=[0, 3, 6, 9], description="t", initial=2, play_interval_ms=150)
    assert isinstance(s, widgets.VBox)
    assert [im.value for im in s.stack.children] == frames
    assert all(isinstance(im, widgets.Image) for im in s.stack.children)
    assert s.slider.min == 0 and s.slider.max == 3 and s.play.max == 3
    assert s.slider.value == s.play.value == s.stack.selected_index == 2
    assert s.play.interval == 150
    assert s.slider.description == "t"
    # labels: one HTML per frame, the current one selected, text "t = <value>"
    assert [h.value for h in s.label_stack.children][1].endswith("t = 3</span>")
    assert s.label_stack.selected_index == 2
    # the three links the static page needs, all jslinks (browser-side), not Python links
    assert all(isinstance(l, Link) for l in s.links)
    assert _link_pairs(s.links) == {
        (s.play.model_id, "value", s.slider.model_id, "value"),
        (s.slider.model_id, "value", s.stack.model_id, "selected_index"),
        (s.slider.model_id, "value", s.label_stack.model_id, "selected_index"),
    }
    # the controls and the images are actually displayed by the container
    shown = {c.model_id for c in s.children[0].children} | {s.children[1].model_id}
    assert {s.play.model_id, s.slider.model_id, s.stack.model_id} <= shown


def test_scrubber_without_labels_shows_the_slider_readout():
    s = W.scrubber(_tiny_frames(3))
    assert s.label_stack is None and s.slider.readout
    assert len(s.links) == 2


def test_scrubber_accepts_numpy_labels():
    s = W.scrubber(_tiny_frames(3), labels=np.array([0, 500, 1000]))
    assert s.label_stack.children[2].value.endswith("t = 1000</span>")


def test_scrubber_string_labels_are_shown_verbatim_and_escaped():
    s = W.scrubber(_tiny_frames(2), labels=["x_T <noise>", "x_0"])
    assert "x_T &lt;noise&gt;" in s.label_stack.children[0].value


def test_embedded_state_contains_the_links_for_the_static_page():
    """What nbclient/myst-nb write into the HTML: the link models and the PNGs of every frame."""
    s = W.scrubber(_tiny_frames(5), labels=list(range(5)))
    state = embed_data(views=[s])["manager_state"]["state"]
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
    got = {(l["source"][0], l["source"][1], l["target"][0], l["target"][1]) for l in links}
    ref = lambda w: f"IPY_MODEL_{w.model_id}"  # noqa: E731
    assert (ref(s.play), "value", ref(s.slider), "value") in got
    assert (ref(s.slider), "value", ref(s.stack), "selected_index") in got
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert len(images) >= 5


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: W.scrubber([]), ValueError, "frames is empty"),
        (lambda: W.scrubber(_tiny_frames(61)), ValueError, "MAX_FRAMES = 60"),
        (lambda: W.scrubber(_tiny_frames(3), labels=[1, 2]), ValueError, "one label per frame"),
        (lambda: W.scrubber(_tiny_frames(3), labels=5), TypeError, "one entry per frame"),
        (lambda: W.scrubber(_tiny_frames(3), initial=3), ValueError, r"\[0, 2\]"),
        (lambda: W.scrubber(_tiny_frames(3), initial=1.0), TypeError, "initial"),
        (lambda: W.scrubber(_tiny_frames(3), play_interval_ms=0), ValueError, "play_interval_ms"),
        (lambda: W.scrubber(_tiny_frames(3), description=3), TypeError, "description"),
        (lambda: W.scrubber(np.zeros((8, 8))), TypeError, "wrap it in a list"),
        (lambda: W.scrubber([np.zeros((8, 8)), "x"]), TypeError, r"frames\[1\]"),
    ],
)
def test_scrubber_rejects_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_scrubber_enforces_the_byte_budget():
    rng = np.random.default_rng(0)
    # incompressible noise: ~270 kB of PNG per frame, 8 frames ~2.2 MB > MAX_WIDGET_BYTES
    noise = [rng.integers(0, 256, (300, 300, 3), dtype=np.uint8) for _ in range(8)]
    with pytest.warns(UserWarning, match="MAX_FRAME_BYTES"):
        with pytest.raises(ValueError, match="MAX_WIDGET_BYTES"):
            W.scrubber(noise)
    # a single big frame only warns
    with pytest.warns(UserWarning, match=r"frames\[0\] is \d+ kB"):
        W.scrubber(noise[:1])
    # small frames raise nothing at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W.scrubber(_tiny_frames(60))


# ---------------------------------------------------------------------------- option_scrubber
def test_option_scrubber_one_slider_drives_every_option():
    a, b, c = _tiny_frames(4, seed=1), _tiny_frames(4, seed=2), _tiny_frames(4, seed=3)
    s = W.option_scrubber(
        {"linear": a, "cosine": b, "sigmoid": c}, labels=[1, 10, 100, 1000],
        option_description="schedule", initial_option="cosine", initial=1,
    )
    assert isinstance(s.selector, widgets.ToggleButtons)
    assert list(s.selector.options) == ["linear", "cosine", "sigmoid"]
    assert s.selector.index == 1 and s.stack.selected_index == 1
    assert len(s.option_stacks) == 3 and list(s.stack.children) == s.option_stacks
    for frames, st in zip((a, b, c), s.option_stacks):
        assert [im.value for im in st.children] == [W.to_png(f) for f in frames]
        assert st.selected_index == 1
    expected = {
        (s.play.model_id, "value", s.slider.model_id, "value"),
        (s.slider.model_id, "value", s.label_stack.model_id, "selected_index"),
        (s.selector.model_id, "index", s.stack.model_id, "selected_index"),
    } | {(s.slider.model_id, "value", st.model_id, "selected_index") for st in s.option_stacks}
    assert _link_pairs(s.links) == expected


def test_option_scrubber_uses_a_dropdown_for_many_options():
    opts = {f"w={w}": _tiny_frames(2, seed=w) for w in range(6)}
    assert isinstance(W.option_scrubber(opts).selector, widgets.Dropdown)
    assert isinstance(W.option_scrubber(opts, selector="toggle").selector, widgets.ToggleButtons)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: W.option_scrubber([_tiny_frames(2)]), TypeError, "dict"),
        (lambda: W.option_scrubber({}), ValueError, "at least one option"),
        (lambda: W.option_scrubber({"a": _tiny_frames(2), "b": []}), ValueError, r"\['b'\] is empty"),
        (
            lambda: W.option_scrubber({"a": _tiny_frames(2), "b": _tiny_frames(3)}),
            ValueError,
            "same number of frames.*'a': 2, 'b': 3",
        ),
        (lambda: W.option_scrubber({"a": _tiny_frames(61)}), ValueError, "MAX_FRAMES"),
        (lambda: W.option_scrubber({"a": _tiny_frames(2)}, initial_option="z"), ValueError, "one of"),
        (lambda: W.option_scrubber({"a": _tiny_frames(2)}, selector="radio"), ValueError, "selector"),
        (lambda: W.option_scrubber({"a": _tiny_frames(2)}, labels=[1]), ValueError, "one label"),
    ],
)
def test_option_scrubber_rejects_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()
