"""Interactive figures that work in a live notebook and in the published, kernel-free HTML book.

Every interactive figure of the book is a *scrubber*: a list of pre-rendered PNG frames, a Play
button and a slider. :func:`scrubber` and :func:`option_scrubber` return a small, self-contained
HTML player: the frames are embedded in the output as PNG images, and a few lines of JavaScript
in the same output show the frame the slider points at. The browser does all the work, so the
figure behaves the same

* in a live kernel (JupyterLab, Jupyter Notebook, VS Code, Colab), whatever version of
  ipywidgets is installed, or none: the player does not use ipywidgets at all;
* in the static HTML book, where no Python runs, and in a saved copy of the page;
* in print and in the PDF: only the current frame is shown (the first one, or ``initial``).

Callbacks such as ``ipywidgets.interact`` or ``observe`` need a kernel: in the static book they
render but do nothing, so the book does not use them. (Where a notebook is opened from disk
without being trusted, JupyterLab does not run the output's script: the figure then shows its
first frame until the cell is run again.)

Typical use in a chapter::

    from diffusion_lib.viz.widgets import render_frames, scrubber

    def draw(t, ax):
        ax.scatter(*samples[t].T, s=2)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), title=f"t = {t}", xlabel="x1", ylabel="x2")

    ts = list(range(0, T + 1, 50))
    scrubber(render_frames(draw, ts), labels=ts, description="t")

and, to compare several variants with one shared slider::

    option_scrubber({"linear": frames_lin, "cosine": frames_cos}, labels=ts,
                    option_description="schedule")

Page-weight budget
------------------
The frames are stored as base64 PNGs inside the page, so they decide how heavy the page is.
The book keeps every page at or below **3 MB** (``PAGE_BUDGET_BYTES``), which the browser
tests check. To stay inside it, this module enforces:

* at most ``MAX_FRAMES`` (60) frames per slider, i.e. per option of an ``option_scrubber``;
* at most ``MAX_WIDGET_BYTES`` (1.5 MB) of PNG data in one widget (≈ 2 MB once base64
  encoded), raised as a ``ValueError``;
* a warning for any single frame above ``MAX_FRAME_BYTES`` (150 kB).

Small figures at ``dpi=72`` weigh 10-40 kB per frame; subsample the values (``values[::2]``)
or lower ``figsize``/``dpi`` when a limit is hit.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import json
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "MAX_FRAMES",
    "MAX_FRAME_BYTES",
    "MAX_WIDGET_BYTES",
    "PAGE_BUDGET_BYTES",
    "Scrubber",
    "OptionScrubber",
    "render_frames",
    "to_png",
    "scrubber",
    "option_scrubber",
]

#: Most frames one slider may step through.
MAX_FRAMES: int = 60
#: A single frame larger than this (PNG bytes) triggers a warning.
MAX_FRAME_BYTES: int = 150_000
#: Most PNG bytes one widget may hold in total (base64 adds a third in the page).
MAX_WIDGET_BYTES: int = 1_500_000
#: Largest HTML page (with its embedded figures) the book accepts.
PAGE_BUDGET_BYTES: int = 3_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Frame = bytes | np.ndarray | Figure
_LAYOUTS = ("constrained", "compressed", "tight", "none", None)


def _positive_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------
def _draw_wants_figure(draw: Callable[..., Any]) -> bool:
    """Guess whether ``draw(value, target)`` expects a Figure (True) or an Axes (False)."""
    try:
        params = list(inspect.signature(draw).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) < 2:
        return False
    second = params[1]
    annotation = second.annotation
    if annotation is not inspect.Parameter.empty:
        if isinstance(annotation, str):
            return annotation.split(".")[-1] == "Figure"
        return isinstance(annotation, type) and issubclass(annotation, Figure)
    return second.name.lower() in {"fig", "figure"}


def render_frames(
    draw: Callable[[Any, Axes], None] | Callable[[Any, Figure], None],
    values: Sequence[Any],
    figsize: tuple[float, float] = (4, 4),
    dpi: int = 72,
    *,
    target: Literal["auto", "axes", "figure"] = "auto",
    layout: str | None = "constrained",
    savefig_kwargs: Mapping[str, Any] | None = None,
) -> list[bytes]:
    """Render one PNG frame per value by calling ``draw(value, ax)`` on a fresh figure.

    For each ``v`` in ``values`` a new ``matplotlib.figure.Figure`` of size ``figsize`` (inches)
    is created, ``draw(v, ax)`` (or ``draw(v, fig)``) fills it, and the figure is saved as PNG at
    ``dpi`` dots per inch. The figures are never shown and never registered with pyplot, so
    nothing is displayed and nothing needs closing.

    Args:
        draw: function of ``(value, ax)`` drawing one frame on a single ``Axes``; or of
            ``(value, fig)`` to lay out several axes yourself (``fig.subplots(1, 2)``).
        values: the values to draw, e.g. the timesteps ``t`` (at most ``MAX_FRAMES``).
        figsize: figure size in inches, the same for every frame.
        dpi: resolution; 72 keeps a 4x4 inch frame around 15-40 kB.
        target: ``"axes"`` or ``"figure"``. ``"auto"`` picks ``"figure"`` when ``draw``'s second
            parameter is annotated ``Figure`` or named ``fig``/``figure``, else ``"axes"``.
        layout: matplotlib layout engine for the figure (``"constrained"``, ``"tight"``, None).
        savefig_kwargs: extra keyword arguments for ``Figure.savefig``. ``bbox_inches="tight"``
            is not recommended: frames of different sizes make the picture jump.

    Returns:
        A list of PNG byte strings, one per value, ready for :func:`scrubber`.

    Raises:
        TypeError: if ``draw`` is not callable or ``values`` is not a sequence.
        ValueError: if ``values`` is empty or longer than ``MAX_FRAMES``.
    """
    if not callable(draw):
        raise InputTypeError(
            f"draw must be a function draw(value, ax) that plots one frame, got {type(draw).__name__}"
        )
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        if hasattr(values, "tolist"):
            values = values.tolist()  # numpy arrays and torch tensors
        elif isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise InputTypeError(
                "values must be a list of the values to draw (e.g. list(range(0, T + 1, 50))), "
                f"got {type(values).__name__}"
            )
        else:
            values = list(values)
    if len(values) == 0:
        raise InputValueError("values is empty: pass at least one value to draw a frame for")
    _check_frame_count(len(values), "values")
    if target not in ("auto", "axes", "figure"):
        raise InputValueError(f"target must be 'auto', 'axes' or 'figure', got {target!r}")
    if (
        not isinstance(figsize, (tuple, list))
        or len(figsize) != 2
        or not all(_positive_number(s) for s in figsize)
    ):
        raise InputValueError(f"figsize must be (width, height) in inches, both finite and > 0; got {figsize!r}")
    if not _positive_number(dpi):
        raise InputValueError(f"dpi must be a finite positive number, got {dpi!r}")
    if layout not in _LAYOUTS:
        raise InputValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if savefig_kwargs is not None and not isinstance(savefig_kwargs, Mapping):
        raise InputTypeError(f"savefig_kwargs must be a dict of Figure.savefig options, got {type(savefig_kwargs).__name__}")
    use_figure = _draw_wants_figure(draw) if target == "auto" else target == "figure"
    kwargs = dict(savefig_kwargs or {})
    kwargs.setdefault("format", "png")

    frames: list[bytes] = []
    for value in values:
        fig = Figure(figsize=tuple(figsize), dpi=dpi, layout=layout)
        if use_figure:
            draw(value, fig)
        else:
            draw(value, fig.add_subplot())
        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, **kwargs)
        frames.append(buf.getvalue())
    return frames


def to_png(frame: Frame, *, min_size: int = 128) -> bytes:
    """Convert one frame to PNG bytes.

    Args:
        frame: PNG bytes (returned unchanged), a matplotlib ``Figure`` (saved at its own dpi,
            then closed if pyplot owns it), or a NumPy image of shape ``(H, W)``, ``(H, W, 3)``
            or ``(H, W, 4)`` with ``uint8`` values or floats in ``[0, 1]``.
        min_size: arrays smaller than this many pixels on their longer side are enlarged by an
            integer factor (nearest neighbour) so that tiny images such as 8x8 digits stay
            visible and sharp.

    Returns:
        The frame as PNG bytes.
    """
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 0:
        raise InputValueError(f"min_size must be an int >= 0 (pixels), got {min_size!r}")
    if isinstance(frame, (bytes, bytearray)):
        data = bytes(frame)
        if not data.startswith(_PNG_SIGNATURE):
            raise InputValueError(
                "a bytes frame must be a PNG file (starting with the PNG signature); "
                "use render_frames(...) or pass a NumPy image or a Figure instead"
            )
        return data
    if isinstance(frame, Figure):
        buf = io.BytesIO()
        frame.savefig(buf, format="png")
        import matplotlib.pyplot as plt

        plt.close(frame)  # keep the notebook from showing it a second time (no-op if unmanaged)
        return buf.getvalue()
    if isinstance(frame, np.ndarray):
        return _array_to_png(frame, min_size)
    if hasattr(frame, "detach") and hasattr(frame, "numpy"):
        raise InputTypeError(
            "got a torch tensor as a frame: convert it to a NumPy image of shape (H, W) or "
            "(H, W, C), e.g. x.detach().cpu().permute(1, 2, 0).numpy() for a (C, H, W) tensor"
        )
    raise InputTypeError(
        "each frame must be PNG bytes, a NumPy image array or a matplotlib Figure, "
        f"got {type(frame).__name__}"
    )


def _array_to_png(arr: np.ndarray, min_size: int) -> bytes:
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InputValueError(
            f"an image array must have shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}. "
            "For a (C, H, W) array use arr.transpose(1, 2, 0)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputValueError(f"an image array must not be empty; got shape {arr.shape}")
    if arr.dtype == np.uint8:
        img = arr
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise InputValueError("the image array contains NaN or inf values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InputValueError(
                f"a float image must have values in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                "rescale it, e.g. (x + 1) / 2 for data in [-1, 1], then clip to [0, 1]"
            )
        img = np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)
    else:
        raise InputValueError(
            f"an image array must be uint8 or float in [0, 1], got dtype {arr.dtype}"
        )
    longest = max(img.shape[0], img.shape[1])
    if min_size and longest < min_size:
        k = math.ceil(min_size / longest)
        img = np.repeat(np.repeat(img, k, axis=0), k, axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _check_frame_count(n: int, what: str) -> None:
    if n > MAX_FRAMES:
        step = math.ceil(n / MAX_FRAMES)
        raise InputValueError(
            f"{what} has {n} frames, more than the budget of MAX_FRAMES = {MAX_FRAMES} per "
            f"slider (it keeps each page of the book under {PAGE_BUDGET_BYTES // 1_000_000} MB). "
            f"Keep every {step}-th value, e.g. values[::{step}]."
        )


def _as_frame_list(frames: Any, what: str) -> list[bytes]:
    if isinstance(frames, (bytes, bytearray, np.ndarray, Figure, str)) or not hasattr(
        frames, "__iter__"
    ):
        raise InputTypeError(
            f"{what} must be a list of frames (PNG bytes, NumPy images or Figures), "
            f"got a single {type(frames).__name__}; wrap it in a list"
        )
    frames = list(frames)
    if len(frames) == 0:
        raise InputValueError(f"{what} is empty: a scrubber needs at least one frame")
    _check_frame_count(len(frames), what)
    pngs = []
    for i, frame in enumerate(frames):
        try:
            png = to_png(frame)
        except (InputTypeError, InputValueError) as err:
            raise type(err)(f"{what}[{i}]: {err}") from None
        if len(png) > MAX_FRAME_BYTES:
            warnings.warn(
                f"{what}[{i}] is {len(png) / 1000:.0f} kB, above MAX_FRAME_BYTES = "
                f"{MAX_FRAME_BYTES / 1000:.0f} kB; lower figsize or dpi to keep the page light",
                stacklevel=3,
            )
        pngs.append(png)
    return pngs


def _check_total_bytes(pngs: Sequence[bytes]) -> None:
    total = sum(len(p) for p in pngs)
    if total > MAX_WIDGET_BYTES:
        raise InputValueError(
            f"the frames add up to {total / 1e6:.2f} MB of PNG, above MAX_WIDGET_BYTES = "
            f"{MAX_WIDGET_BYTES / 1e6:.1f} MB per widget (the page budget is "
            f"{PAGE_BUDGET_BYTES / 1e6:.0f} MB). Use fewer frames, a smaller figsize or a lower dpi."
        )


def _check_labels(labels: Sequence[Any] | None, n: int) -> list[Any] | None:
    if labels is None:
        return None
    if hasattr(labels, "tolist") and not isinstance(labels, list):
        labels = labels.tolist()  # numpy arrays and torch tensors
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, range)):
        raise InputTypeError(
            f"labels must be a list with one entry per frame, got {type(labels).__name__}"
        )
    labels = list(labels)
    for i, v in enumerate(labels):
        if not isinstance(v, (str, numbers.Real)) or (isinstance(v, numbers.Real) and not isinstance(v, bool)
                                                      and not math.isfinite(float(v))):
            raise InputValueError(
                f"labels[{i}] must be a string or a finite number (e.g. the timestep of the frame), got {v!r}"
            )
    if len(labels) != n:
        raise InputValueError(
            f"labels has {len(labels)} entries but there are {n} frames; give one label per frame"
        )
    return labels


def _check_common(description: Any, play_interval_ms: Any, initial: Any, n: int) -> None:
    if not isinstance(description, str):
        raise InputTypeError(f"description must be a string such as 't', got {description!r}")
    if (
        not isinstance(play_interval_ms, numbers.Integral)
        or isinstance(play_interval_ms, bool)
        or play_interval_ms < 1
    ):
        raise InputValueError(
            f"play_interval_ms must be a positive int (milliseconds per frame), got {play_interval_ms!r}"
        )
    if not isinstance(initial, numbers.Integral) or isinstance(initial, bool):
        raise InputTypeError(f"initial must be an int frame index, got {initial!r}")
    if not 0 <= initial < n:
        raise InputValueError(f"initial must be a frame index in [0, {n - 1}], got {initial}")


# --------------------------------------------------------------------------------------------
# The player
# --------------------------------------------------------------------------------------------
#: Styles of the player, scoped to its class. The root takes the full width of the text column;
#: each frame is shown at its own size, never wider than the column. In print only the current
#: frame and its label remain.
_PLAYER_CSS = """
.diffusion-scrubber{box-sizing:border-box;width:100%;max-width:100%;margin:0.5em 0;font-size:0.9rem}
.diffusion-scrubber *{box-sizing:border-box}
.diffusion-scrubber .ds-options{display:flex;flex-wrap:wrap;align-items:center;gap:0.3em;margin-bottom:0.4em}
.diffusion-scrubber .ds-controls{display:flex;flex-wrap:wrap;align-items:center;gap:0.5em;width:100%}
.diffusion-scrubber .ds-slider{flex:1 1 10em;min-width:6em;margin:0}
.diffusion-scrubber button{font:inherit;padding:0.15em 0.7em;border:1px solid #8a8f98;border-radius:0.25em;background:#f4f5f7;color:#1d2430;cursor:pointer}
.diffusion-scrubber button[aria-pressed="true"]{background:#2f5f9e;border-color:#2f5f9e;color:#fff}
.diffusion-scrubber select{font:inherit}
.diffusion-scrubber .ds-label{font-family:monospace;white-space:nowrap;min-width:6ch}
.diffusion-scrubber .ds-frames{margin-top:0.4em;max-width:100%}
.diffusion-scrubber .ds-frame{max-width:100%;height:auto}
@media print{.diffusion-scrubber .ds-play,.diffusion-scrubber .ds-slider,.diffusion-scrubber .ds-options button:not([aria-pressed="true"]),.diffusion-scrubber select{display:none !important}}
"""

#: The player's behaviour. It initialises every player on the page that is not initialised yet
#: (so it works whether the page has one player or twenty, and whether the notebook front end
#: runs the script once per output or not), and needs no global names and no element ids.
_PLAYER_JS = """
(function () {
  "use strict";
  function init(root) {
    if (root.getAttribute("data-ready") === "1") return;
    root.setAttribute("data-ready", "1");
    var slider = root.querySelector(".ds-slider");
    var play = root.querySelector(".ds-play");
    var label = root.querySelector(".ds-label");
    var frames = root.querySelectorAll(".ds-frame");
    var buttons = root.querySelectorAll(".ds-option");
    var select = root.querySelector(".ds-select");
    var labels = JSON.parse(root.getAttribute("data-labels"));
    var options = JSON.parse(root.getAttribute("data-options"));
    var n = labels.length;
    var interval = parseInt(root.getAttribute("data-interval"), 10) || 200;
    var option = parseInt(root.getAttribute("data-option"), 10) || 0;
    var timer = null;
    function show() {
      var i = parseInt(slider.value, 10);
      var current = option * n + i;
      for (var k = 0; k < frames.length; k++) {
        frames[k].style.display = k === current ? "block" : "none";
      }
      label.textContent = labels[i];
      slider.setAttribute("aria-valuetext", labels[i]);
      for (var b = 0; b < buttons.length; b++) {
        buttons[b].setAttribute("aria-pressed", b === option ? "true" : "false");
      }
      if (select) select.selectedIndex = option;
      root.setAttribute("data-frame", String(i));
      root.setAttribute("data-option", String(option));
    }
    function stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      play.textContent = "\\u25B6 Play";
      play.setAttribute("aria-pressed", "false");
    }
    function step() {
      var i = parseInt(slider.value, 10);
      if (i >= n - 1) { stop(); return; }
      slider.value = String(i + 1);
      show();
    }
    function start() {
      if (parseInt(slider.value, 10) >= n - 1) { slider.value = "0"; show(); }
      play.textContent = "\\u275A\\u275A Pause";
      play.setAttribute("aria-pressed", "true");
      timer = setInterval(step, interval);
    }
    play.addEventListener("click", function () { if (timer === null) start(); else stop(); });
    slider.addEventListener("input", function () { stop(); show(); });
    slider.addEventListener("change", show);
    for (var b = 0; b < buttons.length; b++) {
      (function (index) {
        buttons[index].addEventListener("click", function () { option = index; show(); });
      })(b);
    }
    if (select) select.addEventListener("change", function () { option = select.selectedIndex; show(); });
    if (options.length !== Math.max(1, buttons.length, select ? select.options.length : 0)) {
      console.warn("diffusion-scrubber: the options and their controls disagree");
    }
    show();
  }
  var roots = document.querySelectorAll(".diffusion-scrubber");
  for (var r = 0; r < roots.length; r++) init(roots[r]);
})();
"""


def _label_text(description: str, label: Any) -> str:
    return label if isinstance(label, str) else f"{description} = {label}"


def _img(png: bytes, alt: str, visible: bool) -> str:
    data = base64.b64encode(png).decode("ascii")
    display = "block" if visible else "none"
    return (
        f'<img class="ds-frame" src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
        f'style="display:{display}">'
    )


class Scrubber:
    """A Play button and a slider stepping through pre-rendered frames (see :func:`scrubber`).

    A notebook displays it through :meth:`_repr_html_`: a self-contained HTML player (frames as
    embedded PNGs, a native range slider, a few lines of JavaScript). It needs no kernel and no
    ipywidgets.

    Attributes:
        frames: the PNG bytes of every frame, in slider order.
        labels: the text shown beside the slider for each frame (``"t = 500"``), or, without
            labels, the frame index.
        description: the slider's name, e.g. ``"t"``.
        play_interval_ms: milliseconds per frame while playing.
        initial: index of the frame shown first (and in print).
    """

    def __init__(
        self,
        frames: list[bytes],
        labels: list[str],
        description: str,
        play_interval_ms: int,
        initial: int,
    ) -> None:
        if not isinstance(frames, list) or not all(isinstance(f, bytes) and f.startswith(_PNG_SIGNATURE) for f in frames):
            raise InputTypeError(
                "frames must be a list of PNG byte strings; build a player with scrubber(...) or "
                "option_scrubber(...), which convert figures and arrays"
            )
        if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
            raise InputTypeError("labels must be a list of strings, one per frame; scrubber(...) builds them")
        if len(frames) == 0 or len(labels) != len(frames):
            raise InputValueError(f"a player needs at least one frame and one label per frame, got {len(frames)} frames and {len(labels)} labels")
        _check_common(description, play_interval_ms, initial, len(frames))
        self.frames = frames
        self.labels = labels
        self.description = description
        self.play_interval_ms = play_interval_ms
        self.initial = initial

    # the parts the HTML is made of; OptionScrubber overrides them
    def _options(self) -> list[str]:
        return []

    def _initial_option(self) -> int:
        return 0

    def _frames_by_option(self) -> list[list[bytes]]:
        return [self.frames]

    def _options_html(self) -> str:
        return ""

    def to_html(self) -> str:
        """The player as one HTML fragment (styles, controls, frames and script)."""
        n = len(self.labels)
        option = self._initial_option()
        alt_prefix = {i: f"{name}, " for i, name in enumerate(self._options())}
        imgs = [
            _img(png, alt_prefix.get(o, "") + self.labels[i], o == option and i == self.initial)
            for o, pngs in enumerate(self._frames_by_option())
            for i, png in enumerate(pngs)
        ]
        desc = html.escape(self.description)
        attrs = {
            "data-labels": json.dumps(self.labels),
            "data-options": json.dumps(self._options()),
            "data-interval": str(self.play_interval_ms),
            "data-option": str(option),
            "data-frame": str(self.initial),
        }
        attr_text = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
        return (
            f"<style>{_PLAYER_CSS.strip()}</style>"
            f'<div class="diffusion-scrubber tex2jax_ignore mathjax_ignore" {attr_text}>'
            + self._options_html()
            + '<div class="ds-controls">'
            '<button type="button" class="ds-play" aria-pressed="false">\u25b6 Play</button>'
            f'<input type="range" class="ds-slider" min="0" max="{n - 1}" step="1" '
            f'value="{self.initial}" aria-label="{desc}">'
            f'<output class="ds-label">{html.escape(self.labels[self.initial])}</output>'
            "</div>"
            f'<div class="ds-frames">{"".join(imgs)}</div>'
            "</div>"
            f"<script>{_PLAYER_JS.strip()}</script>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {len(self.labels)} frames, {self.labels[0]} ... "
            f"{self.labels[-1]}; an HTML player, shown by a notebook>"
        )


class OptionScrubber(Scrubber):
    """A :class:`Scrubber` with a selector choosing among several stacks of frames.

    It has the attributes of :class:`Scrubber`, where ``frames`` are the frames of the option
    shown first, and these.

    Attributes:
        options: the option names, in order.
        frames_by_option: option name -> PNG frames.
        initial_option: the index of the option shown first.
        selector: ``"toggle"`` (a row of buttons) or ``"dropdown"``.
        option_description: the selector's name.
    """

    def __init__(
        self,
        frames_by_option: dict[str, list[bytes]],
        labels: list[str],
        description: str,
        option_description: str,
        play_interval_ms: int,
        initial: int,
        initial_option: int,
        selector: str,
    ) -> None:
        if not isinstance(frames_by_option, dict) or not frames_by_option or not all(isinstance(k, str) for k in frames_by_option):
            raise InputTypeError("frames_by_option must be a non-empty dict {option name: list of PNG frames}; use option_scrubber(...)")
        if isinstance(initial_option, bool) or not isinstance(initial_option, numbers.Integral) or not 0 <= initial_option < len(frames_by_option):
            raise InputValueError(f"initial_option must be an option index in [0, {len(frames_by_option) - 1}], got {initial_option!r}")
        if len({len(v) if isinstance(v, list) else -1 for v in frames_by_option.values()}) != 1:
            raise InputValueError("every option needs the same number of frames (one per slider position)")
        if selector not in ("toggle", "dropdown"):
            raise InputValueError(f"selector must be 'toggle' or 'dropdown', got {selector!r}")
        if not isinstance(option_description, str):
            raise InputTypeError(f"option_description must be a string, got {option_description!r}")
        for name, pngs in frames_by_option.items():
            Scrubber(pngs, labels, description, play_interval_ms, initial)  # checks every stack of frames
        self.options = list(frames_by_option)
        self.frames_by_option = frames_by_option
        self.initial_option = initial_option
        self.selector = selector
        self.option_description = option_description
        super().__init__(
            frames_by_option[self.options[initial_option]], labels, description,
            play_interval_ms, initial,
        )

    def _options(self) -> list[str]:
        return self.options

    def _initial_option(self) -> int:
        return self.initial_option

    def _frames_by_option(self) -> list[list[bytes]]:
        return [self.frames_by_option[name] for name in self.options]

    def _options_html(self) -> str:
        desc = html.escape(self.option_description)
        if self.selector == "toggle":
            buttons = "".join(
                f'<button type="button" class="ds-option" aria-pressed="'
                f'{"true" if i == self.initial_option else "false"}">{html.escape(name)}</button>'
                for i, name in enumerate(self.options)
            )
            return f'<div class="ds-options" role="group" aria-label="{desc}"><span>{desc}</span>{buttons}</div>'
        choices = "".join(
            f'<option{" selected" if i == self.initial_option else ""}>{html.escape(name)}</option>'
            for i, name in enumerate(self.options)
        )
        return (
            f'<div class="ds-options"><label>{desc} '
            f'<select class="ds-select" aria-label="{desc}">{choices}</select></label></div>'
        )


def scrubber(
    frames: Sequence[bytes | np.ndarray | Figure],
    labels: Sequence[Any] | None = None,
    description: str = "t",
    play_interval_ms: int = 200,
    initial: int = 0,
) -> Scrubber:
    """A Play button and a slider that step through pre-rendered frames, with no kernel needed.

    The frames are embedded in the output and a few lines of JavaScript switch the visible one,
    so the figure works in a live notebook (with any ipywidgets version, or none) and in the
    static HTML book alike. The controls span the width of the text column.

    Args:
        frames: the frames, in slider order: PNG bytes (from :func:`render_frames`), NumPy
            images (see :func:`to_png`) or matplotlib Figures. At most ``MAX_FRAMES``.
        labels: optional, one per frame (e.g. the timestep of each frame). A number ``v`` is
            shown as ``"<description> = v"``, a string as it is. Without labels the slider shows
            the frame index.
        description: the slider's name, e.g. ``"t"``.
        play_interval_ms: milliseconds per frame while playing.
        initial: index of the frame shown first (and the one shown in print).

    Returns:
        A :class:`Scrubber`; display it by making it the last expression of a cell.

    Raises:
        ValueError: empty ``frames``, too many frames or bytes (see the module's budget), a
            label count that differs from the frame count, or an ``initial`` out of range.
        TypeError: a frame of an unsupported type.
    """
    pngs = _as_frame_list(frames, "frames")
    n = len(pngs)
    labels = _check_labels(labels, n)
    _check_common(description, play_interval_ms, initial, n)
    _check_total_bytes(pngs)
    texts = [str(i) for i in range(n)] if labels is None else [_label_text(description, v) for v in labels]
    return Scrubber(pngs, texts, description, int(play_interval_ms), int(initial))


def option_scrubber(
    frames_by_option: Mapping[str, Sequence[bytes | np.ndarray | Figure]],
    labels: Sequence[Any] | None = None,
    description: str = "t",
    option_description: str = "schedule",
    play_interval_ms: int = 200,
    initial: int = 0,
    initial_option: str | None = None,
    selector: Literal["auto", "toggle", "dropdown"] = "auto",
) -> OptionScrubber:
    """Several stacks of frames with one shared slider and a selector choosing the stack.

    For example the noising of the same data under a linear and a cosine schedule: the selector
    chooses the schedule, the slider the timestep, and switching schedule keeps the timestep.
    Like :func:`scrubber`, everything runs in the browser, so the figure also works in the
    static HTML book.

    Args:
        frames_by_option: option name -> frames (as for :func:`scrubber`); every option must
            have the same number of frames (at most ``MAX_FRAMES``), frame ``i`` of each option
            showing the same slider position.
        labels: optional, one per slider position, shared by all options.
        description: the slider's name, e.g. ``"t"``.
        option_description: the selector's name, e.g. ``"schedule"`` or ``"guidance"``.
        play_interval_ms: milliseconds per frame while playing.
        initial: index of the frame shown first.
        initial_option: the option shown first (default: the first one).
        selector: ``"toggle"`` (a row of buttons), ``"dropdown"``, or ``"auto"``: buttons for
            up to 5 options, else a dropdown.

    Returns:
        An :class:`OptionScrubber`.

    Raises:
        ValueError: no options, an empty option, options of different lengths, too many frames
            or bytes, a wrong label count, an unknown ``initial_option`` or ``selector``.
        TypeError: ``frames_by_option`` is not a mapping, or a frame of an unsupported type.
    """
    if not isinstance(frames_by_option, Mapping):
        raise InputTypeError(
            "frames_by_option must be a dict {option name: list of frames}, e.g. "
            "{'linear': frames_lin, 'cosine': frames_cos}; "
            f"got {type(frames_by_option).__name__}"
        )
    if len(frames_by_option) == 0:
        raise InputValueError("frames_by_option is empty: give at least one option with its frames")
    names = [str(k) for k in frames_by_option]
    if len(set(names)) != len(names):
        raise InputValueError(f"option names must be distinct once shown as text, got {names}")
    pngs_by_option = {
        name: _as_frame_list(frames, f"frames_by_option[{name!r}]")
        for name, frames in zip(names, frames_by_option.values())
    }
    lengths = {name: len(p) for name, p in pngs_by_option.items()}
    if len(set(lengths.values())) != 1:
        raise InputValueError(
            "every option needs the same number of frames (one per slider position), got "
            + ", ".join(f"{k!r}: {v}" for k, v in lengths.items())
        )
    n = next(iter(lengths.values()))
    labels = _check_labels(labels, n)
    if not isinstance(option_description, str):
        raise InputTypeError(f"option_description must be a string, got {option_description!r}")
    _check_common(description, play_interval_ms, initial, n)
    _check_total_bytes([p for pngs in pngs_by_option.values() for p in pngs])
    if initial_option is None:
        option_index = 0
    elif str(initial_option) in names:
        option_index = names.index(str(initial_option))
    else:
        raise InputValueError(f"initial_option must be one of {names}, got {initial_option!r}")
    if selector == "auto":
        selector = "toggle" if len(names) <= 5 else "dropdown"
    if selector not in ("toggle", "dropdown"):
        raise InputValueError(f"selector must be 'auto', 'toggle' or 'dropdown', got {selector!r}")
    texts = [str(i) for i in range(n)] if labels is None else [_label_text(description, v) for v in labels]
    return OptionScrubber(
        pngs_by_option, texts, description, option_description, int(play_interval_ms),
        int(initial), option_index, selector,
    )
