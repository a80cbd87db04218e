"""Browser tests of the built HTML book: every page, offline, in headless Chromium.

They run after the book build (``bash scripts/test.sh`` builds first) against ``_build/html``,
or the folder named by the environment variable ``BOOK_HTML_DIR``. The pages are served from a
localhost port and opened in Debian's Chromium (``/usr/bin/chromium``, or ``CHROMIUM``) through
Playwright. For every page they check that

* no uncaught JavaScript error (``pageerror``) happens and no request fails (HTTP >= 400)
  (console messages are not checked: the theme logs a harmless one on a first visit);
* no request leaves localhost (scripts, fonts, math: the book serves its own copies);
* every equation is typeset by MathJax, and no raw ``$$`` / ``\\(`` is left in the text;
* every interactive figure (a slider over a stack of images) shows a different image after the
  slider moves, after Play is pressed, and, with a selector, after another option is chosen;
* on notebook pages, the Binder and Colab buttons open this notebook on the book's branch, and
  Thebe (live code) starts its kernel from the same repository and branch;
* the page weighs at most ``PAGE_BUDGET_BYTES`` (HTML with its embedded figures, plus images).

Set ``BOOK_SCREENSHOT_DIR`` to save a screenshot of each page and figure there.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from diffusion_lib.widgets import PAGE_BUDGET_BYTES

ROOT = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("BOOK_HTML_DIR", ROOT / "_build" / "html")).resolve()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = os.environ.get("BOOK_SCREENSHOT_DIR")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_PAGES = {"search.html", "genindex.html", "py-modindex.html"}
TIMEOUT_MS = 30_000

NOT_BUILT = (
    f"The built book is missing: {HTML_DIR}/index.html does not exist. Build it first with "
    "`bash scripts/build_book.sh` (or point BOOK_HTML_DIR at a built _build/html folder)."
)


def discover_pages() -> list[str]:
    """Every content page of the build, as a path relative to the HTML folder."""
    if not (HTML_DIR / "index.html").is_file():
        return []
    pages = []
    for path in sorted(HTML_DIR.rglob("*.html")):
        rel = path.relative_to(HTML_DIR)
        if rel.parts[0].startswith("_") or rel.name in SKIP_PAGES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if 'http-equiv="Refresh"' in text[:2000] or "http-equiv=\"refresh\"" in text[:2000]:
            continue  # the root index.html that only redirects to the first chapter
        pages.append(rel.as_posix())
    return pages


PAGES = discover_pages()


def test_book_was_built():
    assert (HTML_DIR / "index.html").is_file(), NOT_BUILT
    assert PAGES, f"no content pages found under {HTML_DIR}"
    assert (HTML_DIR / "_static" / "jupyter-widgets" / "embed-amd.js").is_file(), (
        "the offline widget scripts are missing from the build: run "
        "`python scripts/vendor_assets.py` before `jupyter-book build` (build_book.sh does)"
    )


# ------------------------------------------------------------------------------- fixtures
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(NOT_BUILT, pytrace=False)
    handler = functools.partial(_QuietHandler, directory=str(HTML_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser_context():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. Install it with "
            "`apt-get update && apt-get install -y chromium` (scripts/test.sh does this), "
            "or set CHROMIUM to its path.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    user_dir = tempfile.mkdtemp(prefix="book-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(user_dir, ignore_errors=True)


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


_JS_WAIT_READY = """
async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // the ipywidgets manager replaces each view <script> by a rendered widget
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  for (let i = 0; i < 300; i++) {
    const rendered = document.querySelectorAll('.jupyter-widgets-view, .widget-vbox, .widget-hbox, .widget-inline-hbox, .widget-box');
    const pending = [...views].filter(s => !s.parentElement || !s.parentElement.querySelector('.jupyter-widgets, .lm-Widget'));
    if (views.length === 0 || pending.length === 0) break;
    await sleep(100);
  }
  if (document.querySelector('.math') && window.MathJax) {
    for (let i = 0; i < 300 && !(MathJax.startup && MathJax.startup.promise); i++) await sleep(100);
    if (MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  }
  return views.length;
}
"""

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

# A figure root: a library scrubber, or the widget area around any other slider.
_JS_MARK_FIGURES = """
() => {
  const roots = new Set(document.querySelectorAll('.diffusion-scrubber'));
  for (const s of document.querySelectorAll('.widget-slider, .widget-play')) {
    if (s.closest('.diffusion-scrubber')) continue;
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


def _image_shot(figure) -> bytes:
    img = _visible_image(figure)
    assert img is not None, "the figure shows no image"
    return img.screenshot(animations="disabled")


def _slider_value(figure) -> int | None:
    handle = figure.locator(".noUi-handle").first
    if handle.count() == 0:
        return None
    value = handle.get_attribute("aria-valuenow")
    return None if value is None else int(float(value))


def _press_slider(figure, key: str, times: int = 1) -> None:
    handle = figure.locator(".widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(times):
        handle.press(key)


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
    if figure.locator(".widget-slider .noUi-handle").count() == 0:
        problems.append(f"{where}: no slider handle rendered")
        return
    if _visible_image(figure) is None:
        problems.append(
            f"{where}: a slider with no picture next to it (an interact/observe figure? its "
            "output needs a kernel; build it with diffusion_lib.widgets.scrubber)"
        )
        return
    # 1. moving the slider changes the picture
    _press_slider(figure, "Home")
    first = _image_shot(figure)
    _press_slider(figure, "End")
    last = _wait_for_change(lambda: _image_shot(figure), first)
    if last == first:
        problems.append(
            f"{where}: moving the slider from its first to its last position did not change the "
            "image (a callback that needs a kernel? use diffusion_lib.widgets.scrubber)"
        )
    if shot := _shot_name(page_rel, f"__fig{index}_end"):
        figure.screenshot(path=str(shot), animations="disabled")
    # 2. pressing Play advances the slider and changes the picture
    play = figure.locator(".widget-play button").first
    if play.count():
        _press_slider(figure, "Home")
        start_value = _slider_value(figure)
        start = _wait_for_change(lambda: _image_shot(figure), last)
        play.click()
        moved = _wait_for_change(lambda: _image_shot(figure), start)
        value = _slider_value(figure)
        # pause before comparing further screenshots (a running Play keeps changing them);
        # the first button toggles play/pause (the second one, stop, would rewind)
        play.click()
        if moved == start:
            problems.append(f"{where}: pressing Play did not change the image")
        if start_value is not None and value == start_value:
            problems.append(f"{where}: pressing Play did not move the slider")
    # 3. a selector (ToggleButtons / Dropdown) switches between stacks of frames
    buttons = figure.locator(".widget-toggle-buttons button")
    dropdown = figure.locator(".widget-dropdown select")
    if buttons.count() > 1 or dropdown.count():
        _press_slider(figure, "Home")
        maximum = figure.locator(".noUi-handle").first.get_attribute("aria-valuemax")
        middle = int(float(maximum or 0)) // 2
        _press_slider(figure, "ArrowRight", middle)
        before = _image_shot(figure)
        if buttons.count() > 1:
            target = next(
                (b for b in buttons.all() if "mod-active" not in (b.get_attribute("class") or "")),
                buttons.nth(1),
            )
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
        n_views = page.evaluate(_JS_WAIT_READY)

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
    for href in binder:
        url = urllib.parse.urlparse(href)
        urlpath = urllib.parse.parse_qs(url.query).get("urlpath", [""])[0]
        if url.path.rstrip("/") != f"/v2/gh/{repo}/{branch}" or not re.fullmatch(
            rf"(lab/tree|tree)/{re.escape(notebook)}", urlpath
        ):
            problems.append(f"Binder link {href} does not open {notebook} on {repo}@{branch}")
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

