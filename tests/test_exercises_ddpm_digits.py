"""Checkers of the DDPM-on-digits chapter (``book/ddpm_digits.ipynb``): each accepts its reference and
correct answers written differently, names its known mistakes, and explains typical wrong answers written
here in other ways (a detached or ``.item()`` loss, float32 coefficients, a hard-coded constant, a Python
number). Also the importance-sampled bound estimate that the chapter computes with the library."""

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.exercises import ddpm_digits as ex_ddpm
from diffusion_lib.core.timesteps import importance_bound, timestep_probs
from exercise_helpers import feedback





# ----------------------------------------------------------------------------------- L_simple
def _good_loss(model, x0, t, eps, alpha_bar):
    a = alpha_bar[t].view(-1, 1, 1, 1)
    return torch.mean((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2)


def test_loss_correct_answers_written_differently_pass(capsys):
    def by_index_select(model, x0, t, eps, alpha_bar):
        a = torch.index_select(alpha_bar, 0, t)[:, None, None, None]
        pred = model(torch.addcmul(torch.sqrt(1 - a) * eps, torch.sqrt(a), x0), t)
        return F.mse_loss(pred, eps, reduction="sum") / eps.numel()

    def xt_without_grad(model, x0, t, eps, alpha_bar):
        # building x_t under no_grad is fine: the gradient that training needs is the network's
        a = alpha_bar[t].reshape(-1, 1, 1, 1)
        with torch.no_grad():
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return (model(xt, t) - eps).square().mean()

    ex_ddpm.check_ddpm_loss(by_index_select)
    ex_ddpm.check_ddpm_loss(xt_without_grad)
    assert capsys.readouterr().out.count("✓ ddpm_loss") == 2


def test_loss_answers_cut_off_from_the_gradient_are_refused():
    fb = feedback(ex_ddpm.check_ddpm_loss, lambda *args: _good_loss(*args).detach())
    assert fb.kind == "mistake" and "no gradient reaches the network's weights" in str(fb)
    fb = feedback(ex_ddpm.check_ddpm_loss, lambda *args: _good_loss(*args).item())
    assert fb.kind == "detached" and "plain number" in str(fb)

    def under_no_grad(*args):
        with torch.no_grad():
            return _good_loss(*args)

    fb = feedback(ex_ddpm.check_ddpm_loss, under_no_grad)
    assert fb.kind == "mistake" and "no_grad" in str(fb)


def test_loss_typical_wrong_answers_are_named():
    def float32_coefficients(model, x0, t, eps, alpha_bar):
        a = alpha_bar.float()[t].view(-1, 1, 1, 1)
        return ((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2).mean()

    fb = feedback(ex_ddpm.check_ddpm_loss, float32_coefficients)
    assert fb.kind == "precision" and "float32" in str(fb)

    def shifted_index(model, x0, t, eps, alpha_bar):
        a = alpha_bar.index_select(0, t - 1).view(-1, 1, 1, 1)     # alpha_bar[t - 1], written another way
        return ((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2).mean()

    fb = feedback(ex_ddpm.check_ddpm_loss, shifted_index)
    assert fb.kind == "mistake" and "indexed by t" in str(fb)

    def per_image(model, x0, t, eps, alpha_bar):
        a = alpha_bar[t].view(-1, 1, 1, 1)
        return ((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2).flatten(1).mean(1)

    fb = feedback(ex_ddpm.check_ddpm_loss, per_image)
    assert fb.kind == "shape" and "expected shape is ()" in str(fb)

    def predicts_x0(model, x0, t, eps, alpha_bar):
        a = alpha_bar[t].view(-1, 1, 1, 1)
        return F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), x0)

    fb = feedback(ex_ddpm.check_ddpm_loss, predicts_x0)
    assert fb.kind == "mistake" and "target is the noise" in str(fb)


def test_loss_check_needs_the_function_itself():
    fb = feedback(ex_ddpm.check_ddpm_loss, 0.5)
    assert fb.kind == "not-callable"


# ----------------------------------------------------------------------------------------- EMA
def test_ema_correct_answers_written_differently_pass(capsys):
    ex_ddpm.check_ema_step(lambda e, th, d: e.mul(d).add(th, alpha=1 - d))
    ex_ddpm.check_ema_step(lambda e, th, d: th + d * (e - th))
    assert capsys.readouterr().out.count("✓ ema_step") == 2


def test_ema_typical_wrong_answers_are_named():
    fb = feedback(ex_ddpm.check_ema_step, lambda e, th, d: e * 0.9 + th * (1 - 0.9))
    assert fb.kind == "mistake" and "ignores its `decay`" in str(fb)
    fb = feedback(ex_ddpm.check_ema_step, lambda e, th, d: torch.lerp(e, th, d))
    assert fb.kind == "mistake" and "swapped" in str(fb)
    fb = feedback(ex_ddpm.check_ema_step, lambda e, th, d: e.mul_(d).add_((1 - d) * th))
    assert fb.kind == "in-place"
    fb = feedback(ex_ddpm.check_ema_step, lambda e, th, d: (d * e + (1 - d) * th).float())
    assert fb.kind == "dtype" and "float64" in str(fb)


# ------------------------------------------------------------------- timestep probabilities and weights
def test_timestep_weights_correct_answers_written_differently_pass(capsys):
    def by_cumsum(T, mix):
        t = torch.arange(1, T + 1, dtype=torch.float64)
        harmonic = torch.cumsum(1 / t, 0)[-1]
        p = (1 - mix) * torch.ones_like(t) / T + mix / (t * harmonic)
        return p, (p * T) ** -1

    def through_the_library(T, mix):
        p = timestep_probs(T, "inverse_mix", mix)
        return p, 1 / (T * p)

    ex_ddpm.check_timestep_weights(by_cumsum)
    ex_ddpm.check_timestep_weights(through_the_library)
    assert capsys.readouterr().out.count("✓ timestep_weights") == 2


def test_timestep_weights_typical_wrong_answers_are_named():
    def float32(T, mix):
        t = torch.arange(1, T + 1, dtype=torch.float32)
        p = (1 - mix) / T + mix / t / (1 / t).sum()
        return p.double(), (1 / (T * p)).double()

    fb = feedback(ex_ddpm.check_timestep_weights, float32)
    assert fb.kind == "precision"

    def numbers_for_one_step(T, mix):
        if T == 1:
            return 1.0, 1.0
        p = timestep_probs(T, "inverse_mix", mix)
        return p, 1 / (T * p)

    fb = feedback(ex_ddpm.check_timestep_weights, numbers_for_one_step)
    assert fb.kind == "python-number" and "T = 1" in str(fb)

    def forgot_harmonic(T, mix):
        t = torch.arange(1, T + 1, dtype=torch.float64)
        p = torch.lerp(torch.full_like(t, 1 / T), t.reciprocal(), mix)
        return p, 1 / (T * p)

    fb = feedback(ex_ddpm.check_timestep_weights, forgot_harmonic)
    assert fb.kind == "mistake" and "H_T" in str(fb)

    def weight_is_density_ratio_upside_down(T, mix):
        p = timestep_probs(T, "inverse_mix", mix)
        return p, p / (1 / T)

    fb = feedback(ex_ddpm.check_timestep_weights, weight_is_density_ratio_upside_down)
    assert fb.kind == "mistake" and "inverse" in str(fb)


def test_unsolved_stub_is_reported():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-ddpm-timestep-weights")

    fb = feedback(ex_ddpm.check_timestep_weights, stub)
    assert fb.kind == "not-implemented" and "ex-ddpm-timestep-weights" in str(fb)


# ------------------------------------------------------------ the importance-sampled bound estimate
def _toy_diffusion():
    diffusion = GaussianDiffusion(NoiseSchedule.from_name("cosine", 20), model_var_type="learned_range",
                                  loss_type="hybrid")
    model = lambda x, t: torch.cat([0.3 * torch.tanh(x), torch.zeros_like(x)], dim=1)  # noqa: E731
    levels = torch.randint(0, 17, (1, 1, 2, 2), generator=torch.Generator().manual_seed(3))
    return diffusion, model, levels.double() / 8 - 1


@pytest.mark.parametrize("kind", ["inverse_mix", "uniform"])
def test_importance_bound_is_unbiased(kind):
    diffusion, model, x0 = _toy_diffusion()
    images = x0.repeat(3000, 1, 1, 1)
    exact = diffusion.variational_bound(model, images, num_levels=17, generator=torch.Generator().manual_seed(0))["total"]
    est = importance_bound(diffusion, model, images, timestep_probs(20, kind), draws=4,
                           generator=torch.Generator().manual_seed(1), num_levels=17, batch_size=5000)
    total = est["total"]
    se = math.hypot(total.std().item() / math.sqrt(total.numel()), exact.std().item() / math.sqrt(exact.numel()))
    assert abs(total.mean().item() - exact.mean().item()) < 4 * se
    T = 20
    assert torch.allclose(total, est["prior"] + (T * est["w"] * est["terms"]).mean(0))
    assert est["t"].shape == est["w"].shape == est["terms"].shape == (4, 3000)
    assert est["t"].min() >= 1 and est["t"].max() <= T


def test_importance_bound_follows_the_draws_and_checks_its_inputs():
    diffusion, model, x0 = _toy_diffusion()
    a = importance_bound(diffusion, model, x0.repeat(5, 1, 1, 1), timestep_probs(20, "inverse_mix"), 3,
                         generator=torch.Generator().manual_seed(0), num_levels=17, batch_size=4)
    b = importance_bound(diffusion, model, x0.repeat(5, 1, 1, 1), timestep_probs(20, "inverse_mix"), 3,
                         generator=torch.Generator().manual_seed(0), num_levels=17, batch_size=100)
    assert torch.equal(a["t"], b["t"]) and torch.allclose(a["total"], b["total"])  # batching changes nothing
    assert torch.allclose(a["w"], 1 / (20 * timestep_probs(20, "inverse_mix")[a["t"] - 1]))
    with pytest.raises(ValueError, match="length T = 20"):
        importance_bound(diffusion, model, x0, timestep_probs(10, "uniform"), 2)
    with pytest.raises(TypeError, match="float tensor"):
        importance_bound(diffusion, model, torch.zeros(3, 4, dtype=torch.long), timestep_probs(20, "uniform"), 2)
