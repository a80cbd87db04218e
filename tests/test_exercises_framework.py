"""The exercise harness: each generic diagnosis on a toy exercise, determinism, and the self-test."""

from __future__ import annotations

import pytest
import torch

from diffusion_lib.exercises import Case, Checker, ExerciseFeedback, Mistake


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _cases(g: torch.Generator) -> list[Case]:
    return [
        Case("a 2 x 3 matrix", torch.randn(2, 3, generator=g)),
        Case("a float64 vector", torch.randn(5, generator=g, dtype=torch.float64)),
    ]


SQUARE = Mistake("You squared x instead of doubling it.", lambda x: x**2, "square")
TOY = Checker(name="double", label="ex-toy", reference=_double, cases=_cases, mistakes=[SQUARE])


def feedback(fn) -> ExerciseFeedback:
    with pytest.raises(ExerciseFeedback) as info:
        TOY(fn)
    return info.value


def test_feedback_is_not_an_assertion_error():
    assert issubclass(ExerciseFeedback, Exception)
    assert not issubclass(ExerciseFeedback, AssertionError)


def test_reference_passes_with_a_check_line(capsys):
    assert TOY(lambda x: x + x) is None
    assert capsys.readouterr().out.strip() == "✓ double: all 2 checks passed"


def test_unsolved_stub_names_the_exercise_from_the_stub_message():
    def stub(x):
        raise NotImplementedError("not implemented yet — see exercise ex-from-the-notebook")

    fb = feedback(stub)
    assert fb.kind == "not-implemented" and fb.exercise == "ex-from-the-notebook"
    assert str(fb).startswith(
        "Exercise ex-from-the-notebook is not implemented yet: replace the `raise NotImplementedError` line with your code"
    )


def test_bare_not_implemented_error_uses_the_checker_label():
    def stub(x):
        raise NotImplementedError

    with pytest.raises(ExerciseFeedback, match=r"^Exercise ex-toy is not implemented yet"):
        TOY(stub)


def test_none_is_reported_as_a_missing_return():
    def forgot_return(x):
        2 * x  # noqa: B018

    fb = feedback(forgot_return)
    assert fb.kind == "none"
    assert "returned None; did you forget the `return` statement?" in str(fb)
    assert "check 1 of 2 (a 2 x 3 matrix)" in str(fb)


def test_wrong_shape_gives_both_shapes_and_a_hint():
    with pytest.raises(ExerciseFeedback, match=r"shape \(6,\), but the expected shape is \(2, 3\).*wrong arrangement"):
        TOY(lambda x: 2 * x.flatten())
    with pytest.raises(ExerciseFeedback, match=r"shape \(\), but the expected shape is \(2, 3\).*dimension"):
        TOY(lambda x: (2 * x).sum())
    with pytest.raises(ExerciseFeedback, match=r"unintended broadcast"):
        TOY(lambda x: 2 * x + torch.zeros(4, 1, 1))


def test_nan_and_inf_are_reported_with_their_position():
    def nan_in_corner(x):
        y = 2 * x
        y[1, 2] = float("nan")
        return y

    fb = feedback(nan_in_corner)
    assert fb.kind == "nan"
    assert "1 NaN value(s) (the first at index [1, 2])" in str(fb)
    with pytest.raises(ExerciseFeedback, match=r"infinite value"):
        TOY(lambda x: 2 * x / torch.zeros_like(x))


def test_wrong_dtype_is_reported():
    fb = feedback(lambda x: (2 * x).to(torch.float16 if x.dtype == torch.float64 else torch.float64))
    assert fb.kind == "dtype"
    assert "returned dtype float64, but the inputs were float32" in str(fb)


def test_known_mistake_shows_its_message():
    fb = feedback(lambda x: x * x)
    assert fb.kind == "mistake" and fb.mistake is SQUARE
    assert "You squared x instead of doubling it." in str(fb)


def test_generic_factor_sign_and_offset():
    with pytest.raises(ExerciseFeedback, match=r"multiplied by the same constant 3 everywhere"):
        TOY(lambda x: 6 * x)
    with pytest.raises(ExerciseFeedback, match=r"wrong sign"):
        TOY(lambda x: -2 * x)
    with pytest.raises(ExerciseFeedback, match=r"plus the same constant 0.5 everywhere"):
        TOY(lambda x: 2 * x + 0.5)


