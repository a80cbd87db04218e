"""Property tests of diffusion_lib.models (embedding, MLPs, U-Net and its blocks): bad and edge-case input
gives either a correct result (checked against an independent computation) or a library error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from diffusion_lib.models.embedding import SinusoidalTimeEmbedding, sinusoidal_embedding
from diffusion_lib.models.mlp import PerTimestepMLP, TimeMLP
from diffusion_lib.models.unet import (
    Attention,
    ConvNextBlock,
    Downsample,
    LinearAttention,
    ResnetBlock,
    UNet,
    Upsample,
    conv_parameters_by_resolution,
    count_parameters,
    fourier_features,
)
from tests.property._harness import call, must_refuse

NAN = float("nan")
T = 5
SIZES = [1, 2, 4, 0, -1, 2.5, True, np.int64(4), "4"]


def _is_pos_int(v: object) -> bool:
    return not isinstance(v, (bool, float, str)) and int(v) >= 1


# --------------------------------------------------------------------------------- embedding
@given(st.sampled_from([torch.tensor([1, 5]), torch.tensor([0.5, 2.0]), torch.tensor([]), torch.tensor([[1]]),
                        torch.tensor([NAN]), torch.tensor([True]), [1, 2]]),
       st.sampled_from([2, 4, 8, 3, 0, -2, 4.0, np.int64(6)]), st.sampled_from([10_000.0, 20, 1.0, 0.0, NAN, "1e4"]))
def test_sinusoidal_embedding(t, dim, max_period):
    out, err = call(sinusoidal_embedding, t, dim, max_period)
    ok_t = isinstance(t, torch.Tensor) and t.ndim == 1 and t.dtype != torch.bool and bool(torch.isfinite(t.float()).all())
    ok_dim = _is_pos_int(dim) and int(dim) >= 2 and int(dim) % 2 == 0
    ok_p = not isinstance(max_period, str) and max_period > 1
    if not (ok_t and ok_dim and ok_p):
        assert err is not None
        return
    half = int(dim) // 2
    ref = torch.zeros(len(t), int(dim), dtype=torch.float64)
    for i, ti in enumerate(t.double()):
        for k in range(half):
            w = max_period ** (-k / half)
            ref[i, k], ref[i, half + k] = math.sin(ti * w), math.cos(ti * w)
    assert out.dtype == torch.float32 and torch.allclose(out.double(), ref, atol=1e-4)


@given(st.sampled_from([8, 3, 0, "8"]), st.sampled_from([None, 4, 0, -1]), st.sampled_from([torch.float32, torch.float64]))
def test_sinusoidal_time_embedding(dim, out_dim, dtype):
    emb, err = call(SinusoidalTimeEmbedding, dim, out_dim)
    if not (dim == 8 and (out_dim is None or out_dim == 4)):
        assert err is not None
        return
    emb = emb.to(dtype)
    t = torch.tensor([1, 7])
    out = emb(t)
    assert out.dtype == dtype and out.shape == (2, out_dim or 8)
    assert torch.allclose(out, emb.mlp(sinusoidal_embedding(t, 8).to(dtype)))


# ------------------------------------------------------------------------------------- MLPs
X_CASES = ["ok", "f64", "f64_double", "empty", "dim", "1d", "nan", "int"]
T_CASES = ["ok", "zero", "big", "neg", "float", "short", "2d", "int", "bool", "list"]


def _xt(kind: str, t_kind: str, data_dim: int = 2, B: int = 3) -> tuple[object, object]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, data_dim, generator=g)
    x = {"ok": x, "f64": x.double(), "f64_double": x.double(), "empty": x[:0], "dim": x[:, :1], "1d": x[0],
         "nan": x.clone().fill_(NAN), "int": x.long()}[kind]
    n = x.shape[0] if x.ndim >= 1 else B
    t = torch.randint(1, T + 1, (n,), generator=g)
    t = {"ok": t, "zero": torch.zeros(n, dtype=torch.long), "big": torch.full((n,), T + 1), "neg": -t,
         "float": t.float(), "short": t[: max(n - 1, 0)] if n else torch.ones(1, dtype=torch.long), "2d": t[:, None],
         "int": 3, "bool": t > 0, "list": t.tolist()}[t_kind]
    return x, t


@settings(max_examples=80)
@given(st.sampled_from(["time", "per_t"]), st.sampled_from(X_CASES), st.sampled_from(T_CASES))
def test_mlps(kind, x_kind, t_kind):
    torch.manual_seed(1)
    model = TimeMLP(T, data_dim=2, out_dim=3, hidden=8, n_blocks=1, time_dim=4) if kind == "time" else \
        PerTimestepMLP(T, data_dim=2, out_dim=3, hidden=8, trunk_layers=1)
    if kind == "per_t":
        with torch.no_grad():
            model.head_weight.normal_()
    if x_kind == "f64_double":
        model = model.double()
    x, t = _xt(x_kind, t_kind)
    out, err = call(model, x, t)
    empty = x_kind == "empty"
    t_ok = t_kind == "ok" or (empty and t_kind in ("zero", "big", "neg"))
    if x_kind not in ("ok", "f64_double", "empty") or not t_ok:
        assert err is not None
        return
    assert out.shape == (x.shape[0], 3) and out.dtype == x.dtype
    for i in range(x.shape[0]):  # each row is computed on its own: batching changes nothing
        assert torch.allclose(out[i], model(x[i : i + 1], t[i : i + 1])[0], atol=1e-5)
    if kind == "per_t" and x.shape[0]:
        W, b = model.head_parameters(int(t[0]))
        assert torch.allclose(out[0], W @ model.trunk(x[:1])[0] + b, atol=1e-5)


@given(st.sampled_from(["T", "data_dim", "hidden", "n_blocks", "out_dim", "time_dim"]), st.sampled_from(SIZES))
def test_time_mlp_sizes(name, value):
    kwargs = dict(T=T, data_dim=2, hidden=4, n_blocks=1, time_dim=4)
    kwargs[name] = value
    model, err = call(TimeMLP, **kwargs)
    ok = _is_pos_int(value) and not (name == "time_dim" and int(value) % 2)
    assert (err is None) == ok
    if ok:
        d = int(kwargs["data_dim"])
        out = model(torch.zeros(2, d), torch.ones(2, dtype=torch.long))
        assert out.shape == (2, int(kwargs.get("out_dim") or d))


@given(st.sampled_from(["T", "data_dim", "hidden", "trunk_layers", "out_dim"]), st.sampled_from(SIZES),
       st.sampled_from([1, T, 0, T + 1, np.int64(2), 2.5]))
def test_per_timestep_mlp_sizes_and_heads(name, value, t):
    kwargs = dict(T=T, data_dim=2, hidden=4, trunk_layers=1)
    kwargs[name] = value
    model, err = call(PerTimestepMLP, **kwargs)
    assert (err is None) == _is_pos_int(value)
    if err is None:
        heads, err = call(model.head_parameters, t)
        if isinstance(t, float) or not 1 <= int(t) <= model.T:
            assert err is not None
        else:
            W, b = heads
            cols = slice((int(t) - 1) * model.out_dim, int(t) * model.out_dim)
            assert torch.equal(W, model.head_weight[:, cols].T) and torch.equal(b, model.head_bias[cols])


# ------------------------------------------------------------------------------------- U-Net
UNET = UNet(dim=8, dim_mults=(1, 2), num_timesteps=T, num_classes=3, groups=4, attn_heads=1, attn_dim_head=4)
UNET64 = UNet(dim=8, dim_mults=(1, 2), num_timesteps=T, num_classes=3, groups=4, attn_heads=1, attn_dim_head=4).double()


@settings(max_examples=60)
@given(st.sampled_from(["ok", "f64", "f64_double", "odd", "3d", "channels", "nan", "int", "empty"]),
       st.sampled_from(["ok", "zero", "big", "float", "short", "int"]),
       st.sampled_from(["none", "ok", "null", "big", "neg", "float", "bool"]))
def test_unet(x_kind, t_kind, y_kind):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, 4, 4, generator=g)
    x = {"ok": x, "f64": x.double(), "f64_double": x.double(), "odd": torch.randn(2, 1, 5, 5, generator=g),
         "3d": x[:, 0], "channels": torch.randn(2, 2, 4, 4, generator=g), "nan": x.clone().fill_(NAN),
         "int": x.long(), "empty": x[:0]}[x_kind]
    B = x.shape[0]
    t = {"ok": torch.tensor([1, T])[:B], "zero": torch.zeros(B, dtype=torch.long), "big": torch.full((B,), T + 1),
         "float": torch.ones(B), "short": torch.ones(1, dtype=torch.long), "int": 2}[t_kind]
    y = {"none": None, "ok": torch.tensor([0, 2])[:B], "null": torch.tensor([3, 3])[:B], "big": torch.tensor([4, 0])[:B],
         "neg": torch.tensor([-1, 0])[:B], "float": torch.zeros(B), "bool": torch.zeros(B, dtype=torch.bool)}[y_kind]
    model = UNET64 if x_kind == "f64_double" else UNET
    out, err = call(model, x, t, y)
    empty = B == 0
    t_ok = t_kind == "ok" or (empty and t_kind in ("zero", "big"))
    y_ok = y_kind in ("none", "ok", "null") or (empty and y_kind in ("big", "neg"))
    if x_kind not in ("ok", "f64_double", "empty") or not t_ok or not y_ok or (empty and t_kind == "short"):
        assert err is not None
        return
    assert out.shape == x.shape and out.dtype == x.dtype
    with torch.no_grad():
        for i in range(B):  # batch-independence (GroupNorm is per sample): each image on its own
            yi = None if y is None else y[i : i + 1]
            assert torch.allclose(out[i], model(x[i : i + 1], t[i : i + 1], yi)[0], atol=1e-4)
        if y_kind == "null":  # the null label is the unconditional model
            assert torch.allclose(out, model(x, t))
    emb, err = call(model.embed, t, y)
    assert emb.shape == (B, 32)


@given(st.sampled_from(["dim", "in_channels", "groups", "attn_heads", "num_classes", "num_timesteps", "image_size",
                        "out_channels"]), st.sampled_from([4, 0, -1, 3, 2.5, True, "4"]))
def test_unet_sizes(name, value):
    kwargs = dict(dim=8, dim_mults=(1, 2), groups=4, attn_heads=1, attn_dim_head=4)
    kwargs[name] = value
    model, err = call(UNet, **kwargs)
    ok = _is_pos_int(value) and not (name == "dim" and int(value) % 2) and not (name == "image_size" and int(value) % 2)
    assert (err is None) == ok
    if ok:
        H = int(kwargs.get("image_size", 4))
        c = int(kwargs.get("in_channels", 1))
        out = model(torch.zeros(1, c, H, H), torch.ones(1, dtype=torch.long))
        assert out.shape == (1, int(kwargs.get("out_channels") or c), H, H)


@given(st.sampled_from(["block_type", "attention", "mid_attention", "padding_mode", "time_conditioning", "dropout"]),
       st.sampled_from(["bad", None, 1.5, -0.1]))
def test_unet_options(name, value):
    kwargs = dict(dim=8, dim_mults=(1, 2), groups=4)
    kwargs[name] = value
    _, err = call(UNet, **kwargs)
    ok = name in ("attention", "mid_attention") and value is None  # no attention: a valid choice
    assert (err is None) == ok


# ------------------------------------------------------------------------------------- blocks
@given(st.sampled_from(["resnet", "convnext", "full", "linear", "down", "up"]),
       st.sampled_from(["ok", "channels", "f64", "3d", "odd", "emb_shape", "emb_batch"]))
def test_blocks(kind, x_kind):
    torch.manual_seed(3)
    block = {"resnet": ResnetBlock(4, 6, emb_dim=5, groups=2), "convnext": ConvNextBlock(4, 6, emb_dim=5),
             "full": Attention(4, heads=1, dim_head=4, groups=2), "linear": LinearAttention(4, heads=1, dim_head=4, groups=2),
             "down": Downsample(4, 6), "up": Upsample(4, 6)}[kind]
    x = torch.randn(2, 4, 4, 4)
    x = {"ok": x, "channels": torch.randn(2, 3, 4, 4), "f64": x.double(), "3d": x[0], "odd": torch.randn(2, 4, 5, 5),
         "emb_shape": x, "emb_batch": x}[x_kind]
    emb = {"emb_shape": torch.randn(2, 4), "emb_batch": torch.randn(1, 5)}.get(x_kind, torch.randn(2, 5))
    args = (x, emb) if kind in ("resnet", "convnext") else (x,)
    out, err = call(block, *args)
    bad = x_kind in ("channels", "f64", "3d") or (x_kind == "odd" and kind == "down") or \
        (x_kind.startswith("emb") and kind in ("resnet", "convnext"))
    if bad:
        assert err is not None
        return
    H = x.shape[-1]
    c_out = 6 if kind in ("resnet", "convnext", "down", "up") else 4
    size = {"down": H // 2, "up": 2 * H}.get(kind, H)
    assert out.shape == (2, c_out, size, size)
    block64 = block.double()
    assert torch.allclose(block64(*[a.double() for a in args]).float(), out, atol=1e-4)  # float64 end to end


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.sampled_from(["ok", "n", "d", "3d"]))
def test_linear_attention_attend(h, n, d, kind):
    layer = LinearAttention(4, heads=h, dim_head=d, groups=1)
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(2, h, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    if kind == "n":
        k = k[:, :, :1] if n > 1 else torch.randn(2, h, 2, d, dtype=torch.float64)
    elif kind == "d":
        q = torch.randn(2, h, n, d + 1, dtype=torch.float64)
    elif kind == "3d":
        q = q[0]
    out, err = call(layer.attend, q, k, v)
    if kind != "ok":
        assert err is not None
        return
    qs, ks = q.softmax(-1) / math.sqrt(d), k.softmax(-2)
    ref = torch.einsum("bhij,bhjd->bhid", qs @ ks.transpose(-1, -2), v)  # the O(n^2) order
    assert torch.allclose(out, ref)


@given(st.sampled_from([(), (3,), (3, 4), (1.5,), "34", (True,)]), st.sampled_from(["ok", "1d", "nan", "int"]))
def test_fourier_features(exps, kind):
    x = torch.linspace(-1, 1, 8).reshape(2, 1, 2, 2)
    x = {"ok": x, "1d": x.flatten(), "nan": x * NAN, "int": x.long()}[kind]
    out, err = call(fourier_features, x, exps)
    if kind != "ok" or isinstance(exps, str) or any(isinstance(n, (bool, float)) for n in exps):
        assert err is not None
        return
    ref = [x] + [f(2.0**n * math.pi * x) for n in exps for f in (torch.sin, torch.cos)]
    assert torch.allclose(out, torch.cat(ref, 1))


@given(st.sampled_from(["module", "frozen", "tensor", "none"]))
def test_count_and_conv_parameters(kind):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 2, 1))
    if kind == "frozen":
        net[1].weight.requires_grad_(False)
    obj = {"module": net, "frozen": net, "tensor": torch.zeros(3), "none": None}[kind]
    n, err = call(count_parameters, obj)
    if kind in ("tensor", "none"):
        assert err is not None
        must_refuse(conv_parameters_by_resolution, obj, torch.zeros(1, 1, 4, 4))
        return
    expected = 1 * 3 * 9 + 3 + (0 if kind == "frozen" else 3 * 2) + 2
    assert n == expected
    counts = conv_parameters_by_resolution(net, torch.zeros(1, 1, 4, 4))
    assert counts == {(4, 3): 30, (4, 1): expected - 30}


@pytest.mark.parametrize("bad", [dict(time_conditioning="film"), dict(padding_mode="reflect"), dict(dropout=2.0),
                                 dict(in_channels=0), dict(emb_dim=-1)])
def test_resnet_block_options(bad):
    kwargs = dict(in_channels=4, out_channels=4, emb_dim=5) | bad
    must_refuse(ResnetBlock, **kwargs)
