"""Every exercise checker of the book, found through the registry: each one validates (the
reference and every correct alternative pass, every known mistake is named with its own message)
with at least three known mistakes and two correct alternatives, and every public ``check_*``
function has a docstring that names the exercise it checks."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import diffusion_lib.exercises as exercises
from diffusion_lib.exercises import ExerciseFeedback, all_checkers

MODULES = [
    importlib.import_module(f"{exercises.__name__}.{info.name}")
    for info in pkgutil.iter_modules(exercises.__path__)
    if not info.name.startswith("_")
]
_NAMES = {m.__name__ for m in MODULES}
CHECKERS = [c for c in all_checkers(exercises.__name__ + ".") if c.module in _NAMES]
CHECK_FUNCTIONS = [
    (module, name, fn)
    for module in MODULES
    for name, fn in vars(module).items()
    if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == module.__name__
]


def test_the_registry_finds_the_chapter_checkers():
    assert len(MODULES) >= 10, [m.__name__ for m in MODULES]
    assert len(CHECKERS) >= len(MODULES)
    assert {c.module for c in CHECKERS} == _NAMES  # every chapter module defines checkers


@pytest.mark.parametrize("checker", CHECKERS, ids=[c.name for c in CHECKERS])
def test_checker_validates_with_enough_mistakes_and_alternatives(checker):
    checker.validate(min_mistakes=3, min_alternatives=2)


def _label_of(fn) -> str | None:
    """The exercise label the checker reports for an unsolved stub (a bare NotImplementedError)."""

    def stub(*args, **kwargs):
        raise NotImplementedError

    try:
        fn(stub)
    except ExerciseFeedback as fb:
        return fb.exercise if fb.kind == "not-implemented" else None
    return None


@pytest.mark.parametrize(
    "module, name, fn", CHECK_FUNCTIONS, ids=[f"{m.__name__.rsplit('.', 1)[1]}.{n}" for m, n, _ in CHECK_FUNCTIONS]
)
def test_check_function_docstring_names_its_exercise(module, name, fn):
    doc = inspect.getdoc(fn)
    assert doc, f"{module.__name__}.{name} has no docstring"
    label = _label_of(fn)
    labels = {c.label for c in CHECKERS if c.module == module.__name__ and c.label}
    if label is not None:
        assert label in doc, f"{module.__name__}.{name}: the docstring does not name its exercise label {label!r}"
    else:  # a checker that does not report stubs the usual way: it must name one of its module's labels
        assert any(lab in doc for lab in labels), f"{module.__name__}.{name}: the docstring names none of {sorted(labels)}"
