"""Tests for diffusion_lib.viz.plotting: grid layout and that the helpers draw what they claim."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffusion_lib.viz.plotting import make_grid, plot_schedule_curves, scatter2d, show_images  # noqa: E402


def test_make_grid_places_each_image():
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 3, 2)
    grid = make_grid(images, nrow=2, pad=1, pad_value=-9.0)
    # 3 rows of tiles of height 3, 2 columns of width 2, one pixel of padding around each
    assert grid.shape == (3 * 4 + 1, 2 * 3 + 1)
    for i in range(5):
        r, c = divmod(i, 2)
        tile = grid[1 + 4 * r : 1 + 4 * r + 3, 1 + 3 * c : 1 + 3 * c + 2]
        assert np.all(tile == i)
    assert np.all(grid[9:12, 4:6] == -9.0)  # the unused sixth tile stays padding
    assert np.all(grid[0] == -9.0) and np.all(grid[:, 0] == -9.0)


def test_make_grid_bad_input():
    with pytest.raises(ValueError, match="single-channel"):
        make_grid(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="nrow"):
        make_grid(torch.zeros(2, 1, 4, 4), nrow=0)


def test_show_images_and_scatter_draw():
    fig, (a, b) = plt.subplots(1, 2)
    show_images(torch.zeros(3, 1, 8, 8), nrow=3, ax=a, title="x")
    assert a.get_images()[0].get_array().shape == (10, 28)
    pts = torch.randn(50, 2)
    scatter2d(pts, ax=b, lim=3)
    offsets = b.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), pts.numpy())
    assert b.get_xlabel() and b.get_ylabel() and b.get_xlim() == (-3, 3)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        scatter2d(torch.zeros(4, 3), ax=b)
    plt.close(fig)


def test_plot_schedule_curves_skips_index_0():
    class Sched:
        alpha_bar = torch.tensor([1.0, 0.9, 0.5, 0.1])

    fig, ax = plt.subplots()
    plot_schedule_curves({"toy": Sched()}, "alpha_bar", ax=ax)
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(x, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(y, [0.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="no attribute"):
        plot_schedule_curves(Sched(), "snr", ax=ax)
    plt.close(fig)
