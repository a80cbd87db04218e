"""Tests of the Part I exercise checkers: each accepts its reference, rejects every known mistake with
that mistake's own message, and gives the expected feedback for a few typical wrong answers."""

import math

import pytest
import torch

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import hvae as ex_hvae
from diffusion_lib.exercises import noise_schedules as ex_ns
from diffusion_lib.exercises import vae as ex_vae
from diffusion_lib.exercises import vdm as ex_vdm

CHECKERS = [
    ex_vae._KL, ex_vae._REPARAM, ex_vae._SCORE,
    ex_hvae._ESQ, ex_hvae._KLG,
    ex_vdm._POST, ex_vdm._TWEEDIE, ex_vdm._EPS_W,
    ex_ns._COS, ex_ns._BETA, ex_ns._LOG_SNR,
]


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.name)
def test_checker_accepts_reference_and_names_each_mistake(checker):
    assert len(checker.mistakes) >= 2
    checker.validate()


def test_public_checkers_accept_correct_answers(capsys):
    ex_vae.check_reparameterize(lambda m, lv, e: m + torch.exp(lv / 2) * e)
    ex_vdm.check_tweedie_x0(lambda xt, s, ab: (xt + (1 - ab) * s) / ab.sqrt())
    ex_ns.check_log_snr(lambda ab: torch.log(ab / (1 - ab)))
    assert "all" in capsys.readouterr().out


def test_kl_messages_for_typical_errors():
    with pytest.raises(ExerciseFeedback, match="standard deviation exp\\(logvar / 2\\)"):
        ex_vae.check_kl_to_std_normal(lambda m, lv: 0.5 * (m**2 + torch.exp(lv / 2) - lv - 1).sum(-1))
    with pytest.raises(ExerciseFeedback, match="forgot the -1"):
        ex_vae.check_kl_to_std_normal(lambda m, lv: 0.5 * (m**2 + lv.exp() - lv).sum(-1))


def test_unsolved_stub_and_swapped_posterior_are_explained():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-vdm-posterior")

    with pytest.raises(ExerciseFeedback) as info:
        ex_vdm.check_posterior_mean(stub)
    assert info.value.kind == "not-implemented"
    with pytest.raises(ExerciseFeedback, match="swapped the two coefficients"):
        ex_vdm.check_posterior_mean(
            lambda x0, xt, a, ab, abp: ((abp.sqrt() * (1 - a) * xt + a.sqrt() * (1 - abp) * x0) / (1 - ab))
        )


def test_schedule_and_hvae_messages():
    with pytest.raises(ExerciseFeedback, match="divide by f\\(0\\)"):
        ex_ns.check_cosine_alpha_bar(lambda t, T, s: torch.cos((t / T + s) / (1 + s) * torch.pi / 2) ** 2)
    with pytest.raises(ExerciseFeedback, match="tr\\(A S A\\^T\\)"):
        ex_hvae.check_expected_sq_norm(lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1))
    with pytest.raises(ExerciseFeedback, match="x0 error"):
        ex_vdm.check_eps_weight(lambda p, t: 0.5 * (p / (1 - p) - t / (1 - t)))


# ------------------------------------------------------------ the self-test with the book's minimums




# --------------------------------------------- typical wrong answers, written as a student would


def _reparam_no_grad(m, lv, e):
    with torch.no_grad():
        return m + torch.exp(0.5 * lv) * e


