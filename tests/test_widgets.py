"""Tests of diffusion_lib.viz.widgets: frames, the HTML player and the page-weight budget.

The player's behaviour in a browser (slider, Play, selector, print) is tested in
``tests/browser/test_player.py``; these tests check what it is made of.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import subprocess
import sys
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from diffusion_lib.viz import widgets as W


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def _draw_line(v, ax):
    ax.plot([0, 1], [0, v])
    ax.set(ylim=(0, 10), xlabel="x", ylabel="y", title=f"v = {v}")


class _Parsed(html.parser.HTMLParser):
    """The elements of a player's HTML: tag, attributes and text, in document order."""

    def __init__(self, text):
        super().__init__()
        self.elements, self.scripts, self._in_script = [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        elif self.elements:
            self.elements[-1][1].setdefault("#text", "")
            self.elements[-1][1]["#text"] += data

    def find(self, tag, cls=None):
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]


def _frames_in(parsed):
    """(png bytes, visible) for every frame image, in document order."""
    out = []
    for img in parsed.find("img", "ds-frame"):
        assert img["src"].startswith("data:image/png;base64,")
        out.append((base64.b64decode(img["src"].split(",", 1)[1]), "display:block" in img["style"]))
    return out


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
def test_scrubber_embeds_every_frame_in_order_and_shows_the_initial_one():
    frames = W.render_frames(_draw_line, [0, 3, 6, 9], dpi=30)
    s = W.scrubber(frames, labels=[0, 3, 6, 9], description="t", initial=2, play_interval_ms=150)
    assert isinstance(s, W.Scrubber) and s.frames == frames
    p = _Parsed(s._repr_html_())
    assert _frames_in(p) == [(f, i == 2) for i, f in enumerate(frames)]
    (root,) = p.find("div", "diffusion-scrubber")
    assert json.loads(root["data-labels"]) == ["t = 0", "t = 3", "t = 6", "t = 9"]
    assert root["data-interval"] == "150" and root["data-frame"] == "2"
    (slider,) = p.find("input", "ds-slider")
    assert (slider["type"], slider["min"], slider["max"], slider["value"]) == ("range", "0", "3", "2")
    assert slider["aria-label"] == "t"
    (play,) = p.find("button", "ds-play")
    assert "Play" in play["#text"]
    assert p.find("output", "ds-label")[0]["#text"] == "t = 6"
    # alt text names the frame, for screen readers and for print
    assert [img["alt"] for img in p.find("img", "ds-frame")] == ["t = 0", "t = 3", "t = 6", "t = 9"]
    # the player's behaviour travels with it; math typesetting leaves it alone
    assert len(p.scripts) == 1 and "diffusion-scrubber" in p.scripts[0]
    assert "mathjax_ignore" in root["class"].split()


def test_scrubber_html_is_deterministic_and_needs_no_ipywidgets():
    """Same frames, same output (nbval could compare it); importing the module loads no ipywidgets."""
    a = W.scrubber(_tiny_frames(3), labels=[1, 2, 3])._repr_html_()
    b = W.scrubber(_tiny_frames(3), labels=[1, 2, 3])._repr_html_()
    assert a == b
    code = "import sys, diffusion_lib.viz.widgets as W; W.scrubber([b'\\x89PNG\\r\\n\\x1a\\n']); print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scrubber_without_labels_shows_the_frame_index():
    s = W.scrubber(_tiny_frames(3))
    assert s.labels == ["0", "1", "2"]


def test_scrubber_accepts_numpy_labels():
    s = W.scrubber(_tiny_frames(3), labels=np.array([0, 500, 1000]))
    assert s.labels[2] == "t = 1000"


def test_scrubber_string_labels_are_shown_verbatim_and_escaped():
    s = W.scrubber(_tiny_frames(2), labels=["x_T <noise>", "x_0"])
    text = s._repr_html_()
    assert "x_T &lt;noise&gt;" in text and "x_T <noise>" not in text
    assert s.labels == ["x_T <noise>", "x_0"]


def test_repr_says_what_it_is():
    assert repr(W.scrubber(_tiny_frames(3), labels=[5, 6, 7])) == (
        "<Scrubber: 3 frames, t = 5 ... t = 7; an HTML player, shown by a notebook>"
    )


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


def test_player_html_weighs_its_frames_plus_a_small_overhead():
    """The page budget counts base64 frames: the player itself adds a few kB, not more."""
    frames = _tiny_frames(20)
    s = W.scrubber(frames, labels=list(range(20)))
    base64_bytes = sum(len(base64.b64encode(W.to_png(f))) for f in frames)
    overhead = len(s._repr_html_().encode()) - base64_bytes
    assert 0 < overhead < 8_000 + 120 * len(frames)


# ---------------------------------------------------------------------------- option_scrubber
def test_option_scrubber_one_slider_drives_every_option():
    a, b, c = _tiny_frames(4, seed=1), _tiny_frames(4, seed=2), _tiny_frames(4, seed=3)
    s = W.option_scrubber(
        {"linear": a, "cosine": b, "sigmoid": c}, labels=[1, 10, 100, 1000],
        option_description="schedule", initial_option="cosine", initial=1,
    )
    assert isinstance(s, W.OptionScrubber) and s.selector == "toggle"
    assert s.options == ["linear", "cosine", "sigmoid"] and s.initial_option == 1
    p = _Parsed(s._repr_html_())
    buttons = p.find("button", "ds-option")
    assert [bt["#text"] for bt in buttons] == ["linear", "cosine", "sigmoid"]
    assert [bt["aria-pressed"] for bt in buttons] == ["false", "true", "false"]
    (root,) = p.find("div", "diffusion-scrubber")
    assert json.loads(root["data-options"]) == ["linear", "cosine", "sigmoid"] and root["data-option"] == "1"
    # frames: option after option, frame i of option o at position o * 4 + i; one visible
    expected = [W.to_png(f) for f in a + b + c]
    assert [png for png, _ in _frames_in(p)] == expected
    assert [i for i, (_, vis) in enumerate(_frames_in(p)) if vis] == [1 * 4 + 1]
    assert p.find("img", "ds-frame")[5]["alt"] == "cosine, t = 10"
    assert s.frames == [W.to_png(f) for f in b]  # the option shown first


def test_option_scrubber_uses_a_dropdown_for_many_options():
    opts = {f"w={w}": _tiny_frames(2, seed=w) for w in range(6)}
    s = W.option_scrubber(opts)
    assert s.selector == "dropdown"
    p = _Parsed(s._repr_html_())
    assert len(p.find("select", "ds-select")) == 1 and not p.find("button", "ds-option")
    assert [o["#text"] for o in p.find("option")] == list(opts)
    assert W.option_scrubber(opts, selector="toggle").selector == "toggle"


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


# ---------------------------------------------------------------------------- ipywidgets
def test_installed_ipywidgets_draws_tqdm_notebook_bars():
    """The chapters' tqdm.auto bars are the one use of ipywidgets; 7.7 (Colab) and 8 both work."""
    import ipywidgets
    from tqdm.notebook import tqdm as notebook_tqdm

    major = int(ipywidgets.__version__.split(".")[0])
    assert major in (7, 8), ipywidgets.__version__
    bar = notebook_tqdm(total=3, display=False, ncols=70)
    bar.update(2)
    bar.display()  # what a refresh does: copy the count into the widget
    assert isinstance(bar.container, ipywidgets.HBox)
    progress = [w for w in bar.container.children if isinstance(w, ipywidgets.FloatProgress)]
    assert progress and progress[0].value == 2
    bar.close()
