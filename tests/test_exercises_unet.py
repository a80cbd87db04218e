"""Checkers of the U-Net chapter (``book/unet.ipynb``): each accepts its reference and correct answers
written differently, names its known mistakes, and explains typical wrong answers written here in other
ways (a ``.detach()``, a NumPy round trip, a hard-coded size, float32 arithmetic, an in-place edit).
Also the small library helper the chapter uses to count parameters by resolution."""

import math

import numpy as np
import torch
from einops import rearrange

from diffusion_lib.exercises import unet as ex_unet
from diffusion_lib.models.unet import UNet, conv_parameters_by_resolution, count_parameters
from exercise_helpers import feedback





# ------------------------------------------------------------------------------------------- FiLM
def test_film_correct_answers_written_differently_pass(capsys):
    def film_slices(h, e):
        C = h.shape[1]
        return h * (1 + e[:, :C, None, None]) + e[:, C:, None, None]

    def film_view(h, e):
        s, b = e.view(e.shape[0], 2, -1, 1, 1).unbind(1)
        return h + h * s + b

    ex_unet.check_film(film_slices)
    ex_unet.check_film(film_view)
    assert capsys.readouterr().out.count("✓ film") == 2


def test_film_typical_wrong_answers_are_named():
    C = lambda h: h.shape[1]  # noqa: E731
    fb = feedback(ex_unet.check_film, lambda h, e: h * e[:, : C(h), None, None] + e[:, C(h):, None, None])
    assert fb.kind == "mistake" and "(1 + scale)" in str(fb)
    fb = feedback(ex_unet.check_film, lambda h, e: (h * (1 + e[:, : C(h), None, None]) + e[:, C(h):, None, None]).detach())
    assert fb.kind == "detached" and "autograd" in str(fb)
    fb = feedback(ex_unet.check_film, lambda h, e: h.float() * (1 + e[:, : C(h), None, None].float()) + e[:, C(h):, None, None].float())
    assert fb.kind == "dtype" and "float64" in str(fb)
    fb = feedback(ex_unet.check_film, lambda h, e: (h + e[:, C(h):, None, None]) * (1 + e[:, : C(h), None, None]))
    assert fb.kind == "mistake" and "shift comes last" in str(fb)


