"""The exercise harness: run hidden test cases on a student's function and explain the first failure.

See the package docstring (:mod:`diffusion_lib.exercises`) for how a chapter adds its checkers.

How a check runs, case by case (the first failing case stops the check):

1. the case's inputs are cloned, the hidden reference computes the expected answer and the
   student's function is called on separate clones, with the global random state saved and
   restored, so a check never changes what later cells of the notebook draw; for a
   ``differentiable`` checker the floating-point inputs of both calls require gradients;
2. a ``NotImplementedError`` means an unsolved stub; any other exception is reported with the
   inputs that triggered it (the original traceback stays attached);
3. the inputs must be unchanged (no in-place edits), the answer must not be ``None`` and must be
   a tensor where the reference returns a tensor (a Python number is refused unless
   ``allow_number=True``), or a number, or a tuple of them, matching the reference;
4. if the answer does not match: each *known mistake* (a reference implementation of a typical
   wrong answer) is tried, and its message is shown when the student's answer matches it;
   otherwise the harness names the generic problem: a function that draws its own random
   numbers, the wrong shape, NaN or infinite values, the wrong dtype (naming the input dtypes),
   float32 precision in a float64 computation, an answer off by a constant factor, a sign, a
   constant offset, a permutation or transposition, a broadcast along an axis, or differing
   only in some rows (with their timesteps when the checker knows which argument is ``t``);
5. for a ``differentiable`` checker whose values match: the answer must still be connected to
   the inputs by autograd, and the gradient of ``(answer * W).sum()`` (``W`` a fixed random
   weight) with respect to each input must match the reference's; a known mistake that
   reproduces the student's values *and* gradients is named first.

Every :class:`Checker` registers itself; :func:`all_checkers` lists them (tests use it).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["ExerciseFeedback", "Case", "Mistake", "Checker", "all_checkers"]

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
      ``"dtype"``, ``"precision"`` (float32 arithmetic in a float64 computation), ``"nan"``,
      ``"python-number"`` (a number where a tensor is due), ``"detached"`` (the answer is cut
      off from autograd), ``"gradient"`` (right values, wrong gradient), ``"mistake"``,
      ``"values"``, ``"random"``, ``"in-place"``, ``"exception"``, ``"type"``, ...;
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
    torch.float64: (1e-9, 1e-11),  # tight enough to notice float32 arithmetic (relative error ~1e-7)
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
    if isinstance(value, np.generic):
        return f"NumPy scalar {value!r}"
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


def _is_number(value: Any) -> bool:
    """A Python or NumPy scalar (what ``.item()``, ``float(...)`` or NumPy arithmetic return)."""
    return isinstance(value, (int, float, complex, np.generic)) and not isinstance(value, torch.Tensor)


def _flat_tensors(value: Any) -> list[Any]:
    """The leaves of a (nested) tuple/list answer, in order; a single answer is one leaf."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _flat_tensors(v)]
    return [value]


