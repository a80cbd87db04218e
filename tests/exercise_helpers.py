"""What the per-chapter exercise tests share (the registry test validates every checker)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from diffusion_lib.exercises import ExerciseFeedback


def feedback(check: Callable[[Callable[..., Any]], Any], fn: Callable[..., Any]) -> ExerciseFeedback:
    """The feedback ``check`` gives on the student's function ``fn`` (which must be rejected)."""
    with pytest.raises(ExerciseFeedback) as info:
        check(fn)
    return info.value
