"""Checkers of the evaluation chapter (``book/evaluation_digits.ipynb``): the independent-pixel
baseline and the Fréchet distance between two Gaussians. Each validates; typical wrong answers
written here get the message that names them; correct answers written in other ways pass."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import evaluation_digits as ex




def _log_p(train, L, alpha):
    counts = torch.stack([torch.bincount(train[:, j], minlength=L) for j in range(train.shape[1])]).double()
    return torch.log(counts + alpha) - math.log(train.shape[0] + L * alpha)  # (D, L)


# ------------------------------------------------------------------------------------ pixel_nll
def test_pixel_nll_in_bits_is_named():
    def pixel_nll(train, test, L, alpha):
        counts = torch.stack([torch.bincount(train[:, j], minlength=L) for j in range(train.shape[1])]).double()
        p = (counts + alpha) / (train.shape[0] + L * alpha)
        return -torch.log2(p[torch.arange(train.shape[1]), test]).sum(1)

    with pytest.raises(ExerciseFeedback, match="returned bits"):
        ex.check_pixel_nll(pixel_nll)


def test_pixel_nll_mean_over_pixels_is_named():
    def pixel_nll(train, test, L, alpha):
        return -_log_p(train, L, alpha)[torch.arange(train.shape[1]), test].mean(dim=1)

    with pytest.raises(ExerciseFeedback, match="averaged over the pixels"):
        ex.check_pixel_nll(pixel_nll)


def test_pixel_nll_without_smoothing_is_named():
    def pixel_nll(train, test, L, alpha):
        counts = torch.stack([torch.bincount(train[:, j], minlength=L) for j in range(train.shape[1])]).double()
        return -torch.log(counts / train.shape[0])[torch.arange(train.shape[1]), test].sum(1)

    with pytest.raises(ExerciseFeedback, match="left out the smoothing alpha"):
        ex.check_pixel_nll(pixel_nll)


def test_pixel_nll_in_float32_is_a_dtype_problem():
    def pixel_nll(train, test, L, alpha):
        return -_log_p(train, L, alpha).float()[torch.arange(train.shape[1]), test].sum(1)

    with pytest.raises(ExerciseFeedback, match="float32") as info:
        ex.check_pixel_nll(pixel_nll)
    assert info.value.kind == "dtype"


def test_pixel_nll_other_correct_answers_pass(capsys):
    def with_numpy(train, test, L, alpha):
        tr, te = train.numpy(), test.numpy()
        out = np.zeros(te.shape[0])
        for j in range(tr.shape[1]):
            p = (np.bincount(tr[:, j], minlength=L) + alpha) / (tr.shape[0] + L * alpha)
            out -= np.log(p[te[:, j]])
        return torch.from_numpy(out)

    def with_flat_bincount(train, test, L, alpha):
        N, D = train.shape
        index = torch.arange(D) * L + train  # one bin per (pixel, level)
        counts = torch.bincount(index.flatten(), minlength=D * L).reshape(D, L).double()
        log_p = (counts + alpha).log() - math.log(N + L * alpha)
        return -torch.gather(log_p.T, 0, test).sum(1)

    ex.check_pixel_nll(with_numpy)
    ex.check_pixel_nll(with_flat_bincount)
    assert capsys.readouterr().out.count("✓") == 2


# -------------------------------------------------------------------------------------- frechet
def _trace_sqrt(s1, s2):
    return torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()


def test_frechet_elementwise_power_is_named():
    def frechet(m1, s1, m2, s2):
        cross = (s1 @ s2).clamp(min=0) ** 0.5  # entry by entry
        return float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * cross.trace())

    with pytest.raises(ExerciseFeedback, match="square root of each \\*entry\\*"):
        ex.check_frechet_distance(frechet)


def test_frechet_returning_d_is_named():
    def frechet(m1, s1, m2, s2):
        d2 = ((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * _trace_sqrt(s1, s2)
        return torch.sqrt(d2.clamp(min=0))

    with pytest.raises(ExerciseFeedback, match="returned d, the square root"):
        ex.check_frechet_distance(frechet)


def test_frechet_without_the_means_is_named():
    def frechet(m1, s1, m2, s2):
        return (s1 + s2).trace().item() - 2 * _trace_sqrt(s1, s2).item()

    with pytest.raises(ExerciseFeedback, match="left out the distance between the means"):
        ex.check_frechet_distance(frechet)


def test_frechet_other_correct_answers_pass(capsys):
    def with_sqrtm_of_symmetric(m1, s1, m2, s2):
        r = scipy.linalg.sqrtm(s1.numpy())
        cross = scipy.linalg.sqrtm(r @ s2.numpy() @ r).real
        return float(np.sum((m1 - m2).numpy() ** 2) + np.trace(s1.numpy()) + np.trace(s2.numpy()) - 2 * np.trace(cross))

    def as_zero_d_tensor(m1, s1, m2, s2):  # a 0-d tensor is a number too
        vals = torch.linalg.eigvals(s1 @ s2)
        return torch.dot(m1 - m2, m1 - m2) + torch.trace(s1 + s2) - 2 * vals.sqrt().real.sum()

    ex.check_frechet_distance(with_sqrtm_of_symmetric)
    ex.check_frechet_distance(as_zero_d_tensor)
    assert capsys.readouterr().out.count("✓") == 2
