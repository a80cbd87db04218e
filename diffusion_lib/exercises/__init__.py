"""Checkers for the book's exercises: hidden tests that explain a mistake in plain words.

Each chapter with exercises has a module ``diffusion_lib.exercises.<chapter>`` whose
``check_<name>(fn)`` functions a notebook calls right after the exercise's code cell::

    from diffusion_lib.exercises.forward_process import check_q_sample
    check_q_sample(q_sample)        # prints "✓ q_sample: all 4 checks passed"

A checker runs the student's function on a few hidden, seeded cases and compares it with a
reference implementation kept in the checker module. The first failing case raises
:class:`ExerciseFeedback` (not an ``AssertionError``) with a message that names the problem:
an unsolved stub, ``None`` returned, a wrong shape or dtype, NaNs, inputs changed in place, a
function that draws its own random numbers, an answer off by a constant factor, or one of the
exercise's *known mistakes*. Checking never changes the global random state of the notebook.

Adding checkers for a chapter (about ten lines per exercise)
-------------------------------------------------------------
Create ``diffusion_lib/exercises/<chapter>.py``::

    import torch
    from diffusion_lib.exercises import Case, Checker, Mistake

    def _snr(alpha_bar):                      # the hidden reference: the correct answer
        return alpha_bar / (1 - alpha_bar)

    def _cases(g):                            # g: a seeded torch.Generator (same draws every check)
        return [Case("10 random values of alpha_bar in (0.05, 0.95)", 0.05 + 0.9 * torch.rand(10, generator=g)),
                Case("a float64 schedule", torch.linspace(0.99, 0.01, 50, dtype=torch.float64))]

    _SNR = Checker(name="snr", label="ex-snr-formula", reference=_snr, cases=_cases, mistakes=[
        Mistake("You computed (1 - alpha_bar) / alpha_bar, the inverse of the SNR.", lambda a: (1 - a) / a),
        Mistake("You took a square root: the SNR is alpha_bar / (1 - alpha_bar).", lambda a: (a / (1 - a)).sqrt()),
    ])

    def check_snr(fn) -> None:
        \"\"\"Check ``snr(alpha_bar) -> alpha_bar / (1 - alpha_bar)`` (exercise ex-snr-formula).\"\"\"
        __tracebackhide__ = True
        return _SNR(fn)

Guidelines:

- ``Case(description, *args)`` calls ``fn(*args)``; write the description for a student, it is
  quoted in the feedback. Put a general random case first (it is where a mistake is diagnosed)
  and edge cases (``alpha_bar = 1``, ``T = 1``, float64) after it.
- A :class:`Mistake` is a *reference implementation of a wrong answer* plus the message to show
  when the student's output matches it. Its message says what was done and what to do instead.
- The label is the exercise's ``:label:`` in the notebook, so that messages point at it.
- In ``tests/test_exercises_<chapter>.py`` call ``_SNR.validate()``: it asserts that the
  reference passes and that each mistake is rejected *with its own message*; add a couple of
  ``pytest.raises(ExerciseFeedback, match=...)`` tests for the messages you care most about.
- Tolerances follow the dtype of the reference's answer (float32: rtol 1e-4, atol 1e-5;
  float64: rtol 1e-7, atol 1e-9); pass ``rtol=`` / ``atol=`` to :class:`Checker` to override.

The notebook side (format in CONTRIBUTING.md, "Exercises"): the solution code cell keeps its
signature and docstring outside nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers;
``scripts/student_edition.py`` replaces the region with
``raise NotImplementedError("not implemented yet — see exercise <label>")``, and the checker
turns that into "Exercise <label> is not implemented yet: replace the `raise
NotImplementedError` line with your code ...".
"""

from diffusion_lib.exercises._core import Case, Checker, ExerciseFeedback, Mistake

__all__ = ["ExerciseFeedback", "Case", "Mistake", "Checker"]
