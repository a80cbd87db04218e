"""The scrubber's HTML player in headless Chromium, with no kernel and no book build.

``diffusion_lib.viz.widgets`` writes each interactive figure as one HTML fragment (frames, controls
and a short script). These tests put fragments on a page the way a notebook front end or the
built book does and drive them as a reader would: the slider, Play, the option buttons and the
dropdown each change the visible frame; the controls span the text column; print shows one frame.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from diffusion_lib.viz import widgets as W


def _frames(n: int, seed: int) -> list[bytes]:
    """n distinct 8x8 images (enlarged to 128 px by to_png)."""
    rng = np.random.default_rng(seed)
    return [W.to_png(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for _ in range(n)]


PLAIN = W.scrubber(_frames(5, 0), labels=[0, 10, 20, 30, 40], description="t", initial=1, play_interval_ms=40)
TOGGLE = W.option_scrubber({"linear": _frames(4, 1), "cosine": _frames(4, 2)}, labels=[1, 2, 3, 4])
DROPDOWN = W.option_scrubber({f"w={w}": _frames(3, 10 + w) for w in range(6)}, initial_option="w=2")
PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'></head><body style='margin:0'>"
    "<main style='width:700px;padding:0'>"
    + "".join(f"<section id='s{i}'>{s._repr_html_()}</section>" for i, s in enumerate((PLAIN, TOGGLE, DROPDOWN)))
    + "</main></body></html>"
)


@pytest.fixture()
def page(browser_context):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(PAGE)
    yield page
    page.close()
    assert not errors, errors


def _visible(page, section: str) -> list[int]:
    """Indices (in DOM order) of the visible frames of one player."""
    return page.eval_on_selector_all(
        f"#{section} img.ds-frame",
        "els => els.map((e, i) => [i, e.offsetWidth > 0 && getComputedStyle(e).display !== 'none'])"
        ".filter(p => p[1]).map(p => p[0])",
    )


def _label(page, section: str) -> str:
    return page.text_content(f"#{section} .ds-label")


def _src(page, section: str) -> str:
    return page.eval_on_selector_all(
        f"#{section} img.ds-frame", "els => els.filter(e => getComputedStyle(e).display !== 'none')[0].src"
    )


def test_initial_frame_is_shown_alone(page):
    assert _visible(page, "s0") == [1] and _label(page, "s0") == "t = 10"
    assert _visible(page, "s1") == [0] and _label(page, "s1") == "t = 1"
    assert _visible(page, "s2") == [2 * 3 + 0] and _label(page, "s2") == "0"


def test_moving_the_slider_changes_the_frame_and_label(page):
    slider = page.locator("#s0 .ds-slider")
    slider.focus()
    before = _src(page, "s0")
    slider.press("End")
    assert _visible(page, "s0") == [4] and _label(page, "s0") == "t = 40"
    assert _src(page, "s0") != before
    slider.press("ArrowLeft")
    assert _visible(page, "s0") == [3] and _label(page, "s0") == "t = 30"
    slider.press("Home")
    assert _visible(page, "s0") == [0]
    # the other players did not move
    assert _visible(page, "s1") == [0]


def test_play_steps_to_the_end_and_stops(page):
    play = page.locator("#s0 .ds-play")
    play.click()
    assert play.get_attribute("aria-pressed") == "true"
    page.wait_for_function("document.querySelector('#s0 .diffusion-scrubber').dataset.frame === '4'", timeout=5000)
    page.wait_for_function("document.querySelector('#s0 .ds-play').getAttribute('aria-pressed') === 'false'", timeout=5000)
    assert _visible(page, "s0") == [4]
    # Play at the last frame starts again from the first
    play.click()
    page.wait_for_function("document.querySelector('#s0 .diffusion-scrubber').dataset.frame !== '4'", timeout=5000)
    play.click()  # pause
    assert play.get_attribute("aria-pressed") == "false"


def test_option_buttons_switch_stacks_and_keep_the_position(page):
    page.locator("#s1 .ds-slider").focus()
    page.locator("#s1 .ds-slider").press("ArrowRight")
    page.locator("#s1 .ds-slider").press("ArrowRight")
    assert _visible(page, "s1") == [2]
    buttons = page.locator("#s1 .ds-option")
    assert buttons.all_text_contents() == ["linear", "cosine"]
    buttons.nth(1).click()
    assert _visible(page, "s1") == [4 + 2] and _label(page, "s1") == "t = 3"
    assert buttons.nth(1).get_attribute("aria-pressed") == "true"
    assert buttons.nth(0).get_attribute("aria-pressed") == "false"


def test_dropdown_switches_stacks(page):
    select = page.locator("#s2 select.ds-select")
    assert select.input_value() == "w=2"
    select.select_option("w=5")
    assert _visible(page, "s2") == [5 * 3]


def test_running_the_script_again_binds_nothing_twice(page):
    """A front end may run every output's script again (JupyterLab re-renders outputs)."""
    page.evaluate(W._PLAYER_JS)
    page.locator("#s0 .ds-slider").focus()
    page.locator("#s0 .ds-slider").press("Home")
    play = page.locator("#s0 .ds-play")
    play.click()  # one listener: starts; two listeners would start and stop at once
    assert play.get_attribute("aria-pressed") == "true"
    play.click()


def test_controls_span_the_text_column(page):
    width = page.eval_on_selector("#s0 .diffusion-scrubber", "e => e.getBoundingClientRect().width")
    slider = page.eval_on_selector("#s0 .ds-slider", "e => e.getBoundingClientRect().width")
    assert width == pytest.approx(700, abs=1)
    assert slider > 0.6 * 700


def test_narrow_column_fits_without_sideways_scroll(browser_context):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 320, "height": 700})
    page.set_content("<body style='margin:0'>" + TOGGLE._repr_html_() + "</body>")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.close()


def test_print_shows_one_frame_and_no_controls(page):
    page.emulate_media(media="print")
    for section in ("s0", "s1", "s2"):
        assert len(_visible(page, section)) == 1
        assert page.eval_on_selector(f"#{section} .ds-slider", "e => getComputedStyle(e).display") == "none"
    page.emulate_media(media="screen")


def test_frames_are_the_pngs_given():
    """The embedded images decode to the frames passed in, in order."""
    import base64
    import re

    html = PLAIN._repr_html_()
    data = [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    assert data == PLAIN.frames
    assert Image.open(io.BytesIO(data[0])).size == (128, 128)
