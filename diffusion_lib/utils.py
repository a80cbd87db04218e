"""Small helpers every chapter uses: seeding, thread settings, and putting computed numbers into the prose."""

from __future__ import annotations

import math
import numbers
import os
import random
from pathlib import Path

import numpy as np
import torch

from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["set_seed", "set_threads", "record_metric", "glue", "checkpoint_dir", "unwritable_reason"]


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded with ``seed``.

    Notebooks call this once at the top so that a run in a fresh kernel reproduces exactly.
    Pass the returned generator to sampling functions when a cell needs its own stream.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**64:
        raise InputValueError(f"seed must be a non-negative int below 2**64 (NumPy ints too), got {seed!r}")
    seed = int(seed)
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
            raise InputValueError(f"DIFFUSION_BOOK_THREADS must be a whole number, got {env!r}") from None
    if n is None:
        return torch.get_num_threads()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InputValueError(f"thread count must be an int >= 1, got {n!r}")
    n = int(n)
    torch.set_num_threads(n)
    return n


def _finite_number(value: object, name: str) -> float:
    """A real number (Python, NumPy, one-element tensor) as a finite float; a library error otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise InputValueError(f"{name} must be finite, got {value!r}: a NaN or infinite figure means the computation behind it failed")
    return float(value)


def record_metric(name: str, value: float, unit: str = "", chapter: str | None = None) -> None:
    """Record a model-quality figure (W2, nats per image, ...) for ``benchmarks/run_notebooks.py``.

    Does nothing unless the environment variable ``DIFFUSION_BOOK_METRICS`` names a file; then it
    appends one JSON line ``{"name", "value", "unit", "chapter"}`` to it. Chapters call it next to
    the numbers they print, so the budget table shows exactly what the chapter computed.
    """
    import json

    if not isinstance(name, str) or not name:
        raise InputTypeError(f"name must be a non-empty string, got {name!r}")
    value = _finite_number(value, "value")
    if not isinstance(unit, str):
        raise InputTypeError(f"unit must be a string such as 'nats', got {unit!r}")
    if chapter is not None and not isinstance(chapter, str):
        raise InputTypeError(f"chapter must be a chapter name (a string) or None, got {chapter!r}")
    path = os.environ.get("DIFFUSION_BOOK_METRICS")
    if not path:
        return
    chapter = chapter or os.environ.get("DIFFUSION_BOOK_CHAPTER")
    row = {"name": name, "value": value, "unit": unit, "chapter": chapter}
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
        raise InputValueError(f"glue: name must be a Python-identifier-like string, got {name!r}")
    if not isinstance(record, bool):
        raise InputTypeError(f"record must be True or False, got {record!r}")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        _myst_glue = None
    shown = value
    if isinstance(shown, torch.Tensor) and shown.numel() == 1:
        shown = shown.item()
    elif isinstance(shown, np.generic):
        shown = shown.item()  # np.float64(0.5) would reach the page as the text 'np.float64(0.5)'
    if record:
        _finite_number(shown, "value")  # refuse before anything is glued
    if _myst_glue is not None:
        _myst_glue(name, shown, display=False)
    if record:
        record_metric(name, shown, unit)
    return value


def checkpoint_dir() -> Path:
    """The folder that holds the shipped checkpoints.

    ``$DIFFUSION_BOOK_CHECKPOINTS`` when set (the Colab set-up cell points it at its clone of the
    repository), else the repository's ``checkpoints/`` folder next to this package.
    """
    env = os.environ.get("DIFFUSION_BOOK_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def unwritable_reason(folder: str | Path) -> str | None:
    """Why no file can be written in ``folder`` (created if missing), or None: tried, not guessed.

    The scripts call it before a long run, so that a folder they cannot write to is reported in
    one line at the start rather than as a traceback at the end.
    """
    if not isinstance(folder, (str, Path)):
        raise InputTypeError(f"folder must be a path (str or pathlib.Path), got {type(folder).__name__}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"cannot write in {folder} (it is a file, not a folder); choose a folder you can write to"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return f"cannot write in {folder} ({err.strerror or err}); choose a folder you can write to"
    return None
