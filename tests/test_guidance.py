"""Tests of diffusion_lib.topics.guidance: the combination rule, the wrapper inside the samplers, and
guided sampling of a Gaussian toy whose guided distribution is known in closed form."""

import pytest
import torch

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.topics.guidance import ClassifierFreeGuidance, drop_labels, guided_eps


class ToyConditional(torch.nn.Module):
    """Exact eps of 1-D data: class y ~ N(m_y, v); the null label 'knows' N(0, v)."""

    num_classes = 2

    def __init__(self, diffusion, means=(1.0, -2.0), v=0.25, learned_variance=False):
        super().__init__()
        self.ab = diffusion.schedule.alpha_bar
        self.means = torch.tensor(list(means) + [0.0], dtype=torch.float64)
        self.v = v
        self.learned_variance = learned_variance
        self.calls = 0

    def forward(self, x, t, y=None):
        self.calls += 1
        a = self.ab[t].reshape(-1, 1)
        m = self.means[y].reshape(-1, 1)
        eps = (1 - a).sqrt() * (x - a.sqrt() * m) / (a * self.v + 1 - a)
        if self.learned_variance:
            return torch.cat([eps, 0.3 * torch.ones_like(eps) + y.reshape(-1, 1)], dim=1)
        return eps


def test_guided_eps_formula():
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(guided_eps(c, u, 2.0), 3 * c - 2 * u)
    torch.testing.assert_close(guided_eps(c, u, 0.0), c)
    torch.testing.assert_close(guided_eps(c, u, -1.0), u)
    with pytest.raises(ValueError, match="same shape"):
        guided_eps(c, u[:2], 1.0)
    with pytest.raises(ValueError, match="finite"):
        guided_eps(c, u, float("nan"))


def test_wrapper_combines_one_batched_call():
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 100, dtype=torch.float64))
    net = ToyConditional(diff)
    x = torch.randn(4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 30, 60, 100])
    y = torch.tensor([0, 1, 2, 0])  # the third asks for the null label
    cfg = ClassifierFreeGuidance(net, guidance_scale=1.5)
    out = cfg(x, t, y=y)
    assert net.calls == 1
    c, u = net(x, t, y=y), net(x, t, y=torch.full_like(y, 2))
    expected = 2.5 * c - 1.5 * u
    expected[2] = u[2]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(cfg(x, t), u)  # y=None: unconditional
    torch.testing.assert_close(ClassifierFreeGuidance(net, 0.0)(x, t, y=y), c)
    with pytest.raises(ValueError, match="LongTensor of 4 labels"):
        cfg(x, t, y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="null_label"):
        ClassifierFreeGuidance(lambda x, t, y=None: x, 1.0)


def test_wrapper_keeps_learned_variance_channels():
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 100, dtype=torch.float64))
    net = ToyConditional(diff, learned_variance=True)
    cfg = ClassifierFreeGuidance(net, guidance_scale=2.0)
    assert cfg.learned_variance
    x = torch.randn(3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t, y = torch.tensor([5, 50, 95]), torch.tensor([0, 1, 0])
    out = cfg(x, t, y=y)
    c, u = net(x, t, y=y), net(x, t, y=torch.full_like(y, 2))
    torch.testing.assert_close(out[:, :1], 3 * c[:, :1] - 2 * u[:, :1])
    torch.testing.assert_close(out[:, 1:], c[:, 1:])


@pytest.mark.parametrize("w", [0.0, 3.0])
def test_guided_sampling_of_gaussians_moves_the_mean(w):
    """With class N(m, v) and null N(0, v), the guided score at every t is that of data N((1+w) m, v),
    so ancestral sampling must return samples with mean (1+w) m and variance v."""
    diff = GaussianDiffusion(NoiseSchedule.from_name("linear", 300, dtype=torch.float64))
    net = ToyConditional(diff)
    n = 4000
    y = torch.cat([torch.zeros(n // 2, dtype=torch.long), torch.ones(n // 2, dtype=torch.long)])
    x = diff.p_sample_loop(ClassifierFreeGuidance(net, w), (n, 1), model_kwargs={"y": y},
                           generator=torch.Generator().manual_seed(0))
    for label, m in ((0, 1.0), (1, -2.0)):
        xs = x[y == label, 0]
        assert float(xs.mean()) == pytest.approx((1 + w) * m, abs=0.05)
        assert float(xs.var()) == pytest.approx(0.25, rel=0.12)
    # the deterministic DDIM sampler takes the same wrapper
    x_ddim = diff.ddim_sample_loop(ClassifierFreeGuidance(net, w), (n, 1), num_steps=50, model_kwargs={"y": y},
                                   generator=torch.Generator().manual_seed(0))
    assert float(x_ddim[y == 0, 0].mean()) == pytest.approx((1 + w) * 1.0, abs=0.05)


def test_drop_labels():
    y = torch.arange(10).repeat(1000)
    g = torch.Generator().manual_seed(0)
    d = drop_labels(y, 0.2, null_label=10, generator=g)
    frac = float((d == 10).float().mean())
    assert frac == pytest.approx(0.2, abs=0.02)
    assert torch.equal(d[d != 10], y[d != 10])
    with pytest.raises(ValueError, match="probability"):
        drop_labels(y, 1.5, 10)
