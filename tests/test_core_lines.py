"""The diffusion core stays small enough to read in one sitting (scripts/core_lines.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("core_lines", ROOT / "scripts" / "core_lines.py")
core_lines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core_lines)


def test_the_core_is_at_most_the_limit():
    counts = {p.name: core_lines.code_lines(p) for p in core_lines.CORE}
    assert sum(counts.values()) <= core_lines.CORE_LIMIT, counts


def test_the_counter_skips_docstrings_validation_and_wrapped_signatures(tmp_path):
    src = '''"""Module docstring."""
import torch


def f(
    a,
    b,
):
    """Docstring."""
    check_int(a, "a")
    if a < 0:
        raise ValueError("no")
    # a comment
    return a + b
'''
    path = tmp_path / "m.py"
    path.write_text(src, encoding="utf-8")
    assert core_lines.code_lines(path) == 2  # the signature and the return
