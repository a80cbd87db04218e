"""Browser tests of the built HTML book: every page, offline, in headless Chromium.

They run after the book build (``bash scripts/test.sh`` builds first) against ``_build/html``,
or the folder named by the environment variable ``BOOK_HTML_DIR``. The pages are served from a
localhost port and opened in headless Chromium through Playwright (the one ``chromium.py`` finds:
``$CHROMIUM``, the system's, or Playwright's own). For every page they check that

* no uncaught JavaScript error (``pageerror``) happens and no request fails (HTTP >= 400)
  (console messages are not checked: the theme logs a harmless one on a first visit);
* no request leaves localhost (scripts, fonts, math: the book serves its own copies);
* every equation is typeset by MathJax, and no raw ``$$`` / ``\\(`` is left in the text;
* every interactive figure (a slider over a stack of images) shows a different image after the
  slider moves, after Play is pressed, and, with a selector, after another option is chosen;
* on notebook pages, the Binder and Colab buttons open this notebook on the book's branch, and
  Thebe (live code) starts its kernel from the same repository and branch; the page links to
  its exercise notebook (chapters) and to the notebook with outputs, and both downloads exist;
* the sidebar buttons of the article header open their drawers (navigation on a phone, the
  page contents at 1280 px);
* the page weighs at most ``PAGE_BUDGET_BYTES`` (HTML with its embedded figures, plus images).

Set ``BOOK_SCREENSHOT_DIR`` to save a screenshot of each page and figure there.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from diffusion_lib.viz.widgets import PAGE_BUDGET_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_pages import HTML_DIR, JS_WAIT_READY, NOT_BUILT, ROOT, discover_pages, serve  # noqa: E402

SCREENSHOT_DIR = os.environ.get("BOOK_SCREENSHOT_DIR")
PAGES = discover_pages()


def test_book_was_built():
    assert (HTML_DIR / "index.html").is_file(), NOT_BUILT
    assert PAGES, f"no content pages found under {HTML_DIR}"
    assert (HTML_DIR / "_static" / "jupyter-widgets" / "embed-amd.js").is_file(), (
        "the offline widget scripts are missing from the build: run "
        "`python scripts/vendor_assets.py` before `jupyter-book build` (build_book.sh does)"
    )


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server():
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(NOT_BUILT, pytrace=False)
    with serve() as base:
        yield base


def _repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    url = repo["url"].rstrip("/")
    return urllib.parse.urlparse(url).path.strip("/"), repo.get("branch", "main")


# ------------------------------------------------------------------------------- helpers
_LOCAL_SCHEMES = ("data:", "blob:", "about:", "chrome-extension:", "devtools:")


def _is_local(url: str, base: str) -> bool:
    if url.startswith(_LOCAL_SCHEMES):
        return True
    host = urllib.parse.urlparse(url).hostname
    return url.startswith(base) or host in ("127.0.0.1", "localhost")


_JS_RAW_MATH = r"""
() => {
  const root = document.querySelector('main') || document.body;
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .jupyter-widgets';
  const untypeset = [...root.querySelectorAll('.math')]
    .filter(el => !el.closest('pre, code') && !el.querySelector('mjx-container'))
    .map(el => el.textContent.slice(0, 80));
  const raw = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement && n.parentElement.closest(skip)) continue;
    const t = n.textContent;
    if (/\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{/.test(t)) raw.push(t.trim().slice(0, 80));
  }
  return {
    nmath: root.querySelectorAll('.math').length,
    ntypeset: root.querySelectorAll('mjx-container').length,
    untypeset, raw,
  };
}
"""

# A figure root: a library scrubber, or the widget area around any other slider (an ipywidgets
# figure that would need a kernel: reported, since the book builds every figure with a scrubber).
_JS_MARK_FIGURES = """
() => {
  const roots = new Set(document.querySelectorAll('.diffusion-scrubber'));
  for (const s of document.querySelectorAll('.widget-slider, .widget-play')) {
    const area = s.closest('.cell_output, .output, .jp-OutputArea') || s.parentElement;
    roots.add(area);
  }
  let i = 0;
  for (const r of roots) r.setAttribute('data-book-figure', String(i++));
  return i;
}
"""


def _visible_image(figure):
    """The currently visible <img> of a figure (the selected frame of its Stack)."""
    for img in figure.locator("img").all():
        if img.is_visible():
            return img
    return None


def _image_shot(figure, tries: int = 20) -> bytes:
    """A screenshot of the figure's visible frame.

    While Play runs, the frame found visible can be hidden before its screenshot is taken (and
    stay hidden once playback stops), so a frame that vanishes is looked up again.
    """
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(tries):
        img = _visible_image(figure)
        assert img is not None, "the figure shows no image"
        try:
            return img.screenshot(animations="disabled", timeout=2_000)
        except PlaywrightError:
            time.sleep(0.1)
    raise AssertionError(f"no frame of the figure stayed visible long enough for a screenshot ({tries} tries)")


def _slider_value(figure) -> int | None:
    slider = figure.locator("input.ds-slider").first
    if slider.count() == 0:
        return None
    return int(slider.input_value())


def _press_slider(figure, key: str, times: int = 1) -> None:
    slider = figure.locator("input.ds-slider").first
    slider.focus()
    for _ in range(times):
        slider.press(key)


def _wait_for_change(fn, before, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    after = fn()
    while after == before and time.monotonic() < deadline:
        time.sleep(0.1)
        after = fn()
    return after


def _shot_name(page_rel: str, suffix: str) -> Path | None:
    if not SCREENSHOT_DIR:
        return None
    out = Path(SCREENSHOT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    return out / (page_rel.replace("/", "__").removesuffix(".html") + suffix + ".png")


def _check_figure(figure, index: int, page_rel: str, problems: list[str]) -> None:
    where = f"figure {index}"
    figure.scroll_into_view_if_needed()
    if figure.locator("input.ds-slider").count() == 0:
        problems.append(
            f"{where}: an ipywidgets slider (an interact/observe figure? its output needs a kernel; "
            "build it with diffusion_lib.viz.widgets.scrubber)"
        )
        return
    if _visible_image(figure) is None:
        problems.append(f"{where}: the figure shows no image")
        return
    # the controls span the text column
    width = figure.evaluate("e => e.getBoundingClientRect().width")
    column = figure.evaluate("e => (e.closest('.bd-article') || document.body).getBoundingClientRect().width")
    if width < 0.6 * column:
        problems.append(f"{where}: the figure is {width:.0f} px wide in a {column:.0f} px column")
    # 1. moving the slider changes the picture
    _press_slider(figure, "Home")
    first = _image_shot(figure)
    _press_slider(figure, "End")
    last = _wait_for_change(lambda: _image_shot(figure), first)
    if last == first:
        problems.append(f"{where}: moving the slider from its first to its last position did not change the image")
    if shot := _shot_name(page_rel, f"__fig{index}_end"):
        figure.screenshot(path=str(shot), animations="disabled")
    # 2. pressing Play advances the slider and changes the picture
    play = figure.locator("button.ds-play").first
    if play.count():
        _press_slider(figure, "Home")
        start_value = _slider_value(figure)
        start = _wait_for_change(lambda: _image_shot(figure), last)
        play.click()
        moved = _wait_for_change(lambda: _image_shot(figure), start)
        value = _slider_value(figure)
        if play.get_attribute("aria-pressed") == "true":
            play.click()  # pause before comparing further screenshots
        if moved == start:
            problems.append(f"{where}: pressing Play did not change the image")
        if start_value is not None and value == start_value:
            problems.append(f"{where}: pressing Play did not move the slider")
    else:
        problems.append(f"{where}: no Play button")
    # 3. a selector (buttons / dropdown) switches between stacks of frames
    buttons = figure.locator("button.ds-option")
    dropdown = figure.locator("select.ds-select")
    if buttons.count() > 1 or dropdown.count():
        _press_slider(figure, "Home")
        maximum = figure.locator("input.ds-slider").first.get_attribute("max")
        _press_slider(figure, "ArrowRight", int(maximum or 0) // 2)
        before = _image_shot(figure)
        if buttons.count() > 1:
            target = next((b for b in buttons.all() if b.get_attribute("aria-pressed") != "true"), buttons.nth(1))
            target.click()
        else:
            options = dropdown.first.locator("option").all()
            dropdown.first.select_option(index=1 if len(options) > 1 else 0)
        after = _wait_for_change(lambda: _image_shot(figure), before)
        if after == before:
            problems.append(f"{where}: choosing another option did not change the image")


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("page_rel", PAGES or ["<book not built>"])
def test_page(page_rel, server, browser_context):
    if page_rel == "<book not built>":
        pytest.fail(NOT_BUILT, pytrace=False)
    page = browser_context.new_page()
    requests, foreign, failed, errors = [], [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("request", lambda r: None if _is_local(r.url, server) else foreign.append(r.url))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    problems: list[str] = []
    try:
        page.goto(f"{server}/{page_rel}", wait_until="load")
        n_views = page.evaluate(JS_WAIT_READY)

        # math
        math = page.evaluate(_JS_RAW_MATH)
        if math["untypeset"]:
            problems.append(f"equations not typeset by MathJax: {math['untypeset'][:3]}")
        if math["raw"]:
            problems.append(f"raw TeX delimiters left in the text: {math['raw'][:3]}")
        if math["nmath"] and not math["ntypeset"]:
            problems.append("the page has equations but MathJax typeset none")

        # interactive figures
        n_figures = page.evaluate(_JS_MARK_FIGURES)
        if n_views and page.locator(".jupyter-widgets").count() == 0:
            problems.append(f"{n_views} widget views embedded but none rendered")
        for i in range(n_figures):
            _check_figure(page.locator(f'[data-book-figure="{i}"]'), i, page_rel, problems)

        # launch buttons on notebook pages
        if (HTML_DIR / "_sources" / page_rel).with_suffix(".ipynb").is_file():
            _check_launch_links(page, page_rel, problems)

        if shot := _shot_name(page_rel, ""):
            page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()

    problems += [f"uncaught JavaScript error: {e}" for e in errors]
    problems += [f"request left localhost: {u}" for u in sorted(set(foreign))]
    problems += [f"request failed: {f}" for f in sorted(set(failed))]
    assert requests, "the page made no request at all"
    assert not problems, f"{page_rel}:\n  " + "\n  ".join(problems)


def _check_launch_links(page, page_rel: str, problems: list[str]) -> None:
    repo, branch = _repository()
    notebook = Path(page_rel).with_suffix(".ipynb").as_posix()
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    binder = [h for h in hrefs if "mybinder.org/v2/gh/" in h]
    colab = [h for h in hrefs if "colab.research.google.com/github/" in h]
    if not binder:
        problems.append("no Binder launch link")
    # the launch button opens the chapter; the exercise link opens its student edition, which
    # binder/postBuild writes to student_edition/<chapter>.ipynb
    student = f"student_edition/{Path(page_rel).stem}.ipynb"
    for href in binder:
        url = urllib.parse.urlparse(href)
        urlpath = urllib.parse.parse_qs(url.query).get("urlpath", [""])[0]
        if url.path.rstrip("/") != f"/v2/gh/{repo}/{branch}" or not re.fullmatch(
            rf"(lab/tree|tree)/({re.escape(notebook)}|{re.escape(student)})", urlpath
        ):
            problems.append(f"Binder link {href} does not open {notebook} (or {student}) on {repo}@{branch}")
    if not colab:
        problems.append("no Colab launch link")
    for href in colab:
        if urllib.parse.urlparse(href).path != f"/github/{repo}/blob/{branch}/{notebook}":
            problems.append(f"Colab link {href} does not open {notebook} on {repo}@{branch}")
    thebe = page.locator('script[type="text/x-thebe-config"]')
    if thebe.count() == 0:
        problems.append("no Thebe (live code) configuration")
    else:
        text = thebe.first.text_content() or ""
        if f'repo: "{repo}"' not in text or f'ref: "{branch}"' not in text:
            problems.append(f"Thebe does not start a kernel from {repo}@{branch}: {text.strip()[:200]}")
    _check_notebook_downloads(page, page_rel, problems)


def _has_exercises(page_rel: str) -> bool:
    source = HTML_DIR / "_sources" / Path(page_rel).with_suffix(".ipynb")
    text = source.read_text(encoding="utf-8")
    return "### BEGIN SOLUTION" in text


def _check_notebook_downloads(page, page_rel: str, problems: list[str]) -> None:
    """The exercise notebook (chapters) and the notebook with outputs: linked, and there."""
    stem = Path(page_rel).stem
    links = page.eval_on_selector_all("nav.bk-notebook-links a", "els => els.map(e => [e.textContent, e.href])")
    wanted = [("Download this notebook with all its outputs", f"_executed/{stem}.ipynb")]
    if _has_exercises(page_rel):
        wanted.append(("Download the exercises", f"_exercises/{stem}.ipynb"))
        if not any("Open the exercises on Binder" in text for text, _ in links):
            problems.append("no 'Open the exercises on Binder' link")
    for text, target in wanted:
        hrefs = [href for t, href in links if text in t]
        if not hrefs:
            problems.append(f"no '{text}' link under the title")
            continue
        path = HTML_DIR / urllib.parse.unquote(urllib.parse.urlparse(hrefs[0]).path).lstrip("/")
        if not hrefs[0].endswith(target) or not path.is_file():
            problems.append(f"'{text}' points at {hrefs[0]}, which is not the file {target} of the build")
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if target.startswith("_executed") and not any(c.get("outputs") for c in code):
            problems.append(f"{target} has no outputs")
        if target.startswith("_exercises"):
            if any(c.get("outputs") for c in code):
                problems.append(f"{target} still has outputs")
            sources = "".join("".join(c["source"]) for c in code)
            if "### BEGIN SOLUTION" in sources or "NotImplementedError" not in sources:
                problems.append(f"{target} is not the student edition (solutions still in, or no stubs)")


@pytest.mark.parametrize("page_rel", PAGES or ["<book not built>"])
def test_page_weight(page_rel):
    """HTML (with the embedded widget state) plus the page's own images stay under budget."""
    if page_rel == "<book not built>":
        pytest.fail(NOT_BUILT, pytrace=False)
    path = HTML_DIR / page_rel
    html = path.read_text(encoding="utf-8")
    total = path.stat().st_size
    seen = set()
    for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
        if src.startswith(("data:", "http:", "https:")):
            continue
        img = (path.parent / urllib.parse.unquote(src.split("?")[0])).resolve()
        if img.is_file() and img not in seen:
            seen.add(img)
            total += img.stat().st_size
    assert total <= PAGE_BUDGET_BYTES, (
        f"{page_rel} weighs {total / 1e6:.2f} MB (HTML {path.stat().st_size / 1e6:.2f} MB), over "
        f"the {PAGE_BUDGET_BYTES / 1e6:.0f} MB budget: use fewer or smaller frames in its figures"
    )


def page_weights() -> dict[str, int]:
    """HTML bytes of every page (for reports): ``python -c 'from tests.browser...'``."""
    return {p: (HTML_DIR / p).stat().st_size for p in PAGES}

