"""Small plotting helpers the chapters share: image grids, 2-D point clouds, schedule curves.

Each function draws into a given matplotlib ``Axes`` (or a new one) and returns the ``Axes``,
so a chapter can combine them in its own figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["make_grid", "show_images", "scatter2d", "plot_schedule_curves"]


def _as_numpy(x: Any, name: str, finite: bool = True) -> np.ndarray:
    """``x`` (tensor or array of real numbers) as float32; with ``finite`` NaN and inf are refused."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise InputTypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        arr = x.detach().to("cpu", torch.float32).numpy()
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise InputTypeError(f"{name} must hold real numbers, got a numpy array of dtype {x.dtype}")
        arr = x.astype(np.float32, copy=False)
    else:
        arr = None
    if arr is not None:
        if finite and not np.all(np.isfinite(arr)):
            raise InputValueError(
                f"{name} contains NaN or infinite values (a diverged sampler?); they would be drawn as blank "
                "spots or left out without a word, so fix them first"
            )
        return arr
    raise InputTypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _check_text(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise InputTypeError(f"{name} must be a string or None, got {type(value).__name__}")


def make_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``N`` single-channel images of shape ``(N, 1, H, W)`` (or ``(N, H, W)``) into one array.

    Image ``i`` goes to row ``i // nrow`` and column ``i % nrow``; tiles are separated by
    ``pad`` pixels of ``pad_value`` (1.0 = white on the [-1, 1] scale). Unused tiles are padding.
    Returns a float32 array of shape ``(rows * (H + pad) + pad, ncol * (W + pad) + pad)``.
    """
    arr = _as_numpy(images, "images")
    if arr.ndim == 4:
        if arr.shape[1] != 1:
            raise InputValueError(
                f"make_grid draws single-channel images (N, 1, H, W); got {arr.shape[1]} channels"
            )
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise InputValueError(f"images must have shape (N, 1, H, W), (N, H, W) or (H, W) with N >= 1; got {tuple(_as_numpy(images, 'images').shape)}")
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise InputValueError(f"nrow (images per row) must be a positive int, got {nrow!r}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise InputValueError(f"pad must be an int >= 0, got {pad!r}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"pad_value must be a number, got {pad_value!r}")
    n, h, w = arr.shape
    ncol = min(int(nrow), n)
    rows = -(-n // ncol)
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = arr[i]
    return grid


def show_images(
    images: torch.Tensor | np.ndarray,
    nrow: int = 8,
    ax: Any = None,
    title: str | None = None,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "gray_r",
) -> Any:
    """Show a grid of single-channel images ``(N, 1, H, W)`` on the [-1, 1] scale.

    By default -1 is white and +1 is black (``cmap="gray_r"``), so digits appear as dark ink
    on white paper; values outside ``[vmin, vmax]`` are drawn at the end colours. Axis ticks
    are hidden because pixel coordinates carry no meaning here; tiles are separated by thin
    blue-grey lines.
    """
    import matplotlib.pyplot as plt

    import matplotlib as mpl

    arr = _as_numpy(images, "images")
    if isinstance(vmin, bool) or isinstance(vmax, bool) or not all(
        isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v) for v in (vmin, vmax)
    ) or not vmin < vmax:
        raise InputValueError(f"vmin and vmax must be finite numbers with vmin < vmax, got {vmin!r} and {vmax!r}")
    if not isinstance(cmap, str) or cmap not in mpl.colormaps:
        raise InputValueError(f"cmap must be the name of a matplotlib colormap such as 'gray_r', got {cmap!r}")
    _check_text(title, "title")
    grid = make_grid(arr, nrow=nrow, pad=1, pad_value=float("nan"))
    h, w = arr.shape[-2:]
    if ax is None:
        rows, cols = grid.shape[0] / (h + 1), grid.shape[1] / (w + 1)
        _, ax = plt.subplots(figsize=(min(0.7 * cols + 0.4, 12), min(0.7 * rows + 0.4, 12)))
    # the separators between tiles (NaN in the grid) are drawn light blue-grey
    colormap = mpl.colormaps[cmap].with_extremes(bad="#b8c4d6")
    ax.imshow(grid, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return ax


def scatter2d(
    points: torch.Tensor | np.ndarray,
    ax: Any = None,
    title: str | None = None,
    lim: float | None = None,
    s: float = 2.0,
    alpha: float = 0.5,
    xlabel: str = "coordinate 1",
    ylabel: str = "coordinate 2",
    **kwargs: Any,
) -> Any:
    """Scatter an ``(N, 2)`` point cloud with equal aspect ratio and labelled axes.

    ``lim`` fixes both axes to ``[-lim, lim]`` (useful to compare panels); extra keyword
    arguments go to ``Axes.scatter`` (``color``, ``label``, ...).
    """
    import matplotlib.pyplot as plt

    arr = _as_numpy(points, "points")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputValueError(f"scatter2d expects points of shape (N, 2), got {arr.shape}")
    if lim is not None and (isinstance(lim, bool) or not isinstance(lim, (int, float, np.floating, np.integer))
                            or not np.isfinite(lim) or lim <= 0):
        raise InputValueError(f"lim must be a finite number > 0 (the axes run over [-lim, lim]) or None, got {lim!r}")
    for name, v, lo, hi in (("s", s, 0.0, np.inf), ("alpha", alpha, 0.0, 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not lo <= v <= hi or (name == "s" and not np.isfinite(v)):
            raise InputValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    for name, v in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        _check_text(v, name)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(arr[:, 0], arr[:, 1], s=s, alpha=alpha, linewidths=0, **kwargs)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_schedule_curves(
    schedules: Any | Mapping[str, Any] | Sequence[Any],
    quantity: str = "alpha_bar",
    ax: Any = None,
    log_y: bool = False,
) -> Any:
    """Plot one per-timestep quantity (``"alpha_bar"``, ``"beta"``, ``"log_snr"``, ...) against t.

    ``schedules`` is one schedule object (anything with tensor attributes of length T + 1
    indexed by t, such as ``diffusion_lib.core.schedules.NoiseSchedule``), a sequence of them, or a
    mapping from legend labels to them. Index 0 (the data) is not drawn: the curve runs over
    t = 1..T, plotted against t / T so that different T can be compared; ``log_y`` draws the
    y axis on a log scale (every plotted value must then be > 0).
    """
    import matplotlib.pyplot as plt

    if isinstance(schedules, Mapping):
        items = list(schedules.items())
    elif isinstance(schedules, Sequence) and not isinstance(schedules, str):
        items = [(getattr(s, "name", f"schedule {i}"), s) for i, s in enumerate(schedules)]
    else:
        items = [(getattr(schedules, "name", None), schedules)]
    if not isinstance(quantity, str) or not quantity.isidentifier():
        raise InputValueError(f"quantity must be the name of a schedule attribute such as 'alpha_bar', got {quantity!r}")
    if not items:
        raise InputValueError("schedules is empty: give one schedule, a list of them or a dict {label: schedule}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for label, sched in items:
        if not hasattr(sched, quantity):
            raise InputValueError(f"schedule {label!r} has no attribute {quantity!r} to plot")
        values = _as_numpy(getattr(sched, quantity), quantity, finite=False)
        if values.ndim != 1 or values.shape[0] < 2:
            raise InputValueError(f"{quantity} must be a 1-D tensor of length T + 1, got shape {values.shape}")
        if not np.all(np.isfinite(values[1:])) or (log_y and not np.all(values[1:] > 0)):
            raise InputValueError(
                f"schedule {label!r}: {quantity} at t = 1..T must be finite{' and > 0 for log_y=True' if log_y else ''}; "
                "such points would be left out of the curve without a word"
            )
        T = values.shape[0] - 1
        t = np.arange(1, T + 1)
        ax.plot(t / T, values[1:], label=label)
    ax.set_xlabel("t / T")
    ax.set_ylabel(quantity)
    if log_y:
        ax.set_yscale("log")
    if any(label is not None for label, _ in items):
        ax.legend()
    return ax
