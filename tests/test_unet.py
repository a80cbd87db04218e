"""The U-Net: shapes for every block/attention choice, parameter counts, conditioning, attention
against direct O(n^2) computations, gradients, shift equivariance (with circular padding only),
determinism and the error messages."""

import math

import pytest
import torch
from einops import rearrange

from diffusion_lib.models.unet import (
    Attention, ConvNextBlock, LinearAttention, ResnetBlock, UNet, count_parameters,
)

torch.set_num_threads(1)


def _batch(B=3, C=1, H=8, W=8, seed=0, T=100):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, H, W, generator=g), torch.randint(1, T + 1, (B,), generator=g)


@pytest.mark.parametrize("block_type", ["resnet", "convnext"])
@pytest.mark.parametrize("attention", [None, "full", "linear", ("linear", "full")])
def test_output_shape_for_every_block_and_attention(block_type, attention):
    torch.manual_seed(0)
    model = UNet(dim=8, dim_mults=(1, 2), block_type=block_type, attention=attention, groups=4, attn_dim_head=8)
    x, t = _batch()
    out = model(x, t)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_three_levels_on_28x28_and_learned_variance_channels():
    torch.manual_seed(0)
    model = UNet(dim=8, dim_mults=(1, 2, 2), groups=4, learned_variance=True, attn_dim_head=8)
    x, t = _batch(B=2, H=28, W=28)
    out, shapes = model(x, t, return_shapes=True)
    assert out.shape == (2, 2, 28, 28)
    sizes = {s[-1] for _, s in shapes}
    assert sizes >= {28, 14, 7}  # every level reached
    assert dict(shapes)["middle: attention"] == (2, 16, 7, 7)


def test_parameter_counts_match_hand_counts():
    # a ResNet block 8 -> 16 channels with a 32-d embedding, scale/shift conditioning:
    # GroupNorm(8) 16 + conv 8*16*9+16 + emb Linear 32*32+32 + GroupNorm(16) 32 + conv 16*16*9+16 + skip 8*16+16
    block = ResnetBlock(8, 16, emb_dim=32, groups=4)
    assert count_parameters(block) == 16 + (8 * 16 * 9 + 16) + (32 * 32 + 32) + 32 + (16 * 16 * 9 + 16) + (8 * 16 + 16)
    # ConvNeXt 8 -> 8, mult 2: dwconv 8*49+8, emb 32*8+8, norm 16, pw1 8*16+16, pw2 16*8+8, no skip
    assert count_parameters(ConvNextBlock(8, 8, emb_dim=32, mult=2)) == (8 * 49 + 8) + (32 * 8 + 8) + 16 + (8 * 16 + 16) + (16 * 8 + 8)
    # attention on 16 channels, 2 heads of 8: norm 32, qkv 16*48 (no bias), out 16*16+16 (+ GroupNorm 32 for linear)
    assert count_parameters(Attention(16, heads=2, dim_head=8)) == 32 + 16 * 48 + 16 * 16 + 16
    assert count_parameters(LinearAttention(16, heads=2, dim_head=8)) == 32 + 16 * 48 + 16 * 16 + 16 + 32
    # the whole network: ConvNeXt blocks are lighter than ResNet blocks; attention kinds differ only
    # by the GroupNorm after linear attention's output conv
    kw = dict(dim=16, dim_mults=(1, 2), groups=4, attn_heads=2, attn_dim_head=8)
    res = count_parameters(UNet(block_type="resnet", attention="full", **kw))
    cnx = count_parameters(UNet(block_type="convnext", attention="full", **kw))
    lin = count_parameters(UNet(block_type="resnet", attention="linear", **kw))
    assert cnx < res
    # 4 attention layers at levels (2 down, 2 up): channels 16, 16 (down) and 32, 16 (up) -> 2*(16+16+32+16)
    assert lin - res == 2 * (16 + 16 + 32 + 16)


def test_time_embedding_and_class_label_change_the_output():
    torch.manual_seed(0)
    model = UNet(dim=8, groups=4, num_classes=10, attn_dim_head=8, num_timesteps=100)
    x, _ = _batch(B=2)
    t1, t2 = torch.tensor([5, 5]), torch.tensor([80, 80])
    y = torch.tensor([3, 3])
    base = model(x, t1, y=y)
    assert (model(x, t2, y=y) - base).abs().max() > 1e-3
    assert (model(x, t1, y=torch.tensor([7, 7])) - base).abs().max() > 1e-3
    # y=None is the null label num_classes
    assert torch.equal(model(x, t1), model(x, t1, y=torch.tensor([10, 10])))
    assert (model(x, t1) - base).abs().max() > 1e-3


