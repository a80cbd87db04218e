"""Checkers of the sampling chapter (``book/sampling_digits.ipynb``): clipping the prediction of
x_0 and spherical interpolation. Each validates; typical wrong answers written here (differently
from the checker's own Mistake functions) get the message that names them; correct answers
written in other ways pass; and the clipping exercise is what the library's sampler does."""

import pytest
import torch

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import sampling_digits as ex
from diffusion_lib.core.schedules import NoiseSchedule




def _raw_x0(xt, eps, ab):
    return (xt - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)


# ------------------------------------------------------------------------------- clip_prediction
def test_clip_keeping_the_network_noise_is_named():
    def clip_prediction(xt, eps, ab):
        return torch.clamp(_raw_x0(xt, eps, ab), -1, 1), eps * 1.0

    with pytest.raises(ExerciseFeedback, match="Recompute eps_hat") as info:
        ex.check_clip_prediction(clip_prediction)
    assert info.value.kind == "mistake"


def test_clip_to_zero_one_is_named():
    def clip_prediction(xt, eps, ab):
        x0 = _raw_x0(xt, eps, ab)
        x0 = torch.where(x0 < 0, torch.zeros_like(x0), torch.where(x0 > 1, torch.ones_like(x0), x0))
        return x0, (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    with pytest.raises(ExerciseFeedback, match=r"clipped to \[0, 1\]"):
        ex.check_clip_prediction(clip_prediction)


def test_clipping_the_recomputed_noise_too_is_named():
    def clip_prediction(xt, eps, ab):
        x0 = _raw_x0(xt, eps, ab).clip(-1, 1)
        return x0, torch.clip((xt - ab.sqrt() * x0) / (1 - ab).sqrt(), -1, 1)

    with pytest.raises(ExerciseFeedback, match="Noise is not bounded"):
        ex.check_clip_prediction(clip_prediction)


def test_clip_with_float32_coefficients_is_a_precision_problem():
    def clip_prediction(xt, eps, ab):
        a = ab.float()  # float32 coefficients on float64 images
        x0 = ((xt - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
        return x0, (xt - a.sqrt() * x0) / (1 - a).sqrt()

    with pytest.raises(ExerciseFeedback) as info:
        ex.check_clip_prediction(clip_prediction)
    assert info.value.kind in ("precision", "dtype"), info.value.kind
    assert "float32" in str(info.value)


def test_clip_returning_only_x0_says_two_values():
    with pytest.raises(ExerciseFeedback, match="should return 2 values") as info:
        ex.check_clip_prediction(lambda xt, eps, ab: _raw_x0(xt, eps, ab).clamp(-1, 1))
    assert info.value.kind == "type"


def test_clip_other_correct_answers_pass(capsys):
    def with_rsqrt(xt, eps, ab):
        x0 = ((xt - (1 - ab) ** 0.5 * eps) * ab.rsqrt()).clamp(min=-1, max=1)
        return x0, (xt - ab**0.5 * x0) * (1 - ab).rsqrt()

    def with_min_max(xt, eps, ab):
        one = torch.ones_like(xt)
        x0 = torch.maximum(torch.minimum(_raw_x0(xt, eps, ab), one), -one)
        return x0, (xt - torch.sqrt(ab) * x0) / torch.sqrt(1 - ab)

    ex.check_clip_prediction(with_rsqrt)
    ex.check_clip_prediction(with_min_max)
    assert capsys.readouterr().out.count("✓") == 2


def test_clip_exercise_is_what_the_library_sampler_does():
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("linear", 1000, dtype=torch.float64))
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([1000, 700, 300, 1])
    xt = 1.5 * torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    lib_x0, lib_eps = diffusion._predictions(eps, xt, t, clip_x0=True)
    ab = diffusion.schedule.alpha_bar[t].reshape(-1, 1, 1, 1)
    x0, e = ex._clip(xt, eps, ab)
    assert (lib_x0.abs() == 1).any()  # the case does clip something
    torch.testing.assert_close(x0, lib_x0)
    torch.testing.assert_close(e, lib_eps)


# ----------------------------------------------------------------------------------------- slerp
def test_slerp_linear_interpolation_is_named():
    with pytest.raises(ExerciseFeedback, match="linear interpolation"):
        ex.check_slerp(lambda z0, z1, lam: torch.lerp(z0, z1, lam))


def test_slerp_swapped_weights_are_named():
    def slerp(z0, z1, lam):
        theta = torch.acos(torch.nn.functional.cosine_similarity(z0, z1, dim=0))
        return (torch.sin(lam * theta) * z0 + torch.sin((1 - lam) * theta) * z1) / torch.sin(theta)

    with pytest.raises(ExerciseFeedback, match="weights are swapped"):
        ex.check_slerp(slerp)


def test_slerp_angle_from_unnormalised_dot_product_is_named():
    def slerp(z0, z1, lam):
        theta = torch.acos(torch.clamp(z0 @ z1 / len(z0), -1, 1))  # right only for vectors of norm sqrt(D)
        return (torch.sin((1 - lam) * theta) * z0 + torch.sin(lam * theta) * z1) / torch.sin(theta)

    with pytest.raises(ExerciseFeedback, match="divide the dot product by both norms"):
        ex.check_slerp(slerp)


def test_slerp_other_correct_answers_pass(capsys):
    def with_unit_vectors(z0, z1, lam):
        cos = (z0 / z0.norm()) @ (z1 / z1.norm())
        theta = torch.acos(cos.clamp(-1, 1))
        return torch.sin((1 - lam) * theta) / torch.sin(theta) * z0 + torch.sin(lam * theta) / torch.sin(theta) * z1

    def with_library(z0, z1, lam):
        from diffusion_lib.eval.digits import slerp

        return slerp(z0, z1, lam)

    ex.check_slerp(with_unit_vectors)
    ex.check_slerp(with_library)
    assert capsys.readouterr().out.count("✓") == 2


def test_slerp_stub_says_not_implemented():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-sample-slerp")

    with pytest.raises(ExerciseFeedback, match="ex-sample-slerp is not implemented yet"):
        ex.check_slerp(stub)
