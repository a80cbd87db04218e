"""Checkers of the guidance chapter (``book/guidance_digits.ipynb``): the guided noise prediction
and label dropout. Each validates; typical wrong answers written here get the message that names
them (a hard-coded null label among them); correct answers written in other ways pass."""

import pytest
import torch

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import guidance_digits as ex
from diffusion_lib.topics.guidance import guided_eps




# --------------------------------------------------------------------------------------- cfg_eps
def test_cfg_total_scale_convention_is_named():
    with pytest.raises(ExerciseFeedback, match="w as the \\*total\\* scale"):
        ex.check_cfg_eps(lambda c, u, w: torch.lerp(u, c, w))


def test_cfg_swapped_roles_are_named():
    with pytest.raises(ExerciseFeedback, match="roles are swapped"):
        ex.check_cfg_eps(lambda c, u, w: u + w * (u - c))


def test_cfg_in_float32_is_a_dtype_problem():
    with pytest.raises(ExerciseFeedback, match="float32") as info:
        ex.check_cfg_eps(lambda c, u, w: (1 + w) * c.float() - w * u.float())
    assert info.value.kind == "dtype"


def test_cfg_other_correct_answers_pass(capsys):
    ex.check_cfg_eps(lambda c, u, w: guided_eps(c, u, w))
    ex.check_cfg_eps(lambda c, u, w: torch.stack([c, u]).mul(torch.tensor([1 + w, -w], dtype=c.dtype).view(2, 1, 1, 1, 1)).sum(0))
    assert capsys.readouterr().out.count("✓") == 2


# ----------------------------------------------------------------------------------- drop_labels
def test_drop_hard_coded_null_label_is_named():
    with pytest.raises(ExerciseFeedback, match="null label as the number 10") as info:
        ex.check_drop_labels(lambda y, u, p, null: y.masked_fill(u < p, 10))
    assert info.value.kind == "mistake"


def test_drop_less_or_equal_is_named():
    with pytest.raises(ExerciseFeedback, match="strict u < p_uncond"):
        ex.check_drop_labels(lambda y, u, p, null: torch.where(~(u > p), torch.full_like(y, null), y))


def test_drop_in_place_is_named():
    def drop_labels(labels, u, p, null):
        labels[u < p] = null
        return labels

    with pytest.raises(ExerciseFeedback, match="changed its input `labels` in place") as info:
        ex.check_drop_labels(drop_labels)
    assert info.value.kind == "in-place"


def test_drop_returning_the_mask_is_refused():
    with pytest.raises(ExerciseFeedback) as info:
        ex.check_drop_labels(lambda y, u, p, null: u < p)
    assert info.value.kind == "dtype"


def test_drop_other_correct_answers_pass(capsys):
    def loop(labels, u, p, null):
        out = labels.clone()
        for i in range(len(out)):
            if u[i] < p:
                out[i] = null
        return out

    def by_index(labels, u, p, null):
        out = labels.clone()
        out[(u < p).nonzero().flatten()] = null
        return out

    ex.check_drop_labels(loop)
    ex.check_drop_labels(by_index)
    assert capsys.readouterr().out.count("✓") == 2


def test_drop_stub_says_not_implemented():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-guide-drop-labels")

    with pytest.raises(ExerciseFeedback, match="not implemented yet"):
        ex.check_drop_labels(stub)