def _direct_linear_attention(q, k, v, dim_head):
    """out_i = sum_j (softmax_d(q_i) . softmax_n(k)_j) v_j, with the full n x n matrix."""
    qs = q.softmax(-1) / math.sqrt(dim_head)
    ks = k.softmax(-2)
    weights = torch.einsum("bhid,bhjd->bhij", qs, ks)  # (n x n)
    return torch.einsum("bhij,bhje->bhie", weights, v)


def test_linear_attention_equals_direct_quadratic_computation():
    torch.manual_seed(0)
    layer = LinearAttention(16, heads=2, dim_head=8, groups=4).double()
    q, k, v = torch.randn(3, 2, 2, 36, 8, dtype=torch.float64)
    assert torch.allclose(layer.attend(q, k, v), _direct_linear_attention(q, k, v, 8), atol=1e-12)
    # the whole layer too, against the reference built from its own weights
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    qkv = layer.to_qkv(layer.norm(x))
    q, k, v = rearrange(qkv, "b (three h d) x y -> three b h (x y) d", three=3, h=2)
    ref = rearrange(_direct_linear_attention(q, k, v, 8), "b h (x y) d -> b (h d) x y", x=6)
    assert torch.allclose(layer(x), x + layer.to_out(ref), atol=1e-12)


def test_full_attention_equals_explicit_softmax_loop():
    torch.manual_seed(0)
    layer = Attention(16, heads=2, dim_head=8, groups=4).double()
    x = torch.randn(2, 16, 4, 4, dtype=torch.float64)
    qkv = layer.to_qkv(layer.norm(x)).flatten(2)  # (B, 3*h*d, n)
    q, k, v = qkv.chunk(3, dim=1)
    heads = []
    for h in range(2):
        sl = slice(8 * h, 8 * (h + 1))
        qh, kh, vh = q[:, sl], k[:, sl], v[:, sl]  # (B, d, n)
        w = torch.softmax(qh.transpose(1, 2) @ kh / math.sqrt(8), dim=-1)  # (B, n, n)
        heads.append((w @ vh.transpose(1, 2)).transpose(1, 2))  # (B, d, n)
    ref = x + layer.to_out(torch.cat(heads, 1).reshape(2, 16, 4, 4))
    assert torch.allclose(layer(x), ref, atol=1e-12)
    # full attention is equivariant to permutations of the pixels (no position encoding)
    perm = torch.randperm(16)
    xp = x.flatten(2)[:, :, perm].reshape_as(x)
    assert torch.allclose(layer(xp).flatten(2), layer(x).flatten(2)[:, :, perm], atol=1e-10)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    for block_type in ("resnet", "convnext"):
        model = UNet(dim=8, groups=4, num_classes=3, learned_variance=True, block_type=block_type,
                     attention=("full", "linear"), attn_dim_head=8)
        x, t = _batch(B=4)
        model(x, t, y=torch.tensor([0, 1, 2, 3])).pow(2).mean().backward()
        dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not dead, f"{block_type}: no gradient for {dead}"


def test_circular_padding_gives_exact_shift_equivariance_zero_padding_does_not():
    torch.manual_seed(0)
    x, t = _batch(B=2)
    circ = UNet(dim=8, dim_mults=(1, 2), groups=4, padding_mode="circular", attention="full", attn_dim_head=8).double()
    x = x.double()
    shift = lambda z, s: torch.roll(z, shifts=(s, -s), dims=(-2, -1))  # noqa: E731
    # two levels: the image is halved once, so shifts by multiples of 2 commute with the network
    assert torch.allclose(circ(shift(x, 2), t), shift(circ(x, t), 2), atol=1e-10)
    # by one pixel they do not: the stride-2 down-sampling sees a different phase
    assert (circ(shift(x, 1), t) - shift(circ(x, t), 1)).abs().max() > 1e-4
    zero = UNet(dim=8, dim_mults=(1, 2), groups=4, padding_mode="zeros", attention="full", attn_dim_head=8).double()
    zero.load_state_dict(circ.state_dict())
    assert (zero(shift(x, 2), t) - shift(zero(x, t), 2)).abs().max() > 1e-3  # borders break it


