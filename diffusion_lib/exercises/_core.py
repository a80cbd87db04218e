"""The exercise harness: run hidden test cases on a student's function and explain the first failure.

See the package docstring (:mod:`diffusion_lib.exercises`) for how a chapter adds its checkers.

How a check runs, case by case (the first failing case stops the check):

1. the case's inputs are cloned, the hidden reference computes the expected answer and the
   student's function is called on separate clones, with the global random state saved and
   restored, so a check never changes what later cells of the notebook draw;
2. a ``NotImplementedError`` means an unsolved stub; any other exception is reported with the
   inputs that triggered it (the original traceback stays attached);
3. the inputs must be unchanged (no in-place edits), the answer must not be ``None`` and must be
   a tensor (or a number, or a tuple of them, matching the reference);
4. if the answer does not match: each *known mistake* (a reference implementation of a typical
   wrong answer) is tried, and its message is shown when the student's answer matches it;
   otherwise the harness names the generic problem: a function that draws its own random
   numbers, the wrong shape, NaN or infinite values, the wrong dtype, an answer off by a
   constant factor (or sign) or a constant offset, and finally the largest disagreement.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["ExerciseFeedback", "Case", "Mistake", "Checker"]

# The stub written by scripts/student_edition.py raises
#   NotImplementedError("not implemented yet — see exercise <label>")
_STUB_LABEL = re.compile(r"see exercise\s+([\w:.\-]+)")


class ExerciseFeedback(Exception):
    """Raised by a checker when a student's function is not right yet; the message says why.

    It is deliberately *not* an ``AssertionError``: it is feedback for a person, not a failed
    internal invariant. Attributes for programmatic use (tests, graders):

    - ``exercise``: the exercise label (``"ex-forward-q-sample"``) or the function name;
    - ``check``: the description of the failing case (``None`` when no case ran);
    - ``kind``: a short key of the diagnosis: ``"not-implemented"``, ``"none"``, ``"shape"``,
      ``"dtype"``, ``"nan"``, ``"mistake"``, ``"values"``, ...;
    - ``mistake``: the matching :class:`Mistake` when ``kind == "mistake"``, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        exercise: str | None = None,
        check: str | None = None,
        kind: str = "other",
        mistake: "Mistake | None" = None,
    ) -> None:
        super().__init__(message)
        self.exercise = exercise
        self.check = check
        self.kind = kind
        self.mistake = mistake


@dataclass(frozen=True, init=False)
class Case:
    """One hidden test: a plain-words description and the positional arguments to call with.

    ``Case("a batch of 4 points in 2-D", x0, alpha_bar_t, eps)`` calls ``fn(x0, alpha_bar_t, eps)``.
    The description appears in feedback ("check 2 of 4 (a batch of 4 points in 2-D)"), so write
    it for a student.
    """

    description: str
    args: tuple

    def __init__(self, description: str, *args: Any) -> None:
        if not isinstance(description, str) or not description:
            raise TypeError("Case(description, *args): the first argument must be a non-empty string")
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "args", args)


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, written as a function with the same signature as the exercise.

    When a student's output matches ``fn``'s output on the failing case (within the checker's
    tolerance), ``message`` is shown. Say what was done and what to do instead, e.g.
    ``Mistake("You multiplied x0 by alpha_bar_t; the mean is sqrt(alpha_bar_t) * x0.", fn)``.
    """

    message: str
    fn: Callable[..., Any]
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not isinstance(self.message, str) or not self.message:
            raise TypeError("Mistake(message, fn): message must be a non-empty string")
        if not callable(self.fn):
            raise TypeError(f"Mistake(message, fn): fn must be callable, got {type(self.fn).__name__}")


# Tolerances (rtol, atol) by dtype of the expected answer; a checker may override them.
_TOLERANCES = {
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-7, 1e-9),
}


def _clone(value: Any) -> Any:
    """Deep-copy the tensors inside ``value`` (tuples, lists and dicts are rebuilt)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two (nested) inputs, NaN equal to NaN."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if torch.equal(a, b):
            return True
        if not a.is_floating_point():
            return False
        nan_a, nan_b = torch.isnan(a), torch.isnan(b)
        return bool(torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b]))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or a == b


