"""The exercise harness: each generic diagnosis on a toy exercise, determinism, and the self-test."""

from __future__ import annotations

import re

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


# ------------------------------------------------------------------ registry

def test_every_checker_registers_itself_with_its_module():
    from diffusion_lib.exercises import all_checkers

    assert TOY in all_checkers() and TOY.module == __name__
    fresh = Checker(name="fresh", reference=_double, cases=_cases)
    assert all_checkers()[-1] is fresh
    assert fresh in all_checkers(__name__) and fresh not in all_checkers("diffusion_lib.exercises.")


# ------------------------------------------- gradients: a toy reparameterisation


def _reparameterize(mu: torch.Tensor, log_var: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * log_var) * eps


def _rep_cases(g: torch.Generator) -> list[Case]:
    def f32():
        return torch.randn(4, 3, generator=g)

    def f64():
        return torch.randn(5, 2, generator=g, dtype=torch.float64)

    return [Case("a batch of 4 codes in 3-D", f32(), f32(), f32()), Case("a float64 batch", f64(), f64(), f64())]


DETACHED_NOISE = Mistake(
    "You detached the noise term, so no gradient reaches log_var: remove .detach().",
    lambda mu, log_var, eps: mu + (torch.exp(0.5 * log_var) * eps).detach(),
    "detached-noise",
)
REP = Checker(
    name="reparameterize", label="ex-toy-reparam", reference=_reparameterize, cases=_rep_cases,
    differentiable=True,
    mistakes=[
        Mistake("You used exp(log_var), the variance, as the standard deviation.",
                lambda mu, log_var, eps: mu + torch.exp(log_var) * eps, "variance"),
        DETACHED_NOISE,
    ],
    alternatives=[
        lambda mu, log_var, eps: torch.addcmul(mu, log_var.mul(0.5).exp(), eps),
        lambda mu, log_var, eps: mu + torch.sqrt(torch.exp(log_var)) * eps,
    ],
)


def rep_feedback(fn) -> ExerciseFeedback:
    with pytest.raises(ExerciseFeedback) as info:
        REP(fn)
    return info.value


def test_differentiable_reference_and_alternatives_pass(capsys):
    REP(_reparameterize)
    for alt in REP.alternatives:
        REP(alt)
    assert capsys.readouterr().out.count("✓ reparameterize: all 2 checks passed") == 3
    REP.validate(min_mistakes=2, min_alternatives=2)


def _no_grad(mu, log_var, eps):
    with torch.no_grad():
        return mu + torch.exp(0.5 * log_var) * eps


@pytest.mark.parametrize("wrong", [
    lambda mu, log_var, eps: _reparameterize(mu, log_var, eps).detach(),
    _no_grad,
    lambda mu, log_var, eps: torch.tensor(_reparameterize(mu, log_var, eps).tolist()),
    lambda mu, log_var, eps: torch.from_numpy(_reparameterize(mu, log_var, eps).detach().numpy().copy()),
], ids=["detach", "no_grad", "torch.tensor", "numpy-round-trip"])
def test_an_answer_cut_off_from_autograd_is_detached(wrong):
    fb = rep_feedback(wrong)
    assert fb.kind == "detached"
    text = str(fb)
    assert "right values" in text and "cut off from autograd" in text
    for cause in ("`.detach()`", "`.item()`", "`float(...)`", "torch.no_grad()", "torch.tensor(...)", "NumPy"):
        assert cause in text


def test_a_python_number_from_item_is_detached_when_gradients_matter():
    chk = Checker(name="total", reference=lambda x: (x**2).sum(), differentiable=True,
                  cases=[Case("three numbers", torch.tensor([1.0, 2.0, 3.0]))])
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x: (x**2).sum().item())
    assert info.value.kind == "detached"
    assert "returned a plain number (14.0), not a tensor" in str(info.value)


def test_calling_numpy_on_an_input_is_explained():
    fb = rep_feedback(lambda mu, log_var, eps: torch.from_numpy(mu.numpy()))
    assert fb.kind == "detached" and "`.numpy()`" in str(fb)


def test_a_gradient_that_misses_one_input_names_it():
    def student(mu, logvar, eps):  # the student's own parameter names are used
        return mu + torch.exp(0.5 * logvar.detach()) * eps

    fb = rep_feedback(student)
    assert fb.kind == "detached"
    assert "no gradient reaches its input `logvar` (argument 2)" in str(fb)


class _ExpWithWrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        return grad  # should be grad * exp(x)