# ------------------------------------------------------------------------------------- split_heads
def test_split_heads_correct_answers_written_differently_pass(capsys):
    def by_view(qkv, heads):
        B, C, H, W = qkv.shape
        d = C // (3 * heads)
        flat = qkv.view(B, 3, heads, d, H * W).transpose(-1, -2)
        return flat[:, 0], flat[:, 1], flat[:, 2]

    def by_chunks(qkv, heads):
        out = []
        for part in torch.chunk(qkv, 3, dim=1):
            B, C, H, W = part.shape
            out.append(part.reshape(B, heads, C // heads, H * W).permute(0, 1, 3, 2))
        return tuple(out)

    ex_unet.check_split_heads(by_view)
    ex_unet.check_split_heads(by_chunks)
    assert capsys.readouterr().out.count("✓ split_heads") == 2


def test_split_heads_typical_wrong_answers_are_named():
    def column_major(qkv, heads):
        B, C, H, W = qkv.shape
        d = C // (3 * heads)
        flat = qkv.view(B, 3, heads, d, H, W).transpose(-1, -2).reshape(B, 3, heads, d, H * W).transpose(-1, -2)
        return flat[:, 0], flat[:, 1], flat[:, 2]

    fb = feedback(ex_unet.check_split_heads, column_major)
    assert fb.kind == "mistake" and "row-major" in str(fb)
    fb = feedback(ex_unet.check_split_heads,
                   lambda qkv, h: rearrange(qkv, "b (three h d) x y -> three b h (x y) d", three=3, h=h))
    assert fb.kind == "type" and "3 values" in str(fb)          # one stacked tensor, not the tuple (q, k, v)
    fb = feedback(ex_unet.check_split_heads,
                   lambda qkv, h: tuple(t.detach() for t in rearrange(qkv, "b (three h d) x y -> three b h (x y) d", three=3, h=h)))
    assert fb.kind == "detached"
    fb = feedback(ex_unet.check_split_heads,
                   lambda qkv, h: tuple(qkv.reshape(qkv.shape[0], 3, -1, h, qkv.shape[2] * qkv.shape[3])
                                        .permute(1, 0, 3, 4, 2)))
    assert fb.kind == "mistake" and "(three h d)" in str(fb)


# ------------------------------------------------------------------------------------------ attend
def test_attend_correct_answers_written_differently_pass(capsys):
    def by_loop(q, k, v):
        out = torch.empty_like(v)
        for b in range(q.shape[0]):
            for h in range(q.shape[1]):
                weights = torch.softmax(q[b, h] @ k[b, h].T / math.sqrt(q.shape[-1]), dim=1)
                out = out.index_put((torch.tensor(b), torch.tensor(h)), weights @ v[b, h])
        return out

    def by_logsumexp(q, k, v):
        s = torch.einsum("bhid,bhjd->bhij", q, k) / q.shape[-1] ** 0.5
        return torch.exp(s - torch.logsumexp(s, dim=-1, keepdim=True)) @ v

    ex_unet.check_attend(by_loop)
    ex_unet.check_attend(by_logsumexp)
    assert capsys.readouterr().out.count("✓ attend") == 2


def test_attend_typical_wrong_answers_are_named():
    d = lambda q: q.shape[-1]  # noqa: E731
    fb = feedback(ex_unet.check_attend, lambda q, k, v: torch.softmax(q @ k.mT / math.sqrt(d(q)), dim=2) @ v)
    assert fb.kind == "mistake" and "over the queries" in str(fb)
    fb = feedback(ex_unet.check_attend, lambda q, k, v: torch.softmax(q @ k.mT / q.shape[2] ** 0.5, dim=-1) @ v)
    assert fb.kind == "mistake" and "number of positions" in str(fb)

    def naive(q, k, v):                                          # exp without subtracting the maximum
        e = torch.exp(q @ k.mT / math.sqrt(d(q)))
        return e / e.sum(-1, keepdim=True) @ v

    fb = feedback(ex_unet.check_attend, naive)
    assert fb.kind == "mistake" and "overflows" in str(fb) and "maximum" in str(fb)

    def through_numpy(q, k, v):
        s = (q @ k.mT).detach().numpy() / math.sqrt(d(q))
        w = np.exp(s - s.max(-1, keepdims=True))
        return torch.from_numpy(w / w.sum(-1, keepdims=True)) @ v

    fb = feedback(ex_unet.check_attend, through_numpy)
    assert fb.kind == "detached" and "`q`" in str(fb)            # v still carries a gradient, q does not


def test_unsolved_stub_is_reported():
    def stub(*args):
        raise NotImplementedError("not implemented yet — see exercise ex-unet-attention")

    fb = feedback(ex_unet.check_attend, stub)
    assert fb.kind == "not-implemented" and "ex-unet-attention" in str(fb)


# ------------------------------------------------------------------- library helper of the chapter
def test_conv_parameters_by_resolution_counts_every_convolution_once():
    torch.manual_seed(0)
    model = UNet(dim=8, dim_mults=(1, 2), groups=4, attn_dim_head=8)
    counts = conv_parameters_by_resolution(model, torch.randn(2, 1, 8, 8), torch.tensor([1, 5]))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(counts.values()) == sum(count_parameters(m) for m in convs)
    assert set(counts) <= {(8, 1), (8, 3), (8, 4), (4, 1), (4, 3)}
    assert counts[(8, 4)] == count_parameters(model.downs[0].resample)   # the stride-2 4x4 down-sampling
    assert not any(m._forward_hooks for m in convs)                      # the hooks are removed again
