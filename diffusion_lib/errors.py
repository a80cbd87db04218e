"""The library's own errors: what every public function raises when its input is wrong.

Each class subclasses the built-in error a Python programmer expects (``ValueError``,
``TypeError``, ...), so ``except ValueError`` keeps working, and also :class:`DiffusionLibError`,
so a test (and a curious student) can tell a message written by this library from a raw error
raised deep inside torch. Every message names the argument, says what was given and what to do.
"""

from __future__ import annotations

__all__ = [
    "DiffusionLibError",
    "InputValueError",
    "InputTypeError",
    "NonFiniteError",
    "CheckpointError",
]


class DiffusionLibError(Exception):
    """Base class of every error this library raises on purpose."""


class InputValueError(DiffusionLibError, ValueError):
    """An argument has the right type but a wrong value, shape, range or option name."""


class InputTypeError(DiffusionLibError, TypeError):
    """An argument has the wrong type or dtype."""


class NonFiniteError(DiffusionLibError, FloatingPointError):
    """A computation went to NaN or infinity: training stops here instead of going on silently."""


class CheckpointError(DiffusionLibError, ValueError):
    """A file cannot be read as one of this library's checkpoints (missing, damaged, foreign or incompatible)."""