@pytest.mark.parametrize("wrong", [
    lambda mu, log_var, eps: mu + _ExpWithWrongBackward.apply(0.5 * log_var) * eps,
    lambda mu, log_var, eps: mu + (log_var + (torch.exp(0.5 * log_var) - log_var).detach()) * eps,
], ids=["custom-function", "detach-trick"])
def test_right_values_with_a_wrong_gradient(wrong):
    fb = rep_feedback(wrong)
    assert fb.kind == "gradient"
    text = str(fb)
    assert "right values but the wrong gradient with respect to `log_var` (argument 2)" in text
    assert "entries differ" in text and "the correct gradient is" in text


def test_a_named_mistake_keeps_its_message_when_only_its_gradient_is_wrong():
    fb = rep_feedback(lambda mu, log_var, eps: mu + (eps * log_var.mul(0.5).exp()).detach())
    assert fb.kind == "mistake" and fb.mistake is DETACHED_NOISE


def test_an_in_place_edit_of_an_input_that_requires_grad():
    fb = rep_feedback(lambda mu, log_var, eps: mu.add_(torch.exp(0.5 * log_var) * eps))
    assert fb.kind == "in-place" and "changed one of its inputs in place" in str(fb)


def test_grad_args_restricts_the_differentiated_inputs():
    only_mu = Checker(name="reparameterize", reference=_reparameterize, cases=_rep_cases, differentiable=True, grad_args=(0,))
    only_mu(lambda mu, log_var, eps: mu + torch.exp(0.5 * log_var.detach()) * eps)  # log_var not checked
    with pytest.raises(ExerciseFeedback) as info:
        only_mu(lambda mu, log_var, eps: mu.detach() + torch.exp(0.5 * log_var) * eps)
    assert info.value.kind == "detached"
    with pytest.raises(TypeError, match="grad_args"):
        Checker(name="f", reference=_double, cases=_cases, differentiable=True, grad_args=(3,))(_double)


# --------------------------------------------------- numbers, dtypes, precision


def test_a_python_number_is_refused_where_a_tensor_is_due():
    chk = Checker(name="mean", reference=lambda x: x.mean(), cases=[Case("four numbers", torch.tensor([1.0, 2.0, 3.0, 6.0]))])
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x: x.mean().item())
    assert info.value.kind == "python-number"
    assert "plain number (3.0)" in str(info.value) and "Its value is right" in str(info.value)
    assert "`.item()`" in str(info.value)
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x: float(x.sum()))
    assert info.value.kind == "python-number" and "also differs" in str(info.value)
    Checker(name="mean", reference=lambda x: x.mean(), allow_number=True,
            cases=[Case("four numbers", torch.tensor([1.0, 2.0, 3.0, 6.0]))])(lambda x: x.mean().item())


def test_dtype_message_names_the_input_dtypes_and_the_cause():
    fb = rep_feedback(lambda mu, log_var, eps: (mu + torch.exp(0.5 * log_var) * eps).float())
    assert fb.kind == "dtype" and fb.check == "a float64 batch"
    text = str(fb)
    assert "returned dtype float32, but the inputs were float64" in text
    assert "dtype=mu.dtype" in text and "torch.as_tensor" in text

    def scale(x, t):
        return x * t[:, None].to(x.dtype)

    mixed = Checker(name="scale", reference=scale, cases=[Case("float64 x, integer t", torch.ones(2, 3, dtype=torch.float64), torch.tensor([1, 2]))])
    with pytest.raises(ExerciseFeedback) as info:
        mixed(lambda x, t: x.float() * t[:, None])
    assert "the answer should be float64 (the inputs were x: float64, t: int64)" in str(info.value)


def test_float32_coefficients_on_float64_inputs_are_a_precision_problem():
    fb = rep_feedback(lambda mu, log_var, eps: mu + torch.exp(torch.tensor([0.5]) * log_var.float()) * eps)
    assert fb.kind == "precision" and fb.check == "a float64 batch"
    text = str(fb)
    assert "float32 precision" in text and "dtype=mu.dtype" in text
    assert "constant factor" not in text


def test_a_number_that_agrees_to_six_digits_shows_more_digits():
    chk = Checker(name="total", reference=lambda x: float(x.sum()), cases=[Case("float64", torch.full((3,), 0.81279333, dtype=torch.float64))])
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x: float(x.sum()) * (1 + 2e-6))  # 2.43838 to 6 digits, like the answer
    assert info.value.kind == "precision" and "agree to about 6 significant digits" in str(info.value)
    got, expected = (float(v) for v in re.findall(r"returned ([\d.]+), but the expected value is ([\d.]+)", str(info.value))[0])
    assert got != expected


