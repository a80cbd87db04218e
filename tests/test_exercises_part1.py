"""Tests of the Part I exercise checkers: each accepts its reference, rejects every known mistake with
that mistake's own message, and gives the expected feedback for a few typical wrong answers."""

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
