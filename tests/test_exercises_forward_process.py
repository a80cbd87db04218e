"""Checkers of the forward-process chapter: the hidden references are right (closed forms, Monte
Carlo, round trips), correct solutions written in other ways pass, and typical wrong answers are
refused with messages that name them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import forward_process as fp
from diffusion_lib.core.schedules import NoiseSchedule


# ------------------------------------------------------------------------- the hidden references


def test_alpha_bar_reference_is_the_running_product():
    beta = torch.tensor([0.1, 0.2, 0.5, 0.05], dtype=torch.float64)
    by_hand = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5, 0.9 * 0.8 * 0.5 * 0.95]
    assert torch.allclose(fp._alpha_bar(beta), torch.tensor(by_hand, dtype=torch.float64), rtol=1e-12)
    ddpm = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    # alpha_bar_T of DDPM's schedule is about 4.0e-5 (the data is almost entirely noise at t = T).
    assert math.isclose(fp._alpha_bar(ddpm)[-1].item(), math.prod(1 - b for b in ddpm.tolist()), rel_tol=1e-9)
    assert 3.9e-5 < fp._alpha_bar(ddpm)[-1].item() < 4.1e-5
    # ... and it is the library's alpha_bar
    lib = NoiseSchedule.from_name("linear", 1000, dtype=torch.float64).alpha_bar[1:]
    assert torch.allclose(fp._alpha_bar(ddpm), lib, rtol=1e-10)


def test_q_sample_reference_has_the_right_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.tensor([1.5, -2.0], dtype=torch.float64).expand(n, 2)
    alpha_bar = torch.tensor([0.3], dtype=torch.float64)
    xt = fp._q_sample(x0, alpha_bar, torch.randn(n, 2, generator=g, dtype=torch.float64))
    mean, var = xt.mean(0), xt.var(0)
    se_mean, se_var = math.sqrt(0.7 / n), 0.7 * math.sqrt(2 / n)
    assert torch.allclose(mean, math.sqrt(0.3) * x0[0], atol=5 * se_mean)
    assert torch.allclose(var, torch.full((2,), 0.7, dtype=torch.float64), atol=5 * se_var)


def test_x0_from_eps_reference_inverts_q_sample():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 4, generator=g, dtype=torch.float64)
    alpha_bar = torch.rand(8, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    assert torch.allclose(fp._x0_from_eps(fp._q_sample(x0, alpha_bar, eps), alpha_bar, eps), x0, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- the self-test




# ------------------------------------------------------------------------ correct solutions pass


def _alpha_bar_loop(beta):
    out = torch.empty_like(beta)
    running = torch.ones((), dtype=beta.dtype)
    for i, b in enumerate(beta):
        running = running * (1 - b)
        out[i] = running
    return out


CORRECT = [
    (fp.check_alpha_bar, _alpha_bar_loop),
    (fp.check_alpha_bar, lambda beta: torch.from_numpy(np.cumprod(1 - beta.numpy()))),
    (fp.check_q_sample, lambda x0, a, eps: torch.lerp(torch.zeros_like(x0), x0, a.sqrt()) + torch.sqrt(1 - a) * eps),
    (fp.check_q_sample, lambda x0, a, eps: (a * x0**2).sqrt() * x0.sign() + ((1 - a) * eps**2).sqrt() * eps.sign()),
    (fp.check_x0_from_eps, lambda xt, a, eps: (xt - torch.sqrt(1 - a) * eps) / torch.sqrt(a)),
    (fp.check_x0_from_eps, lambda xt, a, eps: xt * a.rsqrt() - ((1 - a) / a).sqrt() * eps),
]


@pytest.mark.parametrize("check, fn", CORRECT, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CORRECT)])
def test_correct_solutions_written_differently_pass(check, fn, capsys):
    check(fn)
    assert capsys.readouterr().out.startswith("✓ ")


def test_unsolved_stub_points_at_the_exercise():
    def q_sample(x0, alpha_bar_t, eps):
        raise NotImplementedError("not implemented yet — see exercise ex-forward-q-sample")

    with pytest.raises(ExerciseFeedback, match=r"^Exercise ex-forward-q-sample is not implemented yet: replace the `raise NotImplementedError` line"):
        fp.check_q_sample(q_sample)


# --------------------------------------------------------------------- typical wrong answers named

sqrt = torch.sqrt
WRONG = [
    # alpha_bar_from_beta
    (fp.check_alpha_bar, lambda b: torch.cumsum(1 - b, 0), "mistake", r"added the factors up \(torch.cumsum\)"),
    (fp.check_alpha_bar, lambda b: torch.cumprod(b, 0), "mistake", r"multiplied the betas themselves"),
    (fp.check_alpha_bar, lambda b: torch.cat([b.new_ones(1), torch.cumprod(1 - b, 0)[:-1]]), "mistake", r"shifted by one step"),
    (fp.check_alpha_bar, lambda b: torch.cat([b.new_ones(1), torch.cumprod(1 - b, 0)]), "mistake", r"one more value than you were given"),
    (fp.check_alpha_bar, lambda b: torch.cumprod(1 - b, 0)[-1].item(), "shape", r"single number .* one value per entry"),
    (fp.check_alpha_bar, lambda b: torch.full_like(b, 4e-5), "values", r"the same for every index along axis 0"),
    (fp.check_alpha_bar, lambda b: torch.cumprod(1 - b.float(), 0), "dtype", r"returned dtype float32, but the inputs were float64"),
    # q_sample
    (fp.check_q_sample, lambda x0, a, e: a * x0 + sqrt(1 - a) * e, "mistake", r"multiplied x0 by alpha_bar_t.*take the square root"),
    (fp.check_q_sample, lambda x0, a, e: sqrt(a) * x0 + (1 - a) * e, "mistake", r"multiplied the noise by \(1 - alpha_bar_t\), which is its variance"),
    (fp.check_q_sample, lambda x0, a, e: sqrt(1 - a) * x0 + sqrt(a) * e, "mistake", r"swapped the two coefficients"),
    (fp.check_q_sample, lambda x0, a, e: sqrt(a) * x0 + sqrt(1 - a) * torch.randn_like(x0), "random", r"draws its own random numbers"),
    (fp.check_q_sample, lambda x0, a, e: 0.5 * x0 + 0.5 * e, "values", r"wrong values.*entries differ"),
    (fp.check_q_sample, lambda x0, a, e: a.float().sqrt() * x0 + (1 - a.float()).sqrt() * e, "precision", r"float32 precision"),
    (fp.check_q_sample, lambda x0, a, e: math.sqrt(a.flatten()[0]) * x0 + math.sqrt(1 - a.flatten()[0]) * e,
     "values", r"only in rows 1, 2, 3 of 4"),
    # x0_from_eps
    (fp.check_x0_from_eps, lambda xt, a, e: xt - sqrt(1 - a) * e, "mistake", r"forgot to divide by sqrt\(alpha_bar_t\)"),
    (fp.check_x0_from_eps, lambda xt, a, e: (xt + sqrt(1 - a) * e) / sqrt(a), "mistake", r"Wrong sign"),
    (fp.check_x0_from_eps, lambda xt, a, e: xt - sqrt(1 - a) * e / sqrt(a), "mistake", r"Only the noise term was divided.*operator precedence"),
    (fp.check_x0_from_eps, lambda xt, a, e: xt.sub_(sqrt(1 - a) * e).div_(sqrt(a)), "in-place", r"changed its input `xt` in place"),
    (fp.check_x0_from_eps, lambda xt, a, e: (xt - (1 - a.float()).sqrt() * e) / a.float().sqrt(), "precision", r"float32 precision"),
    (fp.check_x0_from_eps, lambda xt, a, e: (xt - sqrt(1 - a) * e) / sqrt(a.flatten()[:, None, None]), "shape",
     r"shape \(4, 4, 3\), but the expected shape is \(4, 3\).*broadcast"),
    (fp.check_x0_from_eps, lambda xt, a, e: (xt - sqrt(1 - a) * e) / sqrt(a.flatten()), "exception",
     r"raised RuntimeError.*\n.*alpha_bar_t = tensor of shape \(4, 1\)"),
]


@pytest.mark.parametrize("check, wrong, kind, message", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(WRONG)])
def test_typical_wrong_answer_is_named(check, wrong, kind, message):
    with pytest.raises(ExerciseFeedback, match=message) as info:
        check(wrong)
    assert info.value.kind == kind


def test_checks_do_not_depend_on_the_notebook_random_state():
    torch.manual_seed(0)
    a = [c.args for c in fp._Q_SAMPLE.cases()]
    torch.manual_seed(99)
    b = [c.args for c in fp._Q_SAMPLE.cases()]
    assert all(torch.equal(u, v) for ca, cb in zip(a, b) for u, v in zip(ca, cb))