# --------------------------------------------------------- what differs


def _matrix_cases(g: torch.Generator) -> list[Case]:
    return [Case("a 4 x 4 matrix", torch.randn(4, 4, generator=g))]


EXP = Checker(name="exp", reference=torch.exp, cases=_matrix_cases, arg_names=("x",))


def exp_feedback(fn) -> ExerciseFeedback:
    with pytest.raises(ExerciseFeedback) as info:
        EXP(fn)
    assert info.value.kind == "values"
    return info.value


def test_a_transposed_answer():
    assert "transposed" in str(exp_feedback(lambda x: torch.exp(x).T))


def test_reversed_shifted_and_permuted_slices():
    assert "reversed along axis 0" in str(exp_feedback(lambda x: torch.exp(x).flip(0)))
    assert "shifted along axis 1: your slice i is its slice i + 1" in str(exp_feedback(lambda x: torch.exp(x).roll(-1, 1)))
    assert "in the wrong order: your slices 0, 1, 2, ... are its slices 1, 0, 2, 3" in str(
        exp_feedback(lambda x: torch.exp(x)[[1, 0, 2, 3]])
    )


def test_a_broadcast_along_an_axis():
    text = str(exp_feedback(lambda x: torch.exp(x[:, :1]).expand(4, 4)))
    assert "is the same for every index along axis 1 (size 4)" in text and "slice 0" in text


def test_only_some_rows_differ():
    def one_row_doubled(x):
        y = torch.exp(x)
        return torch.cat([y[:2], 2 * y[2:3], y[3:]])

    text = str(exp_feedback(one_row_doubled))
    assert "only in row 2 of 4 (along the first axis) (there yours is the answer times 2)" in text
    assert "4 of 16 entries differ (the first at [2, 0], [2, 1], [2, 2])" in text


def test_the_rows_that_differ_are_named_by_their_timesteps():
    def scale(x, t):
        return x * t[:, None].to(x.dtype)

    g = torch.Generator().manual_seed(3)
    chk = Checker(name="scale", reference=scale, t_arg=1,
                  cases=[Case("6 rows with timesteps", torch.randn(6, 2, generator=g), torch.tensor([1, 5, 17, 1, 40, 3]))])
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x, t: torch.where((t == 1)[:, None], -x, scale(x, t)))
    text = str(info.value)
    assert info.value.kind == "values"
    assert "the rows with t = 1 differ (there yours is the negative of the answer)" in text
    assert "the others (t = 3, 5, 17, 40) agree: look at how t = 1 is handled" in text
    with pytest.raises(ExerciseFeedback, match=r"rows with t = 3, 5, 17, 40 differ.*not one value such as t\[0\]"):
        chk(lambda x, t: x * t[0].to(x.dtype))


def test_a_ratio_of_one_is_never_a_missing_factor():
    chk = Checker(name="exp", reference=torch.exp, cases=_matrix_cases, rtol=1e-9, atol=0.0)
    with pytest.raises(ExerciseFeedback) as info:
        chk(lambda x: torch.exp(x) * (1 + 2**-22))
    assert "constant factor" not in str(info.value) and "significant digits" in str(info.value)


# ------------------------------------------------------------- validate


def test_validate_requires_alternatives_to_pass_and_enforces_counts():
    wrong_alt = Checker(name="double", reference=_double, cases=_cases, mistakes=[SQUARE], alternatives=[lambda x: 3 * x])
    with pytest.raises(AssertionError, match=r"correct alternative 1 .* is rejected"):
        wrong_alt.validate()
    ok = Checker(name="double", reference=_double, cases=_cases, mistakes=[SQUARE], alternatives=[lambda x: x + x])
    ok.validate(min_mistakes=1, min_alternatives=1)
    with pytest.raises(AssertionError, match=r"has 1 known mistakes, at least 3 are required"):
        ok.validate(min_mistakes=3)
    with pytest.raises(AssertionError, match=r"has 1 correct alternatives, at least 2 are required"):
        ok.validate(min_alternatives=2)
    with pytest.raises(TypeError, match="alternatives"):
        Checker(name="double", reference=_double, cases=_cases, alternatives=[SQUARE])


def test_validate_prints_nothing(capsys):
    REP.validate()
    assert capsys.readouterr().out == ""


def test_an_error_that_is_the_same_in_every_row():
    text = str(exp_feedback(lambda x: torch.exp(x) + torch.tensor([0.0, 1.0, 2.0, 3.0])))
    assert "off from the answer by the same amounts in every slice along axis 0 (size 4)" in text