def test_plain_wrong_values_point_at_the_worst_entry():
    def one_entry_off(x):
        y = 2 * x
        y[0, 1] += 1.0
        return y

    fb = feedback(one_entry_off)
    assert fb.kind == "values"
    assert "At index [0, 1]" in str(fb) and "1 of 6 entries differ" in str(fb)


def test_first_failing_case_is_the_one_reported():
    fb = feedback(lambda x: 2 * x if x.dtype == torch.float32 else 3 * x)
    assert "check 2 of 2 (a float64 vector)" in str(fb)
    assert fb.check == "a float64 vector"


def test_own_random_numbers_are_detected():
    fb = feedback(lambda x: 2 * x + 0.1 * torch.randn_like(x))
    assert fb.kind == "random"
    assert "draws its own random numbers" in str(fb)


def test_in_place_change_of_an_input_is_detected():
    fb = feedback(lambda x: x.mul_(2))
    assert fb.kind == "in-place"
    assert "changed its input `x` in place" in str(fb)


def test_a_crash_names_the_inputs_and_keeps_the_cause():
    def crash(x):
        return x @ torch.ones(7)

    fb = feedback(crash)
    assert fb.kind == "exception"
    assert "raised RuntimeError" in str(fb) and "x = tensor of shape (2, 3), float32" in str(fb)
    assert isinstance(fb.__cause__, RuntimeError)


def test_passing_a_result_instead_of_the_function():
    with pytest.raises(ExerciseFeedback, match=r"needs the function itself.*`check_double\(double\)`"):
        TOY(torch.ones(3))


def test_numpy_and_list_results_are_explained():
    with pytest.raises(ExerciseFeedback, match=r"NumPy array"):
        TOY(lambda x: (2 * x).numpy())
    with pytest.raises(ExerciseFeedback, match=r"returned a list.*torch.stack"):
        TOY(lambda x: [2 * row for row in x])


def test_check_is_deterministic_and_leaves_the_global_rng_alone():
    assert all(torch.equal(a.args[0], b.args[0]) for a, b in zip(TOY.cases(), TOY.cases()))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TOY(lambda x: 2 * x + 0 * torch.rand(1))  # a student function that consumes random numbers
    assert torch.equal(torch.rand(3), expected)


def test_tuple_and_number_outputs():
    def mean_and_var(x):
        return x.mean().item(), x.var(unbiased=False)

    chk = Checker(name="moments", reference=mean_and_var, cases=[Case("four numbers", torch.tensor([1.0, 2.0, 3.0, 6.0]))])
    chk(lambda x: (float(x.sum() / 4), ((x - x.mean()) ** 2).mean()))
    chk(lambda x: (x.mean(), x.var(unbiased=False)))  # a 0-d tensor is accepted for a number
    with pytest.raises(ExerciseFeedback, match=r"should return 2 values"):
        chk(lambda x: x.mean())
    with pytest.raises(ExerciseFeedback, match=r"Output 2 of 2 .*answer is 3.5 but yours is 4.66667"):
        chk(lambda x: (x.mean().item(), x.var(unbiased=True)))
    with pytest.raises(ExerciseFeedback, match=r"Output 1 of 2 returned 2.5, but the expected value is 3"):
        chk(lambda x: (x.median().item() + 0.5, x.var(unbiased=False)))


def test_validate_catches_a_shadowed_or_undetectable_mistake():
    TOY.validate()
    dup = Mistake("another message for the same wrong answer", lambda x: x * x)
    shadowed = Checker(name="double", reference=_double, cases=_cases, mistakes=[SQUARE, dup])
    with pytest.raises(AssertionError, match="was diagnosed as"):
        shadowed.validate()
    harmless = Checker(name="double", reference=_double, cases=_cases, mistakes=[Mistake("not a mistake", lambda x: x + x)])
    with pytest.raises(AssertionError, match="passed every check"):
        harmless.validate()


def test_bad_checker_definitions_are_rejected():
    with pytest.raises(TypeError, match="non-empty string"):
        Case("", torch.ones(1))
    with pytest.raises(TypeError, match="callable"):
        Mistake("message", "not a function")
    with pytest.raises(TypeError, match="list of Case"):
        Checker(name="f", reference=_double, cases=[torch.ones(1)])
    with pytest.raises(TypeError, match="Mistake objects"):
        Checker(name="f", reference=_double, cases=_cases, mistakes=["oops"])