def test_same_seed_same_weights_and_outputs():
    x, t = _batch()
    torch.manual_seed(7)
    a = UNet(dim=8, groups=4, attn_dim_head=8)
    torch.manual_seed(7)
    b = UNet(dim=8, groups=4, attn_dim_head=8)
    assert torch.equal(a(x, t), b(x, t))
    torch.manual_seed(8)
    c = UNet(dim=8, groups=4, attn_dim_head=8)
    assert not torch.equal(a(x, t), c(x, t))


def test_config_round_trip_rebuilds_the_same_architecture():
    torch.manual_seed(0)
    a = UNet(dim=8, dim_mults=(1, 2, 2), groups=4, attention=(None, "linear", "full"), num_classes=10,
             learned_variance=True, num_timesteps=50, attn_dim_head=8)
    b = UNet(**a.config())
    b.load_state_dict(a.state_dict())
    x, t = _batch(B=2, T=50)
    assert torch.equal(a(x, t), b(x, t))


def test_attention_resolutions_select_levels():
    m = UNet(dim=8, dim_mults=(1, 2, 2), groups=4, attention="linear", attention_resolutions=(8,), image_size=16)
    assert m.attention_per_level == (None, "linear", None)  # levels at 16, 8, 4 pixels
    with pytest.raises(ValueError, match="not among the level sizes"):
        UNet(dim=8, dim_mults=(1, 2), attention="full", attention_resolutions=(3,), image_size=8)


def test_errors_tell_what_to_fix():
    model = UNet(dim=8, dim_mults=(1, 2, 2), groups=4, num_timesteps=100, num_classes=10, attn_dim_head=8)
    x, t = _batch(B=2, H=8, W=8)
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*\\(levels-1\\) = 4"):
        model(torch.randn(2, 1, 6, 6), t)
    with pytest.raises(ValueError, match="unsqueeze"):
        model(x[:, 0], t)
    with pytest.raises(ValueError, match="1..T = 1..100"):
        model(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="1..T = 1..100"):
        model(x, torch.tensor([5, 101]))
    with pytest.raises(TypeError, match="integer"):
        model(x, torch.tensor([5.0, 6.0]))
    with pytest.raises(ValueError, match="one timestep per image"):
        model(x, torch.tensor([5]))
    with pytest.raises(ValueError, match="null label"):
        model(x, torch.tensor([5, 6]), y=torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(dim=8, groups=4)(x, torch.tensor([5, 6]), y=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="2 entries but there are 3 levels"):
        UNet(dim=8, dim_mults=(1, 2, 2), attention=("full", None))
    with pytest.raises(ValueError, match="block_type"):
        UNet(block_type="transformer")
    with pytest.raises(ValueError, match="divisible"):
        UNet(dim_mults=(1, 2, 2), image_size=10)


def test_fourier_features_values_and_channels():
    from diffusion_lib.models.unet import fourier_features

    x = torch.tensor([-1.0, -0.875, 0.0, 0.0625]).reshape(1, 1, 2, 2)
    f = fourier_features(x, (3, 4))
    assert f.shape == (1, 5, 2, 2)
    assert torch.equal(f[:, :1], x)
    # n = 4: period 1/8 = the digits' level spacing, so every grid level gives sin 0, cos 1
    assert torch.allclose(f[0, 3].flatten()[:3], torch.zeros(3), atol=1e-5)
    assert torch.allclose(f[0, 4].flatten()[:3], torch.ones(3), atol=1e-5)
    # half a level off the grid: cos(2^4 pi * 0.0625) = cos(pi) = -1
    assert abs(f[0, 4, 1, 1].item() + 1) < 1e-5
    assert abs(f[0, 1, 1, 1].item() - math.sin(8 * math.pi * 0.0625)) < 1e-6


def test_unet_with_fourier_features():
    net = UNet(dim=8, groups=4, dim_mults=(1, 2), fourier_exponents=(3, 4), num_timesteps=10)
    assert net.init_conv.in_channels == 5 and net.config()["fourier_exponents"] == [3, 4]
    out, shapes = net(torch.randn(2, 1, 8, 8), torch.tensor([1, 10]), return_shapes=True)
    assert out.shape == (2, 1, 8, 8) and ("x_t + Fourier features", (2, 5, 8, 8)) in shapes
    with pytest.raises(ValueError, match="fourier_exponents"):
        UNet(dim=8, groups=4, fourier_exponents=(3.5,))
