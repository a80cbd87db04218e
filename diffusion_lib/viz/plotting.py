"""Small plotting helpers the chapters share: image grids, 2-D point clouds, schedule curves.

Each function draws into a given matplotlib ``Axes`` (or a new one) and returns the ``Axes``,
so a chapter can combine them in its own figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["make_grid", "show_images", "scatter2d", "plot_schedule_curves"]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, copy=False)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def make_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``N`` single-channel images of shape ``(N, 1, H, W)`` (or ``(N, H, W)``) into one array.

    Image ``i`` goes to row ``i // nrow`` and column ``i % nrow``; tiles are separated by
    ``pad`` pixels of ``pad_value`` (1.0 = white on the [-1, 1] scale). Unused tiles are padding.
    Returns a float32 array of shape ``(rows * (H + pad) + pad, ncol * (W + pad) + pad)``.
    """
    arr = _as_numpy(images, "images")
    if arr.ndim == 4:
        if arr.shape[1] != 1:
            raise ValueError(
                f"make_grid draws single-channel images (N, 1, H, W); got {arr.shape[1]} channels"
            )
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"images must have shape (N, 1, H, W), (N, H, W) or (H, W) with N >= 1; got {tuple(_as_numpy(images, 'images').shape)}")
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow (images per row) must be a positive int, got {nrow!r}")
    if not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
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
        raise ValueError(f"scatter2d expects points of shape (N, 2), got {arr.shape}")
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
    normalize_t: bool = True,
    log_y: bool = False,
) -> Any:
    """Plot one per-timestep quantity (``"alpha_bar"``, ``"beta"``, ``"log_snr"``, ...) against t.

    ``schedules`` is one schedule object (anything with tensor attributes of length T + 1
    indexed by t, such as ``diffusion_lib.core.schedules.NoiseSchedule``), a sequence of them, or a
    mapping from legend labels to them. Index 0 (the data) is not drawn: the curve runs over
    t = 1..T, plotted against t / T when ``normalize_t`` so that different T can be compared.
    """
    import matplotlib.pyplot as plt

    if isinstance(schedules, Mapping):
        items = list(schedules.items())
    elif isinstance(schedules, Sequence) and not isinstance(schedules, str):
        items = [(getattr(s, "name", f"schedule {i}"), s) for i, s in enumerate(schedules)]
    else:
        items = [(getattr(schedules, "name", None), schedules)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for label, sched in items:
        if not hasattr(sched, quantity):
            raise ValueError(f"schedule {label!r} has no attribute {quantity!r} to plot")
        values = _as_numpy(getattr(sched, quantity), quantity)
        if values.ndim != 1 or values.shape[0] < 2:
            raise ValueError(f"{quantity} must be a 1-D tensor of length T + 1, got shape {values.shape}")
        T = values.shape[0] - 1
        t = np.arange(1, T + 1)
        ax.plot(t / T if normalize_t else t, values[1:], label=label)
    ax.set_xlabel("t / T" if normalize_t else "timestep t")
    ax.set_ylabel(quantity)
    if log_y:
        ax.set_yscale("log")
    if any(label is not None for label, _ in items):
        ax.legend()
    return ax