def _describe(value: Any) -> str:
    """A short description of a value for messages: ``tensor of shape (4, 3), float32``."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return f"0-d tensor {value.item():.6g} ({_dtype_name(value.dtype)})"
        return f"tensor of shape {_shape(value)}, {_dtype_name(value.dtype)}"
    if isinstance(value, np.ndarray):
        return f"NumPy array of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)} items"
    if isinstance(value, (int, float)):
        return repr(value)
    return type(value).__name__


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ("," if t.dim() == 1 else "") + ")"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _index(flat: int, shape: torch.Size) -> str:
    if len(shape) == 0:
        return "()"
    idx = np.unravel_index(flat, tuple(shape))
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


class Checker:
    """Checks a student's function against a hidden reference on a list of hidden cases.

    Parameters
    ----------
    name:
        The function name the exercise asks for (``"q_sample"``); used in every message.
    reference:
        The correct implementation (kept in the checker module, never shown in the notebook).
        Its parameter names are used to describe the inputs in feedback.
    cases:
        A sequence of :class:`Case`, or a function ``cases(generator) -> list[Case]`` that draws
        random inputs from the seeded ``torch.Generator`` it is given (fresh on every check, so
        every check sees the same numbers). Put a general case first: the first failing case is
        the one diagnosed, and edge cases (``alpha_bar = 1``) hide many mistakes.
    mistakes:
        Typical wrong answers, tried in order when the student's answer is wrong.
    label:
        The exercise label in the book (``"ex-forward-q-sample"``), used in messages.
    rtol, atol:
        Override the tolerances chosen from the expected answer's dtype.
    seed:
        Seed of the generator passed to ``cases``.
    """

    def __init__(
        self,
        *,
        name: str,
        reference: Callable[..., Any],
        cases: Sequence[Case] | Callable[[torch.Generator], Sequence[Case]],
        mistakes: Sequence[Mistake] = (),
        label: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("Checker(name=...) must be the non-empty name of the function the exercise asks for")
        if not callable(reference):
            raise TypeError(f"Checker(reference=...) must be a function, got {type(reference).__name__}")
        if not callable(cases) and not (isinstance(cases, Sequence) and all(isinstance(c, Case) for c in cases)):
            raise TypeError("Checker(cases=...) must be a list of Case objects or a function generator -> list of Case")
        if not all(isinstance(m, Mistake) for m in mistakes):
            raise TypeError("Checker(mistakes=...) must be a list of Mistake objects")
        self.name = name
        self.reference = reference
        self._cases = cases
        self.mistakes = tuple(mistakes)
        self.label = label
        self.rtol = rtol
        self.atol = atol
        self.seed = seed
        try:
            self.arg_names = list(inspect.signature(reference).parameters)
        except (TypeError, ValueError):  # builtins without a signature
            self.arg_names = []

    def __repr__(self) -> str:
        return f"Checker(name={self.name!r}, label={self.label!r}, {len(self.mistakes)} known mistakes)"

    # ------------------------------------------------------------------ public

    def cases(self) -> list[Case]:
        """The hidden cases, drawn from a generator seeded with ``self.seed`` (deterministic)."""
        if callable(self._cases):
            cases = list(self._cases(torch.Generator().manual_seed(self.seed)))
        else:
            cases = list(self._cases)
        if not cases or not all(isinstance(c, Case) for c in cases):
            raise TypeError(f"the checker for {self.name} must provide at least one Case")
        return cases

    def __call__(self, fn: Callable[..., Any]) -> None:
        """Run every hidden case on ``fn``; print a ✓ line (and return nothing, so a notebook
        shows only that line), or raise
        :class:`ExerciseFeedback` describing the first failure."""
        __tracebackhide__ = True  # noqa: F841  (hides this frame in IPython and pytest tracebacks)
        if not callable(fn):
            raise ExerciseFeedback(
                f"The checker needs the function itself, not its result: pass `{self.name}` without "
                f"parentheses, e.g. `check_{self.name}({self.name})`. It received {_describe(fn)}.",
                exercise=self._exercise(), kind="not-callable",
            )
        cases = self.cases()
        try:
            with torch.random.fork_rng(devices=[]):
                for i, case in enumerate(cases, start=1):
                    self._run_case(fn, case, i, len(cases))
        except ExerciseFeedback as feedback:
            # Raised again from here so that the traceback a student sees ends on this line
            # instead of inside the harness: the message below it says what to fix.
            raise feedback.with_traceback(None) from feedback.__cause__
        print(f"✓ {self.name}: all {len(cases)} checks passed")

    def validate(self) -> None:
        """Self-test for checker authors (call it from ``tests/``): the reference passes, and every
        known mistake fails with its own message. Raises ``AssertionError`` otherwise."""
        try:
            self(self.reference)
        except ExerciseFeedback as fb:
            raise AssertionError(f"{self.name}: the reference itself fails its checks: {fb}") from fb
        for m in self.mistakes:
            try:
                self(m.fn)
            except ExerciseFeedback as fb:
                if fb.mistake is not m:
                    raise AssertionError(
                        f"{self.name}: the mistake {m.message[:60]!r}... was diagnosed as {str(fb)[:300]!r}; "
                        f"reorder the mistakes or add a case where they differ"
                    ) from None
            else:
                raise AssertionError(f"{self.name}: the mistake {m.message[:60]!r}... passed every check")

    # ---------------------------------------------------------------- internals

    def _exercise(self) -> str:
        return self.label or self.name

    def _inputs(self, args: tuple) -> str:
        names = self.arg_names if len(self.arg_names) == len(args) else [f"argument {i + 1}" for i in range(len(args))]
        return ", ".join(f"{n} = {_describe(a)}" for n, a in zip(names, args))

    def _tolerance(self, expected: torch.Tensor) -> tuple[float, float]:
        rtol, atol = _TOLERANCES.get(expected.dtype, (0.0, 0.0))
        return (self.rtol if self.rtol is not None else rtol, self.atol if self.atol is not None else atol)

    def _call(self, fn: Callable[..., Any], args: tuple, header: str, case: Case) -> Any:
        __tracebackhide__ = True  # noqa: F841
        try:
            return fn(*args)
        except NotImplementedError as err:
            found = _STUB_LABEL.search(str(err))
            label = found.group(1) if found else self._exercise()
            raise ExerciseFeedback(
                f"Exercise {label} is not implemented yet: replace the `raise NotImplementedError` "
                f"line with your code, run that cell, then run this check again.",
                exercise=label, check=case.description, kind="not-implemented",
            ) from None
        except ExerciseFeedback:
            raise
        except Exception as err:  # the student's code crashed: say on which inputs
            raise ExerciseFeedback(
                f"{header}\n`{self.name}` raised {type(err).__name__}: {err}\n"
                f"It was called with {self._inputs(args)}. The traceback above shows the line "
                f"in your code.",
                exercise=self._exercise(), check=case.description, kind="exception",
            ) from err

    def _run_case(self, fn: Callable[..., Any], case: Case, i: int, n: int) -> None:
        __tracebackhide__ = True  # noqa: F841
        header = f"{self.name} did not pass check {i} of {n} ({case.description})."
        expected = self.reference(*_clone(case.args))
        args = _clone(case.args)
        got = self._call(fn, args, header, case)

        def fail(message: str, kind: str, mistake: Mistake | None = None) -> ExerciseFeedback:
            return ExerciseFeedback(
                f"{header}\n{message}", exercise=self._exercise(), check=case.description,
                kind=kind, mistake=mistake,
            )

        names = self.arg_names if len(self.arg_names) == len(args) else [None] * len(args)
        for name, before, after in zip(names, case.args, args):
            if not _same(before, after):
                what = f"its input `{name}`" if name else "one of its inputs"
                raise fail(
                    f"Your function changed {what} in place (for example with `-=`, `*=`, or a "
                    f"method ending in `_` such as `.mul_()`). Leave the inputs untouched and "
                    f"compute a new tensor instead, e.g. `y = x * c` rather than `x *= c`.",
                    "in-place",
                )

        problem = self._compare(got, expected)
        if problem is None:
            return
        message, kind = problem

        # A known mistake? (Only meaningful when something came back.)
        if kind not in ("none", "type"):
            for m in self.mistakes:
                wrong = m.fn(*_clone(case.args))
                if self._compare(got, wrong) is None:
                    raise fail(m.message, "mistake", m)
            # The same inputs again: a different answer means the function draws its own noise.
            again = self._call(fn, _clone(case.args), header, case)
            if self._compare(again, got, exact=True) is not None:
                raise fail(
                    f"`{self.name}` returned different values when called twice with the same "
                    f"inputs, so it draws its own random numbers (torch.randn, torch.rand_like, ...). "
                    f"Use only the inputs it is given (for instance the noise `eps`), so that the "
                    f"result is a deterministic function of them.",
                    "random",
                )
        raise fail(message, kind)

    def _compare(self, got: Any, expected: Any, exact: bool = False, what: str = "Your function") -> tuple[str, str] | None:
        """``None`` when ``got`` matches ``expected``; else ``(plain-words message, kind)``."""
        if isinstance(expected, (tuple, list)):
            if got is None:
                return (f"{what} returned None; did you forget the `return` statement?", "none")
            if not isinstance(got, (tuple, list)) or len(got) != len(expected):
                return (f"{what} should return {len(expected)} values (a tuple), but returned {_describe(got)}.", "type")
            for k, (g, e) in enumerate(zip(got, expected), start=1):
                problem = self._compare(g, e, exact, what=f"Output {k} of {len(expected)}")
                if problem is not None:
                    return problem
            return None
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if got is None:
                return (f"{what} returned None; did you forget the `return` statement?", "none")
            if not isinstance(got, (int, float)):
                return (f"{what} should return a number, but returned {_describe(got)}.", "type")
            if math.isnan(got) and not math.isnan(expected):
                return (f"{what} returned NaN; look for a square root or logarithm of a negative number, or 0/0.", "nan")
            rtol, atol = (0.0, 0.0) if exact else (self.rtol or 1e-6, self.atol or 1e-9)
            if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
                return (f"{what} returned {_fmt(got)}, but the expected value is {_fmt(expected)}.", "values")
            return None
        if not isinstance(expected, torch.Tensor):
            raise TypeError(f"the reference for {self.name} returned {type(expected).__name__}; checkers compare tensors, numbers, or tuples of them")
        return self._compare_tensors(got, expected, exact, what)

    def _compare_tensors(self, got: Any, expected: torch.Tensor, exact: bool, what: str) -> tuple[str, str] | None:
        if got is None:
            return (f"{what} returned None; did you forget the `return` statement?", "none")
        if isinstance(got, np.ndarray):
            return (
                f"{what} returned a NumPy array; return a torch.Tensor instead (stay with torch "
                f"operations, or convert with torch.from_numpy).", "type",
            )
        if isinstance(got, (list, tuple)):
            return (
                f"{what} returned a {type(got).__name__}; return a single torch.Tensor of shape "
                f"{_shape(expected)} (torch.stack turns a list of tensors into one tensor).", "type",
            )
        if isinstance(got, (int, float)) and expected.numel() > 1:
            return (
                f"{what} returned the single number {_fmt(got)}, but the answer is a tensor of shape "
                f"{_shape(expected)}: one value per entry, not a total.", "shape",
            )
        if isinstance(got, (int, float)):
            got = torch.tensor(got, dtype=expected.dtype)
        if not isinstance(got, torch.Tensor):
            return (f"{what} should return a torch.Tensor, but returned {_describe(got)}.", "type")

        if got.shape != expected.shape:
            hint = ""
            if got.numel() == expected.numel():
                hint = " It has the right number of entries in the wrong arrangement: check reshape, transpose or squeeze."
            elif got.dim() > expected.dim() or got.numel() > expected.numel():
                hint = (
                    " It is larger than expected, which usually comes from an unintended broadcast "
                    "(e.g. shapes (B,) and (B, 1) combine to (B, B)); check the shapes of the tensors you combine."
                )
            elif got.numel() < expected.numel():
                hint = " It has fewer entries than expected: did a sum, mean or index drop a dimension?"
            return (f"{what} returned a tensor of shape {_shape(got)}, but the expected shape is {_shape(expected)}.{hint}", "shape")

        exp_finite = torch.isfinite(expected) if expected.is_floating_point() else torch.ones_like(expected, dtype=torch.bool)
        if got.is_floating_point() or got.is_complex():
            bad = ~torch.isfinite(got) & exp_finite
            if bool(bad.any()):
                first = int(torch.nonzero(bad.flatten())[0])
                word = "NaN" if bool(torch.isnan(got).flatten()[first]) else "infinite"
                return (
                    f"{what} returned {int(bad.sum())} {word} value(s) (the first at index "
                    f"{_index(first, got.shape)}) where the answer is finite. Look for a square "
                    f"root or logarithm of a negative number, a division by zero, or 0/0.", "nan",
                )

        if got.dtype != expected.dtype:
            return (
                f"{what} returned dtype {_dtype_name(got.dtype)}, but the inputs were "
                f"{_dtype_name(expected.dtype)} and so should the answer be. New tensors should take the "
                f"dtype of the inputs (torch.zeros_like(x), torch.ones(n, dtype=x.dtype)); avoid "
                f"round trips through NumPy or Python floats.", "dtype",
            )

        rtol, atol = (0.0, 0.0) if exact else self._tolerance(expected)
        g, e = got.detach(), expected.detach()
        if torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            return None
        if exact:
            return ("values differ", "values")
        return (self._value_diagnosis(g, e, rtol, atol, what), "values")

    @staticmethod
    def _value_diagnosis(got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, what: str) -> str:
        g = got.to(torch.float64).flatten()
        e = expected.to(torch.float64).flatten()
        ok = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        err = (g - e).abs()
        err[ok] = 0.0
        worst = int(torch.argmax(err))
        detail = (
            f"At index {_index(worst, expected.shape)} the answer is {_fmt(e[worst].item())} but "
            f"yours is {_fmt(g[worst].item())}; {int((~ok).sum())} of {e.numel()} entries differ."
        )
        if e.numel() >= 2:
            nonzero = e.abs() > 1e-12
            if bool(nonzero.all()):
                ratio = g / e
                c = ratio.median().item()
                if math.isfinite(c) and torch.allclose(ratio, torch.full_like(ratio, c), rtol=1e-4, atol=1e-6):
                    if abs(c + 1) < 1e-4:
                        return f"{what} has the wrong sign: every entry is the negative of the answer. {detail}"
                    return (
                        f"{what} is the answer multiplied by the same constant {_fmt(c)} everywhere: "
                        f"a constant factor is missing or extra. {detail}"
                    )
            shift = (g - e).median().item()
            if torch.allclose(g - e, torch.full_like(e, shift), rtol=0, atol=max(atol, 1e-6)):
                return f"{what} is the answer plus the same constant {_fmt(shift)} everywhere: a constant term is missing or extra. {detail}"
        return f"{what} gives wrong values. {detail}"