def _param_names(fn: Callable[..., Any]) -> list[str]:
    """The positional parameter names of ``fn`` (empty when it has no signature or takes ``*args``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return []
    return [p.name for p in params]


def _join(items: Sequence[str], limit: int = 6) -> str:
    items = list(items)
    text = ", ".join(items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _digits(got: torch.Tensor, expected: torch.Tensor) -> tuple[float, int]:
    """Largest relative difference (relative to the largest entry of ``expected``) and the number
    of significant digits on which the two agree."""
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    diff = float((got - expected).abs().max()) if expected.numel() else 0.0
    rel = diff / scale if scale > 0 else diff
    return rel, (max(0, int(math.floor(-math.log10(rel)))) if rel > 0 else 16)


_DETACH_CAUSES = (
    "Common causes: `.detach()`, `.item()` or `float(...)`, a `with torch.no_grad():` block, "
    "building a new tensor from results with `torch.tensor(...)`, or a round trip through NumPy."
)

# Every Checker ever created, in creation order (see all_checkers).
_REGISTRY: list["Checker"] = []


def all_checkers(module: str | None = None) -> list["Checker"]:
    """Every :class:`Checker` created so far, in creation order.

    ``module`` keeps only the checkers defined in modules whose name starts with it, e.g.
    ``all_checkers("diffusion_lib.exercises.")`` for the book's chapters (import the chapter
    modules first). A checker's defining module is ``checker.module``.
    """
    if module is None:
        return list(_REGISTRY)
    return [c for c in _REGISTRY if (c.module or "").startswith(module)]


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
        Seed of the generator passed to ``cases`` (and of the gradient weights).
    differentiable:
        The answer must carry gradients (a loss, a reparameterised sample, a network's
        forward pass): the floating-point tensor inputs (or those in ``grad_args``) require
        gradients, an answer cut off from autograd fails with kind ``"detached"``, and when the
        values match, the gradients of ``(answer * W).sum()`` with respect to those inputs must
        match the reference's (kind ``"gradient"``).
    grad_args:
        Positional indices of the inputs to differentiate with respect to (default: every
        floating-point tensor input). Only used when ``differentiable``.
    allow_number:
        Accept a Python number where the reference returns a one-element tensor (by default
        that is refused with kind ``"python-number"``: ``.item()`` loses dtype and gradient).
    arg_names:
        Names of the inputs used in messages (default: the reference's parameter names).
    t_arg:
        Positional index of a timestep tensor of shape ``(B,)``; when the answer's first axis is
        that batch, a wrong answer is described by the ``t`` values of the rows that differ.
    alternatives:
        Other correct solutions, written differently from the reference (``torch.cumprod``
        against a log-sum, a loop against a vectorised form); :meth:`validate` asserts that
        each passes, so the checker does not reject a correct answer written another way.
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
        differentiable: bool = False,
        grad_args: Sequence[int] | None = None,
        allow_number: bool = False,
        arg_names: Sequence[str] | None = None,
        t_arg: int | None = None,
        alternatives: Sequence[Callable[..., Any]] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("Checker(name=...) must be the non-empty name of the function the exercise asks for")
        if not callable(reference):
            raise TypeError(f"Checker(reference=...) must be a function, got {type(reference).__name__}")
        if not callable(cases) and not (isinstance(cases, Sequence) and all(isinstance(c, Case) for c in cases)):
            raise TypeError("Checker(cases=...) must be a list of Case objects or a function generator -> list of Case")
        if not all(isinstance(m, Mistake) for m in mistakes):
            raise TypeError("Checker(mistakes=...) must be a list of Mistake objects")
        if isinstance(alternatives, Mistake) or not all(callable(a) and not isinstance(a, Mistake) for a in alternatives):
            raise TypeError("Checker(alternatives=...) must be a list of functions (correct solutions), not Mistake objects")
        if grad_args is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in grad_args):
            raise TypeError("Checker(grad_args=...) must be a tuple of positional argument indices")
        if t_arg is not None and (not isinstance(t_arg, int) or isinstance(t_arg, bool)):
            raise TypeError("Checker(t_arg=...) must be the positional index of the timestep argument")
        if arg_names is not None and (isinstance(arg_names, str) or not all(isinstance(n, str) for n in arg_names)):
            raise TypeError("Checker(arg_names=...) must be a tuple of strings")
        self.name = name
        self.reference = reference
        self._cases = cases
        self.mistakes = tuple(mistakes)
        self.alternatives = tuple(alternatives)
        self.label = label
        self.rtol = rtol
        self.atol = atol
        self.seed = seed
        self.differentiable = bool(differentiable)
        self.grad_args = tuple(grad_args) if grad_args is not None else None
        self.allow_number = bool(allow_number)
        self.t_arg = t_arg
        if arg_names is not None:
            self.arg_names = list(arg_names)
        else:
            try:
                self.arg_names = list(inspect.signature(reference).parameters)
            except (TypeError, ValueError):  # builtins without a signature
                self.arg_names = []
        self._ctx: tuple | None = None  # the arguments of the case being checked (for messages)
        try:
            self.module: str | None = sys._getframe(1).f_globals.get("__name__")
        except (AttributeError, ValueError):
            self.module = None
        _REGISTRY.append(self)

    def __repr__(self) -> str:
        return (
            f"Checker(name={self.name!r}, label={self.label!r}, {len(self.mistakes)} known mistakes, "
            f"{len(self.alternatives)} alternatives{', differentiable' if self.differentiable else ''})"
        )

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
        finally:
            self._ctx = None
        print(f"✓ {self.name}: all {len(cases)} checks passed")

    def validate(self, min_mistakes: int = 0, min_alternatives: int = 0) -> None:
        """Self-test for checker authors (call it from ``tests/``): the reference passes, every
        correct alternative passes, every known mistake fails with its own message, and there
        are at least ``min_mistakes`` mistakes and ``min_alternatives`` alternatives.
        Raises ``AssertionError`` naming the first problem otherwise."""
        who = f"{self.name} ({self.label})" if self.label else self.name
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                self(self.reference)
            except ExerciseFeedback as fb:
                raise AssertionError(f"{who}: the reference itself fails its checks: {fb}") from fb
            for k, alt in enumerate(self.alternatives, start=1):
                try:
                    self(alt)
                except ExerciseFeedback as fb:
                    raise AssertionError(
                        f"{who}: correct alternative {k} ({getattr(alt, '__name__', 'function')}) is rejected: {fb}"
                    ) from fb
            for m in self.mistakes:
                try:
                    self(m.fn)
                except ExerciseFeedback as fb:
                    if fb.mistake is not m:
                        raise AssertionError(
                            f"{who}: the mistake {m.message[:60]!r}... was diagnosed as {str(fb)[:300]!r}; "
                            f"reorder the mistakes or add a case where they differ"
                        ) from None
                else:
                    raise AssertionError(f"{who}: the mistake {m.message[:60]!r}... passed every check")
        if len(self.mistakes) < min_mistakes:
            raise AssertionError(
                f"{who}: has {len(self.mistakes)} known mistakes, at least {min_mistakes} are required: "
                f"add Mistake(message, fn) entries for typical wrong answers"
            )
        if len(self.alternatives) < min_alternatives:
            raise AssertionError(
                f"{who}: has {len(self.alternatives)} correct alternatives, at least {min_alternatives} are "
                f"required: add differently written correct solutions with alternatives=[...]"
            )

    # ---------------------------------------------------------------- internals

    def _exercise(self) -> str:
        return self.label or self.name

    def _names(self, n: int) -> list[str]:
        return self.arg_names if len(self.arg_names) == n else [f"argument {i + 1}" for i in range(n)]

    def _inputs(self, args: tuple) -> str:
        return ", ".join(f"{n} = {_describe(a)}" for n, a in zip(self._names(len(args)), args))

    def _tolerance(self, expected: torch.Tensor) -> tuple[float, float]:
        rtol, atol = _TOLERANCES.get(expected.dtype, (0.0, 0.0))
        return (self.rtol if self.rtol is not None else rtol, self.atol if self.atol is not None else atol)

    def _grad_indices(self, args: tuple) -> tuple[int, ...]:
        if not self.differentiable:
            return ()
        if self.grad_args is None:
            return tuple(i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point())
        for i in self.grad_args:
            if not (-len(args) <= i < len(args)) or not (isinstance(args[i], torch.Tensor) and args[i].is_floating_point()):
                raise TypeError(f"Checker {self.name}: grad_args contains {i}, which is not a floating-point tensor input")
        return tuple(i % len(args) for i in self.grad_args)

    @staticmethod
    def _prepare(args: tuple, grad_idx: tuple[int, ...]) -> tuple:
        cloned = list(_clone(args))
        for i in grad_idx:
            cloned[i] = cloned[i].requires_grad_(True)
        return tuple(cloned)

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
            text = str(err)
            if isinstance(err, RuntimeError) and "leaf Variable that requires grad" in text and "in-place" in text:
                raise ExerciseFeedback(
                    f"{header}\nYour function changed one of its inputs in place (for example with "
                    f"`-=`, `*=`, an indexed assignment `x[...] = ...`, or a method ending in `_` such as "
                    f"`.mul_()`); autograd refuses that. Leave the inputs untouched and compute a new "
                    f"tensor instead, e.g. `y = x * c` rather than `x *= c`.",
                    exercise=self._exercise(), check=case.description, kind="in-place",
                ) from err
            if isinstance(err, RuntimeError) and "numpy() on Tensor that requires grad" in text:
                raise ExerciseFeedback(
                    f"{header}\nYour function converts a tensor to NumPy (`.numpy()`), which autograd "
                    f"cannot follow, so no gradient would reach the inputs. Use torch operations "
                    f"throughout (torch.exp, torch.sqrt, ...) and return a tensor.",
                    exercise=self._exercise(), check=case.description, kind="detached",
                ) from err
            raise ExerciseFeedback(
                f"{header}\n`{self.name}` raised {type(err).__name__}: {err}\n"
                f"It was called with {self._inputs(args)}. The traceback above shows the line "
                f"in your code.",
                exercise=self._exercise(), check=case.description, kind="exception",
            ) from err

    def _run_case(self, fn: Callable[..., Any], case: Case, i: int, n: int) -> None:
        __tracebackhide__ = True  # noqa: F841
        header = f"{self.name} did not pass check {i} of {n} ({case.description})."
        self._ctx = case.args
        grad_idx = self._grad_indices(case.args)
        ref_args = self._prepare(case.args, grad_idx)
        expected = self.reference(*ref_args)
        args = self._prepare(case.args, grad_idx)
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

        if grad_idx and got is not None and any(
            _is_number(g) or isinstance(g, np.ndarray) for g in _flat_tensors(got)
        ) and any(isinstance(e, torch.Tensor) and e.requires_grad for e in _flat_tensors(expected)):
            leaf = next(g for g in _flat_tensors(got) if _is_number(g) or isinstance(g, np.ndarray))
            kind_text = "a NumPy array" if isinstance(leaf, np.ndarray) else f"a plain number ({_describe(leaf)})"
            raise fail(
                f"`{self.name}` returned {kind_text}, not a tensor, so it is cut off from autograd: "
                f"no gradient can flow back to the inputs and a model trained with it would not learn. "
                f"{_DETACH_CAUSES} Keep every step a torch operation on the inputs and return the "
                f"tensor itself.",
                "detached",
            )

        problem = self._compare(got, expected)
        if problem is None and grad_idx:
            weights = self._weights(expected, i)
            problem, got_grads = self._gradient_problem(fn, got, expected, args, ref_args, grad_idx, weights)
            if problem is None:
                return
            # A known mistake with the same values and the same gradients keeps its own message.
            for m in self.mistakes:
                m_args = self._prepare(case.args, grad_idx)
                try:
                    wrong = m.fn(*m_args)
                except Exception:  # a mistake that cannot run on inputs requiring grad: skip it
                    continue
                if self._compare(got, wrong) is None and self._same_grads(
                    got_grads, self._backward(wrong, expected, [m_args[j] for j in grad_idx], weights)
                ):
                    raise fail(m.message, "mistake", m)
            raise fail(*problem)
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
            again = self._call(fn, self._prepare(case.args, grad_idx), header, case)
            if self._compare(again, got, exact=True) is not None:
                raise fail(
                    f"`{self.name}` returned different values when called twice with the same "
                    f"inputs, so it draws its own random numbers (torch.randn, torch.rand_like, ...). "
                    f"Use only the inputs it is given (for instance the noise `eps`), so that the "
                    f"result is a deterministic function of them.",
                    "random",
                )
        raise fail(message, kind)

    # ------------------------------------------------------------- gradients

    def _weights(self, expected: Any, case_index: int) -> list[torch.Tensor | None]:
        """Fixed random weights W, one per tensor leaf of the answer: the check backpropagates
        ``sum((answer * W).sum())``, which tests every entry's gradient at once."""
        g = torch.Generator().manual_seed(10_007 * (self.seed + 1) + case_index)
        out = []
        for e in _flat_tensors(expected):
            if isinstance(e, torch.Tensor) and e.is_floating_point() and e.requires_grad:
                out.append(torch.randn(e.shape, generator=g, dtype=torch.float64).to(e.dtype))
            else:
                out.append(None)
        return out

    @staticmethod
    def _backward(output: Any, expected: Any, inputs: list[torch.Tensor], weights: list) -> tuple | None:
        """Gradients of ``sum((leaf * W).sum())`` over the answer's leaves that the reference
        differentiates; ``None`` when one of those leaves is cut off from autograd."""
        leaves = _flat_tensors(output)
        terms = []
        for leaf, w in zip(leaves, weights):
            if w is None:
                continue
            if not isinstance(leaf, torch.Tensor) or not leaf.requires_grad:
                return None
            terms.append((leaf * w.to(leaf.dtype)).sum())
        if not terms or len(leaves) != len(weights):
            return None
        return torch.autograd.grad(sum(terms), inputs, allow_unused=True, retain_graph=True)

    def _same_grads(self, a: tuple | None, b: tuple | None) -> bool:
        if a is None or b is None:
            return a is None and b is None
        for ga, gb in zip(a, b):
            if ga is None or gb is None:
                if not (ga is None and gb is None):
                    return False
                continue
            rtol, atol = self._tolerance(gb)
            if ga.shape != gb.shape or not torch.allclose(ga, gb, rtol=rtol, atol=atol, equal_nan=True):
                return False
        return True

    def _gradient_problem(
        self, fn: Callable[..., Any], got: Any, expected: Any, args: tuple, ref_args: tuple,
        grad_idx: tuple[int, ...], weights: list,
    ) -> tuple[tuple[str, str] | None, tuple | None]:
        """``(problem, student's gradients)``; ``problem`` is ``None`` when the gradients match."""
        if all(w is None for w in weights):
            raise RuntimeError(
                f"Checker {self.name}: differentiable=True, but the reference's answer does not require "
                f"grad; write the reference with differentiable torch operations"
            )
        ref_grads = self._backward(expected, expected, [ref_args[j] for j in grad_idx], weights)
        got_leaves, n_leaves = _flat_tensors(got), len(weights)
        for k, (leaf, w) in enumerate(zip(got_leaves, weights), start=1):
            if w is not None and not (isinstance(leaf, torch.Tensor) and leaf.requires_grad):
                which = f"Output {k} of {n_leaves} of `{self.name}`" if n_leaves > 1 else f"`{self.name}`"
                return ((
                    f"{which} has the right values, but it is cut off from autograd (requires_grad is "
                    f"False), so no gradient flows back to the inputs and a model trained with it would "
                    f"not learn. {_DETACH_CAUSES} Keep every step a torch operation on the inputs."
                ), "detached"), None
        got_grads = self._backward(got, expected, [args[j] for j in grad_idx], weights)
        student = _param_names(fn)
        for j, rg, sg in zip(grad_idx, ref_grads, got_grads):
            pname = student[j] if len(student) == len(args) else (self.arg_names[j] if len(self.arg_names) == len(args) else None)
            who = f"`{pname}` (argument {j + 1})" if pname else f"argument {j + 1}"
            if rg is None and sg is None:
                continue
            if sg is None:
                return ((
                    f"`{self.name}` has the right values, but no gradient reaches its input {who}, although "
                    f"the answer depends on it: the part of the computation that uses {who} is cut off "
                    f"from autograd. {_DETACH_CAUSES} Compute it with torch operations on the input itself."
                ), "detached"), got_grads
            if rg is None:
                rg = torch.zeros_like(sg)
            rtol, atol = self._tolerance(rg)
            if not torch.allclose(sg, rg, rtol=rtol, atol=atol, equal_nan=True):
                diagnosis = self._value_diagnosis(
                    sg.detach(), rg.detach(), rtol, atol, "Your gradient", noun="the correct gradient", rows=False,
                )
                return ((
                    f"`{self.name}` has the right values but the wrong gradient with respect to {who} "
                    f"(the check backpropagates (answer * W).sum() for a fixed random W). {diagnosis} "
                    f"Right values with a wrong gradient come from a step autograd does not see as you "
                    f"intend: `.detach()` on part of an expression (as in `x + (f(x) - x).detach()`), "
                    f"a custom torch.autograd.Function, or an in-place change of an intermediate. "
                    f"Write the formula directly with torch operations."
                ), "gradient"), got_grads
        return None, got_grads

    # ------------------------------------------------------------- comparison

    def _compare(self, got: Any, expected: Any, exact: bool = False, what: str = "Your function") -> tuple[str, str] | None:
        """``None`` when ``got`` matches ``expected``; else ``(plain-words message, kind)``."""
        if isinstance(expected, np.generic):
            expected = expected.item()
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
            if isinstance(got, np.generic):
                got = got.item()
            if got is None:
                return (f"{what} returned None; did you forget the `return` statement?", "none")
            if not isinstance(got, (int, float)):
                return (f"{what} should return a number, but returned {_describe(got)}.", "type")
            if math.isnan(got) and not math.isnan(expected):
                return (f"{what} returned NaN; look for a square root or logarithm of a negative number, or 0/0.", "nan")
            rtol, atol = (0.0, 0.0) if exact else (self.rtol or 1e-6, self.atol or 1e-9)
            if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
                if exact:
                    return ("values differ", "values")
                if _fmt(got) == _fmt(expected):  # agree to 6 digits: show enough digits to see the gap
                    return (
                        f"{what} returned {got:.12g}, but the expected value is {expected:.12g}: they agree "
                        f"to about 6 significant digits but not to the precision the check needs "
                        f"(relative tolerance {rtol:g}). An intermediate step was probably computed in "
                        f"float32 (or with a small epsilon added); compute it in the dtype of the inputs.",
                        "precision",
                    )
                return (f"{what} returned {_fmt(got)}, but the expected value is {_fmt(expected)}.", "values")
            return None
        if not isinstance(expected, torch.Tensor):
            raise TypeError(f"the reference for {self.name} returned {type(expected).__name__}; checkers compare tensors, numbers, or tuples of them")
        return self._compare_tensors(got, expected, exact, what)

    def _input_dtypes(self) -> tuple[str, str | None]:
        """``(text, name of the first floating input)``: ``"float64"`` when every tensor input of
        the case has that dtype, else ``"x0: float32, t: int64"``."""
        args = self._ctx or ()
        names = self._names(len(args))
        tensors = [(n, a) for n, a in zip(names, args) if isinstance(a, torch.Tensor)]
        if not tensors:
            return ("plain Python numbers", None)
        first = next((n for n, a in tensors if a.is_floating_point()), None)
        dtypes = {a.dtype for _, a in tensors}
        if len(dtypes) == 1:
            return (_dtype_name(next(iter(dtypes))), first)
        return (", ".join(f"{n}: {_dtype_name(a.dtype)}" for n, a in tensors), first)

    def _dtype_message(self, got: torch.Tensor, expected: torch.Tensor, what: str) -> str:
        inputs, first = self._input_dtypes()
        x = first if first and first.isidentifier() else "x"
        g, e = _dtype_name(got.dtype), _dtype_name(expected.dtype)
        if inputs == e:
            head = f"{what} returned dtype {g}, but the inputs were {e} and so should the answer be."
        else:
            head = f"{what} returned dtype {g}, but the answer should be {e} (the inputs were {inputs})."
        low = {torch.float16, torch.bfloat16, torch.float32}
        if got.dtype in low and expected.dtype == torch.float64:
            cause = (
                f"A constant or coefficient you created is {g} and pulled the result down: "
                f"torch.tensor(0.5), torch.ones(n), torch.linspace and torch.arange are float32 unless "
                f"told otherwise, and `.float()` converts to float32. Create it with "
                f"dtype={x}.dtype, or use torch.as_tensor(value, dtype={x}.dtype)."
            )
        elif got.dtype == torch.float64 and expected.dtype in low:
            cause = (
                f"Something promoted the result to float64: a NumPy array or NumPy scalar, a tensor "
                f"created with dtype=torch.float64, or `.double()`. Keep constants as Python floats or "
                f"create them with dtype={x}.dtype, and avoid NumPy inside the function."
            )
        elif expected.is_floating_point() and not got.is_floating_point():
            cause = (
                f"Your result is an integer or boolean tensor: a step such as `//`, torch.arange without "
                f"dtype, or a comparison dropped the fractional part. Use floating-point operations "
                f"(dtype={x}.dtype)."
            )
        elif got.is_floating_point() and not expected.is_floating_point():
            cause = (
                f"The answer is {e} (indices, counts or labels); convert with `.to(torch.{e})` or "
                f"`.long()` where the values are whole numbers."
            )
        else:
            cause = (
                f"New tensors should take the dtype of the inputs (torch.zeros_like({x}), "
                f"torch.ones(n, dtype={x}.dtype)); avoid round trips through NumPy or Python floats."
            )
        return f"{head} {cause}"

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
        if _is_number(got) and expected.numel() > 1:
            return (
                f"{what} returned the single number {_describe(got)}, but the answer is a tensor of shape "
                f"{_shape(expected)}: one value per entry, not a total.", "shape",
            )
        if _is_number(got):
            if not self.allow_number and not exact:
                value = got.item() if isinstance(got, np.generic) else got
                try:
                    right = math.isclose(float(value), float(expected.detach().reshape(())),
                                         rel_tol=self._tolerance(expected)[0] or 1e-6, abs_tol=self._tolerance(expected)[1])
                except (TypeError, ValueError):
                    right = False
                verdict = "Its value is right" if right else f"(Its value also differs from the answer, {_fmt(float(expected.detach().reshape(())))}.)"
                return (
                    f"{what} returned a plain number ({_describe(got)}), but the answer is a tensor "
                    f"(shape {_shape(expected)}, {_dtype_name(expected.dtype)}). {verdict + ', but a' if right else verdict + ' A'} "
                    f"number loses the dtype and the gradient: return the tensor itself, e.g. do not "
                    f"call `.item()` or `float(...)` on it, and do not build it with math.* functions "
                    f"instead of torch.*.", "python-number",
                )
            got = torch.tensor(got.item() if isinstance(got, np.generic) else got, dtype=expected.dtype)
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
            return (self._dtype_message(got, expected, what), "dtype")

        rtol, atol = (0.0, 0.0) if exact else self._tolerance(expected)
        g, e = got.detach(), expected.detach()
        if torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            return None
        if exact:
            return ("values differ", "values")
        if e.dtype == torch.float64 and bool(torch.isfinite(e).all()):
            rel, digits = _digits(g, e)
            if 0 < rel <= 2e-5:
                first = self._input_dtypes()[1]
                x = first if first and first.isidentifier() else "x"
                return ((
                    f"{what} is float64 but agrees with the answer only to about {digits} significant "
                    f"digits (largest relative difference {rel:.1e}), which is float32 precision: an "
                    f"intermediate step was computed in float32. A coefficient created with "
                    f"torch.tensor(...), torch.linspace or `.float()` is float32 even when the inputs are "
                    f"float64; create every constant with dtype={x}.dtype (or torch.as_tensor(value, "
                    f"dtype={x}.dtype)) or keep it a Python float. (If you added a small epsilon for "
                    f"stability, leave it out.)"
                ), "precision")
        return (self._value_diagnosis(g, e, rtol, atol, what), "values")

    # ------------------------------------------------------------- diagnosis

    def _t_values(self, batch: int) -> list | None:
        """The timesteps of the current case, one per row, when ``t_arg`` names a (B,) tensor."""
        if self.t_arg is None or self._ctx is None or not (-len(self._ctx) <= self.t_arg < len(self._ctx)):
            return None
        t = self._ctx[self.t_arg]
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != batch:
            return None
        return [(int(v) if float(v).is_integer() else _fmt(float(v))) for v in t.tolist()]

    def _value_diagnosis(
        self, got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, what: str,
        noun: str = "the answer", rows: bool = True,
    ) -> str:
        """Say *what* differs: how many entries and where, a constant factor, sign or offset, a
        permutation, transposition or broadcast along an axis, or the rows (timesteps) that differ."""
        shape = expected.shape
        g = got.to(torch.float64).flatten()
        e = expected.to(torch.float64).flatten()
        ok = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        n_bad, total = int((~ok).sum()), e.numel()
        err = (g - e).abs()
        err[ok] = 0.0
        worst = int(torch.argmax(err))
        first = [_index(int(k), shape) for k in torch.nonzero(~ok).flatten()[:3]]
        where = f" (the first at {', '.join(first)})" if n_bad < total and first else ""
        detail = (
            f"At index {_index(worst, shape)} {noun} is {_fmt(e[worst].item())} but yours is "
            f"{_fmt(g[worst].item())}; {n_bad} of {total} entries differ{where}."
        )
        cap = noun[0].upper() + noun[1:]
        if total >= 2:
            nonzero = e.abs() > 1e-12
            if bool(nonzero.all()):
                ratio = g / e
                c = ratio.median().item()
                if math.isfinite(c) and torch.allclose(ratio, torch.full_like(ratio, c), rtol=1e-4, atol=1e-6):
                    if abs(c + 1) < 1e-4:
                        return f"{what} has the wrong sign: every entry is the negative of {noun}. {detail}"
                    if _fmt(c) != "1":
                        return (
                            f"{what} is {noun} multiplied by the same constant {_fmt(c)} everywhere: "
                            f"a constant factor is missing or extra. {detail}"
                        )
                    rel, digits = _digits(g, e)
                    return (
                        f"{what} agrees with {noun} to about {digits} significant digits (largest relative "
                        f"difference {rel:.1e}), but not to the precision the check needs (relative "
                        f"tolerance {rtol:g}): a small numerical difference such as an intermediate "
                        f"computed in lower precision or an epsilon added for stability. {detail}"
                    )
            shift = (g - e).median().item()
            if torch.allclose(g - e, torch.full_like(e, shift), rtol=0, atol=max(atol, 1e-6)):
                return f"{what} is {noun} plus the same constant {_fmt(shift)} everywhere: a constant term is missing or extra. {detail}"
        gs, es = got.to(torch.float64), expected.to(torch.float64)
        structural = self._structure(gs, es, rtol, atol, noun) if gs.dim() >= 1 else None
        if structural:
            return f"{what} {structural} {detail}"
        if rows and gs.dim() >= 1 and shape[0] >= 2 and n_bad < total:
            bad_rows = (~ok).reshape(shape[0], -1).any(dim=1)
            rows_bad = [int(r) for r in torch.nonzero(bad_rows).flatten()]
            if 0 < len(rows_bad) < shape[0]:
                sub = self._sub_relation(gs[bad_rows].flatten(), es[bad_rows].flatten(), noun)
                t = self._t_values(shape[0])
                if t is not None:
                    t_bad = sorted({t[r] for r in rows_bad}, key=float)
                    t_ok = sorted({t[r] for r in range(shape[0]) if r not in rows_bad}, key=float)
                    if len(rows_bad) <= shape[0] - len(rows_bad):
                        hint = (f"look at how t = {t_bad[0]} is handled (an edge such as t = 1 or t = T, "
                                f"or an index off by one)")
                    else:
                        hint = ("check that each row uses its own t (for instance t[:, None] against x), "
                                "not one value such as t[0] for the whole batch")
                    return (
                        f"{what} differs from {noun} only in some rows: the rows with t = "
                        f"{_join([str(v) for v in t_bad])} differ{sub}; the others (t = "
                        f"{_join([str(v) for v in t_ok])}) agree: {hint}. {detail}"
                    )
                word = "row" if len(rows_bad) == 1 else "rows"
                return (
                    f"{what} differs from {noun} only in {word} {_join([str(r) for r in rows_bad])} of "
                    f"{shape[0]} (along the first axis){sub}; the other rows agree. {detail}"
                )
        if gs.dim() >= 2 and shape[0] >= 2 and n_bad > 0:
            diff = gs - es
            if bool(torch.allclose(diff, diff[:1].expand_as(diff), rtol=1e-6, atol=max(atol, 1e-9))):
                return (
                    f"{what} is off from {noun} by the same amounts in every slice along axis 0 "
                    f"(size {shape[0]}): the error does not depend on that index, so a term that is the "
                    f"same for every row is wrong, missing or extra. {detail}"
                )
        if 0 < n_bad <= total // 2:
            return f"{what} gives wrong values in only some entries; the others agree with {noun}. {detail}"
        if 0 < n_bad < total:
            return f"{what} gives wrong values in most entries. {detail}"
        t = self._t_values(shape[0]) if gs.dim() >= 1 and rows else None
        t_text = f" (every row differs: t = {_join([str(v) for v in t])})" if t is not None else ""
        return f"{what} gives wrong values: every entry differs from {noun}{t_text}. {detail}"

    @staticmethod
    def _sub_relation(g: torch.Tensor, e: torch.Tensor, noun: str) -> str:
        """How the differing part relates to the answer (factor or sign), or ''."""
        if e.numel() == 0 or not bool((e.abs() > 1e-12).all()):
            return ""
        ratio = g / e
        c = ratio.median().item()
        if math.isfinite(c) and torch.allclose(ratio, torch.full_like(ratio, c), rtol=1e-4, atol=1e-6) and _fmt(c) != "1":
            if abs(c) < 1e-12:
                return " (there yours is 0)"
            return " (there yours is the negative of the answer)" if abs(c + 1) < 1e-4 else f" (there yours is the answer times {_fmt(c)})"
        return ""

    def _structure(self, g: torch.Tensor, e: torch.Tensor, rtol: float, atol: float, noun: str) -> str | None:
        """A transposition, a permutation/reversal/shift along one axis, or a broadcast along one."""
        def close(a: torch.Tensor, b: torch.Tensor) -> bool:
            return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))

        def axis_name(d: int) -> str:
            if d == 0 and self._t_values(g.shape[0]) is not None:
                return "axis 0 (the batch)"
            return f"axis {d}"

        if g.dim() >= 2 and g.shape[-1] == g.shape[-2] and g.shape[-1] >= 2 and close(g, e.transpose(-1, -2)):
            return (
                f"is {noun} transposed: your entry [..., i, j] is its entry [..., j, i]. Check the order "
                f"of a matrix product (A @ B against B @ A, x @ W against x @ W.T) or a .T / .transpose."
            )
        for d in range(g.dim()):
            n = g.shape[d]
            if n < 2 or n * g.numel() > 4_000_000:  # the slice-by-slice comparison below is n x numel
                continue
            gd = g.movedim(d, 0).reshape(n, -1)
            ed = e.movedim(d, 0).reshape(n, -1)
            match = torch.isclose(gd[:, None, :], ed[None, :, :], rtol=rtol, atol=atol, equal_nan=True).all(-1)
            e_const = bool(match.all())  # every slice of the answer along d is the same
            if e_const:
                continue
            if bool(match.any(1).all()):
                # slice i of the student's answer is slice perm[i] of the answer (itself when it matches)
                perm = [i if bool(match[i, i]) else int(torch.nonzero(match[i]).flatten()[0]) for i in range(n)]
                if sorted(perm) == list(range(n)) and perm != list(range(n)):
                    if perm == list(range(n))[::-1]:
                        how = f"is {noun} reversed along {axis_name(d)}: your slice i is its slice {n - 1} - i (a flip)."
                    else:
                        k = (perm[0] - 0) % n
                        if all(perm[i] == (i + k) % n for i in range(n)):
                            how = (f"is {noun} shifted along {axis_name(d)}: your slice i is its slice i + {k} "
                                   f"(modulo {n}); check an index that is off by {k}.")
                        else:
                            how = (f"has the right slices along {axis_name(d)} in the wrong order: your slices "
                                   f"0, 1, 2, ... are its slices {_join([str(p) for p in perm])}.")
                    return how + " Check the order in which you stack, index or permute along that axis."
            g_const = bool(torch.isclose(gd, gd[:1].expand_as(gd), rtol=rtol, atol=atol, equal_nan=True).all())
            if g_const:
                same_as = [j for j in range(n) if bool(match[0, j])]
                which = (f" (every slice equals its slice {same_as[0]}: a single value such as x[0] or t[0] was "
                         f"used for the whole axis)") if same_as else ""
                return (
                    f"is the same for every index along {axis_name(d)} (size {n}), but {noun} varies along "
                    f"it{which}: a value that should differ per entry was broadcast. Check the shapes you "
                    f"combine (a (B,) tensor against (B, 1)), and any sum, mean or index over the wrong axis."
                )
        return None
