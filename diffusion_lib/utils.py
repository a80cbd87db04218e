"""Small helpers every chapter uses: seeding, thread settings, and putting computed numbers into the prose."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["set_seed", "set_threads", "record_metric", "glue", "checkpoint_dir"]


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded with ``seed``.

    Notebooks call this once at the top so that a run in a fresh kernel reproduces exactly.
    Pass the returned generator to sampling functions when a cell needs its own stream.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Set PyTorch's intra-op thread count and return it.

    The environment variable ``DIFFUSION_BOOK_THREADS``, when set, wins over ``n``: the chapters
    call ``set_threads(1)``, and a reader with more cores can export a larger number. With
    ``n=None`` and no variable, PyTorch's default is kept. On a shared 1-2 core machine (Binder,
    CI) one thread is often as fast as two, and far faster when another process competes for
    the cores.
    """
    env = os.environ.get("DIFFUSION_BOOK_THREADS")
    if env is not None:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"DIFFUSION_BOOK_THREADS must be a whole number, got {env!r}") from None
    if n is None:
        return torch.get_num_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be an int >= 1, got {n!r}")
    torch.set_num_threads(n)
    return n


def record_metric(name: str, value: float, unit: str = "", chapter: str | None = None) -> None:
    """Record a model-quality figure (W2, nats per image, ...) for ``benchmarks/run_notebooks.py``.

    Does nothing unless the environment variable ``DIFFUSION_BOOK_METRICS`` names a file; then it
    appends one JSON line ``{"name", "value", "unit", "chapter"}`` to it. Chapters call it next to
    the numbers they print, so the budget table shows exactly what the chapter computed.
    """
    import json

    path = os.environ.get("DIFFUSION_BOOK_METRICS")
    if not path:
        return
    chapter = chapter or os.environ.get("DIFFUSION_BOOK_CHAPTER")
    row = {"name": str(name), "value": float(value), "unit": unit, "chapter": chapter}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def glue(name: str, value: float, unit: str = "", *, record: bool = False) -> float:
    """Make a number computed in a cell available to the page's prose, and return it unchanged.

    In the built book the text cites it with myst-nb's role, for example
    ``{glue:text}`w2_ratio:.2f```, so a figure in a sentence can never drift from what the page
    computed. Outside a Jupyter Book build (Colab, a plain kernel) where ``myst_nb`` is not
    installed, nothing is displayed and the value is still returned. With ``record=True`` the
    value is also passed to :func:`record_metric` for the budget table.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue: name must be a Python-identifier-like string, got {name!r}")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        _myst_glue = None
    shown = value
    if isinstance(shown, torch.Tensor) and shown.numel() == 1:
        shown = shown.item()
    elif isinstance(shown, np.generic):
        shown = shown.item()  # np.float64(0.5) would reach the page as the text 'np.float64(0.5)'
    if _myst_glue is not None:
        _myst_glue(name, shown, display=False)
    if record:
        record_metric(name, float(shown), unit)
    return value


def checkpoint_dir() -> Path:
    """The folder that holds the shipped checkpoints.

    ``$DIFFUSION_BOOK_CHECKPOINTS`` when set (the Colab set-up cell points it at its clone of the
    repository), else the repository's ``checkpoints/`` folder next to this package.
    """
    env = os.environ.get("DIFFUSION_BOOK_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"
