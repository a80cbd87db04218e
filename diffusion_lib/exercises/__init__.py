"""Checkers for the book's exercises: hidden tests that explain a mistake in plain words.

Each chapter with exercises has a module ``diffusion_lib.exercises.<chapter>`` whose
``check_<name>(fn)`` functions a notebook calls right after the exercise's code cell::

    from diffusion_lib.exercises.forward_process import check_q_sample
    check_q_sample(q_sample)        # prints "✓ q_sample: all 4 checks passed"

A checker runs the student's function on a few hidden, seeded cases and compares it with a
reference implementation kept in the checker module. The first failing case raises
:class:`ExerciseFeedback` (not an ``AssertionError``) with a message that names the problem:
an unsolved stub, ``None`` returned, a wrong shape or dtype, NaNs, inputs changed in place, a
function that draws its own random numbers, a Python number where a tensor is due, float32
arithmetic in a float64 computation, an answer cut off from autograd or with a wrong gradient,
an answer off by a constant factor, sign, offset, permutation or broadcast, the rows (timesteps)
that differ, or one of the exercise's *known mistakes*. Checking never changes the global random
state of the notebook.

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
- Tolerances follow the dtype of the reference's answer (float32: rtol 1e-4, atol 1e-5;
  float64: rtol 1e-9, atol 1e-11, tight enough to notice float32 arithmetic, reported with kind
  ``"precision"``); pass ``rtol=`` / ``atol=`` to :class:`Checker` to override.
- Where the reference returns a tensor, a Python or NumPy number (``.item()``, ``float(...)``)
  is refused with kind ``"python-number"``; pass ``allow_number=True`` where a number is fine.

More options of :class:`Checker`, for exercises that need them:

- ``differentiable=True`` for anything that is trained through (a loss, a reparameterised
  sample, a layer): every floating-point tensor input (or only ``grad_args=(0, 1)``) requires
  grad, in the student's call and in the reference's, so the reference must be written with
  differentiable torch operations. An answer cut off from autograd (``.detach()``, ``.item()``,
  ``torch.no_grad()``, NumPy, ``torch.tensor(...)`` of results) fails with kind ``"detached"``;
  right values with a wrong gradient of ``(answer * W).sum()`` (``W`` fixed and random) fail
  with kind ``"gradient"``, naming the input. A :class:`Mistake` that reproduces the student's
  values *and* gradients (for instance the answer with one term detached) is named first.
- ``t_arg=1`` says that argument 1 is a timestep tensor of shape ``(B,)``; when the answer's
  first axis is that batch, a wrong answer is described by the ``t`` of the rows that differ
  ("the rows with t = 1 differ; the others agree").
- ``arg_names=("x0", "alpha_bar_t", "eps")`` names the inputs in messages (default: the
  reference's parameter names).
- ``alternatives=[fn, ...]``: correct solutions written differently from the reference (a loop
  against a vectorised form, ``torch.cumprod`` against a log-sum); :meth:`Checker.validate`
  asserts that each one passes, so no correct answer written another way is rejected.

For example, an exercise whose answer is trained through and is indexed by ``t``::

    def _loss(eps_pred, eps, t):                   # the reference
        return ((eps_pred - eps) ** 2).mean(dim=1)

    _LOSS = Checker(
        name="per_example_loss", label="ex-loss-per-example", reference=_loss, cases=_loss_cases,
        differentiable=True, grad_args=(0,), t_arg=2,
        mistakes=[
            Mistake("You summed over the dimensions; the loss is their mean (.mean(dim=1)).",
                    lambda p, e, t: ((p - e) ** 2).sum(dim=1)),
            Mistake("You detached the prediction, so no gradient reaches the network: remove .detach().",
                    lambda p, e, t: ((p.detach() - e) ** 2).mean(dim=1)),
            Mistake("You took the absolute error; the loss is the squared error.",
                    lambda p, e, t: (p - e).abs().mean(dim=1)),
        ],
        alternatives=[
            lambda p, e, t: torch.nn.functional.mse_loss(p, e, reduction="none").mean(dim=1),
            lambda p, e, t: (p - e).pow(2).sum(dim=1) / p.shape[1],
        ],
    )

Testing a chapter's checkers: ``tests/test_exercises_all.py`` imports every module of this
package and runs ``checker.validate(min_mistakes=3, min_alternatives=2)`` on every checker they
define (found with :func:`all_checkers`): the reference and each alternative pass, each mistake
is rejected *with its own message*, and there are at least three mistakes and two alternatives.
It also requires every public ``check_*`` function to have a docstring that names its exercise
label. In ``tests/test_exercises_<chapter>.py`` add ``pytest.raises(ExerciseFeedback,
match=...)`` tests for typical wrong answers that are *not* among the mistakes, asserting the
``kind`` and the words you care about, e.g.::

    def test_a_wrong_first_step_is_named_by_its_t():
        with pytest.raises(ExerciseFeedback) as info:
            check_per_example_loss(lambda p, e, t: torch.where(t == 1, 0 * p[:, 0], ((p - e) ** 2).mean(dim=1)))
        assert info.value.kind == "values" and "rows with t = 1 differ" in str(info.value)

The notebook side (format in CONTRIBUTING.md, "Exercises"): the solution code cell keeps its
signature and docstring outside nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers;
``scripts/student_edition.py`` replaces the region with
``raise NotImplementedError("not implemented yet — see exercise <label>")``, and the checker
turns that into "Exercise <label> is not implemented yet: replace the `raise
NotImplementedError` line with your code ...".
"""

from diffusion_lib.exercises._core import Case, Checker, ExerciseFeedback, Mistake, all_checkers

__all__ = ["ExerciseFeedback", "Case", "Mistake", "Checker", "all_checkers"]