WRONG = [
    # vae: the two trained-through answers must keep their gradients
    (ex_vae.check_kl_to_std_normal, lambda m, lv: 0.5 * (m**2 + lv.exp() - lv - 1).sum(-1).detach(), "detached", r"cut off from autograd"),
    (ex_vae.check_kl_to_std_normal,
     lambda m, lv: torch.tensor([0.5 * (m[i] ** 2 + lv[i].exp() - lv[i] - 1).sum().item() for i in range(len(m))], dtype=m.dtype),
     "detached", r"cut off from autograd"),
    (ex_vae.check_kl_to_std_normal, lambda m, lv: torch.sum(0.5 * (m**2 + lv.exp() - lv - 1)), "mistake", r"total over the batch"),
    (ex_vae.check_kl_to_std_normal, lambda m, lv: (m**2 + lv.exp() - lv - 1).sum(-1), "mistake", r"factor 1/2"),
    (ex_vae.check_reparameterize, _reparam_no_grad, "detached", r"cut off from autograd"),
    (ex_vae.check_reparameterize, lambda m, lv, e: torch.from_numpy((m + torch.exp(lv / 2) * e).detach().numpy()),
     "detached", r"cut off from autograd"),
    (ex_vae.check_reparameterize, lambda m, lv, e: m + torch.exp(lv) / 2 * e, "mistake", r"1/2 belongs inside the exponential"),
    (ex_vae.check_reparameterize, lambda m, lv, e: m + torch.exp(lv) * e, "mistake", r"by the variance exp\(logvar\)"),
    (ex_vae.check_score_grad_mean, lambda f, z, m, s: (f[:, None] * (z - m) / s**2).mean(0), "mistake", r"averaged the estimates"),
    (ex_vae.check_score_grad_mean, lambda f, z, m, s: f[:, None] * (z - m) / s, "mistake", r"standard deviation once"),
    (ex_vae.check_score_grad_mean, lambda f, z, m, s: (z - m) / s**2, "mistake", r"without multiplying by f\(z\)"),
    # hvae
    (ex_hvae.check_expected_sq_norm, lambda m, S, A, b: (((m @ A.T + b) ** 2).sum(-1) + torch.trace(A @ S @ A.T)).detach(),
     "detached", r"cut off from autograd"),
    (ex_hvae.check_expected_sq_norm, lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + S.trace(), "mistake", r"tr\(S\) instead"),
    (ex_hvae.check_expected_sq_norm, lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + (A**2 * torch.diagonal(S)).sum(),
     "mistake", r"only the diagonal of the covariance"),
    (ex_hvae.check_kl_gauss, lambda mq, vq, mp, vp: ex_hvae._kl(mq, vq, mp, vp).detach(), "detached", r"cut off from autograd"),
    (ex_hvae.check_kl_gauss,
     lambda mq, vq, mp, vp: 0.5 * (mq.shape[-1] * (torch.log(vq / vp) + vp / vq - 1) + ((mq - mp) ** 2).sum(-1) / vq),
     "mistake", r"KL\(p \|\| q\)"),
    (ex_hvae.check_kl_gauss, lambda mq, vq, mp, vp: mq.shape[-1] * (torch.log(vp / vq) + vq / vp - 1) + ((mq - mp) ** 2).sum(-1) / vp,
     "mistake", r"factor 1/2"),
    # vdm
    (ex_vdm.check_posterior_mean, lambda x0, xt, a, ab, abp: ex_vdm._post(x0.detach(), xt.detach(), a, ab, abp),
     "detached", r"cut off from autograd"),
    (ex_vdm.check_posterior_mean, lambda x0, xt, a, ab, abp: (abp.sqrt() * (1 - a) * x0 + a * (1 - abp) * xt) / (1 - ab),
     "mistake", r"square root on alpha_t"),
    (ex_vdm.check_posterior_mean, lambda x0, xt, a, ab, abp: (abp.sqrt() * (1 - ab) * x0 + a.sqrt() * (1 - abp) * xt) / (1 - ab),
     "mistake", r"1 - abar_t for beta_t"),
    (ex_vdm.check_tweedie_x0, lambda xt, s, ab: (xt + (1 - ab) * s) / ab, "mistake", r"divided by abar_t"),
    (ex_vdm.check_tweedie_x0, lambda xt, s, ab: xt + (1 - ab) * s / ab.sqrt(), "mistake", r"operator precedence"),
    (ex_vdm.check_tweedie_x0, lambda xt, s, ab: ((xt.float() + (1 - ab.float()) * s.float()) / ab.float().sqrt()).to(xt.dtype),
     "precision", r"float32 precision"),
    (ex_vdm.check_eps_weight, lambda p, t: 0.5 * ((t / (1 - t)) / (p / (1 - p)) - 1), "mistake", r"upside down"),
    (ex_vdm.check_eps_weight, lambda p, t: (p / (1 - p)) / (t / (1 - t)) - 1, "mistake", r"factor 1/2"),
    (ex_vdm.check_eps_weight, lambda p, t: 0.5 * (p / (1 - p)) / (t / (1 - t)), "mistake", r"forgot the -1"),
    # noise schedules
    (ex_ns.check_cosine_alpha_bar, lambda t, T, s: torch.cos((t / T + s) / (1 + s) * torch.pi / 2) / math.cos(s / (1 + s) * math.pi / 2),
     "mistake", r"square the cosine"),
    (ex_ns.check_cosine_alpha_bar, lambda t, T, s: torch.cos((t / T + s) / (1 + s)) ** 2 / math.cos(s / (1 + s)) ** 2,
     "mistake", r"left out the pi/2"),
    (ex_ns.check_cosine_alpha_bar, lambda t, T, s: torch.cos((t + s) / (1 + s) * torch.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2,
     "mistake", r"used t where the formula has t / T"),
    (ex_ns.check_beta_from_alpha_bar, lambda ab: 1 - ab[1:] / ab[:-1], "mistake", r"length T \+ 1 with beta\[0\] = 0"),
    (ex_ns.check_beta_from_alpha_bar, lambda ab: torch.cat([ab.new_zeros(1), ab[:-1] - ab[1:]]), "mistake", r"took differences"),
    (ex_ns.check_beta_from_alpha_bar, lambda ab: torch.cat([ab.new_zeros(1), 1 - ab[:-1] / ab[1:]]), "mistake", r"wrong way round"),
    (ex_ns.check_log_snr, lambda ab: torch.log10(ab) - torch.log10(1 - ab), "mistake", r"base-10"),
    (ex_ns.check_log_snr, lambda ab: torch.log(ab.sqrt() / (1 - ab).sqrt()), "mistake", r"ratio of the standard deviations"),
    (ex_ns.check_log_snr, lambda ab: math.log(ab[0].item() / (1 - ab[0].item())), None, r"single number"),
]


@pytest.mark.parametrize("check, wrong, kind, message", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(WRONG)])
def test_typical_wrong_answer_is_named(check, wrong, kind, message):
    with pytest.raises(ExerciseFeedback, match=message) as info:
        check(wrong)
    if kind is not None:
        assert info.value.kind == kind


