"""Tests of the exercise checkers of the sampling, evaluation and guidance chapters: each accepts
its reference, rejects every known mistake with that mistake's own message, and accepts
other correct implementations (e.g. scipy's matrix square root)."""

import math

import pytest
import scipy.linalg
import torch

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import evaluation_digits as ex_eval
from diffusion_lib.exercises import guidance_digits as ex_guide
from diffusion_lib.exercises import sampling_digits as ex_samp

CHECKERS = [ex_samp._DDIM, ex_samp._SLERP, ex_eval._NLL, ex_eval._FD, ex_guide._CFG, ex_guide._DROP]


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.name)
def test_checker_accepts_reference_and_names_each_mistake(checker):
    assert len(checker.mistakes) >= 2
    checker.validate()


def test_other_correct_answers_pass(capsys):
    def ddim_step(xt, eps, a, ap):
        a, ap = torch.tensor(a, dtype=xt.dtype), torch.tensor(ap, dtype=xt.dtype)
        return ap.sqrt() * (xt - (1 - a).sqrt() * eps) / a.sqrt() + (1 - ap).sqrt() * eps

    def frechet(m1, s1, m2, s2):
        covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
        return float(((m1 - m2) ** 2).sum() + torch.trace(s1) + torch.trace(s2)) - 2 * float(covmean.trace())

    def pixel_nll(train, test, L, alpha):
        out = torch.zeros(test.shape[0], dtype=torch.float64)
        for j in range(train.shape[1]):
            counts = torch.bincount(train[:, j], minlength=L).double()
            p = (counts + alpha) / counts.add(alpha).sum()
            out -= torch.log(p[test[:, j]])
        return out

    ex_samp.check_ddim_step(ddim_step)
    ex_eval.check_frechet_distance(frechet)
    ex_eval.check_pixel_nll(pixel_nll)
    ex_guide.check_cfg_eps(lambda c, u, w: c + w * (c - u))
    assert capsys.readouterr().out.count("✓") == 4


def test_typical_messages():
    with pytest.raises(ExerciseFeedback, match="linear interpolation"):
        ex_samp.check_slerp(lambda z0, z1, lam: (1 - lam) * z0 + lam * z1)
    with pytest.raises(ExerciseFeedback, match="w as the \\*total\\* scale"):
        ex_guide.check_cfg_eps(lambda c, u, w: u + w * (c - u))
    with pytest.raises(ExerciseFeedback, match="matrix square root"):
        ex_eval.check_frechet_distance(
            lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + torch.trace(s1 + s2) - 2 * torch.trace(s1 @ s2)))
    with pytest.raises(ExerciseFeedback, match="not implemented yet"):
        def stub(*args):
            raise NotImplementedError("not implemented yet — see exercise ex-guide-drop-labels")
        ex_guide.check_drop_labels(stub)
