"""Checkers of the U-Net and DDPM-on-digits chapters: each accepts its reference, rejects every known
mistake with that mistake's own message, and explains a few typical wrong answers."""

import math

import pytest
import torch
from einops import rearrange

from diffusion_lib.exercises import ExerciseFeedback
from diffusion_lib.exercises import ddpm_digits as ex_ddpm
from diffusion_lib.exercises import unet as ex_unet

CHECKERS = [ex_unet._SIN, ex_unet._FILM, ex_unet._HEADS, ex_ddpm._LOSS, ex_ddpm._EMA, ex_ddpm._DROP]


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.name)
def test_checker_accepts_reference_and_names_each_mistake(checker):
    assert len(checker.mistakes) >= 2
    checker.validate()


def test_independent_correct_solutions_pass(capsys):
    def sinusoidal(t, dim):
        half = dim // 2
        w = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
        a = t[:, None].float() * w
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    def film(h, e):
        C = h.shape[1]
        return h * (1 + e[:, :C, None, None]) + e[:, C:, None, None]

    def split_heads(qkv, heads):
        B, C, H, W = qkv.shape
        d = C // (3 * heads)
        q, k, v = qkv.reshape(B, 3, heads, d, H * W).permute(1, 0, 2, 4, 3)
        return q, k, v

    def ddpm_loss(model, x0, t, eps, alpha_bar):
        a = alpha_bar[t].view(-1, 1, 1, 1)
        return torch.mean((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2)

    ex_unet.check_sinusoidal(sinusoidal)
    ex_unet.check_film(film)
    ex_unet.check_split_heads(split_heads)
    ex_ddpm.check_ddpm_loss(ddpm_loss)
    ex_ddpm.check_ema_step(lambda e, th, d: e + (1 - d) * (th - e))
    ex_ddpm.check_drop_labels(lambda y, u, p, n: y.masked_fill(u < p, n))
    assert capsys.readouterr().out.count("✓") == 6


def test_typical_wrong_answers_get_specific_messages():
    with pytest.raises(ExerciseFeedback, match="interleaved"):
        ex_unet.check_sinusoidal(lambda t, d: rearrange(
            torch.stack([torch.sin(t[:, None].float() * 10000.0 ** (-torch.arange(d // 2) / (d // 2))),
                         torch.cos(t[:, None].float() * 10000.0 ** (-torch.arange(d // 2) / (d // 2)))], -1),
            "b k two -> b (k two)"))
    with pytest.raises(ExerciseFeedback, match=r"\(1 \+ scale\)"):
        ex_unet.check_film(lambda h, e: h * e[:, : h.shape[1], None, None] + e[:, h.shape[1]:, None, None])
    with pytest.raises(ExerciseFeedback, match="row-major"):
        ex_unet.check_split_heads(lambda qkv, h: tuple(rearrange(qkv, "b (three h d) x y -> three b h (y x) d", three=3, h=h)))
    with pytest.raises(ExerciseFeedback, match="indexed by t"):
        ex_ddpm.check_ddpm_loss(lambda m, x0, t, eps, ab: ((m(ab[t - 1].sqrt().view(-1, 1, 1, 1) * x0
                                + (1 - ab[t - 1]).sqrt().view(-1, 1, 1, 1) * eps, t) - eps) ** 2).mean())
    with pytest.raises(ExerciseFeedback, match="digit 0"):
        ex_ddpm.check_drop_labels(lambda y, u, p, n: y.masked_fill(u < p, 0))
    with pytest.raises(ExerciseFeedback) as info:
        ex_ddpm.check_ema_step(lambda e, th, d: math.nan * e)
    assert info.value.kind == "nan"


def test_unsolved_stub_is_reported():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-unet-film")

    with pytest.raises(ExerciseFeedback) as info:
        ex_unet.check_film(stub)
    assert info.value.kind == "not-implemented" and "ex-unet-film" in str(info.value)