# ------------------------------------------------- correct answers written in other ways pass

CORRECT = [
    (ex_vae.check_kl_to_std_normal, lambda m, lv: -0.5 * (1 + lv - m * m - lv.exp()).sum(dim=1)),
    (ex_vae.check_kl_to_std_normal, lambda m, lv: 0.5 * torch.einsum("nd->n", m**2 + torch.exp(lv) - lv - 1)),
    (ex_vae.check_reparameterize, lambda m, lv, e: m + e * lv.div(2).exp()),
    (ex_vae.check_reparameterize, lambda m, lv, e: torch.distributions.Normal(m, (0.5 * lv).exp()).loc + (0.5 * lv).exp() * e),
    (ex_vae.check_score_grad_mean, lambda f, z, m, s: torch.einsum("s,sd->sd", f, (z - m) / s.pow(2))),
    (ex_vae.check_score_grad_mean, lambda f, z, m, s: f.unsqueeze(1) * (z - m) * s.pow(-2)),
    (ex_hvae.check_expected_sq_norm, lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(1) + (A.T @ A * S).sum()),
    (ex_hvae.check_expected_sq_norm, lambda m, S, A, b: ((m @ A.T + b) ** 2).sum(-1) + torch.trace(A @ S @ A.T)),
    (ex_hvae.check_kl_gauss, lambda mq, vq, mp, vp: 0.5 * (mq.shape[-1] * (vp.log() - vq.log() + vq / vp - 1) + (mq - mp).pow(2).sum(-1) / vp)),
    (ex_hvae.check_kl_gauss, lambda mq, vq, mp, vp: 0.5 * ((vq + (mq - mp) ** 2) / vp - 1 + torch.log(vp / vq)).sum(-1)),
    (ex_vdm.check_posterior_mean, lambda x0, xt, a, ab, abp: (abp.sqrt() * (1 - a) / (1 - ab)) * x0 + (a.sqrt() * (1 - abp) / (1 - ab)) * xt),
    (ex_vdm.check_posterior_mean, lambda x0, xt, a, ab, abp: abp.sqrt() * x0 + a.sqrt() * (1 - abp) / (1 - ab) * (xt - ab.sqrt() * x0)),
    (ex_vdm.check_tweedie_x0, lambda xt, s, ab: xt / ab.sqrt() + (1 - ab) * s / ab.sqrt()),
    (ex_vdm.check_tweedie_x0, lambda xt, s, ab: (xt + (1 - ab) * s) * ab.rsqrt()),
    (ex_vdm.check_eps_weight, lambda p, t: 0.5 * (p - t) / (t * (1 - p))),
    (ex_vdm.check_eps_weight, lambda p, t: 0.5 * (p * (1 - t) / ((1 - p) * t) - 1)),
    (ex_ns.check_cosine_alpha_bar, lambda t, T, s: (torch.cos((t / T + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)) ** 2),
    (ex_ns.check_cosine_alpha_bar, lambda t, T, s: (1 + torch.cos((t / T + s) / (1 + s) * math.pi)) / (1 + math.cos(s / (1 + s) * math.pi))),
    (ex_ns.check_beta_from_alpha_bar, lambda ab: torch.cat([ab.new_zeros(1), (ab[:-1] - ab[1:]) / ab[:-1]])),
    (ex_ns.check_beta_from_alpha_bar, lambda ab: torch.nn.functional.pad(1 - ab[1:] / ab[:-1], (1, 0))),
    (ex_ns.check_log_snr, lambda ab: torch.log(ab) - torch.log(1 - ab)),
    (ex_ns.check_log_snr, lambda ab: torch.logit(ab)),
]


@pytest.mark.parametrize("check, answer", CORRECT, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CORRECT)])
def test_correct_alternative_passes(check, answer, capsys):
    check(answer)
    assert capsys.readouterr().out.startswith("✓ ")
