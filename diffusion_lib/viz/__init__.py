"""Pictures: static plots and the self-contained HTML player behind every scrubber."""

from __future__ import annotations

from diffusion_lib.viz.plotting import (
    make_grid,
    show_images,
    scatter2d,
    plot_schedule_curves,
)
from diffusion_lib.viz.widgets import (
    MAX_FRAMES,
    MAX_FRAME_BYTES,
    MAX_WIDGET_BYTES,
    PAGE_BUDGET_BYTES,
    Scrubber,
    OptionScrubber,
    render_frames,
    to_png,
    scrubber,
    option_scrubber,
)

__all__ = [
    "make_grid",
    "show_images",
    "scatter2d",
    "plot_schedule_curves",
    "MAX_FRAMES",
    "MAX_FRAME_BYTES",
    "MAX_WIDGET_BYTES",
    "PAGE_BUDGET_BYTES",
    "Scrubber",
    "OptionScrubber",
    "render_frames",
    "to_png",
    "scrubber",
    "option_scrubber",
]
